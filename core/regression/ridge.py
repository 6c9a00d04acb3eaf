"""Ridge regression with the penalty chosen by cross-validation.

Closed form through one SVD per training set, so a whole path of penalties costs
little more than one fit. Features are standardized on the training data; the
intercept is not penalized.

A feature that varies in almost no training sample (a histogram bin only a few
bright pixels reach) has a tiny standard deviation, so standardizing it blows a test
sample's value up to thousands of units and lets it dominate the prediction.
:class:`FeatureScaling` can leave such features out and put a floor under every
feature's scale; plain standardization is the default. A penalty chosen at an end of
its grid can be searched further (:class:`PenaltySearch` ``limits``), and the choice
says so (:class:`AlphaChoice`). Two blocks of features (image features, then a few
night-lights features) can be weighed against each other: the second block's
standardized values are multiplied by a weight chosen with the penalty
(:class:`PenaltySearch` ``block_weights``), which is a ridge with one penalty per block.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .metrics import coefficient_of_determination

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-3, 5, 33))


@dataclass(frozen=True)
class FeatureScaling:
    """How features are scaled before the penalty acts on them (on the training data).

    ``min_support``: a feature whose value differs from its median in fewer than this
    share of the training samples is left out (its coefficient is 0). ``floor``: no
    feature's scale below this share of the median scale of the varying features.
    Both 0: plain standardization.
    """

    floor: float = 0.0
    min_support: float = 0.0
    # Features from this column on form a second block whose standardized values are
    # multiplied by ``block_weight`` (its penalty divided by the weight's square); None: one block.
    block_start: int | None = None
    block_weight: float = 1.0


PLAIN_SCALING = FeatureScaling()


@dataclass(frozen=True)
class PenaltySearch:
    """How the penalty is chosen: the grid; how far it is extended, a decade at a
    time, when its best penalty lies at an end (None: not at all); the feature scaling."""

    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    limits: tuple[float, float] | None = None
    scaling: FeatureScaling = PLAIN_SCALING
    # Weights of the second block (``scaling.block_start``) tried with every penalty; the
    # pair with the best pooled out-of-fold R² is chosen (empty: the scaling's own weight).
    block_weights: tuple[float, ...] = ()


@dataclass(frozen=True)
class AlphaChoice:
    """The chosen penalty, the grid searched (extended where needed) and its scores."""

    alpha: float
    alphas: tuple[float, ...]
    scores: np.ndarray  # pooled out-of-fold R² per alpha
    edge: str | None  # 'lower' or 'upper' when the first grid's best lay at that end, else None
    at_limit: bool  # the best still lies at an end of the extended grid
    scaling: FeatureScaling = PLAIN_SCALING  # as searched, with the second block's weight chosen
    block_weight: float | None = None  # the second block's weight, where one was chosen with the penalty

    def summary(self) -> dict:
        """For a report: the penalty, the edge of the first grid it hit, the range searched
        (and the second block's weight, where one was chosen)."""
        out = {
            "alpha": float(self.alpha),
            "alpha_edge": self.edge,
            "alpha_range": [float(self.alphas[0]), float(self.alphas[-1])],
            "alpha_at_limit": bool(self.at_limit),
        }
        return out if self.block_weight is None else {**out, "block_weight": float(self.block_weight)}


@dataclass(frozen=True)
class RidgeRegressor:
    """``y = ((x - x_mean) / x_scale) @ coef + intercept``."""

    coef: np.ndarray
    intercept: float
    x_mean: np.ndarray
    x_scale: np.ndarray
    alpha: float
    cv_scores: dict = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return self.coef.size

    def predict(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.x_mean) / self.x_scale) @ self.coef + self.intercept

    def folded(self) -> tuple[np.ndarray, float]:
        """Weights and bias acting on raw features: ``y = x @ w + b``."""
        w = self.coef / self.x_scale
        return w, float(self.intercept - self.x_mean @ w)

    def to_spec(self) -> tuple[dict, dict[str, np.ndarray]]:
        return (
            {"kind": "ridge", "alpha": self.alpha, "intercept": self.intercept, "cv_scores": self.cv_scores},
            {"coef": self.coef, "x_mean": self.x_mean, "x_scale": self.x_scale},
        )

    @classmethod
    def from_spec(cls, spec: dict, arrays: dict[str, np.ndarray]) -> "RidgeRegressor":
        """The regressor a model file describes; ValueError when its numbers cannot make one."""
        if spec.get("kind") != "ridge":
            raise ValueError(f"unknown regressor {spec.get('kind')!r}")
        regressor = cls(
            coef=np.asarray(arrays["coef"], dtype=np.float64),
            intercept=float(spec["intercept"]),
            x_mean=np.asarray(arrays["x_mean"], dtype=np.float64),
            x_scale=np.asarray(arrays["x_scale"], dtype=np.float64),
            alpha=float(spec["alpha"]),
            cv_scores=dict(spec.get("cv_scores", {})),
        )
        shapes = {a.shape for a in (regressor.coef, regressor.x_mean, regressor.x_scale)}
        if len(shapes) != 1 or regressor.coef.ndim != 1:
            raise ValueError(f"the regressor's coefficients, means and scales differ in shape: {sorted(shapes)}")
        numbers = np.concatenate([regressor.coef, regressor.x_mean, regressor.x_scale, [regressor.intercept]])
        if not np.all(np.isfinite(numbers)) or not np.all(regressor.x_scale > 0) or not regressor.alpha >= 0:
            raise ValueError("the regressor's numbers must be finite, its scales positive and its penalty 0 or more")
        return regressor


def _standardize(x: np.ndarray, w: np.ndarray, scaling: FeatureScaling) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, scale and whether to keep each feature (see :class:`FeatureScaling`)."""
    mean = np.average(x, axis=0, weights=w)
    scale = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w))
    constant = scale < 1e-12
    if scaling.floor > 0 and not constant.all():
        scale = np.maximum(scale, scaling.floor * np.median(scale[~constant]))
    scale[constant] = 1.0  # constant features carry no information; leave them at 0
    if scaling.block_start is not None:
        scale[scaling.block_start:] /= scaling.block_weight
    keep = np.ones(x.shape[1], bool)
    if scaling.min_support > 0:
        keep = np.mean(x != np.median(x, axis=0), axis=0) >= scaling.min_support
    return mean, scale, keep


def ridge_path(
    x: np.ndarray, y: np.ndarray, alphas: Sequence[float], sample_weight: np.ndarray | None = None,
    scaling: FeatureScaling = PLAIN_SCALING,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Coefficients for every alpha: [n_alphas, n_features], with the standardization.

    ``sample_weight`` (e.g. households per cluster) weights each sample's squared error.
    """
    w = np.ones(y.size) if sample_weight is None else np.asarray(sample_weight, np.float64)
    if np.any(w < 0) or not np.any(w > 0):
        raise ValueError("sample weights must be non-negative and not all zero")
    w = w / w.mean()
    mean, scale, keep = _standardize(x, w, scaling)
    root_w = np.sqrt(w)[:, None]
    xs = (x - mean) / scale * root_w
    xs[:, ~keep] = 0.0
    y_mean = float(np.average(y, weights=w))
    u, s, vt = _svd(xs)
    uty = u.T @ ((y - y_mean) * root_w[:, 0])
    alphas_arr = np.asarray(alphas, dtype=np.float64)[:, None]
    d = s[None, :] / (s[None, :] ** 2 + alphas_arr)
    coefs = (d * uty[None, :]) @ vt
    coefs[:, ~keep] = 0.0
    return coefs, mean, scale, y_mean


def _svd(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The thin SVD; where LAPACK's divide and conquer fails to converge (it can, on some
    real feature matrices), the same from the eigenvectors of the smaller Gram matrix."""
    try:
        return np.linalg.svd(xs, full_matrices=False)
    except np.linalg.LinAlgError:
        pass
    tall = xs.shape[0] >= xs.shape[1]
    gram = xs.T @ xs if tall else xs @ xs.T
    evals, vecs = np.linalg.eigh(gram)
    order = np.argsort(evals)[::-1]
    s = np.sqrt(np.clip(evals[order], 0.0, None))
    keep = s > s[0] * 1e-12 if s.size and s[0] > 0 else np.zeros(s.size, bool)
    vecs, s = vecs[:, order][:, keep], s[keep]
    if tall:
        return xs @ vecs / s, s, vecs.T
    return vecs, s, (vecs.T @ xs) / s[:, None]


def fit_ridge(
    x: np.ndarray, y: np.ndarray, alpha: float, sample_weight: np.ndarray | None = None,
    scaling: FeatureScaling = PLAIN_SCALING,
) -> RidgeRegressor:
    coefs, mean, scale, y_mean = ridge_path(
        np.asarray(x, np.float64), np.asarray(y, np.float64), [alpha], sample_weight, scaling
    )
    return RidgeRegressor(coef=coefs[0], intercept=y_mean, x_mean=mean, x_scale=scale, alpha=float(alpha))


def cv_alpha_scores(
    x: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    sample_weight: np.ndarray | None = None,
    scaling: FeatureScaling = PLAIN_SCALING,
) -> np.ndarray:
    """Pooled out-of-fold R² for each alpha; ``folds[i]`` is the fold of sample i."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    w = None if sample_weight is None else np.asarray(sample_weight, np.float64)
    pred = np.empty((len(alphas), y.size))
    for fold in np.unique(folds):
        test = folds == fold
        coefs, mean, scale, y_mean = ridge_path(x[~test], y[~test], alphas, None if w is None else w[~test], scaling)
        pred[:, test] = (((x[test] - mean) / scale) @ coefs.T).T + y_mean
    return np.array([coefficient_of_determination(y, p) for p in pred])


def choose_alpha(
    x: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    search: PenaltySearch = PenaltySearch(),
    sample_weight: np.ndarray | None = None,
) -> AlphaChoice:
    """The alpha with the best pooled out-of-fold R²; while it lies at an end of the grid,
    the grid grows by up to four decades at that end, within ``search.limits``. With a
    second block of features, the same for each of its weights, and the best pair (the
    first of equals)."""
    if search.scaling.block_start is None or not search.block_weights:
        return _choose_alpha(x, y, folds, search, search.scaling, sample_weight)
    choices = [
        dataclasses.replace(_choose_alpha(x, y, folds, search, scaling, sample_weight), block_weight=float(weight))
        for weight in search.block_weights
        for scaling in [dataclasses.replace(search.scaling, block_weight=float(weight))]
    ]
    return max(choices, key=lambda c: float(np.max(c.scores)))


def _choose_alpha(
    x: np.ndarray, y: np.ndarray, folds: np.ndarray, search: PenaltySearch, scaling: FeatureScaling,
    sample_weight: np.ndarray | None,
) -> AlphaChoice:
    alphas = tuple(float(a) for a in search.alphas)
    scores = cv_alpha_scores(x, y, folds, alphas, sample_weight, scaling)
    first = _edge(scores)
    edge = first
    while edge is not None and search.limits is not None:
        more = _decades_beyond(alphas, edge, search.limits)
        if not more:
            break
        more_scores = cv_alpha_scores(x, y, folds, more, sample_weight, scaling)
        if edge == "upper":
            alphas, scores = alphas + more, np.concatenate([scores, more_scores])
        else:
            alphas, scores = more + alphas, np.concatenate([more_scores, scores])
        edge = _edge(scores)
    return AlphaChoice(alphas[int(np.argmax(scores))], alphas, scores, first, edge is not None, scaling)


def _edge(scores: np.ndarray) -> str | None:
    """'lower' or 'upper' when the best score is at that end of the grid (first best wins)."""
    best = int(np.argmax(scores))
    if len(scores) > 1 and best == 0:
        return "lower"
    if len(scores) > 1 and best == len(scores) - 1:
        return "upper"
    return None


def _decades_beyond(alphas: tuple[float, ...], edge: str, limits: tuple[float, float]) -> tuple[float, ...]:
    """Up to four penalties a decade apart beyond ``edge`` of the grid, inside ``limits``."""
    low, high = limits
    if edge == "upper":
        return tuple(a for a in (alphas[-1] * 10.0**k for k in range(1, 5)) if a <= high * (1 + 1e-9))
    return tuple(sorted(a for a in (alphas[0] / 10.0**k for k in range(1, 5)) if a >= low * (1 - 1e-9)))


def fit_ridge_cv(
    x: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    sample_weight: np.ndarray | None = None,
    search: PenaltySearch | None = None,
) -> RidgeRegressor:
    """Fit on all samples with the alpha whose pooled out-of-fold R² is best
    (``search``, when given, replaces ``alphas``)."""
    if len(np.unique(folds)) < 2:
        raise ValueError("cross-validation needs at least two folds")
    search = search or PenaltySearch(tuple(float(a) for a in alphas))
    choice = choose_alpha(x, y, folds, search, sample_weight)
    model = fit_ridge(x, y, choice.alpha, sample_weight, choice.scaling)
    return dataclasses.replace(model, cv_scores=search_report(choice, search))


def search_report(choice: AlphaChoice, search: PenaltySearch) -> dict:
    """What a final fit's penalty search found, for the model file."""
    cv_scores = {"R2_by_alpha": dict(zip((f"{a:.6g}" for a in choice.alphas), (round(float(s), 6) for s in choice.scores)))}
    if search.scaling != PLAIN_SCALING:
        cv_scores["scaling"] = {"floor": search.scaling.floor, "min_support": search.scaling.min_support}
    if choice.block_weight is not None:
        cv_scores["block"] = {"start": search.scaling.block_start, "weight": choice.block_weight,
                              "weights_searched": [float(w) for w in search.block_weights]}
    if choice.edge:
        cv_scores["alpha_edge"] = choice.edge
    return cv_scores
