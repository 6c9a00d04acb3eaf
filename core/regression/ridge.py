"""Ridge regression with the penalty chosen by cross-validation.

Closed form through one SVD per training set, so a whole path of penalties costs
little more than one fit. Features are standardized on the training data; the
intercept is not penalized.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .metrics import coefficient_of_determination

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-3, 5, 33))


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
        if spec.get("kind") != "ridge":
            raise ValueError(f"unknown regressor {spec.get('kind')!r}")
        return cls(
            coef=np.asarray(arrays["coef"], dtype=np.float64),
            intercept=float(spec["intercept"]),
            x_mean=np.asarray(arrays["x_mean"], dtype=np.float64),
            x_scale=np.asarray(arrays["x_scale"], dtype=np.float64),
            alpha=float(spec["alpha"]),
            cv_scores=dict(spec.get("cv_scores", {})),
        )


def _standardize(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = np.average(x, axis=0, weights=w)
    scale = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w))
    scale[scale < 1e-12] = 1.0  # constant features carry no information; leave them at 0
    return mean, scale


def ridge_path(
    x: np.ndarray, y: np.ndarray, alphas: Sequence[float], sample_weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Coefficients for every alpha: [n_alphas, n_features], with the standardization.

    ``sample_weight`` (e.g. households per cluster) weights each sample's squared error.
    """
    w = np.ones(y.size) if sample_weight is None else np.asarray(sample_weight, np.float64)
    if np.any(w < 0) or not np.any(w > 0):
        raise ValueError("sample weights must be non-negative and not all zero")
    w = w / w.mean()
    mean, scale = _standardize(x, w)
    root_w = np.sqrt(w)[:, None]
    xs = (x - mean) / scale * root_w
    y_mean = float(np.average(y, weights=w))
    u, s, vt = np.linalg.svd(xs, full_matrices=False)
    uty = u.T @ ((y - y_mean) * root_w[:, 0])
    alphas_arr = np.asarray(alphas, dtype=np.float64)[:, None]
    d = s[None, :] / (s[None, :] ** 2 + alphas_arr)
    return (d * uty[None, :]) @ vt, mean, scale, y_mean


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float, sample_weight: np.ndarray | None = None) -> RidgeRegressor:
    coefs, mean, scale, y_mean = ridge_path(np.asarray(x, np.float64), np.asarray(y, np.float64), [alpha], sample_weight)
    return RidgeRegressor(coef=coefs[0], intercept=y_mean, x_mean=mean, x_scale=scale, alpha=float(alpha))


def cv_alpha_scores(
    x: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Pooled out-of-fold R² for each alpha; ``folds[i]`` is the fold of sample i."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    w = None if sample_weight is None else np.asarray(sample_weight, np.float64)
    pred = np.empty((len(alphas), y.size))
    for fold in np.unique(folds):
        test = folds == fold
        coefs, mean, scale, y_mean = ridge_path(x[~test], y[~test], alphas, None if w is None else w[~test])
        pred[:, test] = (((x[test] - mean) / scale) @ coefs.T).T + y_mean
    return np.array([coefficient_of_determination(y, p) for p in pred])


def fit_ridge_cv(
    x: np.ndarray,
    y: np.ndarray,
    folds: np.ndarray,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    sample_weight: np.ndarray | None = None,
) -> RidgeRegressor:
    """Fit on all samples with the alpha whose pooled out-of-fold R² is best."""
    if len(np.unique(folds)) < 2:
        raise ValueError("cross-validation needs at least two folds")
    scores = cv_alpha_scores(x, y, folds, alphas, sample_weight)
    best = int(np.argmax(scores))
    model = fit_ridge(x, y, alphas[best], sample_weight)
    return RidgeRegressor(
        coef=model.coef,
        intercept=model.intercept,
        x_mean=model.x_mean,
        x_scale=model.x_scale,
        alpha=model.alpha,
        cv_scores={"R2_by_alpha": dict(zip((f"{a:.6g}" for a in alphas), (round(float(s), 6) for s in scores)))},
    )


def group_folds(groups: Sequence, n_folds: int, seed: int = 0) -> np.ndarray:
    """Fold number per sample such that equal groups (e.g. locations) share a fold."""
    keys, inverse = np.unique(np.asarray(groups), return_inverse=True, axis=0)
    if len(keys) < n_folds:
        raise ValueError(f"{len(keys)} distinct locations are too few for {n_folds} folds")
    order = np.random.default_rng(seed).permutation(len(keys))
    fold_of_group = np.empty(len(keys), dtype=np.int64)
    fold_of_group[order] = np.arange(len(keys)) % n_folds
    return fold_of_group[inverse.ravel()]
