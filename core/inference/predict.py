"""Mapping: run a model over every tile of a region and write the estimate raster.

:func:`predict_poverty_map` checks the request, opens the imagery to lay out the job,
plans the run (:mod:`.plan`) and runs the job (:mod:`.mapping_job`) on an executor
(:mod:`..imagery.executors`), feeding the writer (:mod:`.writer`)."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.features import rasterize

from ..atomic import check_not_an_input
from ..device import device_name, resolve_device
from ..errors import PovertyMapperError
from ..imagery.executors import LocalExecutor
from ..imagery.tile_work import Executor
from ..imagery.lights_layer import (
    NIGHTLIGHTS_BAND,
    LightsInput,
    check_lights_are_radiance,
    check_lights_overlap,
    lights_notes,
    image_bands,
    open_lights,
    uses_nightlights,
)
from ..imagery.radiometry import Radiometry, as_trained, resolve_radiometry
from .neighbourhood import NeighbourhoodMean, neighbourhood_radius
from ..imagery.tile_reader import READ_CACHE_BYTES, open_raster
from ..imagery.surface import surface_bands, surface_screen
from ..imagery.tiling import TileGrid, region_window, tile_grid_for
from ..models.model_file import PovertyModel
from ..models.scene_check import SceneCheck, check_scene, scene_check_notes, scene_check_tags, scene_widening
from ..models.scene_reading import SceneReading, model_band_indexes, scene_reading
from ..models.scene_statistics import (
    implausible_input_note, knows_band_statistics, needs_scene_standardization, scene_band_statistics,
)
from ..options import TileOptions
from ..resources import check_memory
from .mapping_job import CancelCheck, MappingJob, ProgressCallback, run_mapping
from .plan import plan_run
from .writer import (
    QUALITY_CLOUD, QUALITY_WATER, CellReading, MapSummary, check_output_path, estimate_raster, map_tags,
)

log = logging.getLogger("poverty_mapper")
# Memory a map needs per cell of its grid, whatever its tiles: the cell mask, the cells to
# estimate and the neighbourhood mean's tables (measured: 90-105 bytes with a neighbourhood).
BYTES_PER_CELL = 128

# GDAL's block cache while mapping: tiles are read about once, so a small cache does
# (GDAL's default, 5% of RAM, made memory grow with the raster up to that size).


@dataclass(frozen=True)
class _PredictRequestInputs:
    """What a prediction run cannot do without."""

    raster_path: str
    output_path: str
    model: PovertyModel


@dataclass(frozen=True)
class PredictRequest(TileOptions, _PredictRequestInputs):
    """Everything one prediction run needs; geometry is in the raster's CRS."""

    bounds: tuple[float, float, float, float] | None = None
    mask_geometries: tuple[dict, ...] | None = None  # GeoJSON-like polygons
    mask_name: str | None = None  # the mask's layer or file, as messages name it
    stride_m: float | None = 0.0  # distance between cell centres; 0 (or None) = the model's tile size
    batch_size: int = 0  # tiles per batch; 0 = automatic (auto_batch_size)
    mixed_precision: bool = True  # bf16 for cnn/random features where the hardware is fast at it
    read_workers: int | None = None  # reader threads (0 = read in the calling thread; None = automatic)
    prefetch_batches: int = 4  # batches read ahead of the model
    nightlights_path: str | None = None  # night-lights raster, for a model with a NIGHTLIGHTS band


@dataclass(frozen=True)
class PredictResult:
    output_path: str
    n_cells: int
    n_estimated: int
    device: str
    band_indexes: tuple[int, ...]
    radiometry: Radiometry
    value_min: float | None
    value_max: float | None
    value_mean: float | None
    notes: tuple[str, ...] = field(default_factory=tuple)
    n_outside_range: int = 0  # estimates outside the survey outcomes' range (extrapolations)
    n_out_of_domain: int = 0  # estimates from imagery unlike every training cluster's
    n_water: int = 0  # cells without an estimate: mostly water
    n_cloud: int = 0  # cells without an estimate: mostly cloud


def _mask_cells(grid: TileGrid, request: PredictRequest) -> np.ndarray:
    """True for output cells whose centre lies inside the mask polygons (all, without a mask)."""
    if request.mask_geometries is None:
        return np.ones(grid.shape, bool)
    geometries = list(request.mask_geometries)
    mask = f"'{request.mask_name}'" if request.mask_name else "the mask layer"
    if not geometries:
        raise PovertyMapperError(f"The mask {mask} has no polygons (or none selected); choose polygons to map.")
    burned = rasterize(
        ((g, 1) for g in geometries), out_shape=grid.shape, transform=grid.transform, fill=0, dtype="uint8"
    ).astype(bool)
    if not burned.any():
        raise PovertyMapperError(
            f"The mask polygons of {mask} cover no cell of the raster {Path(request.raster_path).name} (or of the "
            f"extent): they lie outside it, or are smaller than one cell. Check where {mask} lies and its CRS, "
            "choose polygons over the image, or map without a mask."
        )
    return burned


def _check_image_holds_a_tile(
    width: int, height: int, grid: TileGrid, tile_size_m: float, min_valid_fraction: float
) -> None:
    """Refuse an image so small that no tile can reach the valid fraction an estimate
    needs: the largest share of a tile it can fill is min(1, width / tile) x min(1,
    height / tile), in x and y apart."""
    fill = min(1.0, width / grid.tile_x) * min(1.0, height / grid.tile_y)
    if fill >= min_valid_fraction:
        return
    km_x = width / grid.tile_x * tile_size_m / 1000
    km_y = height / grid.tile_y * tile_size_m / 1000
    digits = 1 if min(km_x, km_y) >= 1 else 2
    raise PovertyMapperError(
        f"The image covers {km_x:.{digits}f} x {km_y:.{digits}f} km, smaller than one {tile_size_m / 1000:g} km "
        f"tile of the model; no tile can have the {min_valid_fraction:.0%} of valid pixels an "
        "estimate needs. Use a larger image, or fit a model with smaller tiles "
        "('Fit poverty model on survey clusters', tile size)."
    )


def _check_model_maps(model: PovertyModel) -> None:
    """Refuse a model that cannot write estimates (a feature extractor alone), and one
    that maps without an image (the bundled lights' model: core.inference.lights_map)."""
    if not model.extractor.reads_imagery:
        raise PovertyMapperError(
            f"The model '{model.name}' reads the bundled night lights, not an image: map it with a region "
            "and a CRS (core.inference.lights_map.predict_lights_map)."
        )
    if not model.can_predict:
        raise PovertyMapperError(
            f"The model '{model.name}' holds only a feature extractor; fit it on survey clusters "
            "('Fit poverty model on survey clusters') and map with the model file that writes."
        )


@dataclass(frozen=True)
class _Surface:
    """The region's cells decided before mapping: quality codes (water, cloud; 0 for the
    cells to estimate), and what the user should know about how they were found."""

    preset: np.ndarray
    notes: tuple[str, ...]
    scene: SceneCheck | None = None  # the scene compared with the model's training imagery

    @property
    def unlike_training(self) -> bool:
        return self.scene is not None and self.scene.alarm


def _lights_input(request: PredictRequest, ds: rasterio.io.DatasetReader) -> tuple[LightsInput | None, tuple[str, ...]]:
    """The lights layer of a model that reads one (checked against the imagery), and notes."""
    model = request.model
    if not uses_nightlights(model.bands):
        if request.nightlights_path:
            return None, (f"The model '{model.name}' does not read night lights: the night-lights layer was not used.",)
        return None, ()
    if not request.nightlights_path:
        expected = model.nightlights.describe() if model.nightlights else "a night-lights raster"
        raise PovertyMapperError(
            f"The model '{model.name}' reads night lights beside the imagery: give a night-lights layer "
            f"({expected}) as 'Night-lights layer' in the dock or the NIGHTLIGHTS parameter of the algorithm."
        )
    with open_lights(request.nightlights_path) as lights:
        check_lights_overlap(lights, ds)
        expected = model.nightlights.describe() if model.nightlights else "the night-lights product the model was fitted on"
        check_lights_are_radiance(lights, ds, expected)
        notes = lights_notes(lights, ds)
    return LightsInput(request.nightlights_path, model.bands.index(NIGHTLIGHTS_BAND)), notes


def _mapping_job(request: PredictRequest, ds: rasterio.io.DatasetReader) -> tuple[MappingJob, _Surface]:
    """The bands, radiometry, grid and cells of ``request`` on the open raster ``ds``, and
    the cells of the region decided before mapping."""
    model = request.model
    bands = model_band_indexes(ds, model.bands, request.band_indexes)
    lights, lights_notes = _lights_input(request, ds)
    radiometry = as_trained(  # no caveat for the imagery the model itself was trained on
        resolve_radiometry(request.radiometry, ds.dtypes[(bands or (1,))[0] - 1], model.radiometry), model.radiometry)
    region = region_window(ds.transform, ds.width, ds.height, request.bounds)
    grid = tile_grid_for(ds.transform, ds.crs, region, model.tile_size_m, request.stride_m, aligned=True)
    check_memory(
        len(grid) * BYTES_PER_CELL, f"Mapping {grid.width:,} x {grid.height:,} cells",
        "Choose a larger stride (up to the tile size), a smaller extent, or a model with larger tiles.",
    )
    _check_image_holds_a_tile(ds.width, ds.height, grid, model.tile_size_m, request.min_valid_fraction)
    region_cells = _mask_cells(grid, request)
    seen = surface_bands(ds, image_bands(model.bands), bands)
    screen = surface_screen(ds, grid, region_cells, seen, radiometry, QUALITY_WATER, QUALITY_CLOUD)
    scene = SceneReading(model, np.zeros(grid.shape, np.uint8), screen, ()) if lights is not None else \
        scene_reading(ds, model, bands, radiometry, grid, region_cells, screen)
    model, preset, screen, notes = scene.model, scene.preset, scene.screen, scene.notes
    cell_mask = region_cells & (preset == 0)
    surface_notes = () if seen.can_see_water else (
        "The imagery has no near-infrared band (or none the plugin can name), so water was not looked for: "
        "lakes and rivers get estimates like land. The quality band still flags imagery unlike the model's.",
    )
    if not notes and bands and radiometry.note:
        # A scene-standardized run's own note replaces the radiometry's (which speaks of
        # reflectance the model was trained on); a lights-only run reads no image values.
        notes = (radiometry.note,)
    if lights is None and bands and cell_mask.any() and knows_band_statistics(model) \
            and not needs_scene_standardization(model, radiometry):
        mean, std, used = scene_band_statistics(ds, bands, radiometry, model, grid, cell_mask, screen)
        implausible = implausible_input_note(model, mean, std) if used else None
        notes += (implausible,) if implausible else ()
    check = None
    if lights is None and bands and cell_mask.any():
        check = check_scene(ds, bands, radiometry, request.model, model, grid, cell_mask, request.min_valid_fraction)
        notes += scene_check_notes(model, check)
    job = MappingJob(
        request.raster_path, bands, radiometry, model, grid, cell_mask, request.min_valid_fraction,
        notes + lights_notes, lights, screen,
    )
    return job, _Surface(preset, surface_notes, check)


def _check_no_lights_features(model: PovertyModel) -> None:
    """Refuse a model fitted on image features and the bundled lights' features together
    (fitclusters' ``with_lights``): mapping does not read the bundled lights per cell yet."""
    if model.lights_features is not None:
        raise PovertyMapperError(
            f"The model '{model.name}' was fitted on image features and the bundled night lights' features "
            "together ('with lights'): mapping with such a model is not supported yet. Its fit and scores stand; to "
            "map, fit the same clusters without 'with lights'."
        )


def predict_poverty_map(
    request: PredictRequest,
    progress: ProgressCallback | None = None,
    is_canceled: CancelCheck | None = None,
    executor: Executor | None = None,
) -> PredictResult:
    """Write the estimate raster for ``request``; returns what was done. The tiles run
    on ``executor`` (default: a :class:`LocalExecutor` on this machine).

    The output is written to a temporary file beside the destination and renamed
    into place only when complete: a failed or canceled run leaves any earlier file
    of the same name untouched and no partial file behind.
    """
    progress = progress or (lambda _f: None)
    is_canceled = is_canceled or (lambda: False)
    model = request.model
    _check_model_maps(model)
    _check_no_lights_features(model)
    device = resolve_device(request.device)
    plan = plan_run(
        device, model.extractor, request.batch_size, request.read_workers, request.prefetch_batches,
        request.mixed_precision,
    )
    if request.stride_m is not None and not (math.isfinite(request.stride_m) and request.stride_m >= 0):
        raise PovertyMapperError(
            f"The stride (distance between cell centres) must be 0 m (the tile size) or more, not "
            f"{request.stride_m:g}."
        )
    if request.batch_size < 0:
        raise PovertyMapperError(f"The batch size must be 0 (by device) or more, not {request.batch_size}.")
    out_path = Path(request.output_path)
    check_output_path(out_path)
    check_not_an_input(out_path, {"input raster": request.raster_path})

    with rasterio.Env(GDAL_CACHEMAX=READ_CACHE_BYTES), open_raster(request.raster_path) as ds:
        job, surface = _mapping_job(request, ds)
        crs, pixel_m = ds.crs, abs(ds.transform.a)
    grid = job.grid
    log.info(
        "Mapping %s: %d x %d cells of %.0f m, bands %s, %s, on %s",
        request.raster_path, grid.width, grid.height, grid.step_x * pixel_m,
        job.band_indexes, job.radiometry.key, device_name(device),
    )
    tags = map_tags(model, request.raster_path, job.band_indexes, job.radiometry, request.stride_m or model.tile_size_m)
    if job.nightlights is not None:
        tags["SOURCE_NIGHTLIGHTS"] = Path(job.nightlights.path).name
    tags.update(scene_check_tags(surface.scene))
    widening = (scene_widening(model) or 0.0) if surface.unlike_training else None
    reading = CellReading(outcome_range(model), model.feature_domain, model.scores.interval_80, widening)
    region_cells = job.cell_mask | (surface.preset > 0)
    with rasterio.Env(GDAL_CACHEMAX=READ_CACHE_BYTES), \
            estimate_raster(out_path, crs, grid, region_cells, reading, surface.preset) as writer:
        step_m = request.stride_m or model.tile_size_m
        radius = neighbourhood_radius(model.domain and model.domain.box_size_m, model.tile_size_m, step_m)
        sink = NeighbourhoodMean(writer, grid.shape, radius) if radius else writer
        run_mapping(executor or LocalExecutor(), job, plan, sink, progress, is_canceled)
        if radius:
            sink.flush()
        summary = writer.finish(f"{model.target.name} ({model.target.unit})", tags)
    return _result(job, surface, out_path, device_name(device), summary)


def outcome_range(model: PovertyModel) -> tuple[float, float] | None:
    """The range of the outcomes the model was fitted on, where its file records it."""
    return None if model.domain is None else (model.domain.outcome_min, model.domain.outcome_max)


def _range_note(model: PovertyModel, summary: MapSummary) -> list[str]:
    if not summary.n_outside_range:
        return []
    lo, hi = outcome_range(model)
    return [
        f"{summary.n_outside_range} of {summary.n_estimated} estimated cells "
        f"({100.0 * summary.n_outside_range / summary.n_estimated:.0f} %) lie outside the range of the survey "
        f"outcomes the model was fitted on ({lo:.3g} to {hi:.3g}): they are extrapolations; read them as "
        "'below' or 'above the surveyed range', not as values."
    ]


def _domain_notes(model: PovertyModel, summary: MapSummary, unlike_training: bool = False) -> list[str]:
    notes = []
    if summary.n_out_of_domain and not unlike_training:  # else the scene check's note says why
        notes.append(
            f"{summary.n_out_of_domain} of {summary.n_estimated} estimated cells "
            f"({100.0 * summary.n_out_of_domain / summary.n_estimated:.0f} %) have imagery unlike every survey "
            f"cluster the model was fitted on (quality code 3): their estimates are guesses, and their "
            "intervals (band 3) are widened."
        )
    masked = [
        f"{n} mostly {what} (quality code {code})"
        for n, what, code in ((summary.n_water, "water", QUALITY_WATER), (summary.n_cloud, "cloud", QUALITY_CLOUD))
        if n
    ]
    if masked:
        notes.append(f"Cells left without an estimate: {' and '.join(masked)}.")
    return notes


def _result(job: MappingJob, surface: _Surface, out_path: Path, device: str, summary: MapSummary) -> PredictResult:
    notes = list(job.notes)
    notes += list(surface.notes) + _range_note(job.model, summary) + \
        _domain_notes(job.model, summary, surface.unlike_training)
    if summary.n_estimated > 1 and summary.value_min == summary.value_max:
        notes.append(
            f"All {summary.n_estimated} estimated cells hold the same value ({summary.value_min:.4g}): the map "
            "shows no differences between places. "
            + ("Check that the night-lights layer varies over the region."
               if job.nightlights is not None and not job.band_indexes
               else "Check the band mapping and the radiometry, and that the imagery is not constant.")
        )
    if summary.n_estimated == 0:
        notes.append(
            "No tile had enough valid pixels: the output holds only nodata. Check the band "
            "mapping, the radiometry and that the region covers imagery"
            + (" and that the night-lights layer has data there." if job.nightlights is not None else ".")
        )
    return PredictResult(
        output_path=str(out_path),
        n_cells=len(job.grid),
        n_estimated=summary.n_estimated,
        device=device,
        band_indexes=job.band_indexes,
        radiometry=job.radiometry,
        value_min=summary.value_min,
        value_max=summary.value_max,
        value_mean=summary.value_mean,
        notes=tuple(notes),
        n_outside_range=summary.n_outside_range,
        n_out_of_domain=summary.n_out_of_domain,
        n_water=summary.n_water,
        n_cloud=summary.n_cloud,
    )
