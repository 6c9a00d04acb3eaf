"""Evaluation on the real LSMS set with its fixed folds (make eval)."""
