"""How raw pixel values become the reflectance a model was trained on.

A model expects top-of-atmosphere or surface reflectance scaled to 0..1. Imagery
arrives as digital numbers (DN) of some product; a :class:`Radiometry` converts them
(``reflectance = scale * DN + offset``) and names the value that marks fill pixels
when the raster declares no nodata of its own.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Radiometry:
    key: str
    label: str
    scale: float
    offset: float
    fill_value: float | None = None
    note: str = ""
    own_label: str = ""  # the label, without its caveat, for a model trained on such imagery

    def apply(self, dn: np.ndarray) -> np.ndarray:
        """Convert digital numbers to reflectance (float32)."""
        out = dn.astype(np.float32) * np.float32(self.scale)
        if self.offset:
            out += np.float32(self.offset)
        return out

    def apply_torch(self, dn: "torch.Tensor") -> "torch.Tensor":
        """The same on a tensor, on whatever device it lives."""
        out = dn.float() * self.scale
        return out + self.offset if self.offset else out


REFLECTANCE = Radiometry(
    "reflectance", "Reflectance 0-1 (surface or top-of-atmosphere)", 1.0, 0.0
)
LANDSAT_C1_L1 = Radiometry(
    "landsat_c1_l1",
    "Landsat 8/9 Collection 1 Level-1 DN (0 = fill)",
    2.0e-5,
    -0.1,
    fill_value=0.0,
    note=(
        "Level-1 DN converted to top-of-atmosphere reflectance with 2e-5 * DN - 0.1 "
        "(USGS product guide, sun-angle correction omitted). This approximates the "
        "surface reflectance the model was trained on; it is not the same product."
    ),
)
LANDSAT_C2_L2 = Radiometry(
    "landsat_c2_l2",
    "Landsat Collection 2 Level-2 surface reflectance DN (0 = fill)",
    2.75e-5,
    -0.2,
    fill_value=0.0,
)
SENTINEL2_L2A = Radiometry(
    "sentinel2_l2a",
    "Sentinel-2 L2A surface reflectance DN (x 10000, 0 = fill)",
    1.0e-4,
    0.0,
    fill_value=0.0,
)
EIGHT_BIT = Radiometry(
    "eight_bit",
    "8-bit display imagery (DN / 255, rough approximation)",
    1.0 / 255.0,
    0.0,
    note=(
        "8-bit imagery is a display stretch, not reflectance; DN / 255 is a rough "
        "stand-in and estimates on it are indicative only."
    ),
    own_label="8-bit display imagery (DN / 255)",
)

PRESETS: dict[str, Radiometry] = {
    r.key: r for r in (REFLECTANCE, LANDSAT_C1_L1, LANDSAT_C2_L2, SENTINEL2_L2A, EIGHT_BIT)
}


def as_trained(radiometry: Radiometry, model_radiometry: str | None) -> Radiometry:
    """``radiometry`` as read for a model trained on imagery of ``model_radiometry`` (a preset
    key; None: not known): the preset itself, or, for the model's own training radiometry
    (e.g. 8-bit renders for a model fitted on them), said so, without the preset's caveat."""
    if radiometry.key != model_radiometry:
        return radiometry
    label = f"{radiometry.own_label or radiometry.label}, as the model was trained on"
    return replace(radiometry, label=label, note="")


def guess_radiometry(dtype: str) -> Radiometry:
    """Best guess from the raster's data type, for the ``auto`` choice."""
    kind = np.dtype(dtype)
    if kind == np.uint8:
        return EIGHT_BIT
    if kind.kind in "ui":
        return LANDSAT_C1_L1
    return REFLECTANCE


def fits(radiometry: Radiometry, dtype: str) -> bool:
    """Whether pixels of ``dtype`` can hold the values ``radiometry`` converts: reflectance
    in floating point, 8-bit renders in bytes, the products' DN in 16-bit or wider integers."""
    kind = np.dtype(dtype)
    if radiometry.key == REFLECTANCE.key:
        return kind.kind == "f"
    if radiometry.key == EIGHT_BIT.key:
        return kind == np.uint8
    return kind.kind in "ui" and kind.itemsize >= 2


def resolve_radiometry(key: str, dtype: str, model_radiometry: str | None = None) -> Radiometry:
    """The preset ``key``; for ``auto``, the radiometry the model was trained on where the
    pixel type can hold it, else the best guess from the pixel type."""
    if key == "auto":
        trained = PRESETS.get(model_radiometry or "")
        if trained is not None and fits(trained, dtype):
            return trained
        return guess_radiometry(dtype)
    try:
        return PRESETS[key]
    except KeyError:
        known = ", ".join(["auto", *PRESETS])
        raise ValueError(f"Unknown radiometry {key!r}; choose one of: {known}") from None
