"""Which night lights a training run reads: the layer the analyst gave, else the lights
that come with the plugin (NASA Black Marble 2016 over Africa, :mod:`..imagery.bundled_lights`),
so that proxy training needs only daytime imagery.

The bundled values are the luminance of a colour composite, an ordinal intensity and not
radiance: the proxy's classes come from the training tiles' own distribution of them
(quantiles, after a dark class where most tiles are dark), never from radiance thresholds.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..imagery.bundled_lights import BundledLights, OutsideCoverage
from ..imagery.lights_file import lights_path
from ..imagery.nightlights import describe_lights

BUNDLED_LABELS = "labels from the bundled NASA Black Marble 2016 lights"
BUNDLED_KIND = ("luminance of NASA Black Marble 2016, the night lights bundled with the plugin (uint8 luminance "
                "of a colour composite: an ordinal intensity, not radiance)")
BUNDLED_CLASSES = ("classes by quantiles of the training tiles' mean luminance (after a dark class where most "
                   "tiles are dark), not by radiance thresholds")


@dataclass(frozen=True)
class TrainingLights:
    """The night-lights raster a training run reads, and whether it is the bundled one."""

    path: str
    bundled: bool

    @property
    def name(self) -> str:
        return Path(self.path).name

    def kind(self) -> str:
        """What its values are, in words (for reports and model files)."""
        return BUNDLED_KIND if self.bundled else describe_lights(self.path)


def training_lights(path: str | None) -> TrainingLights:
    """The layer given; else the bundled lights (refused with a message where they are missing)."""
    if path:
        return TrainingLights(path, False)
    BundledLights().close()  # says how to set them up, or to give a layer, where the file is missing
    return TrainingLights(str(lights_path()), True)


def check_bundled_cover(regions: Sequence[tuple[tuple[float, float, float, float], object, str]]) -> None:
    """Refuse, before any tile is read, a region (west, south, east, north in its CRS, and
    the image it lies on) that reaches outside the area the bundled lights cover."""
    with BundledLights() as lights:
        for bounds, crs, image in regions:
            try:
                lights.read_box(bounds, crs)
            except OutsideCoverage as exc:
                raise OutsideCoverage(
                    f"No night-lights layer was given, so the labels would come from the bundled lights, "
                    f"but the training region of {image} is not inside them. {exc}"
                ) from None
