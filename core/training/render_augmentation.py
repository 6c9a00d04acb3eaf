"""Photometric augmentation for networks that read scenes by their own mean and spread
(``scene_moments``): each training tile is seen as if its scene had been rendered with
another curve per band, and standardized by that render's own moments, exactly as a map of
such a render would standardize it. A per-band gain or offset (another linear stretch,
haze) is taken out by the standardization itself; what is left to learn is the curve.

Two families of curves:

- per band, gammas from :data:`GAMMAS` (0.7-1.4, log-spaced on each side of 1, which is among them);
- with probability :data:`EQUALIZED_SHARE` per tile, on every band, a blend part-way
  (:data:`EQUALIZATION_BLENDS`) from the scene's values to their histogram equalization
  (each value mapped to its rank in the scene, the curve of an "equalize" button), which
  no gamma imitates.

Each scene's moments under each curve come from the same sampled pixels its mapping
moments come from (:func:`..imagery.scene_moments.whole_image_values`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

GAMMAS = np.concatenate([np.geomspace(0.7, 1.0, 8), np.geomspace(1.0, 1.4, 8)[1:]])
EQUALIZATION_BLENDS = np.array([1 / 3, 2 / 3, 1.0])
EQUALIZED_SHARE = 0.3
SAMPLE_VALUES = 200_000  # per band, taken evenly from the scene's sampled pixels
CDF_LEVELS = 1025  # points of each band's equalization curve on [0, 1]

# every curve as (gamma, weight of the equalization): the gammas, then the blends
CURVE_GAMMAS = np.concatenate([GAMMAS, np.ones(len(EQUALIZATION_BLENDS))])
CURVE_BLENDS = np.concatenate([np.zeros(len(GAMMAS)), EQUALIZATION_BLENDS])


def equalization_curve(values: np.ndarray) -> np.ndarray:
    """The scene band's empirical distribution function at :data:`CDF_LEVELS` points of
    [0, 1]: its histogram equalization, read between the points by linear interpolation."""
    levels = np.linspace(0.0, 1.0, CDF_LEVELS)
    return np.searchsorted(np.sort(values), levels, side="right") / max(values.size, 1)


def _curve_values(v: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """``v`` [values] under every curve: [curves, values]."""
    equalized = np.interp(v, np.linspace(0.0, 1.0, CDF_LEVELS), cdf)
    return (1 - CURVE_BLENDS[:, None]) * v[None, :] ** CURVE_GAMMAS[:, None] + CURVE_BLENDS[:, None] * equalized[None, :]


class SceneRenders:
    """One scene's band moments under every curve (:data:`CURVE_GAMMAS`, :data:`CURVE_BLENDS`)."""

    def __init__(self, values: Sequence[np.ndarray], input_std: float):
        means, stds, cdfs = [], [], []
        for v in values:
            v = np.clip(np.asarray(v, np.float64)[:: max(1, v.size // SAMPLE_VALUES)], 0.0, 1.0)
            cdfs.append(equalization_curve(v))
            rendered = _curve_values(v, cdfs[-1])
            means.append(rendered.mean(1))
            stds.append(np.maximum(rendered.std(1), 1e-6))
        self.means = torch.as_tensor(np.stack(means, 1), dtype=torch.float32)  # [curves, bands]
        self.stds = torch.as_tensor(np.stack(stds, 1) / input_std, dtype=torch.float32)
        self.cdfs = torch.as_tensor(np.stack(cdfs), dtype=torch.float32)  # [bands, CDF_LEVELS]

    def render(self, pixels: torch.Tensor, curve_index: torch.Tensor) -> torch.Tensor:
        """``pixels`` [n, bands, H, W] in [0, 1] through the curves ``curve_index`` [n, bands]."""
        x = pixels.float().clamp(0.0, 1.0)
        gamma = torch.as_tensor(CURVE_GAMMAS, dtype=torch.float32, device=x.device)[curve_index]
        blend = torch.as_tensor(CURVE_BLENDS, dtype=torch.float32, device=x.device)[curve_index]
        out = x ** gamma[..., None, None]
        if bool((blend > 0).any()):
            out = (1 - blend[..., None, None]) * out + blend[..., None, None] * self._equalized(x)
        return out

    def _equalized(self, x: torch.Tensor) -> torch.Tensor:
        cdfs = self.cdfs.to(x.device)
        position = x * (CDF_LEVELS - 1)
        low = position.floor().clamp(max=CDF_LEVELS - 2)
        frac = position - low
        band_start = (torch.arange(x.shape[1], device=x.device) * CDF_LEVELS)[None, :, None, None]
        index = low.long() + band_start
        flat = cdfs.reshape(-1)
        return flat[index] * (1 - frac) + flat[index + 1] * frac

    def standardize(self, pixels: torch.Tensor, valid: torch.Tensor, curve_index: torch.Tensor) -> torch.Tensor:
        """``pixels`` [n, bands, H, W] rendered with the curves of ``curve_index`` [n, bands]
        and standardized by the scene's moments under them; invalid pixels 0."""
        bands = torch.arange(pixels.shape[1])
        mean = self.means[curve_index, bands].to(pixels.device)
        std = self.stds[curve_index, bands].to(pixels.device)
        z = (self.render(pixels, curve_index) - mean[..., None, None]) / std[..., None, None]
        return torch.where(valid.unsqueeze(1), z, torch.zeros((), device=z.device))


def random_curves(n: int, bands: int, generator: torch.Generator) -> torch.Tensor:
    """Indices into the curves, one per tile and band: with probability
    :data:`EQUALIZED_SHARE` a tile's bands all equalized with one blend (as an "equalize"
    render treats every band), else a gamma per band."""
    gamma = torch.randint(0, len(GAMMAS), (n, bands), generator=generator)
    blend = len(GAMMAS) + torch.randint(0, len(EQUALIZATION_BLENDS), (n, 1), generator=generator)
    equalized = torch.rand((n, 1), generator=generator) < EQUALIZED_SHARE
    return torch.where(equalized, blend.expand(n, bands), gamma)
