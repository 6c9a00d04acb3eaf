"""The extractor kinds a model file may name, in one table.

Each kind is imported when a model file needs it, so reading a model's description
never imports torch.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from .base import FeatureExtractor

# kind (as written in model files) -> (module of this package, class)
EXTRACTOR_KINDS: dict[str, tuple[str, str]] = {
    "histogram": ("histogram", "HistogramExtractor"),
    "histogram_sqrt": ("histogram", "HistogramExtractor"),
    "random": ("random_conv", "RandomConvExtractor"),
    "cnn": ("cnn", "CnnExtractor"),
    "bundled_lights": ("bundled_lights", "BundledLightsExtractor"),
}
# The kinds whose extractor reads no imagery (its ``reads_imagery``), for a model's card,
# which is read without importing the extractors (tests/engine/test_scene_check.py holds
# the two equal).
KINDS_READING_NO_IMAGERY = frozenset({"bundled_lights"})


def extractor_class(kind: str) -> type:
    try:
        module, name = EXTRACTOR_KINDS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown feature extractor {kind!r}") from None
    return getattr(import_module(f"{__package__}.{module}"), name)


def extractor_from_spec(spec: dict, arrays: dict[str, "np.ndarray"]) -> "FeatureExtractor":
    return extractor_class(spec.get("kind")).from_spec(spec, arrays)
