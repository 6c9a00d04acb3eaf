"""The night lights that come with the plugin: NASA Black Marble 2016 over Africa.

One uint8 band, the luminance ``0.2126 R + 0.7152 G + 0.0722 B`` of NASA's Black Marble
2016 night-lights colour composite, on the zoom-8 Web Mercator tile grid (EPSG:3857,
611.5 m pixels at the equator), as built by ``scripts/build_africa_lights.py``
(``resources/lights/README.md``). A colour composite, not radiance: its luminance is an
ordinal intensity (dark land shows a faint texture of about 5-25; lit places rise to 255).

:class:`BundledLights` reads windows of it around points or boxes given in any CRS, never
the whole raster, and refuses, with a message, a place outside the area it covers.
:func:`luminance_features` turns boxes of luminance into the features every use of these
lights shares (training, cluster fits and maps).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import rasterio
from rasterio.transform import Affine
from rasterio.warp import transform as transform_points
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from ..errors import PovertyMapperError
from .lights_file import SHIPPED_LIGHTS, lights_path, missing_lights_message

BUNDLED_LIGHTS_PATH = SHIPPED_LIGHTS  # the source tree's copy (an installed plugin: lights_file.lights_path())
LIGHTS_YEAR = 2016
LIGHTS_NAME = "NASA Black Marble 2016 night lights (luminance)"
LIGHTS_CRS = "EPSG:3857"
# The reference box: 11 x 11 pixels of 611.5 m, 6.72 km across at the equator.
BOX_PIXELS = 11
HISTOGRAM_BINS = 32  # of 8 luminance levels each: 0-7, 8-15, ..., 248-255
BIN_WIDTH = 256 // HISTOGRAM_BINS
EDGE_TOLERANCE = 1e-6  # pixels
# Places are read in blocks of this many lights pixels a side (plus the boxes' margin):
# a map's cells share one read per block, a survey's scattered clusters one per block they fall in.
PLACES_BLOCK = 512
FEATURE_NAMES = tuple(f"sqrt_share_{k * BIN_WIDTH}_{k * BIN_WIDTH + BIN_WIDTH - 1}" for k in range(HISTOGRAM_BINS)) + (
    "log1p_mean", "log1p_max", "log1p_centre",
)


class OutsideCoverage(PovertyMapperError):
    """A place the bundled lights do not cover."""


@dataclass(frozen=True)
class LuminanceBox:
    """Luminance read from the bundled lights: the values, and where they lie (EPSG:3857)."""

    values: np.ndarray  # uint8 [rows, cols]
    transform: Affine
    crs: str = LIGHTS_CRS


def luminance_features(boxes: np.ndarray) -> np.ndarray:
    """The features of one box ``[h, w]`` or of boxes ``[n, h, w]`` of uint8 luminance:
    the square-rooted shares of the 32 bins of 8 levels, then log(1 + mean),
    log(1 + max) and log(1 + the centre pixel ``[h // 2, w // 2]``). ``[35]`` or ``[n, 35]``, float64."""
    boxes = np.asarray(boxes)
    single = boxes.ndim == 2
    if single:
        boxes = boxes[None]
    if boxes.ndim != 3 or boxes.shape[1] == 0 or boxes.shape[2] == 0:
        raise ValueError(f"luminance boxes must be [h, w] or [n, h, w] with h, w > 0, not {boxes.shape}")
    if boxes.dtype != np.uint8:
        raise ValueError(f"luminance boxes must be uint8 (0-255), not {boxes.dtype}")
    n, h, w = boxes.shape
    flat = boxes.reshape(n, h * w)
    bins = (flat // BIN_WIDTH).astype(np.int64) + HISTOGRAM_BINS * np.arange(n)[:, None]
    counts = np.bincount(bins.ravel(), minlength=n * HISTOGRAM_BINS).reshape(n, HISTOGRAM_BINS)
    features = np.empty((n, HISTOGRAM_BINS + 3))
    features[:, :HISTOGRAM_BINS] = np.sqrt(counts / (h * w))
    features[:, HISTOGRAM_BINS] = np.log1p(flat.mean(axis=1, dtype=np.float64))
    features[:, HISTOGRAM_BINS + 1] = np.log1p(flat.max(axis=1).astype(np.float64))
    features[:, HISTOGRAM_BINS + 2] = np.log1p(boxes[:, h // 2, w // 2].astype(np.float64))
    return features[0] if single else features


class BundledLights:
    """Windowed reads of the bundled lights. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else lights_path()
        if not self.path.is_file():
            raise PovertyMapperError(
                missing_lights_message() if path is None else
                f"The bundled night lights are missing ({self.path}). Rebuild them with "
                "`python scripts/build_africa_lights.py <clone of github.com/freetiler/nasa-blackmarble>` "
                "or give a night-lights layer of your own."
            )
        self._ds = rasterio.open(self.path)
        if self._ds.crs is None or self._ds.crs.to_epsg() != 3857 or self._ds.count != 1 or self._ds.dtypes[0] != "uint8":
            name = self.path
            self._ds.close()
            raise PovertyMapperError(f"{name} is not the bundled luminance raster (one uint8 band in EPSG:3857); "
                                     "rebuild it with scripts/build_africa_lights.py.")

    def __enter__(self) -> "BundledLights":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._ds.close()

    @property
    def bounds(self):
        """West, south, east, north in EPSG:3857."""
        return self._ds.bounds

    @property
    def transform(self) -> Affine:
        return self._ds.transform

    def coverage_lonlat(self) -> tuple[float, float, float, float]:
        """The covered area in degrees: west, south, east, north."""
        return tuple(round(v, 2) for v in transform_bounds(LIGHTS_CRS, "EPSG:4326", *self._ds.bounds))

    def _outside(self, what: str) -> OutsideCoverage:
        west, south, east, north = self.coverage_lonlat()
        return OutsideCoverage(
            f"{what} lies outside the area the bundled night lights cover ({LIGHTS_NAME}: Africa, "
            f"longitude {west} to {east}, latitude {south} to {north}). Choose a region inside it, "
            "or give a night-lights layer that covers your region."
        )

    def _to_lights(self, xs: Sequence[float], ys: Sequence[float], crs) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = np.atleast_1d(np.asarray(xs, np.float64)), np.atleast_1d(np.asarray(ys, np.float64))
        if str(crs).upper() == LIGHTS_CRS:
            return xs, ys
        try:
            lx, ly = transform_points(crs, LIGHTS_CRS, xs, ys)
        except Exception as exc:  # rasterio raises CRSError or its own errors for unusable input
            raise PovertyMapperError(f"Cannot place these coordinates in {LIGHTS_CRS} from {crs}: {exc}") from exc
        return np.asarray(lx, np.float64), np.asarray(ly, np.float64)

    def pixel_of(self, xs, ys, crs) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of the lights' pixel holding each point (may lie outside the raster)."""
        lx, ly = self._to_lights(xs, ys, crs)
        inverse = ~self._ds.transform
        cols, rows = inverse * (lx, ly)
        bad = ~(np.isfinite(cols) & np.isfinite(rows))
        cols, rows = np.where(bad, -1e9, cols), np.where(bad, -1e9, rows)
        return np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)

    def _covered_pixels(self, xs, ys, crs, half: int) -> tuple[np.ndarray, np.ndarray]:
        """The pixel of each point; refuses points whose box reaching ``half`` pixels
        around it leaves the covered area."""
        rows, cols = self.pixel_of(xs, ys, crs)
        outside = (rows - half < 0) | (cols - half < 0) | (rows + half >= self._ds.height) | (cols + half >= self._ds.width)
        if outside.any():
            k = int(np.flatnonzero(outside)[0])
            point = f"({float(np.atleast_1d(xs)[k]):.6g}, {float(np.atleast_1d(ys)[k]):.6g}) in {crs}"
            raise self._outside(f"{int(outside.sum())} of {outside.size} points (the first: {point})")
        return rows, cols

    def boxes_around(self, xs, ys, crs, pixels: int = BOX_PIXELS) -> np.ndarray:
        """The ``pixels x pixels`` luminance boxes centred on the pixel of each point: uint8
        ``[n, pixels, pixels]``. Refuses points whose box leaves the covered area."""
        if pixels < 1 or pixels % 2 == 0:
            raise ValueError(f"a box centred on a pixel has an odd side, not {pixels}")
        rows, cols = self._covered_pixels(xs, ys, crs, pixels // 2)
        half = pixels // 2
        out = np.empty((rows.size, pixels, pixels), np.uint8)
        for k, (r, c) in enumerate(zip(rows, cols)):
            out[k] = self._ds.read(1, window=Window(int(c) - half, int(r) - half, pixels, pixels))
        return out

    def blocks_around(self, xs, ys, crs, margin: int):
        """The luminance around places, block by block: for each :data:`PLACES_BLOCK`-pixel
        block of the lights that holds places, ``(index, luminance, rows, cols)``: which
        places (indexes into ``xs``), the block's pixels with ``margin`` pixels around
        them (one read), and each place's pixel in it. Refuses, before any read, places
        whose ``margin`` leaves the covered area."""
        rows, cols = self._covered_pixels(xs, ys, crs, margin)
        blocks = (rows // PLACES_BLOCK) * (self._ds.width // PLACES_BLOCK + 1) + cols // PLACES_BLOCK
        for block in np.unique(blocks):
            index = np.flatnonzero(blocks == block)
            r0, c0 = int(rows[index].min()) - margin, int(cols[index].min()) - margin
            r1, c1 = int(rows[index].max()) + margin + 1, int(cols[index].max()) + margin + 1
            luminance = self._ds.read(1, window=Window(c0, r0, c1 - c0, r1 - r0))
            yield index, luminance, rows[index] - r0, cols[index] - c0

    def read_box(self, bounds: Sequence[float], crs) -> LuminanceBox:
        """The lights' pixels that touch a box (west, south, east, north in ``crs``), on the
        lights' own grid. Refuses a box that reaches outside the covered area."""
        west, south, east, north = bounds
        if not (east > west and north > south):
            raise PovertyMapperError(f"The box {tuple(bounds)} is empty: give west < east and south < north.")
        try:
            lw, ls, le, ln = (bounds if str(crs).upper() == LIGHTS_CRS
                              else transform_bounds(crs, LIGHTS_CRS, *bounds, densify_pts=21))
        except Exception as exc:
            raise PovertyMapperError(f"Cannot place the box {tuple(bounds)} of {crs} in {LIGHTS_CRS}: {exc}") from exc
        b = self._ds.bounds
        if not all(np.isfinite([lw, ls, le, ln])) or lw < b.left or ls < b.bottom or le > b.right or ln > b.top:
            raise self._outside(f"The box {tuple(round(v, 6) for v in bounds)} in {crs}")
        inverse = ~self._ds.transform
        c0, r0 = inverse * (lw, ln)
        c1, r1 = inverse * (le, ls)
        # A box edge within a millionth of a pixel of a pixel edge is on it (round-off of the transforms).
        c0, r0 = max(int(np.floor(c0 + EDGE_TOLERANCE)), 0), max(int(np.floor(r0 + EDGE_TOLERANCE)), 0)
        c1 = min(int(np.ceil(c1 - EDGE_TOLERANCE)), self._ds.width)
        r1 = min(int(np.ceil(r1 - EDGE_TOLERANCE)), self._ds.height)
        window = Window(c0, r0, max(1, c1 - c0), max(1, r1 - r0))
        return LuminanceBox(self._ds.read(1, window=window), self._ds.window_transform(window))
