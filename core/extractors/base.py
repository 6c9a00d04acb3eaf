"""What every feature extractor is: a batch of tiles in, one feature vector per tile out.

Every extractor works on torch tensors, so the same code runs on the CPU or a CUDA
device, and describes itself as a JSON-able spec plus named arrays for the model file.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
import torch


class FeatureExtractor(Protocol):
    """What the prediction and training code needs from an extractor."""

    kind: str
    # False for an extractor that reads no image tiles (the bundled night lights' features,
    # read around places given by coordinates and a CRS): ``extract`` refuses, and such a
    # model maps a region without an image (core.inference.lights_map).
    reads_imagery: bool

    @property
    def n_features(self) -> int: ...

    def extract(self, pixels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``pixels`` [N, bands, H, W] reflectance, ``valid`` [N, H, W] bool -> [N, F]."""
        ...

    def to_spec(self) -> tuple[dict, dict[str, np.ndarray]]: ...
