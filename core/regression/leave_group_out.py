"""Leave one group out: each group (a country) predicted by a ridge fitted on the others.

What a model brings to a country without surveys. The penalty is chosen by an inner
leave-one-group-out over the training groups (pooled R2 of their held-out predictions),
so the held-out group never takes part in any choice. Used by the evaluation
(``evaluation.across_countries``) and by the cluster fit's out-of-country figure.
Groups are used to split, never as features.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .metrics import coefficient_of_determination, demeaned, squared_pearson
from .ridge import DEFAULT_ALPHAS, fit_ridge, ridge_path
from .within_groups import demeaned_columns, fit_ridge_path


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
    # Per held-out country, the score of the inner predictions with the chosen penalty,
    # where the choice was made on a within-group r2 (:func:`leave_one_country_out_ranked`).
    inner_scores: dict[str, float] = field(default_factory=dict)


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


def _within_r2_columns(y: np.ndarray, pred: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The within-group r2 (signed, as :func:`.metrics.within_r2`) of each column of ``pred`` [n, k]."""
    yd, pd = demeaned(y, groups), demeaned_columns(pred, groups)
    return np.array([squared_pearson(yd, pd[:, k]) for k in range(pd.shape[1])])


def leave_one_country_out_ranked(
    x: np.ndarray, y: np.ndarray, countries: np.ndarray, groups: np.ndarray, within: bool = False,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
) -> OutOfCountry:
    """Out-of-country predictions of every row, as :func:`leave_one_country_out`, scored
    for ranking: each held-out country's penalty is the one whose inner leave-one-country-
    out predictions over the other countries have the best r2 within ``groups`` (survey
    rounds: the score reported), and with ``within`` the ridge is fitted within ``groups``
    (:mod:`.within_groups`). The held-out country takes part in no choice. The inner fit
    that leaves out countries a and b serves both a's and b's outer fold, so each pair
    of countries is fitted once."""
    x, y, groups = np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(groups)
    labels = np.asarray(countries).astype(str)
    names = [str(c) for c in np.unique(labels)]
    rows = {c: labels == c for c in names}
    inner: dict[str, dict[str, np.ndarray]] = {c: {} for c in names}  # [o][c]: c predicted without o and c
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            keep = ~(rows[a] | rows[b])
            path = fit_ridge_path(x[keep], y[keep], alphas, groups[keep] if within else None)
            inner[a][b], inner[b][a] = path.predict(x[rows[b]]), path.predict(x[rows[a]])
    pred = np.empty(y.size)
    chosen, residuals, scores = {}, {}, {}
    for held in names:
        train = ~rows[held]
        position = np.cumsum(train) - 1  # a training row's place among the training rows
        inner_pred = np.empty((int(train.sum()), len(alphas)))
        for other, other_pred in inner.pop(held).items():
            inner_pred[position[rows[other]]] = other_pred
        by_alpha = _within_r2_columns(y[train], inner_pred, groups[train])
        best = int(np.argmax(by_alpha))
        chosen[held], scores[held] = float(alphas[best]), float(by_alpha[best])
        residuals[held] = y[train] - inner_pred[:, best]
        fit = fit_ridge_path(x[train], y[train], [alphas[best]], groups[train] if within else None)
        pred[rows[held]] = fit.predict(x[rows[held]])[:, 0]
    return OutOfCountry(pred, chosen, residuals, scores)


def out_of_country_penalty(
    x: np.ndarray, y: np.ndarray, countries: np.ndarray, groups: np.ndarray, within: bool = False,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
) -> tuple[float, float]:
    """The penalty whose leave-one-country-out predictions of these rows rank best within
    ``groups``, and that r2 (how :func:`leave_one_country_out_ranked` chooses, on all the
    countries given: for a model fitted on all of them)."""
    x, y, groups = np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(groups)
    pred = np.empty((y.size, len(alphas)))
    for country in np.unique(countries):
        held = np.asarray(countries) == country
        path = fit_ridge_path(x[~held], y[~held], alphas, groups[~held] if within else None)
        pred[held] = path.predict(x[held])
    by_alpha = _within_r2_columns(y, pred, groups)
    best = int(np.argmax(by_alpha))
    return float(alphas[best]), float(by_alpha[best])


def select_by_inner_scores(results: dict[str, OutOfCountry], countries: np.ndarray) -> tuple[np.ndarray, dict[str, str]]:
    """For each held-out country, the candidate (a key of ``results``, each from
    :func:`leave_one_country_out_ranked` on the same rows) whose inner score on the other
    countries is best (first listed wins a tie); the predictions of those choices."""
    names, labels = list(results), np.asarray(countries).astype(str)
    pred = np.empty(labels.size)
    chosen = {}
    for held in [str(c) for c in np.unique(labels)]:
        chosen[held] = max(names, key=lambda n: (results[n].inner_scores[held], -names.index(n)))
        rows = labels == held
        pred[rows] = results[chosen[held]].pred[rows]
    return pred, chosen
