"""Night-lights section of the dock: the night-lights layer a model with a NIGHTLIGHTS
band reads beside the image; shown only for such a model."""
from __future__ import annotations

from qgis.core import QgsMapLayerProxyModel
from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import QGroupBox, QLabel, QVBoxLayout, QWidget

from ..core.imagery.lights_layer import uses_nightlights
from ..core.models.model_file import ModelInfo


def tr(text: str) -> str:
    return QCoreApplication.translate("NightLightsPanel", text)


def expected_lights(info: ModelInfo) -> str:
    """The product and units the model expects, in words."""
    return info.nightlights.describe() if info.nightlights else tr("the night lights it was trained on")


class NightLightsPanel(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self._info: ModelInfo | None = None
        group = QGroupBox(tr("Night-lights layer"), self)
        self.layerCombo = QgsMapLayerComboBox(group)
        self.layerCombo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.layerCombo.setAllowEmptyLayer(True)
        self.layerCombo.setLayer(None)
        self.note = QLabel(group)
        self.note.setWordWrap(True)
        inner = QVBoxLayout(group)
        inner.addWidget(self.note)
        inner.addWidget(self.layerCombo)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(group)
        self.set_model(None)

    @property
    def needed(self) -> bool:
        """Whether the chosen model reads night lights."""
        return self._info is not None and uses_nightlights(self._info.bands)

    def set_model(self, info: ModelInfo | None) -> None:
        """Shows the picker for a model that reads night lights, with what it expects."""
        self._info = info
        self.setVisible(self.needed)
        self.setEnabled(self.needed)
        if self.needed:
            self.note.setText(tr(
                "The model reads night lights beside the image: {}. Any CRS and resolution; the layer "
                "must cover the image, which gives the map's grid."
            ).format(expected_lights(info)))

    def layer_id(self) -> str | None:
        """The chosen night-lights layer, for a model that reads one."""
        layer = self.layerCombo.currentLayer()
        return layer.id() if self.needed and layer is not None else None

    def problem(self) -> str | None:
        """What the user must fix here before a run, or None."""
        if self.needed and self.layerCombo.currentLayer() is None:
            return tr(
                "The model '{}' reads night lights: choose a night-lights layer ({}) under "
                "'Night-lights layer', or choose another model."
            ).format(self._info.name, expected_lights(self._info))
        return None
