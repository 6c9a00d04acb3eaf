"""Reading tiles of a raster as the reflectance a model expects."""
from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import rasterio
import torch
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError

from ..errors import PovertyMapperError
from .radiometry import Radiometry
from .tiling import PixelWindow


# Python's warning filters are the process's: opens that watch for a warning take turns.
_WATCHING_WARNINGS = threading.Lock()


def open_raster(path: str, what: str = "raster") -> rasterio.io.DatasetReader:
    """``rasterio.open`` with a message that names the file and says what to check.

    GDAL's overviews are never read: a coarser read averages the full-resolution pixels,
    so a stale or nearest-neighbour .ovr beside the image cannot change the result.
    A raster without georeference (no geotransform, GCPs or RPCs: a plain photo or JPEG)
    is refused; rasterio would give it an undefined transform."""
    with _WATCHING_WARNINGS, warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", NotGeoreferencedWarning)
        try:
            ds = rasterio.open(path, OVERVIEW_LEVEL="NONE")
        except RasterioError as exc:
            raise PovertyMapperError(
                f"Cannot open the {what} {path}: {exc}. Check that the file exists and is a complete "
                "raster (copy or export it again if it may have been cut short)."
            ) from exc
    for warning in seen:
        if not issubclass(warning.category, NotGeoreferencedWarning):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if any(issubclass(warning.category, NotGeoreferencedWarning) for warning in seen):
        ds.close()
        raise PovertyMapperError(
            f"The {what} {path} has no georeference (no geotransform, ground control points or RPCs), so "
            "its pixels cannot be placed on the ground. Georeference it (Raster > Georeferencer), or put its "
            "world file (such as .jgw or .wld) beside it, then try again."
        )
    complex_types = sorted({t for t in ds.dtypes if t.startswith("complex")})  # numpy has no complex_int16
    if complex_types:
        ds.close()
        raise PovertyMapperError(
            f"The {what} {path} holds complex numbers ({', '.join(complex_types)}), not image values; convert "
            "it to real values first (e.g. Raster > Conversion > Translate, or the amplitude from the Raster "
            "Calculator)."
        )
    return ds


def band_descriptions(ds: rasterio.io.DatasetReader) -> tuple[str | None, ...]:
    """The band names of a raster from :func:`open_raster` (GDAL's dataset without
    overviews does not pass them on, so they are read from the file itself)."""
    with rasterio.open(ds.name) as plain:
        return plain.descriptions


# GDAL's block cache while tiles are read (its default, 5 % of RAM, lets memory grow with
# the raster read): decoded blocks are reused only by neighbouring tiles.
READ_CACHE_BYTES = 64 * 2**20


class TileReader:
    """Reads tiles of a raster, resampled to the model's tile size in pixels."""

    def __init__(self, dataset: rasterio.io.DatasetReader, band_indexes: Sequence[int], size: int, radiometry: Radiometry):
        self.ds = dataset
        self.bands = list(band_indexes)
        self.size = size
        self.radiometry = radiometry
        declared = dataset.nodata is not None or any(
            flag & (MaskFlags.per_dataset | MaskFlags.alpha | MaskFlags.nodata)
            for flags in (dataset.mask_flag_enums[b - 1] for b in self.bands)
            for flag in flags
        )
        # A fill value of the imagery product counts only when the file declares none.
        self.fill_value = None if declared else radiometry.fill_value
        self._all_valid = all(
            flags == [MaskFlags.all_valid] for flags in (dataset.mask_flag_enums[b - 1] for b in self.bands)
        )

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.ds.dtypes[self.bands[0] - 1])

    def read_dn(self, window: PixelWindow) -> tuple[np.ndarray, np.ndarray]:
        """(digital numbers [bands, size, size] in the raster's data type, valid [size, size]).

        Pixels outside the raster, masked (nodata, alpha), equal to the product's fill
        value in every band, or not finite are invalid; their DN are 0.
        """
        dn = np.empty((len(self.bands), self.size, self.size), self.dtype)
        valid = np.empty((self.size, self.size), bool)
        self.read_dn_into(window, dn, valid)
        return dn, valid

    def read_dn_into(self, window: PixelWindow, dn: np.ndarray, valid: np.ndarray) -> None:
        """:meth:`read_dn` into given arrays (no copies for tiles inside the raster).

        A read that fails (a damaged or truncated file) raises :class:`PovertyMapperError`
        naming the file."""
        try:
            self._read_dn_into(window, dn, valid)
        except RasterioError as exc:
            detail = exc.__cause__ or exc
            raise PovertyMapperError(
                f"Cannot read the raster {self.ds.name} near pixel ({window.col_off}, {window.row_off}): "
                f"{detail}. The file is damaged or incomplete (e.g. a copy or download cut short); "
                "copy or export it again."
            ) from exc

    def reads_unchanged(self, window: PixelWindow) -> bool:
        """Whether the tile of ``window`` is read as the raster's pixels, unchanged: inside
        the raster, at its resolution, nothing masked (a float tile's non-finite values
        excepted, which become 0)."""
        return (window.intersection(self.ds.width, self.ds.height) == window
                and window.width == window.height == self.size and self._all_valid and self.fill_value is None)

    def _read_dn_into(self, window: PixelWindow, dn: np.ndarray, valid: np.ndarray) -> None:
        inside = window.intersection(self.ds.width, self.ds.height)
        if inside == window and window.width == window.height == self.size and self._all_valid and self.fill_value is None:
            self.ds.read(self.bands, window=window.to_rasterio(), out=dn)
            valid[...] = True
            if dn.dtype.kind == "f":
                self._clear_non_finite(dn, valid)
            return
        dn[...] = 0
        valid[...] = False
        if inside is None:
            return
        sx, sy = self.size / window.width, self.size / window.height
        c0 = round((inside.col_off - window.col_off) * sx)
        r0 = round((inside.row_off - window.row_off) * sy)
        c1 = round((inside.col_off + inside.width - window.col_off) * sx)
        r1 = round((inside.row_off + inside.height - window.row_off) * sy)
        if c1 <= c0 or r1 <= r0:
            return
        shape = (len(self.bands), r1 - r0, c1 - c0)
        win = inside.to_rasterio()
        same_size = shape[1:] == (inside.height, inside.width)
        part = self.ds.read(self.bands, window=win, out_shape=shape,
                            resampling=Resampling.nearest if same_size else Resampling.average)
        if self._all_valid:
            ok = np.ones(shape[1:], bool)
        else:
            masks = self.ds.read_masks(self.bands, window=win, out_shape=shape, resampling=Resampling.nearest)
            ok = np.all(masks > 0, axis=0)
        if self.fill_value is not None:
            ok &= ~np.all(part == self.fill_value, axis=0)
        part[:, ~ok] = 0
        dn[:, r0:r1, c0:c1] = part
        valid[r0:r1, c0:c1] = ok
        if dn.dtype.kind == "f":
            self._clear_non_finite(dn, valid)

    @staticmethod
    def _clear_non_finite(dn: np.ndarray, valid: np.ndarray) -> None:
        finite = np.all(np.isfinite(dn), axis=0)
        if not finite.all():
            valid &= finite
            dn[:, ~finite] = 0

    def read(self, window: PixelWindow) -> tuple[np.ndarray, np.ndarray]:
        """(reflectance [bands, size, size] float32, 0 where invalid; valid [size, size])."""
        dn, valid = self.read_dn(window)
        refl = self.radiometry.apply(dn)
        refl[:, ~valid] = 0.0
        return refl, valid


@dataclass(frozen=True)
class ImageTiles:
    """An image as its tiles are read, as plain data (to open in other processes too): its
    path or URL, the bands read (1-based), the tile size in pixels, the radiometry."""

    path: str
    band_indexes: tuple[int, ...]
    tile_px: int
    radiometry: Radiometry

    def open(self) -> "OpenedTileReader":
        return OpenedTileReader(open_raster(self.path), self.band_indexes, self.tile_px, self.radiometry)


class OpenedTileReader(TileReader):
    """A :class:`TileReader` of a dataset of its own, closed with :meth:`close`."""

    def close(self) -> None:
        self.ds.close()


def read_batch(reader: TileReader, windows: Sequence[PixelWindow], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Tiles of ``windows`` as (reflectance [N, bands, size, size], valid [N, size, size]) on ``device``."""
    tiles = [reader.read(w) for w in windows]
    pixels = torch.from_numpy(np.stack([t[0] for t in tiles])).to(device)
    valid = torch.from_numpy(np.stack([t[1] for t in tiles])).to(device)
    return pixels, valid
