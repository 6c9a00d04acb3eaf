"""The one entry point the front ends map with: a model, and an image or a region.

A model that reads imagery maps an image (:func:`.predict.predict_poverty_map`, as ever).
A model whose extractor reads no imagery (the Africa lights model, of the bundled NASA
Black Marble 2016 lights) maps a region (:func:`.lights_map.predict_lights_map`): the
image's extent in its CRS where an image is given (the analyst's image still says where;
``bounds`` and the mask, in the image's CRS, narrow it), else ``bounds`` in ``crs``, else
the mask polygons' extent in ``crs``. A region with neither image, bounds nor mask is
refused with a message that says what to give.

    request = RegionRequest("map.tif", load_model(default_model_path(False)),
                            bounds=(15.2, -4.5, 15.5, -4.3), crs="EPSG:4326")
    result = map_region(request, progress=print)
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import PovertyMapperError
from ..imagery.tile_work import Executor
from ..models.model_file import PovertyModel
from .lights_map import LightsMapRequest, LightsMapResult, predict_lights_map
from .mapping_job import CancelCheck, ProgressCallback
from .predict import PredictRequest, PredictResult, predict_poverty_map

NO_REGION = ("Give the region to map: an image, or an extent (west, south, east, north) with its CRS, "
             "or mask polygons (e.g. a country's boundary).")


@dataclass(frozen=True)
class RegionRequest:
    """What to map: ``model`` into ``output_path`` over an image (``raster_path``; ``bounds``
    and ``mask_geometries`` then in its CRS) or a region (``bounds`` and/or ``mask_geometries``
    in ``crs``). ``options`` are :class:`.predict.PredictRequest`'s other fields (stride,
    bands, radiometry, device, night lights...), for a model that reads imagery; for one that
    reads none, a stride above 0 is the cell size."""

    output_path: str
    model: PovertyModel
    raster_path: str | None = None
    bounds: tuple[float, float, float, float] | None = None
    crs: str | None = None
    mask_geometries: tuple[dict, ...] | None = None
    mask_name: str | None = None
    options: dict = field(default_factory=dict)


def map_region(
    request: RegionRequest,
    progress: ProgressCallback | None = None,
    is_canceled: CancelCheck | None = None,
    executor: Executor | None = None,
) -> PredictResult | LightsMapResult:
    """Write the map of ``request`` with the engine its model needs (module docstring)."""
    if request.model.extractor.reads_imagery:
        if not request.raster_path:
            raise PovertyMapperError(
                f"The model '{request.model.name}' reads imagery: give the image to map (or choose a model "
                "that reads the bundled night lights, such as the default Africa lights model)."
            )
        return predict_poverty_map(
            PredictRequest(request.raster_path, request.output_path, request.model, bounds=request.bounds,
                           mask_geometries=request.mask_geometries, mask_name=request.mask_name, **request.options),
            progress=progress, is_canceled=is_canceled, executor=executor,
        )
    return predict_lights_map(lights_request(request), progress=progress, is_canceled=is_canceled)


def lights_request(request: RegionRequest) -> LightsMapRequest:
    """The region of ``request`` as a :class:`.lights_map.LightsMapRequest`."""
    bounds, crs = request.bounds, request.crs
    if request.raster_path:
        bounds, crs = _image_region(request.raster_path, bounds)
    elif bounds is None and request.mask_geometries:
        bounds = geometries_bounds(request.mask_geometries)
    if bounds is None:
        raise PovertyMapperError(NO_REGION)
    if not crs:
        raise PovertyMapperError(f"Give the CRS of the region {tuple(bounds)} (e.g. EPSG:4326).")
    stride = request.options.get("stride_m") or None
    return LightsMapRequest(request.model, request.output_path, tuple(float(v) for v in bounds), str(crs),
                            cell_size_m=stride, mask_geometries=request.mask_geometries,
                            mask_name=request.mask_name)


def _image_region(raster_path: str, bounds) -> tuple[tuple[float, float, float, float], str]:
    """The image's extent (within ``bounds``, in its CRS, where given) and its CRS."""
    from ..imagery.tile_reader import open_raster

    with open_raster(raster_path) as ds:
        if ds.crs is None:
            raise PovertyMapperError(f"The image {raster_path} has no CRS: assign one, or give an extent and a CRS.")
        b, crs = ds.bounds, ds.crs.to_string()
    west, south, east, north = b.left, min(b.bottom, b.top), b.right, max(b.bottom, b.top)
    if bounds is not None:
        west, south = max(west, bounds[0]), max(south, bounds[1])
        east, north = min(east, bounds[2]), min(north, bounds[3])
        if not (east > west and north > south):
            raise PovertyMapperError(f"The extent {tuple(bounds)} does not overlap the image {raster_path}.")
    return (west, south, east, north), crs


def geometries_bounds(geometries) -> tuple[float, float, float, float]:
    """West, south, east, north of GeoJSON-like polygons."""
    from rasterio.features import bounds as geometry_bounds

    boxes = [geometry_bounds(g) for g in geometries]
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))

