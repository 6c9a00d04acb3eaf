"""Night-lights picker of the dock: the night-lights layer a model with a NIGHTLIGHTS band
reads beside the image; shown only for such a model, right under the model choice."""
from __future__ import annotations

from qgis.core import QgsMapLayerProxyModel
from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import QLabel, QVBoxLayout, QWidget

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
        self.title = QLabel(tr("<b>Night-lights layer</b>"), self)
        self.layerCombo = QgsMapLayerComboBox(self)
        self.layerCombo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.layerCombo.setAllowEmptyLayer(True)
        self.layerCombo.setLayer(None)
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.layerCombo)
        layout.addWidget(self.note)
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
            self.note.setText(tr("Radiance in {}, covering the image; any CRS.").format(info.nightlights.units)
                              if info.nightlights else tr("The night lights the model was trained on."))
            self.setToolTip(tr(
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
                "The model '{}' reads night lights: choose a night-lights layer ({}) under the model, or "
                "choose another model."
            ).format(self._info.name, self._info.nightlights.units if self._info.nightlights else tr("radiance"))
        return None

    def run_hint(self) -> str | None:
        """One line under Run while the model still waits for its night-lights layer, or None."""
        if self.needed and self.layerCombo.currentLayer() is None:
            return tr("To run: choose a night-lights layer under the model, or another model.")
        return None
