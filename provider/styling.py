"""How a poverty map looks when it is added to a project."""
from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsClassificationEqualInterval,
    QgsColorRampLegendNodeSettings,
    QgsGraduatedSymbolRenderer,
    QgsRendererRange,
    QgsSymbol,
    QgsVectorLayer,
    QgsWkbTypes,
    QgsColorRampShader,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterBandStats,
    QgsProject,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
)
from qgis.PyQt.QtCore import QCoreApplication

from ..core.errors import PovertyMapperError
from ..core.maps.zonal import estimate_lights, estimate_scale
from .map_layers import constant_bands_unreported, group_loaded_map

RAMP_NAME = "RdYlBu"  # red = poorer, blue = wealthier; readable for most colour-blind users
N_CLASSES = 5


def tr(text: str) -> str:
    return QCoreApplication.translate("PovertyStyle", text)


def layer_name(quantity: str, unit: str) -> str:
    """The legend title of a poverty map: what the values are, and in what unit."""
    return tr("Poverty map: {} ({})").format(quantity, unit)


def model_scale(layer: QgsRasterLayer) -> tuple[float, float, float] | None:
    """The model's fixed colour scale written into the map's GeoTIFF tags (low, high,
    survey mean), or None (a map of a model without a training domain, or not a file)."""
    try:
        return estimate_scale(layer.source().split("|")[0])
    except PovertyMapperError:
        return None


def map_lights_text(layer: QgsRasterLayer) -> str:
    """" From the NASA Black Marble night lights of 2016." for a map of the bundled lights, else ""."""
    try:
        lights = estimate_lights(layer.source().split("|")[0])
    except PovertyMapperError:
        return ""
    return tr(" From the {}.").format(lights) if lights else ""


def apply_poverty_style(layer: QgsRasterLayer, quantity: str, unit: str) -> None:
    """Pseudocolour on the model's fixed scale, the same for every map of the model
    (its survey mean at the middle colour, marked in the legend); for a map without one,
    from the smallest to the largest estimate. Legend ends labelled 'poorer'/'wealthier'."""
    provider = layer.dataProvider()
    ramp = QgsStyle.defaultStyle().colorRamp(RAMP_NAME)
    scale = model_scale(layer)
    legend = QgsColorRampLegendNodeSettings()
    if scale is not None:
        lo, hi, mean = scale
        shader = QgsColorRampShader(lo, hi, ramp, QgsColorRampShader.Interpolated, QgsColorRampShader.Continuous)
        shader.setColorRampItemList([
            QgsColorRampShader.ColorRampItem(lo, ramp.color(0.0), tr("{:.2f} poorer").format(lo)),
            QgsColorRampShader.ColorRampItem(mean, ramp.color(0.5), tr("{:.2f} survey mean").format(mean)),
            QgsColorRampShader.ColorRampItem(hi, ramp.color(1.0), tr("{:.2f} wealthier").format(hi)),
        ])
        shader.setClip(False)
        legend.setUseContinuousLegend(False)
    else:
        lo, hi = _own_range(provider, layer)
        shader = QgsColorRampShader(lo, hi, ramp, QgsColorRampShader.Interpolated, QgsColorRampShader.Continuous)
        shader.classifyColorRamp(N_CLASSES, 1, layer.extent(), provider)
        legend.setUseContinuousLegend(True)
    legend.setMinimumLabel(tr("{:.2f} poorer").format(lo))
    legend.setMaximumLabel(tr("{:.2f} wealthier").format(hi))
    shader.setLegendSettings(legend)
    raster_shader = QgsRasterShader()
    raster_shader.setRasterShaderFunction(shader)
    renderer = QgsSingleBandPseudoColorRenderer(provider, 1, raster_shader)
    renderer.setClassificationMin(lo)
    renderer.setClassificationMax(hi)
    layer.setRenderer(renderer)
    layer.setTitle(f"{quantity} ({unit})")
    layer.setAbstract(tr("Estimated {} ({}) by the Poverty Mapper plugin.").format(quantity, unit) + map_lights_text(layer))
    layer.triggerRepaint()


def _own_range(provider, layer: QgsRasterLayer) -> tuple[float, float]:
    """The map's own smallest and largest estimate; (0, 1) for a map with none, and a
    range of 1 around a map of one value."""
    stats = provider.bandStatistics(1, QgsRasterBandStats.Min | QgsRasterBandStats.Max, layer.extent(), 0)
    lo, hi = stats.minimumValue, stats.maximumValue
    if not (abs(lo) < 1e300 and abs(hi) < 1e300):  # no estimated cell: GDAL reports the float limits
        return 0.0, 1.0
    return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)


def open_map_layer(path: str, quantity: str, unit: str) -> QgsRasterLayer:
    """The poverty map at ``path`` as a layer (not yet styled), opened without GDAL's
    refusals of constant bands' histograms (:func:`constant_bands_unreported`)."""
    with constant_bands_unreported():
        return QgsRasterLayer(path, layer_name(quantity, unit))


def write_map_style(path: str, quantity: str, unit: str) -> str | None:
    """The style of a written poverty map as a .qml beside it (QGIS reads it whenever the
    file is opened, after the project is closed too); its path, or None when it cannot be written."""
    layer = open_map_layer(path, quantity, unit)
    if not layer.isValid():
        return None
    apply_poverty_style(layer, quantity, unit)
    return _save_default_style(layer)


def write_estimate_polygons_style(path: str, field: str, raster_path: str, title: str) -> str | None:
    """Polygons coloured by ``field`` on the map's colour scale (red = poorer, blue =
    wealthier; the model's fixed scale where the map has one), saved as a .qml beside the
    file; its path, or None (not a file layer, or no such field)."""
    layer = QgsVectorLayer(path, title, "ogr")
    if not layer.isValid() or layer.fields().lookupField(field) < 0:
        return None
    scale = estimate_scale(raster_path) if raster_path else None
    lo, hi = (scale[0], scale[1]) if scale else _field_range(layer, field)
    ramp = QgsStyle.defaultStyle().colorRamp(RAMP_NAME)
    ranges = []
    edges = [lo + (hi - lo) * i / N_CLASSES for i in range(N_CLASSES + 1)]
    edges[0], edges[-1] = -1e300, 1e300  # the scale's ends are open: extrapolations keep the end colours
    for i in range(N_CLASSES):
        symbol = QgsSymbol.defaultSymbol(QgsWkbTypes.PolygonGeometry)
        symbol.setColor(ramp.color(i / (N_CLASSES - 1)))
        low, high = lo + (hi - lo) * i / N_CLASSES, lo + (hi - lo) * (i + 1) / N_CLASSES
        label = tr("{:.2f} – {:.2f}").format(low, high)
        if i == 0:
            label = tr("below {:.2f} (poorer)").format(high)
        elif i == N_CLASSES - 1:
            label = tr("above {:.2f} (wealthier)").format(low)
        ranges.append(QgsRendererRange(edges[i], edges[i + 1], symbol, label))
    renderer = QgsGraduatedSymbolRenderer(field, ranges)
    renderer.setClassificationMethod(QgsClassificationEqualInterval())
    layer.setRenderer(renderer)
    layer.setTitle(title)
    return _save_default_style(layer)


def _field_range(layer: QgsVectorLayer, field: str) -> tuple[float, float]:
    index = layer.fields().lookupField(field)
    lo, hi = layer.minimumValue(index), layer.maximumValue(index)
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        return 0.0, 1.0
    return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)


def _save_default_style(layer) -> str | None:
    """Saves the layer's style where QGIS looks for it when it opens the file (``name.qml``)."""
    path = layer.styleURI()
    if not path.endswith(".qml") or not Path(path).parent.is_dir():
        return None
    _message, ok = layer.saveNamedStyle(path)
    return path if ok else None


class StyleOnLoad(QgsProcessingLayerPostProcessorInterface):
    """Styles the output when Processing loads it into the project."""

    _instances: list["StyleOnLoad"] = []  # Processing keeps only a pointer: keep them alive

    def __init__(self, quantity: str, unit: str):
        super().__init__()
        self.quantity, self.unit = quantity, unit

    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802 (QGIS API)
        if isinstance(layer, QgsRasterLayer):
            apply_poverty_style(layer, self.quantity, self.unit)
            group_loaded_map(layer, context.project() or QgsProject.instance())  # unique name, quality layer

    @classmethod
    def create(cls, quantity: str, unit: str) -> "StyleOnLoad":
        instance = cls(quantity, unit)
        cls._instances.append(instance)
        return instance
