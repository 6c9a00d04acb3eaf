"""Regression: ridge with its penalty chosen by cross-validation, and the scores it is judged by."""
