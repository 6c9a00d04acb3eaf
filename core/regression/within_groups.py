"""Ridge fitted within groups: coefficients learnt from differences between places of one group.

Survey rounds (country-years) differ in mean wealth for reasons a place's own features
hardly show (how the asset index sits in each survey, a country's income); a ridge fitted
across them spends part of its coefficients on those levels. Fitted within groups, each
group's mean is taken from its rows' features and outcomes before the ridge (the
fixed-effects, or within, estimator), so the coefficients rank places inside a group. The
fitted model predicts from raw features around the training rows' overall means: levels
across groups follow the features through the same coefficients. Groups are used in
training only, never as features: a map needs none.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .metrics import demeaned
from .ridge import RidgeRegressor, ridge_path


def demeaned_columns(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each column of ``x`` minus its mean over the rows of the same group."""
    x = np.asarray(x, np.float64)
    if x.shape[0] == 0:
        return x.copy()
    _, group_of_row = np.unique(np.asarray(groups), return_inverse=True)
    group_of_row = group_of_row.ravel()
    order = np.argsort(group_of_row, kind="stable")
    counts = np.bincount(group_of_row)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    means = np.add.reduceat(x[order], starts, axis=0) / counts.reshape((-1,) + (1,) * (x.ndim - 1))
    return x - means[group_of_row]


@dataclass(frozen=True)
class RidgePath:
    """Ridge coefficients for several penalties: ``pred = ((x - x_mean) / x_scale) @ coefs.T + y_mean``."""

    alphas: tuple[float, ...]
    coefs: np.ndarray  # [alphas, features]
    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions ``[n, alphas]``."""
        return ((np.asarray(x, np.float64) - self.x_mean) / self.x_scale) @ self.coefs.T + self.y_mean

    def regressor(self, k: int = 0) -> RidgeRegressor:
        return RidgeRegressor(coef=self.coefs[k].copy(), intercept=self.y_mean, x_mean=self.x_mean,
                              x_scale=self.x_scale, alpha=float(self.alphas[k]))


def fit_ridge_path(
    x: np.ndarray, y: np.ndarray, alphas: Sequence[float], groups: np.ndarray | None = None,
) -> RidgePath:
    """Ridge on all rows for every penalty (``groups`` None), or within ``groups`` (module
    docstring): features scaled by their spread within the groups, means and intercept
    those of all the rows."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    alphas = tuple(float(a) for a in alphas)
    if groups is None:
        coefs, mean, scale, y_mean = ridge_path(x, y, alphas)
        return RidgePath(alphas, coefs, mean, scale, float(y_mean))
    coefs, _, scale, _ = ridge_path(demeaned_columns(x, groups), demeaned(y, groups), alphas)
    return RidgePath(alphas, coefs, x.mean(axis=0), scale, float(y.mean()))


def fit_ridge_within(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None, alpha: float) -> RidgeRegressor:
    """One ridge with penalty ``alpha``, within ``groups`` (across all rows where None)."""
    return fit_ridge_path(x, y, [alpha], groups).regressor(0)
