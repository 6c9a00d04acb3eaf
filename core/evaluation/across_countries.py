"""Scores that a pooled r2 hides: within a country, and out of country.

On the LSMS set 56 % of the label variance lies between country-years, so a pooled r2
mostly rewards telling countries apart. Two figures say what an analyst needs:

- **within country-year**: the squared Pearson correlation of predictions and labels
  after both are demeaned per country-year (how well places are ranked inside one
  survey round); also per country alone.
- **leave one country out** (LOCO): for each country, a model fitted on the four others
  (ridge penalty chosen by an inner leave-one-country-out over those four, on the pooled
  R2 of their held-out predictions) predicts it; the within-country-year r2 of these
  predictions is what a model brings to a country without surveys.

Country and year are used to group the scores, never as features.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..regression.metrics import coefficient_of_determination, squared_pearson
from ..regression.ridge import DEFAULT_ALPHAS, fit_ridge, ridge_path


def demeaned(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``values`` minus the mean of their group."""
    values = np.asarray(values, np.float64)
    out = values.copy()
    for g in np.unique(groups):
        in_group = groups == g
        out[in_group] -= values[in_group].mean()
    return out


def within_r2(y: np.ndarray, pred: np.ndarray, groups: np.ndarray) -> float:
    """Squared Pearson correlation of ``pred`` and ``y``, both demeaned per group."""
    return squared_pearson(demeaned(y, groups), demeaned(pred, groups))


def country_years(countries: np.ndarray, years: np.ndarray) -> np.ndarray:
    return np.array([f"{c}-{int(y)}" for c, y in zip(countries, years)])


def _loco_predictions(x: np.ndarray, y: np.ndarray, countries: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    """Each row predicted by ridge fitted on the other countries, for every alpha: [n, alphas]."""
    pred = np.empty((y.size, len(alphas)))
    for country in np.unique(countries):
        held, train = countries == country, countries != country
        coefs, mean, scale, y_mean = ridge_path(x[train], y[train], alphas)
        pred[held] = ((x[held] - mean) / scale) @ coefs.T + y_mean
    return pred


def leave_one_country_out(
    x: np.ndarray, y: np.ndarray, countries: np.ndarray, alphas: Sequence[float] = DEFAULT_ALPHAS
) -> tuple[np.ndarray, dict[str, float]]:
    """Out-of-country predictions of every row, and the penalty chosen for each country."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    pred = np.empty(y.size)
    chosen = {}
    for country in np.unique(countries):
        held, train = countries == country, countries != country
        inner = _loco_predictions(x[train], y[train], countries[train], alphas)
        scores = [coefficient_of_determination(y[train], inner[:, k]) for k in range(len(alphas))]
        alpha = float(alphas[int(np.argmax(scores))])
        pred[held] = fit_ridge(x[train], y[train], alpha).predict(x[held])
        chosen[str(country)] = alpha
    return pred, chosen


def country_scores(y: np.ndarray, pred: np.ndarray, countries: np.ndarray, years: np.ndarray) -> dict:
    """Pooled r2 and R2, within country-year r2, and r2 within each country alone."""
    return {
        "r2": round(squared_pearson(y, pred), 4),
        "R2": round(coefficient_of_determination(y, pred), 4),
        "r2_within_country_year": round(within_r2(y, pred, country_years(countries, years)), 4),
        "r2_per_country": {
            str(c): round(within_r2(y[countries == c], pred[countries == c], years[countries == c]), 4)
            for c in np.unique(countries)
        },
        "n": int(y.size),
    }
