"""Leave one group out: each group (a country) predicted by a ridge fitted on the others.

What a model brings to a country without surveys. The penalty is chosen by an inner
leave-one-group-out over the training groups (pooled R2 of their held-out predictions),
so the held-out group never takes part in any choice. Used by the evaluation
(``evaluation.across_countries``) and by the cluster fit's out-of-country figure.
Groups are used to split, never as features.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .metrics import coefficient_of_determination
from .ridge import DEFAULT_ALPHAS, fit_ridge, ridge_path


def _loco_predictions(x: np.ndarray, y: np.ndarray, countries: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    """Each row predicted by ridge fitted on the other countries, for every alpha: [n, alphas]."""
    pred = np.empty((y.size, len(alphas)))
    for country in np.unique(countries):
        held, train = countries == country, countries != country
        coefs, mean, scale, y_mean = ridge_path(x[train], y[train], alphas)
        pred[held] = ((x[held] - mean) / scale) @ coefs.T + y_mean
    return pred


@dataclass(frozen=True)
class OutOfCountry:
    """Leave-one-country-out predictions of every row; per held-out country, the penalty
    chosen and the residuals of the inner leave-one-country-out predictions over the
    other countries with it (calibration data for that country's intervals)."""

    pred: np.ndarray
    alphas: dict[str, float]
    calibration_residuals: dict[str, np.ndarray]


def leave_one_country_out(
    x: np.ndarray, y: np.ndarray, countries: np.ndarray, alphas: Sequence[float] = DEFAULT_ALPHAS
) -> OutOfCountry:
    """Out-of-country predictions of every row (see :class:`OutOfCountry`)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    pred = np.empty(y.size)
    chosen, residuals = {}, {}
    for country in np.unique(countries):
        held, train = countries == country, countries != country
        alpha, residuals[str(country)] = out_of_country_alpha(x[train], y[train], countries[train], alphas)
        pred[held] = fit_ridge(x[train], y[train], alpha).predict(x[held])
        chosen[str(country)] = alpha
    return OutOfCountry(pred, chosen, residuals)


def out_of_country_alpha(
    x: np.ndarray, y: np.ndarray, countries: np.ndarray, alphas: Sequence[float] = DEFAULT_ALPHAS
) -> tuple[float, np.ndarray]:
    """The ridge penalty whose leave-one-country-out predictions of these rows score the
    best pooled R2, and the residuals of those predictions."""
    inner = _loco_predictions(x, y, countries, alphas)
    scores = [coefficient_of_determination(y, inner[:, k]) for k in range(len(alphas))]
    best = int(np.argmax(scores))
    return float(alphas[best]), y - inner[:, best]
