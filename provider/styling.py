"""How a poverty map looks when it is added to a project."""
from __future__ import annotations

from qgis.core import (
    QgsColorRampLegendNodeSettings,
    QgsColorRampShader,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterBandStats,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
)
from qgis.PyQt.QtCore import QCoreApplication

RAMP_NAME = "RdYlBu"  # red = poorer, blue = wealthier; readable for most colour-blind users
N_CLASSES = 5


def tr(text: str) -> str:
    return QCoreApplication.translate("PovertyStyle", text)


def layer_name(quantity: str, unit: str) -> str:
    """The legend title of a poverty map: what the values are, and in what unit."""
    return tr("Poverty map: {} ({})").format(quantity, unit)


def apply_poverty_style(layer: QgsRasterLayer, quantity: str, unit: str) -> None:
    """Pseudocolour from the smallest to the largest estimate in five classes, the
    legend labelled 'poorer'/'wealthier' at its ends."""
    provider = layer.dataProvider()
    stats = provider.bandStatistics(1, QgsRasterBandStats.Min | QgsRasterBandStats.Max, layer.extent(), 0)
    lo, hi = stats.minimumValue, stats.maximumValue
    if not (hi > lo):
        hi = lo + 1.0
    ramp = QgsStyle.defaultStyle().colorRamp(RAMP_NAME)
    shader = QgsColorRampShader(lo, hi, ramp, QgsColorRampShader.Interpolated, QgsColorRampShader.Continuous)
    shader.classifyColorRamp(N_CLASSES, 1, layer.extent(), provider)
    legend = QgsColorRampLegendNodeSettings()
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
    layer.setAbstract(tr("Estimated {} ({}) by the Poverty Mapper plugin.").format(quantity, unit))
    layer.triggerRepaint()


class StyleOnLoad(QgsProcessingLayerPostProcessorInterface):
    """Styles the output when Processing loads it into the project."""

    _instances: list["StyleOnLoad"] = []  # Processing keeps only a pointer: keep them alive

    def __init__(self, quantity: str, unit: str):
        super().__init__()
        self.quantity, self.unit = quantity, unit

    def postProcessLayer(self, layer, context, feedback) -> None:  # noqa: N802 (QGIS API)
        if isinstance(layer, QgsRasterLayer):
            apply_poverty_style(layer, self.quantity, self.unit)

    @classmethod
    def create(cls, quantity: str, unit: str) -> "StyleOnLoad":
        instance = cls(quantity, unit)
        cls._instances.append(instance)
        return instance
