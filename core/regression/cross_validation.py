"""Nested cross-validation of a ridge regression with groups that never straddle a split:
the penalty chosen inside each outer training set, scores on the held-out fold."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import PovertyMapperError
from .columns import Columns, choose_columns, fit_chosen
from .folds import group_folds
from .metrics import coefficient_of_determination, squared_pearson
from .ridge import DEFAULT_ALPHAS, PenaltySearch, choose_alpha, fit_ridge


@dataclass(frozen=True)
class FoldScore:
    """One outer fold: its held-out clusters, the penalty chosen inside it and how the
    search for it went, and the scores on the held-out clusters."""

    fold: int
    n: int
    alpha: float
    alpha_edge: str | None  # the end of the first grid the best penalty lay at, if any
    alpha_range: list[float]  # the penalties searched, first and last
    alpha_at_limit: bool  # still at an end after the grid was extended
    r2: float
    R2: float  # noqa: N815 (the literature's name)
    block_weight: float | None = None  # the second block of features' weight, where one was chosen with the penalty
    columns: str | None = None  # the regression's columns, where they were chosen on inner folds (.columns)

    def to_json(self) -> dict:
        out = {"fold": self.fold, "n": self.n, "alpha": self.alpha, "alpha_edge": self.alpha_edge,
               "alpha_range": self.alpha_range, "alpha_at_limit": self.alpha_at_limit, "r2": self.r2, "R2": self.R2}
        out = out if self.block_weight is None else {**out, "block_weight": self.block_weight}
        return out if self.columns is None else {**out, "columns": self.columns}


def nested_cv(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    n_folds: int,
    seed: int = 0,
    sample_weight: np.ndarray | None = None,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    search: PenaltySearch | None = None,
    folds: np.ndarray | None = None,
    candidates: Sequence[Columns] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[FoldScore]]:
    """Out-of-fold predictions with the penalty chosen inside each outer fold.

    Clusters of one group (``groups``: a location, or neighbours) never straddle a
    split, outer or inner. ``folds`` (outer fold per sample) are made from the groups
    unless given; ``search`` (else the grid ``alphas``) says how the penalty is chosen;
    ``candidates``: the regression's columns are chosen among them with the penalty
    (:mod:`.columns`), else the features are the columns.
    """
    search = search or PenaltySearch(tuple(float(a) for a in alphas))
    folds = group_folds(groups, n_folds, seed) if folds is None else np.asarray(folds)
    pred = np.full(y.size, np.nan)
    per_fold = []
    for f in range(n_folds):
        test = folds == f
        train = ~test
        w_train = None if sample_weight is None else sample_weight[train]
        n_inner = min(n_folds, len(np.unique(groups[train], axis=0)))
        if n_inner < 2:
            raise PovertyMapperError(
                f"Fold {f} leaves fewer than two groups of clusters to train on; lower the fold distance."
            )
        inner = group_folds(groups[train], n_inner, seed + 1)
        columns = None
        if candidates:
            chosen = choose_columns(x[train], y[train], inner, candidates, search, w_train)
            choice, columns = chosen.alpha, chosen.name
            model = fit_chosen(x[train], y[train], chosen, w_train)
        else:
            choice = choose_alpha(x[train], y[train], inner, search, w_train)
            model = fit_ridge(x[train], y[train], choice.alpha, w_train, choice.scaling)
        pred[test] = model.predict(x[test])
        per_fold.append(FoldScore(
            fold=f,
            n=int(test.sum()),
            **choice.summary(),
            r2=round(squared_pearson(y[test], pred[test]), 4),
            R2=round(coefficient_of_determination(y[test], pred[test]), 4),
            columns=columns,
        ))
    return pred, folds, per_fold
