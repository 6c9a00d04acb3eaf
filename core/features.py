"""Feature extractors: a batch of tiles in, one feature vector per tile out.

Every extractor works on torch tensors, so the same code runs on the CPU or a CUDA
device, and describes itself as a JSON-able spec plus named arrays for the model file.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

# Bin edges of the Yeh et al. 2020 histograms: [-1e5, -5.0, -4.9, ..., 4.9, 5.0, 1e5]
# on standardized band values, i.e. 102 bins (see ../shared/data/README.md).
YEH_BIN_EDGES = np.concatenate([[-1e5], np.round(np.linspace(-5.0, 5.0, 101), 10), [1e5]])


class FeatureExtractor(Protocol):
    """What the prediction and training code needs from an extractor."""

    kind: str

    @property
    def n_features(self) -> int: ...

    def extract(self, pixels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``pixels`` [N, bands, H, W] reflectance, ``valid`` [N, H, W] bool -> [N, F]."""
        ...

    def to_spec(self) -> tuple[dict, dict[str, np.ndarray]]: ...


class HistogramExtractor:
    """Per-band histograms of standardized reflectance, as frequencies.

    ``z = (value - mean) / std`` per band, binned on ``edges``; each band's counts
    are divided by the number of valid pixels of the tile, and the bands' histograms
    are concatenated. Invalid pixels (fill, outside the raster) are not counted.
    """

    kind = "histogram"

    def __init__(self, band_means: np.ndarray, band_stds: np.ndarray, edges: np.ndarray = YEH_BIN_EDGES):
        self.band_means = np.asarray(band_means, dtype=np.float64)
        self.band_stds = np.asarray(band_stds, dtype=np.float64)
        self.edges = np.asarray(edges, dtype=np.float64)
        if self.band_means.shape != self.band_stds.shape or self.band_means.ndim != 1:
            raise ValueError("band_means and band_stds must be 1-d of the same length")
        if np.any(self.band_stds <= 0):
            raise ValueError("band standard deviations must be positive")
        if self.edges.ndim != 1 or self.edges.size < 2 or np.any(np.diff(self.edges) <= 0):
            raise ValueError("bin edges must be increasing")
        self._cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @property
    def n_bands(self) -> int:
        return self.band_means.size

    @property
    def n_bins(self) -> int:
        return self.edges.size - 1

    @property
    def n_features(self) -> int:
        return self.n_bands * self.n_bins

    def _constants(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if device not in self._cache:
            self._cache[device] = (
                torch.as_tensor(self.band_means, dtype=torch.float32, device=device).view(1, -1, 1, 1),
                torch.as_tensor(self.band_stds, dtype=torch.float32, device=device).view(1, -1, 1, 1),
                torch.as_tensor(self.edges[1:-1], dtype=torch.float32, device=device),
            )
        return self._cache[device]

    def extract(self, pixels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        n, bands, _, _ = pixels.shape
        if bands != self.n_bands:
            raise ValueError(f"expected {self.n_bands} bands, got {bands}")
        mean, std, inner_edges = self._constants(pixels.device)
        z = (pixels.float() - mean) / std
        valid_b = valid.unsqueeze(1).expand_as(z)
        z = torch.where(valid_b, z, torch.zeros_like(z))
        # Bin i holds edges[i] <= z < edges[i+1], as numpy.histogram does.
        bins = torch.bucketize(z, inner_edges, right=True)
        offsets = (torch.arange(n * bands, device=z.device) * self.n_bins).view(n, bands, 1, 1)
        counts = torch.bincount(
            (bins + offsets).flatten(),
            weights=valid_b.flatten().to(torch.float32),
            minlength=n * bands * self.n_bins,
        ).view(n, bands * self.n_bins)
        n_valid = valid.flatten(1).sum(1).clamp(min=1).to(torch.float32)
        return counts / n_valid.unsqueeze(1)

    def to_spec(self) -> tuple[dict, dict[str, np.ndarray]]:
        return (
            {"kind": self.kind, "n_features": self.n_features},
            {"band_means": self.band_means, "band_stds": self.band_stds, "edges": self.edges},
        )

    @classmethod
    def from_spec(cls, spec: dict, arrays: dict[str, np.ndarray]) -> "HistogramExtractor":
        return cls(arrays["band_means"], arrays["band_stds"], arrays["edges"])


EXTRACTOR_KINDS = {HistogramExtractor.kind: HistogramExtractor}


def _register_random_extractor() -> None:
    from .random_features import RandomConvExtractor  # imports nothing from this module

    EXTRACTOR_KINDS[RandomConvExtractor.kind] = RandomConvExtractor


_register_random_extractor()


def extractor_from_spec(spec: dict, arrays: dict[str, np.ndarray]) -> FeatureExtractor:
    kind = spec.get("kind")
    try:
        factory = EXTRACTOR_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown feature extractor {kind!r}") from None
    return factory.from_spec(spec, arrays)


def _register_network_extractors() -> None:
    from .cnn import CnnExtractor  # imports nothing from this module

    EXTRACTOR_KINDS[CnnExtractor.kind] = CnnExtractor


_register_network_extractors()
