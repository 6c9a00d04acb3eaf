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

from ..atomic import IncompleteOutput, atomic_output
from ..errors import PovertyMapperError
from ..imagery.radiometry import Radiometry
from ..imagery.tiling import TileGrid
from ..models.feature_domain import FeatureDomain
from ..models.model_file import PovertyModel

NODATA = -9999.0
# Band 2 of the estimate raster says how to read band 1, per cell. Codes 0, 1 and 3 have
# an estimate; 2, 4 and 5 have none.
QUALITY_OK = 0  # an estimate within the range of the survey outcomes
QUALITY_EXTRAPOLATED = 1  # an estimate outside that range: read as 'below' or 'above' it
QUALITY_NO_ESTIMATE = 2  # a cell to map without an estimate: fill, or too few valid pixels
QUALITY_OUT_OF_DOMAIN = 3  # imagery unlike every training cluster's, or a scene unlike the training imagery
QUALITY_WATER = 4  # mostly water: no estimate
QUALITY_CLOUD = 5  # mostly cloud: no estimate
QUALITY_CODES = {
    QUALITY_OK: "within the range of the survey outcomes",
    QUALITY_EXTRAPOLATED: "outside that range (extrapolation)",
    QUALITY_NO_ESTIMATE: "no estimate (fill or too few valid pixels)",
    QUALITY_OUT_OF_DOMAIN: "imagery unlike the model's training imagery (out of domain)",
    QUALITY_WATER: "no estimate: water",
    QUALITY_CLOUD: "no estimate: cloud",
}
# Band names short enough to read whole where QGIS shows them ("Band 2: quality (…)" in
# Identify); the meaning of every code, and of the interval, in the bands' own tags.
QUALITY_DESCRIPTION = "quality (1 extrapolation, 3 out of domain)"
QUALITY_TAGS = {f"CODE_{code}": text for code, text in QUALITY_CODES.items()}
INTERVAL_DESCRIPTION = "interval80: 80 % interval half-width"
INTERVAL_TAGS = {
    "MEANING": "the estimate +- this held 80 % of held-out survey clusters (from cross-validation; "
               "widened where the imagery lies far from the training clusters')",
}


def has_estimate(quality: np.ndarray) -> np.ndarray:
    """True for the quality codes that come with an estimate."""
    return np.isin(quality, (QUALITY_OK, QUALITY_EXTRAPOLATED, QUALITY_OUT_OF_DOMAIN))


GEOTIFF_SUFFIXES = (".tif", ".tiff")


def check_geotiff_name(path: str) -> str:
    """The path of a map to write, refused unless its name says GeoTIFF, the format every
    map is written in (the front ends check it before a run)."""
    if Path(path).suffix.lower() not in GEOTIFF_SUFFIXES:
        raise PovertyMapperError(
            f"The map is written as a GeoTIFF: give the output file the extension .tif (not '{Path(path).name}')."
        )
    return path


def check_output_path(out_path: Path) -> None:
    """Refuse, before any work, an output that cannot be written where asked."""
    if not out_path.parent.is_dir():
        raise PovertyMapperError(f"The output folder {out_path.parent} does not exist; choose an existing folder.")
    if not os.access(out_path.parent, os.W_OK):
        raise PovertyMapperError(f"The output folder {out_path.parent} is not writable; choose another output file.")
    if out_path.is_dir():
        raise PovertyMapperError(f"{out_path} is a folder; choose a file name for the output.")


def output_profile(crs: CRS, grid: TileGrid) -> dict:
    """Three float32 bands on the grid of cells (the estimate; its quality code; the half-
    width of its 80 % interval), nodata :data:`NODATA`, deflated (tiled when large)."""
    height, width = grid.shape
    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": 3,
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
    n_out_of_domain: int = 0  # estimates from imagery unlike every training cluster's
    n_water: int = 0  # cells left without an estimate as water
    n_cloud: int = 0  # cells left without an estimate as cloud


@dataclass(frozen=True)
class CellReading:
    """How the writer reads a cell's outputs: the survey outcomes' range (estimates
    outside it are extrapolations), the model's feature domain (coordinates beyond it are
    out of domain; they widen the interval) and the cross-validated interval half-width.
    ``scene_widening``: set where the scene as a whole is unlike the model's training
    imagery (its scene check): every estimate is then out of domain, and this half-width
    is added to every interval in quadrature."""

    outcome_range: tuple[float, float] | None = None
    feature_domain: FeatureDomain | None = None
    interval_80: float | None = None
    scene_widening: float | None = None

    def quality_and_interval(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Quality codes and interval half-widths (NaN: not known) for outputs [n, 1 + k]
        whose estimate (column 0) is finite."""
        estimate = values[:, 0]
        quality = np.full(len(values), QUALITY_OK, np.int64)
        if self.outcome_range is not None:
            lo, hi = self.outcome_range
            quality[(estimate < lo) | (estimate > hi)] = QUALITY_EXTRAPOLATED
        scale = np.ones(len(values))
        if self.feature_domain is not None and values.shape[1] > 1:
            distance = FeatureDomain.distance(values[:, 1:])
            quality[self.feature_domain.outside(distance)] = QUALITY_OUT_OF_DOMAIN
            scale = self.feature_domain.interval_scale(distance)
        interval = scale * (np.nan if self.interval_80 is None else self.interval_80)
        if self.scene_widening is not None:
            quality[:] = QUALITY_OUT_OF_DOMAIN
            interval = np.hypot(interval, self.scene_widening)
        return quality, interval


class RowWriter:
    """Takes estimates for cells in any order and writes each row once all its cells and
    all rows before it are known, so the output is written incrementally and never held
    whole in memory (cells that come in row-major order are written row by row).

    ``preset``: quality codes of cells decided before any estimate (water, cloud), which
    get no estimate and are not waited for; 0 elsewhere. Cells screened while mapping
    come through :meth:`screened`."""

    def __init__(self, dst, cell_mask: np.ndarray, reading: CellReading | None = None, preset: np.ndarray | None = None):
        self.dst, self.width = dst, cell_mask.shape[1]
        self.reading = reading or CellReading()
        self.preset = np.zeros(cell_mask.shape, np.uint8) if preset is None else np.where(cell_mask, preset, 0)
        self.n_outside = self.n_out_of_domain = 0
        self.pending = (cell_mask & (self.preset == 0)).sum(axis=1)  # cells still to come, per row
        self.rows: dict[int, np.ndarray] = {}  # per row: [estimate, quality, interval] x width
        self.next_row = 0
        self.count, self.vsum, self.vmin, self.vmax = 0, 0.0, math.inf, -math.inf

    def add(self, cells: Sequence[tuple[int, int]], values: np.ndarray) -> None:
        """Outputs for ``cells`` ([n, 1 + k]: the estimate, then the domain coordinates; or
        [n] estimates alone); an estimate that is not finite leaves its cell nodata."""
        if not len(cells):
            return
        values = np.asarray(values, np.float64).reshape(len(cells), -1)
        rows, cols = np.asarray(cells, np.int64).T
        np.subtract.at(self.pending, rows, 1)
        finite = np.isfinite(values[:, 0])
        quality, interval = self.reading.quality_and_interval(values[finite])
        estimates = values[finite, 0]
        if estimates.size:
            self.count += estimates.size
            self.vsum += float(estimates.sum())
            self.vmin, self.vmax = min(self.vmin, float(estimates.min())), max(self.vmax, float(estimates.max()))
            self.n_outside += int(np.count_nonzero(
                (estimates < self.reading.outcome_range[0]) | (estimates > self.reading.outcome_range[1])
            )) if self.reading.outcome_range is not None else 0
            self.n_out_of_domain += int(np.count_nonzero(quality == QUALITY_OUT_OF_DOMAIN))
        for r, c, ok, i in zip(rows, cols, finite, np.cumsum(finite) - 1):
            row = self._row(int(r))
            if not ok:
                row[1, c] = self.preset[r, c] or QUALITY_NO_ESTIMATE
                continue
            row[0, c], row[1, c] = estimates[i], quality[i]
            if np.isfinite(interval[i]):
                row[2, c] = interval[i]
        self._write_complete_rows()

    def screened(self, cells: Sequence[tuple[int, int]], codes: np.ndarray) -> None:
        """Cells found mostly water or cloud while mapping: their code, and no estimate
        (their values, NaN, still come to :meth:`add`)."""
        for (r, c), code in zip(cells, codes):
            self.preset[r, c] = code
            if r in self.rows:
                self.rows[r][1, c] = code

    def finish(self, description: str, tags: dict[str, str]) -> MapSummary:
        """Checks that every cell came, labels the bands; what was written, in numbers."""
        missing = int(self.pending[self.pending > 0].sum())
        if missing:
            raise RuntimeError(f"{missing} cells of the map were never estimated")
        self._write_complete_rows()
        self.dst.set_band_description(1, description)
        self.dst.set_band_description(2, QUALITY_DESCRIPTION)
        self.dst.set_band_description(3, INTERVAL_DESCRIPTION)
        self.dst.update_tags(2, **QUALITY_TAGS)
        self.dst.update_tags(3, **INTERVAL_TAGS)
        self.dst.update_tags(**tags)
        n_water = int(np.count_nonzero(self.preset == QUALITY_WATER))
        n_cloud = int(np.count_nonzero(self.preset == QUALITY_CLOUD))
        if self.count == 0:
            return MapSummary(0, None, None, None, n_water=n_water, n_cloud=n_cloud)
        return MapSummary(
            self.count, self.vmin, self.vmax, self.vsum / self.count, self.n_outside, self.n_out_of_domain,
            n_water, n_cloud,
        )

    def _row(self, row: int) -> np.ndarray:
        if row not in self.rows:
            values = np.full((3, self.width), NODATA, np.float32)
            preset = self.preset[row]
            values[1, preset > 0] = preset[preset > 0]
            self.rows[row] = values
        return self.rows[row]

    def _write_complete_rows(self) -> None:
        while self.next_row < len(self.pending) and self.pending[self.next_row] <= 0:
            values = self.rows.pop(self.next_row, None)
            if values is None:
                values = self._row(self.next_row)
                self.rows.pop(self.next_row)
            self.dst.write(values[:, None, :], window=rasterio.windows.Window(0, self.next_row, self.width, 1))
            self.next_row += 1


@contextmanager
def estimate_raster(
    out_path: Path, crs: CRS, grid: TileGrid, cell_mask: np.ndarray, reading: CellReading | None = None,
    preset: np.ndarray | None = None,
) -> Iterator[RowWriter]:
    """A writer for the map of ``grid``'s cells, written to a temporary file beside
    ``out_path`` and renamed into place only if the block ends without an exception.
    ``reading`` says how to code each estimate; ``preset`` gives cells decided beforehand."""
    profile = output_profile(crs, grid)
    verify = lambda tmp: check_written_raster(tmp, out_path, profile)  # noqa: E731
    with atomic_output(out_path, ".tif", verify) as tmp, _create_output(tmp, out_path, profile) as dst:
        yield RowWriter(dst, cell_mask, reading, preset)


def check_written_raster(tmp: Path, out_path: Path, profile: dict) -> None:
    """Re-open the written raster and read every block: GDAL reports a failed write (a full
    disk) only in its log, so a file that cannot be read back whole is never kept."""
    try:
        with rasterio.open(tmp) as ds:
            shape = (ds.count, ds.height, ds.width)
            expected = (profile["count"], profile["height"], profile["width"])
            if shape != expected:
                raise IncompleteOutput(
                    f"The output {out_path} was not written whole: it reads back as {shape} "
                    f"(bands, rows, columns) instead of {expected}."
                )
            for _, window in ds.block_windows(1):
                ds.read(window=window)
    except rasterio.errors.RasterioError as exc:
        raise IncompleteOutput(f"The output {out_path} was not written whole: reading it back failed ({exc}).") from exc
