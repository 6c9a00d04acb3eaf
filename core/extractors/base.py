"""What every feature extractor is: a batch of tiles in, one feature vector per tile out.

Every extractor works on torch tensors, so the same code runs on the CPU or a CUDA
device, and describes itself as a JSON-able spec plus named arrays for the model file.
What a kind can do beyond that it declares here, overriding the defaults of
:class:`FeatureExtractor`: callers ask ``extractor.is_network``, never the kind's name
or whether an attribute is there.
"""
from __future__ import annotations

import numpy as np
import torch


class FeatureExtractor:
    """What the prediction and training code needs from an extractor, and what it can do."""

    kind: str = ""
    # False for an extractor that reads no image tiles (the bundled night lights' features,
    # read around places given by coordinates and a CRS): ``extract`` refuses, and such a
    # model maps a region without an image (core.inference.lights_map).
    reads_imagery: bool = True

    # What a kind can do; the defaults: none of it.
    # A trained network (the proxy CNNs): the run plan shares the CPU's cores between it
    # and the tile readers by its cost per tile, and gives it small batches on the CPU.
    is_network: bool = False
    # A network's cost per tile against the small proxy CNN's (the run plan shares the CPU by it).
    network_cost: float = 1.0
    # :meth:`extract_dn`: features straight from digital numbers and their radiometry.
    reads_digital_numbers: bool = False
    # ``band_means`` and ``band_stds``: the mean and spread of its training tiles' bands.
    knows_band_statistics: bool = False
    # :meth:`standardized_by`: on imagery of another radiometry than its training imagery's,
    # each band is standardized by the scene's own mean and spread.
    standardizes_scenes: bool = False
    # A network that reads each band standardized by the whole scene's mean and spread,
    # always (:mod:`..imagery.scene_moments`): every reading of a scene standardizes it by
    # that scene's first (:mod:`..models.scene_reading`).
    reads_scene_moments: bool = False
    # Devices ("cpu", "cuda") where it runs under bfloat16 autocast when mixed precision is
    # asked for: faster there, and close enough (histograms always count exactly).
    bf16_devices: tuple[str, ...] = ()
    # PyTorch threads its work takes on the CPU beside the readers (None: PyTorch's setting).
    cpu_threads: int | None = None

    band_means: np.ndarray  # where knows_band_statistics
    band_stds: np.ndarray

    @property
    def n_features(self) -> int:
        raise NotImplementedError

    def extract(self, pixels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``pixels`` [N, bands, H, W] reflectance, ``valid`` [N, H, W] bool -> [N, F]."""
        raise NotImplementedError

    def extract_dn(self, dn: torch.Tensor, valid: torch.Tensor, radiometry) -> torch.Tensor:
        """The features of :meth:`extract` from digital numbers ``dn`` (invalid pixels hold
        0) and their ``radiometry``; where :attr:`reads_digital_numbers`."""
        raise NotImplementedError

    def class_layer(self) -> tuple[np.ndarray, np.ndarray] | None:
        """A network's class-score layer on its features (weights [classes, features],
        bias [classes]), the directions its proxy task trained; None where there is none."""
        return None

    def standardized_by(self, means: np.ndarray, stds: np.ndarray) -> "FeatureExtractor":
        """This extractor standardizing each band by a scene's ``means`` and ``stds``
        instead of its training tiles'; where :attr:`standardizes_scenes`."""
        raise NotImplementedError

    def to_spec(self) -> tuple[dict, dict[str, np.ndarray]]:
        raise NotImplementedError
