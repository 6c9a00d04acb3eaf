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

import numpy as np

from ..core.regression.metrics import (
    coefficient_of_determination,
    demeaned,
    interval_half_width,
    squared_pearson,
    within_r2,
)
from ..core.models.feature_domain import FeatureDomain
from ..core.regression.leave_group_out import OutOfCountry


def country_years(countries: np.ndarray, years: np.ndarray) -> np.ndarray:
    return np.array([f"{c}-{int(y)}" for c, y in zip(countries, years)])


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


def interval_coverage(
    y: np.ndarray, pred: np.ndarray, calibration_residuals: dict[str, np.ndarray], held_out: dict[str, np.ndarray],
    level: float = 0.8,
) -> float:
    """The share of held-out labels inside ``pred +- q``, ``q`` the ``level`` quantile of the
    absolute residuals each held-out set's model left on its own calibration data (never
    on the held-out rows). ``held_out`` and ``calibration_residuals`` are keyed alike."""
    inside = 0
    total = 0
    for key, rows in held_out.items():
        q = interval_half_width(calibration_residuals[key], level)
        inside += int(np.sum(np.abs(y[rows] - pred[rows]) <= q))
        total += rows.size
    return inside / max(1, total)


def loco_interval_coverage(y: np.ndarray, countries: np.ndarray, loco: OutOfCountry, level: float = 0.8) -> float:
    """Coverage of the ``level`` interval of leave-one-country-out predictions: each
    country's interval from the inner residuals over the four other countries."""
    held = {str(c): np.flatnonzero(countries == c) for c in np.unique(countries)}
    return interval_coverage(y, loco.pred, loco.calibration_residuals, held, level)


def domain_check(
    x: np.ndarray, y: np.ndarray, pred: np.ndarray, calibration_residuals: dict[str, np.ndarray],
    held_out: dict[str, np.ndarray], training: dict[str, np.ndarray], level: float = 0.8,
) -> dict:
    """What the maps' domain check does on held-out rows: the share flagged out of domain
    (farther from the training rows' features than any training row, see
    :class:`FeatureDomain`) and the coverage of the interval widened with the distance
    (``q x interval_scale``, ``q`` from the calibration residuals as in
    :func:`interval_coverage`). ``training[key]``: the rows each held-out set's model was
    fitted on."""
    flagged = inside = total = 0
    for key, rows in held_out.items():
        domain = FeatureDomain.of_training(x[training[key]])
        distance = domain.distance(domain.coordinates(x[rows]))
        q = interval_half_width(calibration_residuals[key], level)
        flagged += int(np.sum(domain.outside(distance)))
        inside += int(np.sum(np.abs(y[rows] - pred[rows]) <= q * domain.interval_scale(distance)))
        total += rows.size
    return {"flagged": round(flagged / max(1, total), 4), "coverage_widened": round(inside / max(1, total), 4)}


def loco_domain_check(x: np.ndarray, y: np.ndarray, countries: np.ndarray, loco: OutOfCountry, level: float = 0.8) -> dict:
    """:func:`domain_check` for leave-one-country-out predictions."""
    held = {str(c): np.flatnonzero(countries == c) for c in np.unique(countries)}
    training = {str(c): np.flatnonzero(countries != c) for c in np.unique(countries)}
    return domain_check(x, y, loco.pred, loco.calibration_residuals, held, training, level)
