"""The unit of work of mapping: estimates for one batch of tiles, whoever runs it."""
from __future__ import annotations

import logging

import numpy as np
import torch

from ..errors import PovertyMapperError
from ..extractors.base import FeatureExtractor
from ..imagery.radiometry import Radiometry
from ..models.model_file import PovertyModel
from .plan import RunPlan

log = logging.getLogger("poverty_mapper")


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """Host to device; on CUDA through pinned memory with a non-blocking copy."""
    tensor = torch.from_numpy(array)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor


def tile_features(
    extractor: FeatureExtractor, dn: torch.Tensor, valid: torch.Tensor, radiometry: Radiometry
) -> torch.Tensor:
    """Features of a batch of tiles given as digital numbers on the device.

    An extractor that reads digital numbers works on them directly (the histogram's
    tables, the CNN's standardization folded in); the others get reflectance, 0 where invalid.
    """
    if extractor.reads_digital_numbers:
        return extractor.extract_dn(dn, valid, radiometry)
    pixels = radiometry.apply_torch(dn)
    pixels = torch.where(valid.unsqueeze(1), pixels, torch.zeros((), device=pixels.device))
    return extractor.extract(pixels, valid)


def output_weights(model: PovertyModel) -> tuple[np.ndarray, np.ndarray]:
    """Weights [n_features, 1 + k] and offsets [1 + k] giving, from a tile's raw features,
    its estimate (column 0) and, where the model records its training features' domain,
    the tile's k domain coordinates (columns 1..k). All are linear in the features, so
    averaging the columns over a neighbourhood averages the features."""
    weights, bias = model.regressor.folded()
    w, b = weights[:, None], np.array([bias])
    if model.feature_domain is not None:
        dw, db = model.feature_domain.folded()
        w, b = np.hstack([w, dw]), np.concatenate([b, db])
    return w, b


def estimate_batch(
    model: PovertyModel, dn: np.ndarray, valid: np.ndarray, radiometry: Radiometry, plan: RunPlan
) -> np.ndarray:
    """Estimates for one batch of tiles (digital numbers [N, bands, size, size] and valid
    masks [N, size, size]) on ``plan.device``: [N, 1 + k], the estimate and the tile's
    domain coordinates (:func:`output_weights`). On CUDA out-of-memory the batch is halved."""
    device = plan.device
    weights, bias = output_weights(model)
    try:
        # The ridge's weights first, while the device is idle (a copy from pageable
        # memory waits for the work queued before it).
        w = torch.as_tensor(weights, dtype=torch.float32, device=device)
        b = torch.as_tensor(bias, dtype=torch.float32, device=device)
        d, v = to_device(dn, device), to_device(valid, device)
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=plan.bf16):
            feats = tile_features(model.extractor, d, v, radiometry)
        with torch.inference_mode():
            return (feats.float() @ w + b).cpu().numpy()
    except torch.cuda.OutOfMemoryError:
        if len(dn) == 1:
            raise PovertyMapperError(
                "The GPU ran out of memory on a single tile; run on the CPU (Device: cpu)."
            ) from None
        torch.cuda.empty_cache()
        half = len(dn) // 2
        log.warning("CUDA out of memory with %d tiles per batch; retrying with %d.", len(dn), half)
        return np.concatenate([
            estimate_batch(model, dn[:half], valid[:half], radiometry, plan),
            estimate_batch(model, dn[half:], valid[half:], radiometry, plan),
        ])
