"""Reading tiles of a raster as the reflectance a model expects."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import rasterio
import torch
from rasterio.enums import MaskFlags, Resampling

from .radiometry import Radiometry
from .tiling import PixelWindow


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

    def read(self, window: PixelWindow) -> tuple[np.ndarray, np.ndarray]:
        """(reflectance [bands, size, size] float32, valid [size, size] bool)."""
        pixels = np.zeros((len(self.bands), self.size, self.size), np.float32)
        valid = np.zeros((self.size, self.size), bool)
        inside = window.intersection(self.ds.width, self.ds.height)
        if inside is None:
            return pixels, valid
        sx, sy = self.size / window.width, self.size / window.height
        c0 = round((inside.col_off - window.col_off) * sx)
        r0 = round((inside.row_off - window.row_off) * sy)
        c1 = round((inside.col_off + inside.width - window.col_off) * sx)
        r1 = round((inside.row_off + inside.height - window.row_off) * sy)
        if c1 <= c0 or r1 <= r0:
            return pixels, valid
        shape = (len(self.bands), r1 - r0, c1 - c0)
        win = inside.to_rasterio()
        same_size = shape[1:] == (inside.height, inside.width)
        dn = self.ds.read(self.bands, window=win, out_shape=shape,
                          resampling=Resampling.nearest if same_size else Resampling.average)
        masks = self.ds.read_masks(self.bands, window=win, out_shape=shape, resampling=Resampling.nearest)
        ok = np.all(masks > 0, axis=0)
        if self.fill_value is not None:
            ok &= ~np.all(dn == self.fill_value, axis=0)
        refl = self.radiometry.apply(dn)
        ok &= np.all(np.isfinite(refl), axis=0)
        pixels[:, r0:r1, c0:c1] = np.where(ok, refl, 0.0)
        valid[r0:r1, c0:c1] = ok
        return pixels, valid


def read_batch(reader: TileReader, windows: Sequence[PixelWindow], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Tiles of ``windows`` as (pixels [N, bands, size, size], valid [N, size, size]) on ``device``."""
    tiles = [reader.read(w) for w in windows]
    pixels = torch.from_numpy(np.stack([t[0] for t in tiles])).to(device)
    valid = torch.from_numpy(np.stack([t[1] for t in tiles])).to(device)
    return pixels, valid
