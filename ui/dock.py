"""The Poverty Mapper dock: pick an image, a region and a model, run, get a map.

The dock only collects settings and shows progress. The work is the Processing
algorithm ``povertymapper:predict`` run in a ``QgsProcessingAlgRunnerTask``, so the
dock, the toolbox, the Model Builder and qgis_process share one code path.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsMapLayerProxyModel,
    QgsMessageLog,
    QgsProcessing,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
    QgsReferencedRectangle,
)
from qgis.gui import QgsFileWidget
from qgis.PyQt import uic
from qgis.PyQt.QtCore import QCoreApplication, pyqtSignal
from qgis.PyQt.QtWidgets import QDockWidget

from ..core.defaults import DEFAULT_MODEL_PATH
from ..core.errors import ModelFileError
from ..core.model_file import MODEL_SUFFIX, load_model
from ..provider.styling import apply_poverty_style, layer_name

FORM_CLASS, _ = uic.loadUiType(str(Path(__file__).with_name("dock.ui")))
ALGORITHM_ID = "povertymapper:predict"
LOG_TAG = "Poverty Mapper"


def tr(text: str) -> str:
    return QCoreApplication.translate("PovertyDock", text)


class Region(enum.Enum):
    LAYER = "layer"
    MAP_CANVAS = "canvas"


@dataclass(frozen=True)
class DockSettings:
    """What the dock's widgets say, as plain values."""

    layer_id: str | None
    region: Region
    model_path: str


class _CollectingFeedback(QgsProcessingFeedback):
    """Keeps the errors the algorithm reports, to show them in the message bar."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802,N803 (QGIS API)
        self.errors.append(error)
        super().reportError(error, fatalError)


class PovertyDock(QDockWidget, FORM_CLASS):
    finished = pyqtSignal(bool)  # a run ended: True when its layer was added

    def __init__(self, iface, parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self.iface = iface
        self.task: QgsProcessingAlgRunnerTask | None = None
        self.feedback: _CollectingFeedback | None = None
        self.context: QgsProcessingContext | None = None
        self._model_meta: tuple[str, str] | None = None

        self.layerCombo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.regionCombo.addItem(tr("Whole layer"), Region.LAYER)
        self.regionCombo.addItem(tr("Current map extent"), Region.MAP_CANVAS)
        self.modelWidget.setStorageMode(QgsFileWidget.GetFile)
        self.modelWidget.setFilter(tr("Poverty models (*{})").format(MODEL_SUFFIX))
        self.modelWidget.setFilePath(str(DEFAULT_MODEL_PATH))
        self.modelWidget.fileChanged.connect(self._show_model_card)
        self.runButton.clicked.connect(self.run)
        self.cancelButton.clicked.connect(self.cancel)
        self._show_model_card(self.modelWidget.filePath())

    # -- settings -------------------------------------------------------------------
    def settings(self) -> DockSettings:
        layer = self.layerCombo.currentLayer()
        return DockSettings(
            layer_id=layer.id() if layer else None,
            region=self.regionCombo.currentData(),
            model_path=self.modelWidget.filePath() or str(DEFAULT_MODEL_PATH),
        )

    def parameters(self, settings: DockSettings) -> dict:
        """Processing parameters for ``povertymapper:predict``."""
        params = {
            "INPUT": settings.layer_id,
            "MODEL": settings.model_path,
            "OUTPUT": QgsProcessing.TEMPORARY_OUTPUT,
        }
        if settings.region is Region.MAP_CANVAS:
            canvas = self.iface.mapCanvas()
            params["EXTENT"] = QgsReferencedRectangle(canvas.extent(), canvas.mapSettings().destinationCrs())
        return params

    def _show_model_card(self, path: str) -> None:
        try:
            model = load_model(path or DEFAULT_MODEL_PATH)
        except ModelFileError as exc:
            self._model_meta = None
            self.modelCard.setText(str(exc))
            return
        self._model_meta = (model.target.name, model.target.unit)
        self.modelCard.setText(model.card())

    # -- running --------------------------------------------------------------------
    def run(self) -> None:
        settings = self.settings()
        if settings.layer_id is None:
            self._show_error(tr("Choose a satellite image (a raster layer) first."))
            return
        if self._model_meta is None:
            self._show_error(tr("The chosen model file cannot be read; choose another model."))
            return
        algorithm = QgsApplication.processingRegistry().createAlgorithmById(ALGORITHM_ID)
        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        self.feedback = _CollectingFeedback()
        self.feedback.progressChanged.connect(lambda value: self.progressBar.setValue(int(value)))
        self.task = QgsProcessingAlgRunnerTask(algorithm, self.parameters(settings), self.context, self.feedback)
        self.task.executed.connect(self._finished)
        self.progressBar.setValue(0)
        self.statusLabel.setText(tr("Mapping…"))
        self._set_running(True)
        QgsApplication.taskManager().addTask(self.task)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def is_running(self) -> bool:
        return self.task is not None

    def _set_running(self, running: bool) -> None:
        self.runButton.setEnabled(not running)
        self.cancelButton.setEnabled(running)

    def _finished(self, successful: bool, results: dict) -> None:
        """Main thread: add the styled layer, or say what went wrong."""
        feedback = self.feedback
        self.task = None
        self._set_running(False)
        if not successful:
            message = (feedback.errors[-1] if feedback and feedback.errors else "") or tr(
                "The prediction failed; see the Poverty Mapper log for details."
            )
            self.statusLabel.setText(message)
            self._show_error(message)
            self.finished.emit(False)
            return
        quantity, unit = self._model_meta or ("estimate", "")
        layer = QgsRasterLayer(results["OUTPUT"], layer_name(quantity, unit))
        if not layer.isValid():
            self._show_error(tr("The prediction ran but its output cannot be opened: {}").format(results["OUTPUT"]))
            self.finished.emit(False)
            return
        apply_poverty_style(layer, quantity, unit)
        QgsProject.instance().addMapLayer(layer)
        self.progressBar.setValue(100)
        self.statusLabel.setText(tr("Done: {}").format(results["OUTPUT"]))
        self.finished.emit(True)

    def _show_error(self, message: str) -> None:
        QgsMessageLog.logMessage(message, LOG_TAG, Qgis.Critical)
        self.iface.messageBar().pushMessage(LOG_TAG, message, level=Qgis.Critical)
