"""Region section of the dock: the whole layer, the map extent, selected polygons, or a
rectangle drawn on the map with a map tool that gives the previous tool back."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from qgis.core import QgsMapLayerProxyModel, QgsRectangle, QgsReferencedRectangle, QgsVectorLayer
from qgis.gui import QgsMapToolExtent
from qgis.PyQt import sip, uic
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import QWidget

from .combo_box import select_data
from .settings import DockSetting

FORM_CLASS, _ = uic.loadUiType(str(Path(__file__).with_name("region_panel.ui")))


def tr(text: str) -> str:
    return QCoreApplication.translate("RegionPanel", text)


class Region(enum.Enum):
    LAYER = "layer"
    MAP_CANVAS = "canvas"
    SELECTED_FEATURES = "selected"
    DRAWN = "drawn"


@dataclass(frozen=True)
class RegionChoice:
    region: Region
    extent: QgsReferencedRectangle | None  # map extent, drawn rectangle or selection's bounds
    mask_layer_id: str | None  # polygon layer whose selected features bound the map


class RegionPanel(QWidget, FORM_CLASS):
    def __init__(self, iface, parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self.iface = iface
        self._drawn_extent: QgsReferencedRectangle | None = None
        self._extent_tool: QgsMapToolExtent | None = None
        self._previous_tool = None
        self.maskLayerCombo.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.regionCombo.addItem(tr("Whole layer"), Region.LAYER.value)
        self.regionCombo.addItem(tr("Current map extent"), Region.MAP_CANVAS.value)
        self.regionCombo.addItem(tr("Selected features of a polygon layer"), Region.SELECTED_FEATURES.value)
        self.regionCombo.addItem(tr("Rectangle drawn on the map"), Region.DRAWN.value)
        select_data(self.regionCombo, DockSetting.REGION.read())  # an unknown value leaves the whole layer
        self._on_region_changed()
        self.regionCombo.currentIndexChanged.connect(self._on_region_changed)
        self.regionCombo.currentIndexChanged.connect(self.save_settings)
        self.drawButton.clicked.connect(self.start_drawing)

    def region(self) -> Region:
        return Region(self.regionCombo.currentData())

    def choice(self) -> RegionChoice:
        """The region's values; the map extent is taken now."""
        region = self.region()
        mask_layer = self.maskLayerCombo.currentLayer() if region is Region.SELECTED_FEATURES else None
        return RegionChoice(region, self._extent(region), mask_layer.id() if mask_layer else None)

    def problem(self) -> str | None:
        """What the user must fix here before a run, or None."""
        region = self.region()
        if region is Region.SELECTED_FEATURES:
            mask_layer = self.maskLayerCombo.currentLayer()
            if mask_layer is None:
                return tr("Choose the polygon layer whose selected features bound the region.")
            if mask_layer.selectedFeatureCount() == 0:
                return tr("No features are selected in '{}': select the polygons to map, or choose another region.").format(mask_layer.name())
        if region is Region.DRAWN and self._drawn_extent is None:
            return tr("Draw the region on the map first (button 'Draw on map'), or choose another region.")
        return None

    def save_settings(self) -> None:
        DockSetting.REGION.write(self.region().value)

    def unload(self) -> None:
        """Gives the map its previous tool back."""
        self._restore_map_tool()

    def _extent(self, region: Region) -> QgsReferencedRectangle | None:
        if region is Region.MAP_CANVAS:
            canvas = self.iface.mapCanvas()
            return QgsReferencedRectangle(canvas.extent(), canvas.mapSettings().destinationCrs())
        if region is Region.DRAWN:
            return self._drawn_extent
        mask_layer = self.maskLayerCombo.currentLayer()
        if region is Region.SELECTED_FEATURES and isinstance(mask_layer, QgsVectorLayer) and mask_layer.selectedFeatureCount():
            return QgsReferencedRectangle(mask_layer.boundingBoxOfSelected(), mask_layer.crs())
        return None

    def _on_region_changed(self) -> None:
        region = self.region()
        self.maskRow.setVisible(region is Region.SELECTED_FEATURES)
        self.drawRow.setVisible(region is Region.DRAWN)
        if region is not Region.DRAWN:
            self._restore_map_tool()
        self._show_drawn_extent()

    # -- drawing the region ---------------------------------------------------------
    def start_drawing(self) -> None:
        """Let the user drag a rectangle on the map canvas."""
        canvas = self.iface.mapCanvas()
        if self._extent_tool is None:
            self._extent_tool = QgsMapToolExtent(canvas)
            self._extent_tool.extentChanged.connect(self.extent_drawn)
        current = canvas.mapTool()
        if current is not self._extent_tool:
            self._previous_tool = current
        canvas.setMapTool(self._extent_tool)
        self.drawnExtentLabel.setText(tr("Drag a rectangle on the map…"))

    def extent_drawn(self, rectangle: QgsRectangle) -> None:
        """The map tool's rectangle, in the canvas CRS; then the previous map tool is back."""
        if rectangle.isNull() or rectangle.isEmpty():
            return  # a click without a drag: keep drawing
        canvas = self.iface.mapCanvas()
        self._drawn_extent = QgsReferencedRectangle(rectangle, canvas.mapSettings().destinationCrs())
        self._restore_map_tool()
        self._show_drawn_extent()

    def _restore_map_tool(self) -> None:
        if self._extent_tool is None:
            return
        canvas = self.iface.mapCanvas()
        if canvas.mapTool() is self._extent_tool:
            previous = self._previous_tool
            if previous is not None and not sip.isdeleted(previous):
                canvas.setMapTool(previous)
            else:
                canvas.unsetMapTool(self._extent_tool)
        self._previous_tool = None

    def _show_drawn_extent(self) -> None:
        extent = self._drawn_extent
        if extent is None:
            self.drawnExtentLabel.setText(tr("No rectangle drawn yet."))
        else:
            self.drawnExtentLabel.setText(
                tr("{} ({})").format(extent.toString(0), extent.crs().authid() or extent.crs().description())
            )
