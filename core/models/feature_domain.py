"""What a model's training features looked like, and how far a map cell's are from them.

A ridge fitted on survey clusters has seen features of a certain kind (city and farmland
of some countries, one sensor's colours); a reservoir, a desert or imagery of another
radiometry gives features it never saw, and its estimate there is a guess that looks as
sure as any other. The model file therefore keeps the main directions in which the
training clusters' features varied (principal components of the standardized
features, at most :data:`MAX_DIMENSIONS`), scaled so that the training clusters have
unit variance along each: a cell's *domain distance* is the length of its features'
coordinates in that frame (a Mahalanobis distance in the main directions).

- ``limit``: the largest distance of any training cluster. A cell beyond it lies farther
  out than every cluster the model learnt from: out of its domain (about 1 in n+1
  held-out clusters of the same population lie beyond the largest of n).
- ``reference``: the distance within which 80 % of the training clusters lie. An
  estimate's interval is widened in proportion beyond it (:meth:`interval_scale`).

The coordinates are linear in the features, so the mean of the coordinates over a
neighbourhood of tiles is the coordinates of the neighbourhood's mean features, as the
cluster fit saw them; the distance is taken after that averaging.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_DIMENSIONS = 10
REFERENCE_QUANTILE = 0.8


@dataclass(frozen=True)
class FeatureDomain:
    """``coordinates(x) = (x - mean) @ components.T``; training clusters have unit
    variance along every coordinate."""

    mean: np.ndarray  # [n_features]
    components: np.ndarray  # [k, n_features]
    limit: float  # the largest training cluster's distance
    reference: float  # the distance 80 % of training clusters lie within

    @property
    def n_dimensions(self) -> int:
        return int(self.components.shape[0])

    @classmethod
    def of_training(cls, x: np.ndarray, max_dimensions: int = MAX_DIMENSIONS) -> "FeatureDomain | None":
        """The domain of training features ``x`` [n_clusters, n_features]; None when there
        are too few clusters to describe one (fewer than 10) or the features do not vary."""
        x = np.asarray(x, np.float64)
        n = x.shape[0]
        if n < 10:
            return None
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        varying = scale > 1e-12
        if not varying.any():
            return None
        # Rarely-reached histogram bins have tiny spreads: a floor keeps them from
        # dominating the directions (as the ridge's feature scaling does).
        scale = np.where(varying, np.maximum(scale, 0.01 * np.median(scale[varying])), 1.0)
        z = (x - mean) / scale
        _, s, vt = np.linalg.svd(z, full_matrices=False)
        k = int(min(max_dimensions, max(1, n // 5), np.sum(s > 1e-6 * s[0])))
        sd = s[:k] / np.sqrt(n)  # the training clusters' spread along each direction
        components = vt[:k] / sd[:, None] / scale[None, :]
        distances = np.linalg.norm((x - mean) @ components.T, axis=1)
        return cls(mean, components, float(distances.max()), float(np.quantile(distances, REFERENCE_QUANTILE)))

    def coordinates(self, x: np.ndarray) -> np.ndarray:
        """[n, k] coordinates of features ``x`` [n, n_features]."""
        return (np.asarray(x, np.float64) - self.mean) @ self.components.T

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """Weights [n_features, k] and offsets [k] acting on raw features:
        ``coordinates = x @ w + b`` (how a batch of tiles gets them with its estimate)."""
        w = self.components.T
        return w, -(self.mean @ w)

    @staticmethod
    def distance(coordinates: np.ndarray) -> np.ndarray:
        return np.linalg.norm(np.asarray(coordinates, np.float64), axis=-1)

    def outside(self, distance: np.ndarray) -> np.ndarray:
        """True where a distance lies beyond every training cluster's."""
        return np.asarray(distance) > self.limit

    def interval_scale(self, distance: np.ndarray) -> np.ndarray:
        """How much wider than the cross-validated interval an estimate's interval is:
        1 within the distance of 80 % of the training clusters, in proportion beyond."""
        return np.maximum(1.0, np.asarray(distance, np.float64) / max(self.reference, 1e-12))

    def to_spec(self) -> tuple[dict, dict[str, np.ndarray]]:
        return (
            {"limit": self.limit, "reference": self.reference, "dimensions": self.n_dimensions},
            {"mean": self.mean, "components": self.components},
        )

    @classmethod
    def from_spec(cls, spec: dict, arrays: dict[str, np.ndarray]) -> "FeatureDomain":
        mean = np.asarray(arrays["mean"], np.float64)
        components = np.asarray(arrays["components"], np.float64)
        limit, reference = float(spec["limit"]), float(spec["reference"])
        if components.ndim != 2 or components.shape[1] != mean.size:
            raise ValueError(f"feature domain components {components.shape} do not fit {mean.size} features")
        if not (np.isfinite(mean).all() and np.isfinite(components).all() and limit > 0 and reference > 0
                and np.isfinite(limit) and np.isfinite(reference)):
            raise ValueError("the feature domain holds values that are not finite or not positive")
        return cls(mean, components, limit, reference)
