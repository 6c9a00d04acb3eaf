"""The extractor of the bundled night lights: features of a place's lights and surroundings.

It reads no image. Given places (points, or tiles by their bounds) and their CRS, and the
bundled NASA Black Marble 2016 luminance opened by the caller
(core.imagery.bundled_lights.BundledLights, which reads it block by block around the
places), it computes :func:`.lights_surroundings.surroundings_features`: the same code
makes the features of the survey clusters a model is fitted on and of every cell of its
maps (core.inference.lights_map).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import PovertyMapperError
from .base import FeatureExtractor
from .lights_surroundings import (
    LIT_THRESHOLDS,
    SURROUNDING_SIDES,
    check_sides_and_thresholds,
    surroundings_feature_names,
    surroundings_features,
    surroundings_margin,
)

# The lights these features are of: the file the plugin ships (resources/lights/), its year.
LIGHTS_FILE = "blackmarble2016_africa_luminance.tif"
LIGHTS_YEAR = 2016


class BundledLightsExtractor(FeatureExtractor):
    """:func:`surroundings_features` of the bundled lights, boxes of ``sides`` pixels and
    lit ``thresholds``, at places given by coordinates and a CRS."""

    kind = "bundled_lights"
    reads_imagery = False  # places and a CRS are enough: map with core.inference.lights_map
    lights_file = LIGHTS_FILE
    lights_year = LIGHTS_YEAR

    def __init__(self, sides: Sequence[int] = SURROUNDING_SIDES, thresholds: Sequence[int] = LIT_THRESHOLDS):
        check_sides_and_thresholds(sides, thresholds)
        self.sides = tuple(int(s) for s in sides)
        self.thresholds = tuple(int(t) for t in thresholds)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return surroundings_feature_names(self.sides, self.thresholds)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def margin(self) -> int:
        """How many lights pixels around a place its features read."""
        return surroundings_margin(self.sides)

    def features_at(self, lights, xs, ys, crs) -> np.ndarray:
        """Features ``[n, n_features]`` of the places at ``xs``, ``ys`` (in ``crs``), each
        at the lights' pixel holding it; ``lights``: the open bundled lights
        (``BundledLights``), which refuse places outside the area they cover."""
        out = np.empty((np.atleast_1d(xs).size, self.n_features))
        for index, luminance, rows, cols in lights.blocks_around(xs, ys, crs, self.margin):
            out[index] = surroundings_features(luminance, rows, cols, self.sides, self.thresholds)
        return out

    def features_of_tiles(self, lights, bounds: Sequence[Sequence[float]], crs) -> np.ndarray:
        """Features of tiles given by their bounds (west, south, east, north in ``crs``):
        those of each tile's centre."""
        boxes = np.asarray(bounds, np.float64).reshape(-1, 4)
        return self.features_at(lights, (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2, crs)

    def extract(self, pixels, valid):
        raise PovertyMapperError(
            f"The features of the bundled night lights ({self.lights_year}) are read around places, not from "
            "image tiles: map this model with a region and a CRS (core.inference.lights_map), no image."
        )

    def to_spec(self) -> tuple[dict, dict[str, np.ndarray]]:
        return (
            {"kind": self.kind, "n_features": self.n_features, "sides": list(self.sides),
             "thresholds": list(self.thresholds), "lights": self.lights_file, "lights_year": self.lights_year},
            {},
        )

    @classmethod
    def from_spec(cls, spec: dict, arrays: dict[str, np.ndarray]) -> "BundledLightsExtractor":
        if spec.get("kind") != cls.kind:
            raise ValueError(f"not a bundled-lights extractor: {spec.get('kind')!r}")
        if spec.get("lights") != LIGHTS_FILE:
            raise ValueError(f"the model reads night lights {spec.get('lights')!r}, not the bundled {LIGHTS_FILE}")
        extractor = cls(spec["sides"], spec["thresholds"])
        if int(spec.get("n_features", extractor.n_features)) != extractor.n_features:
            raise ValueError(f"the bundled-lights extractor names {spec['n_features']} features, its boxes "
                             f"and thresholds give {extractor.n_features}")
        return extractor
