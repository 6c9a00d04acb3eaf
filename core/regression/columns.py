"""The survey stage for a network's features: the regression's columns chosen on inner folds.

A proxy network gives hundreds of features (1,280 for EfficientNet-Lite0) for a few dozen
survey clusters; a ridge on all of them scored anywhere from r² 0.0 to 0.5 on the 44
Kinshasa clusters from one training run of the network to the next (docs/fit_clusters.md).
The candidates here are linear maps of the features, fitted on each training set:

- ``features``: the features as they are;
- ``pca k=<k>``: their first k principal components (k = 2, 4, 8, 16);
- ``head``: the network's own night-light class scores (its last layer), the directions
  the proxy task trained.

Inside each outer fold the candidate (and its penalty) with the best pooled inner
out-of-fold R² is fitted (the criterion the penalty is chosen by); the final model makes the
same choice on all clusters' folds. Every candidate is linear, so the chosen fit is stored
as a ridge on the features themselves (:func:`composed`): model files, maps and intervals
need nothing new.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .ridge import AlphaChoice, PenaltySearch, RidgeRegressor, choose_alpha, fit_ridge, search_report

PCA_DIMENSIONS = (2, 4, 8, 16)


@dataclass(frozen=True)
class LinearMap:
    """``columns = x @ matrix + offset``; ``matrix`` None: the features as they are."""

    matrix: np.ndarray | None
    offset: np.ndarray | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.matrix is None:
            return x
        return x @ self.matrix + (0.0 if self.offset is None else self.offset)


@dataclass(frozen=True)
class Columns:
    """A candidate: its name, and how its map is fitted on training features."""

    name: str
    fit: Callable[[np.ndarray], LinearMap]


def _features(x: np.ndarray) -> LinearMap:
    return LinearMap(None)


def _pca(k: int) -> Callable[[np.ndarray], LinearMap]:
    def fit(x: np.ndarray) -> LinearMap:
        mean = x.mean(0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        axes = vt[: min(k, vt.shape[0])].T
        return LinearMap(axes, -mean @ axes)

    return fit


def _head(weight: np.ndarray, bias: np.ndarray) -> Callable[[np.ndarray], LinearMap]:
    return lambda x: LinearMap(np.asarray(weight, np.float64).T, np.asarray(bias, np.float64))


FEATURES = Columns("features", _features)


def network_candidates(head: tuple[np.ndarray, np.ndarray] | None) -> tuple[Columns, ...]:
    """The candidates for a network's features: as they are, PCA of each k, and the
    network's class scores where ``head`` (weights [classes, features], bias) is given."""
    out = [FEATURES] + [Columns(f"pca k={k}", _pca(k)) for k in PCA_DIMENSIONS]
    if head is not None:
        out.append(Columns("head", _head(*head)))
    return tuple(out)


@dataclass(frozen=True)
class ColumnsChoice:
    """The candidate chosen on a training set's inner folds, its map and its penalty."""

    name: str
    columns: LinearMap
    alpha: AlphaChoice
    inner_scores: dict[str, float]  # best pooled inner R² of each candidate


def choose_columns(
    x: np.ndarray, y: np.ndarray, folds: np.ndarray, candidates: Sequence[Columns], search: PenaltySearch,
    sample_weight: np.ndarray | None = None,
) -> ColumnsChoice:
    """The candidate whose best penalty scores best on ``folds`` (the first of equals).

    Each candidate's map is fitted on all of ``x`` (no outcome is used: PCA and the
    network's head see features only)."""
    best: ColumnsChoice | None = None
    scores = {}
    for candidate in candidates:
        columns = candidate.fit(x)
        choice = choose_alpha(columns(x), y, folds, search, sample_weight)
        scores[candidate.name] = round(float(np.max(choice.scores)), 6)
        if best is None or scores[candidate.name] > scores[best.name]:
            best = ColumnsChoice(candidate.name, columns, choice, {})
    return dataclasses.replace(best, inner_scores=scores)


def fit_chosen(
    x: np.ndarray, y: np.ndarray, choice: ColumnsChoice, sample_weight: np.ndarray | None = None,
) -> RidgeRegressor:
    """The ridge of ``choice`` fitted on ``x``, as a ridge on the features themselves."""
    model = fit_ridge(choice.columns(x), y, choice.alpha.alpha, sample_weight, choice.alpha.scaling)
    return composed(choice.columns, model, x.shape[1])


def composed(columns: LinearMap, model: RidgeRegressor, n_features: int) -> RidgeRegressor:
    """``model`` (a ridge on ``columns(x)``) as one ridge on ``x``: the same predictions."""
    if columns.matrix is None:
        return model
    weights, bias = model.folded()  # y = columns(x) @ weights + bias
    coef = columns.matrix @ weights
    intercept = float(bias + (0.0 if columns.offset is None else columns.offset @ weights))
    return RidgeRegressor(coef=coef, intercept=intercept, x_mean=np.zeros(n_features), x_scale=np.ones(n_features),
                          alpha=model.alpha, cv_scores=model.cv_scores)


def fit_columns_cv(
    x: np.ndarray, y: np.ndarray, folds: np.ndarray, candidates: Sequence[Columns], search: PenaltySearch,
    sample_weight: np.ndarray | None = None,
) -> RidgeRegressor:
    """The final fit on all samples: the columns and penalty chosen on ``folds``, stored as
    a ridge on ``x``; its search report names the columns and each candidate's score."""
    if len(np.unique(folds)) < 2:
        raise ValueError("cross-validation needs at least two folds")
    chosen = choose_columns(x, y, folds, candidates, search, sample_weight)
    report = {**search_report(chosen.alpha, search),
              "columns": {"chosen": chosen.name, "R2_by_columns": chosen.inner_scores}}
    return dataclasses.replace(fit_chosen(x, y, chosen, sample_weight), cv_scores=report)
