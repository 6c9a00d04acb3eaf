"""The survey stage of the Kinshasa fit, studied over proxy networks trained with several
seeds: which columns of a network's features the regression should use so that the
out-of-fold score holds from one network to the next.

Every way is scored by the same nested cross-validation as ``fitclusters`` (its folds:
clusters within 10 km in one fold; the penalty, and the columns where there is a choice,
on inner folds of each outer training set), on the features ``fitclusters`` extracted:

- ``features``: the network's features as they are (1,280 for EfficientNet): the survey
  fit before the columns were chosen;
- ``pca``: their first k principal components, k (2, 4, 8 or 16) chosen on inner folds;
- ``head``: the network's own night-light class scores;
- ``chosen``: the best of all of them on inner folds, what ``fitclusters`` now does with a
  network's features (core.regression.columns).
"""
from __future__ import annotations

import numpy as np

from ..core.regression.columns import FEATURES, Columns, network_candidates
from ..core.regression.cross_validation import nested_cv
from ..core.regression.metrics import coefficient_of_determination, squared_pearson
from ..core.training.clusters import CLUSTER_PENALTY


def ways(head: tuple[np.ndarray, np.ndarray] | None) -> dict[str, tuple[Columns, ...]]:
    """Each way's candidate columns."""
    every = network_candidates(head)
    out = {"features": (FEATURES,), "pca": tuple(c for c in every if c.name.startswith("pca"))}
    if head is not None:
        out["head"] = tuple(c for c in every if c.name == "head")
    out["chosen"] = every
    return out


def survey_stage(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: np.ndarray, head: tuple[np.ndarray, np.ndarray] | None,
    seed: int = 0,
) -> dict[str, dict]:
    """Per way: out-of-fold r² and R², and the columns each outer fold chose."""
    out = {}
    n_folds = int(folds.max()) + 1
    for name, candidates in ways(head).items():
        pred, _, per_fold = nested_cv(x, y, groups, n_folds, seed, search=CLUSTER_PENALTY, folds=folds,
                                      candidates=candidates)
        out[name] = {"r2": round(squared_pearson(y, pred), 4), "R2": round(coefficient_of_determination(y, pred), 4),
                     "columns": [f.columns for f in per_fold]}
    return out


def spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    a = np.asarray(values, np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0
