"""Opening the image for training: the set-up both trainers share."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from rasterio.enums import ColorInterp
from rasterio.io import DatasetReader

from ..device import resolve_device
from ..errors import PovertyMapperError
from ..imagery.lights_layer import uses_nightlights
from ..imagery.radiometry import Radiometry, resolve_radiometry
from ..imagery.tile_reader import TileReader, band_descriptions, open_raster
from ..imagery.tiling import new_model_tile_px, pixel_size_m, region_window
from ..models.model_file import PovertyModel, load_model
from ..models.scene_reading import model_band_indexes, whole_scene_reading
from ..options import TileOptions

GroundPoint = Callable[[DatasetReader], tuple[float, float]]


@dataclass(frozen=True)
class TrainingImagery:
    """The open image and how its tiles are read and run."""

    dataset: DatasetReader
    bands: tuple[int, ...]  # 1-based band numbers read, in the model's order
    band_names: tuple[str, ...]  # the image's band descriptions (or 'band N')
    radiometry: Radiometry
    tile_px: int
    tile_m: float
    device: torch.device
    model: PovertyModel | None  # the model whose bands, scaling and tile size were followed, as it reads this scene
    notes: tuple[str, ...] = ()  # how the model reads this scene, where the user should know

    def tile_reader(self) -> TileReader:
        return TileReader(self.dataset, self.bands, self.tile_px, self.radiometry)


def middle_pixel(ds: DatasetReader) -> tuple[float, float]:
    """The centre of the image's middle pixel."""
    return ds.xy(ds.height // 2, ds.width // 2)


def region_centre(bounds: tuple[float, float, float, float] | None) -> GroundPoint:
    """The centre of the part of the image within ``bounds`` (all of it for None)."""

    def centre(ds: DatasetReader) -> tuple[float, float]:
        region = region_window(ds.transform, ds.width, ds.height, bounds)
        return ds.transform * (region.col_off + region.width / 2, region.row_off + region.height / 2)

    return centre


@contextmanager
def open_imagery(
    image_path: str,
    options: TileOptions,
    tile_size_m: float,
    *,
    model_path: str | None = None,
    new_network: bool = False,
    pixel_size_at: GroundPoint = middle_pixel,
) -> Iterator[TrainingImagery]:
    """The image opened for training, closed when the block ends.

    With ``model_path`` the bands, radiometry and tile size follow that model, and the
    model reads the image as a map of the whole image would (its bands by name, its CNN
    standardized by the scene's statistics where it was trained on imagery of another
    radiometry; :mod:`..models.scene_reading`). Else tiles are ``tile_size_m`` across, in
    pixels of the ground size at ``pixel_size_at``.
    ``new_network``: the bands feed a network built here, which takes any number of them.
    """
    device = resolve_device(options.device)
    with open_raster(image_path, "image") as ds:
        model = load_model(model_path) if model_path else None
        bands = _band_numbers(ds, options.band_indexes, model, new_network)
        radiometry = resolve_radiometry(options.radiometry, ds.dtypes[bands[0] - 1], model.radiometry if model else None)
        notes: tuple[str, ...] = ()
        if model is not None:
            scene = whole_scene_reading(ds, model, bands, radiometry)
            model, notes = scene.model, scene.notes
            tile_px, tile_m = model.tile_size_px, model.tile_size_m
        else:
            tile_px, tile_m = new_model_tile_px(tile_size_m, ground_pixel_m(ds, pixel_size_at(ds))), tile_size_m
        yield TrainingImagery(
            dataset=ds,
            bands=bands,
            band_names=tuple(band_name(ds, b) for b in bands),
            radiometry=radiometry,
            tile_px=tile_px,
            tile_m=tile_m,
            device=device,
            model=model,
            notes=notes,
        )


def ground_pixel_m(ds: DatasetReader, point: tuple[float, float]) -> float:
    """The mean ground size of a pixel at ``point`` (in the image's CRS), in metres."""
    return float(np.mean(pixel_size_m(ds.transform, ds.crs, point)))


def band_name(ds: DatasetReader, band: int) -> str:
    """A band's description, else its colour (RED, GREEN, BLUE), else 'band N'."""
    colour = ds.colorinterp[band - 1]
    descriptions = band_descriptions(ds)
    if descriptions[band - 1]:
        return descriptions[band - 1]
    return colour.name.upper() if colour in (ColorInterp.red, ColorInterp.green, ColorInterp.blue) else f"band {band}"


def data_bands(ds: DatasetReader) -> tuple[int, ...]:
    """The image's band numbers without its alpha band (an alpha band is read as the
    validity of pixels, never as a model band)."""
    return tuple(b for b, ci in enumerate(ds.colorinterp, start=1) if ci != ColorInterp.alpha) or (1,)


def _band_numbers(
    ds: DatasetReader, given: tuple[int, ...] | None, model: PovertyModel | None, new_network: bool
) -> tuple[int, ...]:
    """The model's bands as a map finds them (the numbers given, checked, else by name), else
    the band numbers given, else all of the image's; checked."""
    if model is not None:
        return _model_bands(ds, given, model)
    image_bands = data_bands(ds)
    n_bands = len(given) if given else len(image_bands)
    bands = given or image_bands
    if len(bands) == n_bands and all(1 <= b <= ds.count for b in bands):
        return tuple(bands)
    if new_network:
        raise PovertyMapperError(f"Band numbers {bands} do not fit the image's {ds.count} bands.")
    raise PovertyMapperError(
        f"The extractor needs {n_bands} bands but the band numbers are {list(bands)} "
        f"for an image of {ds.count} bands; give the band numbers explicitly."
    )


def _model_bands(ds: DatasetReader, given: tuple[int, ...] | None, model: PovertyModel) -> tuple[int, ...]:
    """The raster's band for each of the model's bands, found as a map finds them."""
    if uses_nightlights(model.bands):
        raise PovertyMapperError(
            f"The model '{model.name}' reads night lights beside the imagery ({', '.join(model.bands)}); "
            "its extractor cannot be used to fit survey clusters. Choose a model that reads imagery only, "
            "and give the night lights as the fit's night-lights layer for the baseline."
        )
    return model_band_indexes(ds, model.bands, given or None)
