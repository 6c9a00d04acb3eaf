"""The estimate raster: its profile, its creation beside the destination, its rows written
as soon as they are complete, its band description and tags."""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import rasterio
from rasterio.crs import CRS

from ..atomic import atomic_output
from ..errors import PovertyMapperError
from ..imagery.radiometry import Radiometry
from ..imagery.tiling import TileGrid
from ..models.model_file import PovertyModel

NODATA = -9999.0
# Band 2 of the estimate raster says how to read band 1, per cell.
QUALITY_OK = 0.0  # an estimate within the range of the survey outcomes
QUALITY_EXTRAPOLATED = 1.0  # an estimate outside that range: read as 'below' or 'above' it
QUALITY_NO_ESTIMATE = 2.0  # a cell to map without an estimate: fill, or too few valid pixels
QUALITY_DESCRIPTION = (
    "quality: 0 = within the range of the survey outcomes, 1 = outside it (extrapolation), "
    "2 = no estimate (fill or too few valid pixels)"
)


def check_output_path(out_path: Path) -> None:
    """Refuse, before any work, an output that cannot be written where asked."""
    if not out_path.parent.is_dir():
        raise PovertyMapperError(f"The output folder {out_path.parent} does not exist; choose an existing folder.")
    if not os.access(out_path.parent, os.W_OK):
        raise PovertyMapperError(f"The output folder {out_path.parent} is not writable; choose another output file.")
    if out_path.is_dir():
        raise PovertyMapperError(f"{out_path} is a folder; choose a file name for the output.")


def output_profile(crs: CRS, grid: TileGrid) -> dict:
    """Two float32 bands on the grid of cells (the estimate; its quality code), nodata
    :data:`NODATA`, deflated (tiled when large)."""
    height, width = grid.shape
    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": 2,
        "width": width,
        "height": height,
        "crs": crs,
        "transform": grid.transform,
        "nodata": NODATA,
        "compress": "deflate",
        "predictor": 3,
    }
    if width >= 256 and height >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    return profile


def map_tags(
    model: PovertyModel, raster_path: str, bands: Sequence[int], radiometry: Radiometry, cell_size_m: float
) -> dict[str, str]:
    """What the map says about itself: the quantity, the model and the imagery it came
    from, and the model's fixed colour scale (with the survey mean) where it knows it."""
    scale = {} if model.domain is None else model.domain.legend_tags()
    if model.scores.interval_80 is not None:  # +- this held 80 % of held-out clusters
        scale["INTERVAL_80"] = f"{model.scores.interval_80:.6g}"
    return {
        **scale,
        "QUANTITY": model.target.name,
        "UNIT": model.target.unit,
        "MODEL": model.name,
        "MODEL_EXTRACTOR": model.extractor.kind,
        "SOURCE_RASTER": os.path.basename(raster_path),
        "SOURCE_BANDS": ",".join(map(str, bands)),
        "RADIOMETRY": radiometry.key,
        "TILE_SIZE_M": f"{model.tile_size_m:g}",
        "CELL_SIZE_M": f"{cell_size_m:g}",
        "SOFTWARE": "QGIS plugin Poverty Mapper",
    }


def _create_output(tmp: Path, out_path: Path, profile: dict):
    """The (temporary) output dataset, or a message saying why it cannot be created."""
    try:
        return rasterio.open(tmp, "w", **profile)
    except rasterio.errors.RasterioIOError as exc:
        raise PovertyMapperError(
            f"Cannot create the output {out_path} ({exc}); choose a folder you can write to."
        ) from exc


@dataclass(frozen=True)
class MapSummary:
    n_estimated: int
    value_min: float | None
    value_max: float | None
    value_mean: float | None
    n_outside_range: int = 0  # estimates outside the survey outcomes' range: extrapolations


class RowWriter:
    """Takes estimates for cells in any order and writes each row once all its cells and
    all rows before it are known, so the output is written incrementally and never held
    whole in memory (cells that come in row-major order are written row by row)."""

    def __init__(self, dst, cell_mask: np.ndarray, outcome_range: tuple[float, float] | None = None):
        self.dst, self.width = dst, cell_mask.shape[1]
        self.outcome_range = outcome_range
        self.n_outside = 0
        self.pending = cell_mask.sum(axis=1)  # cells still to come, per row
        self.rows: dict[int, np.ndarray] = {}  # per row: [estimate, quality] x width
        self.next_row = 0
        self.count, self.vsum, self.vmin, self.vmax = 0, 0.0, math.inf, -math.inf

    def add(self, cells: Sequence[tuple[int, int]], values: np.ndarray) -> None:
        """Estimates for ``cells``; a value that is not finite leaves its cell nodata."""
        for (r, c), v in zip(cells, values):
            self.pending[r] -= 1
            row = self._row(r)
            if not np.isfinite(v):
                row[1, c] = QUALITY_NO_ESTIMATE
                continue
            row[0, c] = v
            self.count += 1
            self.vsum += float(v)
            self.vmin, self.vmax = min(self.vmin, float(v)), max(self.vmax, float(v))
            outside = self.outcome_range is not None and not self.outcome_range[0] <= v <= self.outcome_range[1]
            self.n_outside += outside
            row[1, c] = QUALITY_EXTRAPOLATED if outside else QUALITY_OK
        self._write_complete_rows()

    def finish(self, description: str, tags: dict[str, str]) -> MapSummary:
        """Checks that every cell came, labels the band; what was written, in numbers."""
        missing = int(self.pending[self.pending > 0].sum())
        if missing:
            raise RuntimeError(f"{missing} cells of the map were never estimated")
        self._write_complete_rows()
        self.dst.set_band_description(1, description)
        self.dst.set_band_description(2, QUALITY_DESCRIPTION)
        self.dst.update_tags(**tags)
        if self.count == 0:
            return MapSummary(0, None, None, None)
        return MapSummary(self.count, self.vmin, self.vmax, self.vsum / self.count, self.n_outside)

    def _row(self, row: int) -> np.ndarray:
        if row not in self.rows:
            self.rows[row] = np.full((2, self.width), NODATA, np.float32)
        return self.rows[row]

    def _write_complete_rows(self) -> None:
        while self.next_row < len(self.pending) and self.pending[self.next_row] <= 0:
            values = self.rows.pop(self.next_row, None)
            if values is None:
                values = np.full((2, self.width), NODATA, np.float32)
            self.dst.write(values[:, None, :], window=rasterio.windows.Window(0, self.next_row, self.width, 1))
            self.next_row += 1


@contextmanager
def estimate_raster(
    out_path: Path, crs: CRS, grid: TileGrid, cell_mask: np.ndarray, outcome_range: tuple[float, float] | None = None
) -> Iterator[RowWriter]:
    """A writer for the map of ``grid``'s cells, written to a temporary file beside
    ``out_path`` and renamed into place only if the block ends without an exception.
    With ``outcome_range`` it counts the estimates outside it."""
    with atomic_output(out_path, ".tif") as tmp, _create_output(tmp, out_path, output_profile(crs, grid)) as dst:
        yield RowWriter(dst, cell_mask, outcome_range)
