"""Turning QGIS layers into the plain inputs the engine takes (main thread only)."""
from __future__ import annotations

import json

from qgis.core import (
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsRasterLayer,
    QgsWkbTypes,
)


def raster_file_path(layer: QgsRasterLayer | None) -> str:
    """The GDAL file behind a raster layer, or a message saying what to choose instead."""
    if layer is None or not layer.isValid():
        raise QgsProcessingException("Choose a valid raster layer as input.")
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            f"The layer '{layer.name()}' is served by '{layer.providerType()}', not a file; "
            "save it as a GeoTIFF (Export > Save As) and use that."
        )
    return layer.source().split("|")[0]


def mask_geometries(
    source: QgsProcessingFeatureSource, target_crs, context: QgsProcessingContext
) -> tuple[dict, ...]:
    """Polygons of ``source`` as GeoJSON geometries in ``target_crs``."""
    if QgsWkbTypes.geometryType(source.wkbType()) != QgsWkbTypes.PolygonGeometry:
        raise QgsProcessingException("The mask layer must be a polygon layer.")
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
