"""Photometric augmentation for networks that read scenes by their own mean and spread
(``scene_moments``): each training tile is seen as if its scene had been rendered with
another gamma per band, and standardized by that render's own moments, exactly as a map of
such a render would standardize it. A per-band gain or offset (another linear stretch,
haze) is taken out by the standardization itself; what is left to learn is the curve.

Gammas are drawn per tile and band from :data:`GAMMAS` (0.7-1.4, log-spaced on each
side of 1, which is among them); each scene's moments under each gamma come from the same sampled pixels its
mapping moments come from (:func:`..imagery.scene_quantiles.whole_image_values`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

GAMMAS = np.concatenate([np.geomspace(0.7, 1.0, 8), np.geomspace(1.0, 1.4, 8)[1:]])
SAMPLE_VALUES = 200_000  # per band, taken evenly from the scene's sampled pixels


class SceneRenders:
    """One scene's band moments under every gamma of :data:`GAMMAS`."""

    def __init__(self, values: Sequence[np.ndarray], input_std: float):
        means, stds = [], []
        for v in values:
            v = np.clip(np.asarray(v, np.float64)[:: max(1, v.size // SAMPLE_VALUES)], 0.0, 1.0)
            powered = v[None, :] ** GAMMAS[:, None]
            means.append(powered.mean(1))
            stds.append(np.maximum(powered.std(1), 1e-6))
        self.means = torch.as_tensor(np.stack(means, 1), dtype=torch.float32)  # [gammas, bands]
        self.stds = torch.as_tensor(np.stack(stds, 1) / input_std, dtype=torch.float32)

    def standardize(self, pixels: torch.Tensor, valid: torch.Tensor, gamma_index: torch.Tensor) -> torch.Tensor:
        """``pixels`` [n, bands, H, W] rendered with the gamma of ``gamma_index`` [n, bands]
        and standardized by the scene's moments under it; invalid pixels 0."""
        bands = torch.arange(pixels.shape[1])
        gamma = torch.as_tensor(GAMMAS, dtype=torch.float32)[gamma_index].to(pixels.device)
        mean = self.means[gamma_index, bands].to(pixels.device)
        std = self.stds[gamma_index, bands].to(pixels.device)
        x = pixels.float().clamp(0.0, 1.0) ** gamma[..., None, None]
        z = (x - mean[..., None, None]) / std[..., None, None]
        return torch.where(valid.unsqueeze(1), z, torch.zeros((), device=z.device))


def random_gammas(n: int, bands: int, generator: torch.Generator) -> torch.Tensor:
    """Indices into :data:`GAMMAS`, one per tile and band."""
    return torch.randint(0, len(GAMMAS), (n, bands), generator=generator)
