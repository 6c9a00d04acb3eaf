"""The sample data that ships with the plugin, one click away in the dock: the bundled real
Landsat 8 scene (the one `make demo` maps), to make a first map without any data of one's own."""
from __future__ import annotations

from qgis.core import QgsCoordinateTransform, QgsCsException, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from ..core.models.defaults import SAMPLE_SCENE_PATH


def tr(text: str) -> str:
    return QCoreApplication.translate("SampleData", text)


SAMPLE_LAYER_NAME = "Sample: Landsat 8, Paraná (bundled)"


class SampleDataRow(QWidget):
    """"No data at hand?" and the button that loads the sample."""

    def __init__(self, parent=None):
        super().__init__(parent)
        label = QLabel(tr("No imagery at hand?"), self)
        label.setWordWrap(True)  # the button keeps its width in a narrow dock
        self.loadButton = QPushButton(tr("Load sample data"), self)
        self.loadButton.setToolTip(tr(
            "Adds the bundled Landsat 8 scene of Paraná (Brazil, 30 m, red, green, blue) to the project and "
            "chooses the RGB model, which maps it from its own bands (no night-lights layer needed)."
        ))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(label, 1)
        layout.addWidget(self.loadButton)
        self.setVisible(SAMPLE_SCENE_PATH.is_file())  # a plugin built without it


def load_sample_layer(iface) -> QgsRasterLayer:
    """The sample scene's layer, added to the project (or the one already there) and shown on the map."""
    path = str(SAMPLE_SCENE_PATH)
    project = QgsProject.instance()
    layer = next((lyr for lyr in project.mapLayers().values()
                  if isinstance(lyr, QgsRasterLayer) and lyr.source() == path), None)
    if layer is None:
        layer = QgsRasterLayer(path, tr(SAMPLE_LAYER_NAME))
        project.addMapLayer(layer)
    canvas = iface.mapCanvas()
    if canvas is not None:
        if not canvas.mapSettings().destinationCrs().isValid():
            canvas.setDestinationCrs(layer.crs())
        to_canvas = QgsCoordinateTransform(layer.crs(), canvas.mapSettings().destinationCrs(), project)
        try:
            canvas.setExtent(to_canvas.transformBoundingBox(layer.extent()))
        except QgsCsException:  # a map CRS the scene cannot be shown in: the layer is there all the same
            pass
        canvas.refresh()
    return layer
