"""Export section of the dock: grid cells as polygons, and means per polygon (districts).

A thin front end over ``povertymapper:topolygons`` and ``povertymapper:aggregate``,
run in the background like the prediction.
"""
from __future__ import annotations

from pathlib import Path

from qgis.core import Qgis, QgsMapLayerProxyModel, QgsProject, QgsRasterLayer, QgsVectorLayer
from qgis.gui import QgsFileWidget
from qgis.PyQt import uic
from qgis.PyQt.QtCore import QCoreApplication, pyqtSignal
from qgis.PyQt.QtWidgets import QWidget

from ..provider.aggregate_algorithm import AggregateAlgorithm
from ..provider.map_layers import is_companion_layer
from ..provider.to_polygons_algorithm import ToPolygonsAlgorithm
from .processing_run import LOG_TAG, ProcessingRun, show_error

FORM_CLASS, _ = uic.loadUiType(str(Path(__file__).with_name("export_panel.ui")))
VECTOR_FILTER = "Shapefile (*.shp);;GeoPackage (*.gpkg)"
VECTOR_SUFFIXES = (".shp", ".gpkg")  # the format follows the file's extension


def tr(text: str) -> str:
    return QCoreApplication.translate("ExportPanel", text)


class ExportPanel(QWidget, FORM_CLASS):
    exported = pyqtSignal(bool, str)  # an export ended: success, and the file written

    def __init__(self, iface, parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self.iface = iface
        self._run: ProcessingRun | None = None
        self.mapCombo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        QgsProject.instance().layersAdded.connect(self._hide_companion_layers)  # not maps to export
        self._watching_layers = True
        self._hide_companion_layers()
        self.polygonsCombo.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.populationCombo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.populationCombo.setAllowEmptyLayer(True)
        self.populationCombo.setLayer(None)
        for widget, placeholder in (
            (self.cellsFileWidget, tr("Cells file (.shp or .gpkg)")),
            (self.aggregateFileWidget, tr("Polygons file (.shp or .gpkg)")),
        ):
            widget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
            widget.setFilter(tr(VECTOR_FILTER))
            widget.lineEdit().setPlaceholderText(placeholder)
        self.povertyLineEdit.setPlaceholderText(tr("e.g. 2.15; empty: none"))
        self.cellsButton.clicked.connect(self.export_cells)
        self.aggregateButton.clicked.connect(self.aggregate)

    def _hide_companion_layers(self, *_added) -> None:
        companions = [layer for layer in QgsProject.instance().mapLayers().values() if is_companion_layer(layer)]
        self.mapCombo.setExceptedLayerList(companions)
        self.polygonsCombo.setExceptedLayerList(companions)  # the flagged cells are no districts

    def set_poverty_map(self, layer: QgsRasterLayer) -> None:
        """Preselect a freshly mapped layer."""
        self.mapCombo.setLayer(layer)

    def is_running(self) -> bool:
        return self._run is not None

    def unload(self) -> None:
        """Stop an export before the dock goes (its context and feedback must outlive it)."""
        if self._watching_layers:  # unload may come twice
            QgsProject.instance().layersAdded.disconnect(self._hide_companion_layers)
            self._watching_layers = False
        if self._run is not None and self._run.task is not None:
            task = self._run.task
            self._run.cancel()
            task.waitForFinished(60_000)

    def export_cells(self) -> None:
        problem = self._missing_map() or self._missing_path(self.cellsFileWidget)
        if problem:
            show_error(self.iface, problem)
            return
        self._start(
            "povertymapper:topolygons",
            {ToPolygonsAlgorithm.INPUT: self.mapCombo.currentLayer().id(),
             ToPolygonsAlgorithm.OUTPUT: self.cellsFileWidget.filePath()},
            tr("{}: cells").format(self.mapCombo.currentLayer().name()),
        )

    def aggregate(self) -> None:
        polygons = self.polygonsCombo.currentLayer()
        line, line_problem = self._poverty_line()
        problem = (
            self._missing_map()
            or (None if polygons else tr("Choose the polygons (e.g. districts) to aggregate onto."))
            or line_problem
            or self._missing_path(self.aggregateFileWidget)
        )
        if problem:
            show_error(self.iface, problem)
            return
        population = self.populationCombo.currentLayer()
        self._start(
            "povertymapper:aggregate",
            {
                AggregateAlgorithm.INPUT: self.mapCombo.currentLayer().id(),
                AggregateAlgorithm.POLYGONS: polygons.id(),
                AggregateAlgorithm.POPULATION: population.id() if population else None,
                AggregateAlgorithm.POVERTY_LINE: line,
                AggregateAlgorithm.OUTPUT: self.aggregateFileWidget.filePath(),
            },
            tr("{}: {}").format(polygons.name(), self.mapCombo.currentLayer().name()),
        )

    def _poverty_line(self) -> tuple[float | None, str | None]:
        """The poverty line typed in (None when empty), or why it cannot be read."""
        text = self.povertyLineEdit.text().strip().replace(",", ".")
        if not text:
            return None, None
        try:
            return float(text), None
        except ValueError:
            return None, tr("The poverty line '{}' is not a number; write e.g. 2.15, or leave it empty.").format(text)

    def _missing_map(self) -> str | None:
        return None if self.mapCombo.currentLayer() else tr("Choose the poverty map to export.")

    @staticmethod
    def _missing_path(widget: QgsFileWidget) -> str | None:
        path = widget.filePath()
        if not path:
            return tr("Choose the file to write (.shp or .gpkg).")
        if Path(path).suffix.lower() not in VECTOR_SUFFIXES:
            return tr("Write to a shapefile (.shp) or a GeoPackage (.gpkg), not '{}'.").format(Path(path).name)
        return None

    def _start(self, algorithm_id: str, parameters: dict, layer_name: str) -> None:
        if self._run is not None:
            show_error(self.iface, tr("An export is already running; wait for it to finish."))
            return
        self._run = ProcessingRun(algorithm_id, parameters, lambda ok, results: self._done(ok, results, layer_name))
        refused = self._run.start()
        if refused:
            self._run = None
            show_error(self.iface, refused)
            self.exported.emit(False, "")
            return
        self.exportStatusLabel.setText(tr("Exporting…"))
        self._set_buttons(False)

    def _set_buttons(self, enabled: bool) -> None:
        self.cellsButton.setEnabled(enabled)
        self.aggregateButton.setEnabled(enabled)

    def _done(self, successful: bool, results: dict, layer_name: str) -> None:
        run, self._run = self._run, None
        self._set_buttons(True)
        if not successful:
            message = run.error_message(tr("The export failed; see the Poverty Mapper log for details."))
            self.exportStatusLabel.setText(message)
            show_error(self.iface, message, run.feedback.textLog())
            self.exported.emit(False, "")
            return
        path = results[AggregateAlgorithm.OUTPUT]  # the output of both exports
        layer = QgsVectorLayer(path, layer_name, "ogr")
        if layer.isValid():
            QgsProject.instance().addMapLayer(layer)
        warnings = [tr("Note: {}").format(w) for w in run.feedback.warnings]
        self.exportStatusLabel.setText("\n".join([tr("Written: {}").format(path), *warnings]))
        if warnings:  # polygons without estimates, partly covered ones: said where it is seen
            self.iface.messageBar().pushMessage(
                LOG_TAG, tr("Written: {}, with {} note(s): see the dock.").format(path, len(warnings)),
                level=Qgis.MessageLevel.Warning,
            )
        else:
            self.iface.messageBar().pushMessage(LOG_TAG, tr("Written: {}").format(path), level=Qgis.MessageLevel.Success)
        self.exported.emit(True, path)
