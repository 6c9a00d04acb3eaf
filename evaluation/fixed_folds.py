"""Honest scores on fixed folds: penalty chosen on each fold's validation split, the
model refit on train + validation, scored on the fold's test split; test splits
pooled. Nothing about the test splits is used to choose anything."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..core.regression.metrics import coefficient_of_determination, squared_pearson
from ..core.regression.ridge import DEFAULT_ALPHAS, ridge_path, fit_ridge


def evaluate_on_folds(
    x: np.ndarray,
    y: np.ndarray,
    folds: dict,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
) -> dict:
    """Scores per fold and pooled; ``folds[name]`` has 'train', 'val', 'test' index arrays."""
    pred, per_fold = fold_test_predictions(x, y, folds, alphas)
    return fold_summary(y, pred, per_fold)


def fold_test_predictions(
    x: np.ndarray, y: np.ndarray, folds: dict, alphas: Sequence[float] = DEFAULT_ALPHAS
) -> tuple[np.ndarray, dict]:
    """Each cluster's prediction from the fold whose test split holds it (NaN where none
    does), and the scores and penalty of each fold."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    pooled_pred = np.full(y.size, np.nan)
    per_fold = {}
    for name in sorted(folds):
        split = folds[name]
        tr, va, te = split["train"], split["val"], split["test"]
        coefs, mean, scale, y_mean = ridge_path(x[tr], y[tr], alphas)
        val_pred = ((x[va] - mean) / scale) @ coefs.T + y_mean
        val_scores = [coefficient_of_determination(y[va], val_pred[:, k]) for k in range(len(alphas))]
        alpha = alphas[int(np.argmax(val_scores))]
        trva = np.concatenate([tr, va])
        model = fit_ridge(x[trva], y[trva], alpha)
        pred = model.predict(x[te])
        pooled_pred[te] = pred
        per_fold[name] = {
            "alpha": float(alpha),
            "r2": round(squared_pearson(y[te], pred), 4),
            "R2": round(coefficient_of_determination(y[te], pred), 4),
            "n": int(te.size),
        }
    return pooled_pred, per_fold


def fold_summary(y: np.ndarray, pooled_pred: np.ndarray, per_fold: dict) -> dict:
    """The pooled and per-fold scores of :func:`fold_test_predictions`."""
    y = np.asarray(y, np.float64)
    tested = ~np.isnan(pooled_pred)
    return {
        "pooled": {
            "r2": round(squared_pearson(y[tested], pooled_pred[tested]), 4),
            "R2": round(coefficient_of_determination(y[tested], pooled_pred[tested]), 4),
            "n": int(tested.sum()),
        },
        "folds": per_fold,
        "protocol": (
            "ridge on standardized features; alpha chosen on each fold's val split, "
            "refit on train+val, scored on its test split; test splits pooled"
        ),
    }
