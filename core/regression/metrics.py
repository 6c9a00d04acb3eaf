"""Scores, named as in the literature: r² is the squared Pearson correlation (Jean et
al. 2016, Yeh et al. 2020), R² the coefficient of determination.

The r² here keeps the correlation's sign (r·|r|): squaring alone turns predictions that
run against the outcome (each held-out fold predicted by the other folds' mean, say)
into a score that reads as skill. A negative r² is no skill at all."""
from __future__ import annotations

import numpy as np


def squared_pearson(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """r²: the squared Pearson correlation between observations and predictions, with the
    correlation's sign (negative when the predictions run against the observations)."""
    y_true = np.asarray(y_true, np.float64)
    y_pred = np.asarray(y_pred, np.float64)
    if y_true.std() == 0 or y_pred.std() == 0:
        return 0.0
    r = float(np.corrcoef(y_true, y_pred)[0, 1])
    return r * abs(r)


def describe_r2(r2: float, digits: int = 3) -> str:
    """A signed r² as printed for a user: a negative one says that it is no skill."""
    text = f"r² {r2:.{digits}f}"
    if r2 < 0:
        text += " (negative: the predictions run against the outcome; no skill)"
    return text


def coefficient_of_determination(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """R²: 1 - residual sum of squares / total sum of squares (can be negative)."""
    y_true = np.asarray(y_true, np.float64)
    y_pred = np.asarray(y_pred, np.float64)
    total = np.sum((y_true - y_true.mean()) ** 2)
    if total == 0:
        return 0.0
    return float(1.0 - np.sum((y_true - y_pred) ** 2) / total)


def interval_half_width(residuals: np.ndarray, level: float = 0.8) -> float:
    """Half-width of a ``level`` interval: the ``level`` quantile of the absolute
    residuals of held-out predictions (``level`` of them lay within +- it)."""
    return float(np.quantile(np.abs(np.asarray(residuals, np.float64)), level))


def demeaned(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``values`` minus the mean of their group."""
    values = np.asarray(values, np.float64)
    out = values.copy()
    for g in np.unique(groups):
        in_group = groups == g
        out[in_group] -= values[in_group].mean()
    return out


def within_r2(y: np.ndarray, pred: np.ndarray, groups: np.ndarray) -> float:
    """r² of ``pred`` and ``y`` both demeaned per group: how well places are ranked inside
    a group (a country, a survey round), whatever the groups' levels."""
    return squared_pearson(demeaned(y, groups), demeaned(pred, groups))
