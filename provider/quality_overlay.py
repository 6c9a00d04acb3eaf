"""Where not to trust a map, drawn over it: the cells its quality band flags as hatched
polygons (extrapolations hatched grey, out-of-domain cells cross-hatched dark over a grey
veil, water and cloud tinted), each with its code's meaning, so that Identify names what a
cell is ("3 = out of the model's domain: …") where the raster band gives a bare number.

The polygons are kept in a GeoPackage beside the map (``NAME.quality.gpkg``), so the layer
survives the project being saved and reopened; in memory where that cannot be written."""
from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransformContext,
    QgsFeature,
    QgsFillSymbol,
    QgsGeometry,
    QgsLinePatternFillSymbolLayer,
    QgsPointXY,
    QgsRendererCategory,
    QgsVectorFileWriter,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QCoreApplication

from ..core.inference.writer import QUALITY_CLOUD, QUALITY_EXTRAPOLATED, QUALITY_OUT_OF_DOMAIN, QUALITY_WATER
from ..core.maps.quality_regions import quality_regions

SUFFIX = ".quality.gpkg"
FIELDS = "field=quality:integer&field=meaning:string(120)&field=cells:integer"


def tr(text: str) -> str:
    return QCoreApplication.translate("PovertyQualityOverlay", text)


def overlay_path(map_path: str) -> Path:
    path = Path(map_path)
    return path.with_name(path.stem + SUFFIX)


def quality_overlay(map_path: str, name: str) -> QgsVectorLayer | None:
    """The flagged regions of the map at ``map_path`` as a styled polygon layer called
    ``name``; None for a raster without a quality band or a CRS."""
    try:
        crs_wkt, regions = quality_regions(map_path)
    except Exception:  # noqa: BLE001 (not a file GDAL reads: no overlay, the map itself still loads)
        return None
    crs = QgsCoordinateReferenceSystem.fromWkt(crs_wkt) if crs_wkt else None
    if crs is None or not crs.isValid():
        return None
    memory = QgsVectorLayer(f"Polygon?{FIELDS}", name, "memory")
    memory.setCrs(crs)
    features = []
    for region in regions:
        feature = QgsFeature(memory.fields())
        rings = [[QgsPointXY(x, y) for x, y in ring] for ring in region.rings]
        feature.setGeometry(QgsGeometry.fromPolygonXY(rings))
        feature.setAttributes([region.code, region.meaning, region.n_cells])
        features.append(feature)
    memory.dataProvider().addFeatures(features)
    layer = _saved(memory, overlay_path(map_path), name) or memory
    style_overlay(layer)
    return layer


def _saved(memory: QgsVectorLayer, path: Path, name: str) -> QgsVectorLayer | None:
    """The regions written to ``path`` and opened from there, or None where that fails."""
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "quality"
    try:
        result = QgsVectorFileWriter.writeAsVectorFormatV3(memory, str(path), QgsCoordinateTransformContext(), options)
    except Exception:  # noqa: BLE001 (a folder that cannot be written: the memory layer serves)
        return None
    if result[0] != QgsVectorFileWriter.NoError:
        return None
    layer = QgsVectorLayer(f"{path}|layername=quality", name, "ogr")
    return layer if layer.isValid() else None


def style_overlay(layer: QgsVectorLayer) -> None:
    """Hatching by code, the meaning as each feature's display name (Identify shows it)."""
    categories = [
        QgsRendererCategory(code, _symbol(code), f"{code} = {_legend(code)}")
        for code in (QUALITY_EXTRAPOLATED, QUALITY_OUT_OF_DOMAIN, QUALITY_WATER, QUALITY_CLOUD)
    ]
    layer.setRenderer(QgsCategorizedSymbolRenderer("quality", categories))
    layer.setDisplayExpression('"meaning"')
    layer.setTitle(tr("Where the estimates should not be trusted"))
    layer.setAbstract(tr(
        "The cells the poverty map's quality band (band 2) flags: hatched grey where the estimate lies outside "
        "the range of the survey outcomes (an extrapolation), cross-hatched dark where the imagery is unlike the "
        "model's training imagery (out of its domain: do not trust the estimate)."
    ))


def _legend(code: int) -> str:
    return {
        QUALITY_EXTRAPOLATED: tr("extrapolation (beyond the surveyed range)"),
        QUALITY_OUT_OF_DOMAIN: tr("out of the model's domain (imagery unlike its training)"),
        QUALITY_WATER: tr("no estimate, water"),
        QUALITY_CLOUD: tr("no estimate, cloud"),
    }[code]


def _symbol(code: int) -> QgsFillSymbol:
    """Greys and hatching, which the map's red-yellow-blue scale never uses."""
    veil, stroke, angles = {
        QUALITY_EXTRAPOLATED: ((128, 128, 128, 60), (90, 90, 90), (45,)),
        QUALITY_OUT_OF_DOMAIN: ((30, 30, 30, 120), (20, 20, 20), (45, 135)),
        QUALITY_WATER: ((70, 130, 200, 150), (40, 90, 160), ()),
        QUALITY_CLOUD: ((235, 235, 235, 170), (160, 160, 160), ()),
    }[code]
    colour = lambda rgba: ",".join(map(str, rgba))  # noqa: E731 (QGIS's symbol property format)
    symbol = QgsFillSymbol.createSimple({
        "color": colour(veil), "outline_color": colour((*stroke, 255)), "outline_width": "0.3", "outline_style": "solid",
    })
    for angle in angles:
        symbol.appendSymbolLayer(QgsLinePatternFillSymbolLayer.create({
            "angle": str(angle), "distance": "1.5", "line_width": "0.3", "color": colour((*stroke, 255)),
        }))
    return symbol
