"""Turning QGIS layers into the plain inputs the engine takes (main thread only)."""
from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCoordinateTransformContext,
    QgsCsException,
    QgsProject,
    QgsRasterBlockFeedback,
    QgsRasterFileWriter,
    QgsRasterPipe,
    QgsRectangle,
    QgsUnitTypes,
    QgsFeatureRequest,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingUtils,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QCoreApplication, QVariant

from ..core.errors import PovertyMapperError
from ..core.maps.zonal import check_poverty_map
from ..core.training.survey_inputs import Cluster, check_survey_fields


def tr(text: str) -> str:
    return QCoreApplication.translate("LayerInputs", text)


RENDERED_BANDS = ("red", "green", "blue", "alpha")  # a fetched layer: its rendered image, RGBA
MAX_FETCH_PIXELS = 100_000_000  # a fetched region larger than this (400 MB as RGBA) is refused


def is_file_layer(layer: QgsRasterLayer) -> bool:
    return layer.providerType() == "gdal"


@dataclass
class FetchedRaster:
    """A raster layer that is no file (XYZ tiles, WMS, a virtual raster...): its rendered
    image of the region, fetched into a temporary GeoTIFF at about the model's pixel size
    when the algorithm runs (in its thread, with progress), bands red, green, blue, alpha."""

    name: str
    provider: object  # a clone of the layer's data provider (usable in another thread)
    renderer: object  # a clone of its renderer
    extent: QgsRectangle  # in the layer's CRS
    crs: QgsCoordinateReferenceSystem
    columns: int
    rows: int

    def fetch(self, feedback) -> str:
        path = Path(QgsProcessingUtils.tempFolder()) / f"fetched_{uuid.uuid4().hex[:8]}.tif"
        pipe = QgsRasterPipe()
        if not pipe.set(self.provider) or not pipe.set(self.renderer):
            raise QgsProcessingException(
                tr("The layer '{}' cannot be read for mapping; save it as a GeoTIFF.").format(self.name))
        writer = QgsRasterFileWriter(str(path))
        writer.setOutputFormat("GTiff")
        progress = QgsRasterBlockFeedback()
        progress.progressChanged.connect(feedback.setProgress)
        feedback.canceled.connect(progress.cancel)
        feedback.pushInfo(
            tr("Fetching '{}' for the region: {} x {} pixels…").format(self.name, self.columns, self.rows))
        error = writer.writeRaster(pipe, self.columns, self.rows, self.extent, self.crs,
                                   QgsCoordinateTransformContext(), progress)
        if feedback.isCanceled():
            raise QgsProcessingException(tr("Canceled: no output was written."))
        if error != QgsRasterFileWriter.NoError or not path.exists():
            raise QgsProcessingException(
                tr("The layer '{}' could not be fetched for the region (error {}); check that it draws on the map "
                   "there, or save it as a GeoTIFF (Export > Save As) and use that.").format(self.name, int(error))
            )
        _name_rendered_bands(path)
        return str(path)


def _name_rendered_bands(path: Path) -> None:
    from osgeo import gdal

    dataset = gdal.Open(str(path), gdal.GA_Update)
    interpretations = (gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand, gdal.GCI_AlphaBand)
    for index in range(1, min(dataset.RasterCount, 4) + 1):
        band = dataset.GetRasterBand(index)
        band.SetDescription(RENDERED_BANDS[index - 1])
        band.SetColorInterpretation(interpretations[index - 1])
    dataset = None  # written when closed


def fetched_raster(layer: QgsRasterLayer, extent: QgsRectangle | None, pixel_size_m: float) -> FetchedRaster:
    """What to fetch of a non-file layer for ``extent`` (its CRS; None = the whole layer),
    refused when larger than MAX_FETCH_PIXELS."""
    crs = layer.crs()
    if not crs.isValid():
        raise QgsProcessingException(
            tr("The layer '{}' has no CRS; set it in the layer's properties.").format(layer.name()))
    region = QgsRectangle(extent) if extent is not None and not extent.isEmpty() else layer.extent()
    region = region.intersect(layer.extent()) if not layer.extent().isEmpty() else region
    step = _pixel_size_in_crs(crs, region, pixel_size_m)
    columns, rows = max(1, math.ceil(region.width() / step)), max(1, math.ceil(region.height() / step))
    if columns * rows > MAX_FETCH_PIXELS:
        raise QgsProcessingException(
            tr("The layer '{}' is not a file, so it is fetched for the region at the model's pixel size ({:g} m): "
               "that would be {} x {} pixels ({:.1f} GB). Choose a smaller region (the map extent, a drawn "
               "rectangle or polygons).").format(layer.name(), pixel_size_m, columns, rows, columns * rows * 4 / 1e9)
        )
    return FetchedRaster(layer.name(), layer.dataProvider().clone(), layer.renderer().clone(), region, crs, columns, rows)


def _pixel_size_in_crs(crs: QgsCoordinateReferenceSystem, region: QgsRectangle, pixel_size_m: float) -> float:
    """About ``pixel_size_m`` on the ground, in the CRS's units at the region's centre."""
    centre = QgsCoordinateTransform(crs, QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance()).transform(
        region.center())
    cos_lat = max(0.05, math.cos(math.radians(centre.y())))
    if crs.isGeographic():
        return pixel_size_m / (111_320.0 * cos_lat)
    to_m = QgsUnitTypes.fromUnitToUnitFactor(crs.mapUnits(), QgsUnitTypes.DistanceMeters)
    step = pixel_size_m / to_m
    return step / cos_lat if crs.authid() == "EPSG:3857" else step  # Web Mercator stretches by 1/cos(latitude)


@dataclass
class RasterInput:
    """The image an algorithm maps: a file, or a layer fetched when the algorithm runs."""

    file_path: str | None = None
    fetched: FetchedRaster | None = None

    def path(self, feedback) -> str:
        return self.file_path if self.fetched is None else self.fetched.fetch(feedback)


def raster_input(layer: QgsRasterLayer | None, model_path: str, bounds, mask) -> RasterInput:
    """A file-based layer as its file; any other layer QGIS can draw (XYZ, WMS, ...) to be
    fetched for the region (``bounds`` or the mask's, in its CRS) at the model's pixel size."""
    if layer is None or not layer.isValid() or is_file_layer(layer):
        return RasterInput(file_path=raster_file_path(layer))
    from ..core.models.model_file import read_model_info

    try:
        pixel_size_m = read_model_info(model_path).pixel_size_m
    except PovertyMapperError as exc:
        raise QgsProcessingException(str(exc)) from exc
    if bounds is None and mask:
        bounds = _shapes_bounds(mask)
    region = QgsRectangle(*bounds) if bounds is not None else None
    return RasterInput(fetched=fetched_raster(layer, region, pixel_size_m))


def _shapes_bounds(shapes) -> tuple[float, float, float, float]:
    def points(coordinates):
        if coordinates and isinstance(coordinates[0], (int, float)):
            yield coordinates
        else:
            for part in coordinates:
                yield from points(part)

    xy = [p for shape in shapes for p in points(shape["coordinates"])]
    xs, ys = [p[0] for p in xy], [p[1] for p in xy]
    return min(xs), min(ys), max(xs), max(ys)


def raster_file_path(layer: QgsRasterLayer | None) -> str:
    """The GDAL file behind a raster layer, or a message saying what to choose instead.

    A file without a CRS whose layer was given one in QGIS (Layer Properties > Source) is
    read through a small VRT beside the Processing temporary files that carries the
    layer's CRS, so the CRS assigned in QGIS is the one used."""
    if layer is None or not layer.isValid():
        raise QgsProcessingException(tr("Choose a valid raster layer as input."))
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            tr("The layer '{}' is served by '{}', not a file; save it as a GeoTIFF (Export > Save As) and use "
               "that.").format(layer.name(), layer.providerType())
        )
    # Decoded as GDAL does: a '|' may be part of the file name, not only before options.
    path = QgsProviderRegistry.instance().decodeUri("gdal", layer.source())["path"]
    if layer.crs().isValid() and not _file_has_crs(path):
        return _with_assigned_crs(path, layer)
    return path


def _file_has_crs(path: str) -> bool:
    from osgeo import gdal  # QGIS's own GDAL bindings

    dataset = gdal.Open(path)
    return dataset is None or bool(dataset.GetProjectionRef())  # unreadable: the engine says why


def _with_assigned_crs(path: str, layer: QgsRasterLayer) -> str:
    """A VRT of ``path`` with the CRS assigned to ``layer`` in QGIS."""
    from osgeo import gdal

    vrt = Path(QgsProcessingUtils.tempFolder()) / f"{Path(path).stem}_{uuid.uuid4().hex[:8]}_crs.vrt"
    dataset = gdal.Translate(str(vrt), path, format="VRT", outputSRS=layer.crs().toWkt())
    if dataset is None:
        raise QgsProcessingException(
            tr("The file of '{}' has no CRS and the CRS assigned in QGIS cannot be applied to it; assign one with "
               "Raster > Projections > Assign Projection.").format(layer.name())
        )
    dataset = None  # written when closed
    return str(vrt)


def mask_geometries(
    source: QgsProcessingFeatureSource, target_crs, context: QgsProcessingContext
) -> tuple[dict, ...]:
    """Polygons of ``source`` as GeoJSON geometries in ``target_crs``."""
    if QgsWkbTypes.geometryType(source.wkbType()) != QgsWkbTypes.PolygonGeometry:
        raise QgsProcessingException(tr("The mask layer must be a polygon layer."))
    if not source.sourceCrs().isValid():
        raise QgsProcessingException(
            tr("The mask polygons have no coordinate reference system, so they cannot be placed on the image; "
               "set it in the layer's properties (Source > Assigned CRS) and run again.")
        )
    transform = QgsCoordinateTransform(source.sourceCrs(), target_crs, context.transformContext())
    request = QgsFeatureRequest().setNoAttributes()
    shapes = []
    for feature in source.getFeatures(request):
        geometry = feature.geometry()
        if geometry.isNull() or geometry.isEmpty():
            continue
        geometry.transform(transform)
        shapes.append(json.loads(geometry.asJson()))
    return tuple(shapes)


def _coordinates_box(coordinates, box: list[float]) -> None:
    if coordinates and isinstance(coordinates[0], (int, float)):
        x, y = coordinates[0], coordinates[1]
        box[:] = [min(box[0], x), min(box[1], y), max(box[2], x), max(box[3], y)]
        return
    for part in coordinates:
        _coordinates_box(part, box)


def check_mask_overlaps(shapes: tuple[dict, ...], mask_name: str, layer: QgsRasterLayer) -> None:
    """Refuse mask polygons (in the layer's CRS) that lie wholly beside the image, naming both."""
    box = [math.inf, math.inf, -math.inf, -math.inf]
    for shape in shapes:
        _coordinates_box(shape.get("coordinates", ()), box)
    if not shapes or box[0] > box[2]:
        return  # no polygons: the engine says so
    if not QgsRectangle(*box).intersects(layer.extent()):
        raise QgsProcessingException(
            tr("The mask polygons of '{0}' do not overlap the image '{1}': they lie beside it. Select polygons of "
               "'{0}' that lie over the image, check that layer's CRS (Layer Properties > Source), or map without "
               "a mask.").format(mask_name, layer.name())
        )


def extent_in_crs(algorithm, parameters, name: str, context: QgsProcessingContext, crs) -> tuple[float, float, float, float] | None:
    """An optional extent parameter as (minx, miny, maxx, maxy) in ``crs``, or None."""
    if parameters.get(name) in (None, ""):
        return None
    extent = algorithm.parameterAsExtent(parameters, name, context, crs)
    if extent.isNull():
        return None
    if extent.isEmpty():  # a point or a line, not "no extent": never the whole raster instead
        raise QgsProcessingException(
            tr("The extent {} has no area; draw or choose an extent with a width and a height, or leave it empty "
               "to map the whole raster.").format(extent.toString())
        )
    return extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()


def cluster_points(source, outcome_field: str, weight_field: str | None, target_crs, context: QgsProcessingContext,
                   group_field: str | None = None) -> tuple[Cluster, ...]:
    """Survey clusters at their place in ``target_crs``, with their values as the layer
    holds them (NULL as None): the engine converts them, and counts what it leaves out."""
    fields = source.fields()
    found = fields.lookupField(outcome_field)  # as QGIS finds a field: by its name in any case, or its alias
    try:
        check_survey_fields(tr("The cluster layer"), fields.names(), fields.at(found).name() if found >= 0 else outcome_field)
    except PovertyMapperError as exc:
        raise QgsProcessingException(str(exc)) from exc
    transform = QgsCoordinateTransform(source.sourceCrs(), target_crs, context.transformContext())
    clusters = []
    for feature in source.getFeatures():
        x, y = _location(feature.geometry(), transform)
        clusters.append(Cluster(
            x, y, _value(feature[outcome_field]), _value(feature[weight_field]) if weight_field else 1.0,
            feature.id(), _value(feature[group_field]) if group_field else None,
        ))
    return tuple(clusters)


def _value(value):
    """A field's value, with QGIS's NULL as None."""
    return None if isinstance(value, QVariant) and value.isNull() else value


def _location(geometry, transform: QgsCoordinateTransform) -> tuple[float, float]:
    """A cluster's place in the target CRS (a polygon's or line's centroid); NaN where it
    has none (NULL or empty geometry, NaN coordinates, a latitude of 95): the engine counts
    and names those it leaves out."""
    if geometry.isNull() or geometry.isEmpty():
        return math.nan, math.nan
    point = geometry.centroid().asPoint()
    try:
        point = transform.transform(point)
    except QgsCsException:
        return math.nan, math.nan
    x, y = point.x(), point.y()
    return (x, y) if math.isfinite(x) and math.isfinite(y) else (math.nan, math.nan)


def count_not_points(source) -> int:
    """Clusters given as lines or polygons (taken at their centroid)."""
    return sum(
        1 for f in source.getFeatures()
        if not f.geometry().isNull() and QgsWkbTypes.geometryType(f.geometry().wkbType()) != QgsWkbTypes.PointGeometry
    )


@dataclass(frozen=True)
class PovertyMapTags:
    """What an estimate raster says it holds, read in ``prepareAlgorithm`` (the main thread)
    and used in ``processAlgorithm``, where a refusal is raised so Processing shows its message."""

    quantity: str | None
    unit: str | None
    refusal: str | None

    def checked(self) -> tuple[str | None, str | None]:
        """(quantity, unit), or the refusal as a Processing error."""
        if self.refusal is not None:
            raise QgsProcessingException(self.refusal)
        return self.quantity, self.unit


def read_poverty_map_tags(path: str) -> PovertyMapTags:
    """The QUANTITY and UNIT tags of a map of this plugin, or why ``path`` is not one."""
    try:
        return PovertyMapTags(*check_poverty_map(path), None)
    except PovertyMapperError as exc:
        return PovertyMapTags(None, None, str(exc))
