"""Turning QGIS layers into the plain inputs the engine takes (main thread only)."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

from qgis.core import (
    NULL,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingUtils,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsWkbTypes,
)


def raster_file_path(layer: QgsRasterLayer | None) -> str:
    """The GDAL file behind a raster layer, or a message saying what to choose instead.

    A file without a CRS whose layer was given one in QGIS (Layer Properties > Source) is
    read through a small VRT beside the Processing temporary files that carries the
    layer's CRS, so the CRS assigned in QGIS is the one used."""
    if layer is None or not layer.isValid():
        raise QgsProcessingException("Choose a valid raster layer as input.")
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            f"The layer '{layer.name()}' is served by '{layer.providerType()}', not a file; "
            "save it as a GeoTIFF (Export > Save As) and use that."
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
            f"The file of '{layer.name()}' has no CRS and the CRS assigned in QGIS cannot be applied to it; "
            "assign one with Raster > Projections > Assign Projection."
        )
    dataset = None  # written when closed
    return str(vrt)


def check_geotiff_output(path: str) -> str:
    """The output path of a map, refused unless it names a GeoTIFF (the format the map is written in)."""
    if not path.lower().endswith((".tif", ".tiff")):
        raise QgsProcessingException(
            f"The poverty map is written as a GeoTIFF: give the output file the extension .tif ({path!r} has "
            "another or none)."
        )
    return path


def mask_geometries(
    source: QgsProcessingFeatureSource, target_crs, context: QgsProcessingContext
) -> tuple[dict, ...]:
    """Polygons of ``source`` as GeoJSON geometries in ``target_crs``."""
    if QgsWkbTypes.geometryType(source.wkbType()) != QgsWkbTypes.PolygonGeometry:
        raise QgsProcessingException("The mask layer must be a polygon layer.")
    if not source.sourceCrs().isValid():
        raise QgsProcessingException(
            "The mask polygons have no coordinate reference system, so they cannot be placed on the image; "
            "set it in the layer's properties (Source > Assigned CRS) and run again."
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


def extent_in_crs(algorithm, parameters, name: str, context: QgsProcessingContext, crs) -> tuple[float, float, float, float] | None:
    """An optional extent parameter as (minx, miny, maxx, maxy) in ``crs``, or None."""
    if parameters.get(name) in (None, ""):
        return None
    extent = algorithm.parameterAsExtent(parameters, name, context, crs)
    if extent.isNull():
        return None
    if extent.isEmpty():  # a point or a line, not "no extent": never the whole raster instead
        raise QgsProcessingException(
            f"The extent {extent.toString()} has no area; draw or choose an extent with a width and a "
            "height, or leave it empty to map the whole raster."
        )
    return extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()


def cluster_points(source, outcome_field: str, weight_field: str | None, target_crs, context: QgsProcessingContext,
                   group_field: str | None = None):
    """Survey clusters as (x, y in ``target_crs``, outcome, weight, feature id, group).

    Missing or non-numeric outcomes become NaN (left out, and counted, by the engine).
    """
    fields = source.fields()
    if fields.lookupField(outcome_field) < 0:
        raise QgsProcessingException(
            f"The cluster layer has no field '{outcome_field}'; choose one of: {', '.join(fields.names())}."
        )
    transform = QgsCoordinateTransform(source.sourceCrs(), target_crs, context.transformContext())
    rows = []
    for feature in source.getFeatures():
        geometry = feature.geometry()
        if geometry.isNull() or geometry.isEmpty():
            continue
        point = geometry.centroid().asPoint()
        point = transform.transform(point)
        group = feature[group_field] if group_field else None
        rows.append((point.x(), point.y(), _number(feature[outcome_field]),
                     _number(feature[weight_field]) if weight_field else 1.0, feature.id(),
                     "" if group is None or group == NULL else str(group)))
    return rows


def _number(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return number
