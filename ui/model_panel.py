"""Model section of the dock: the model file and its card.

The card comes from the file's description alone (:func:`read_model_info`), so
choosing a model neither loads its arrays nor imports torch; the prediction loads it.
"""
from __future__ import annotations

from pathlib import Path

from qgis.gui import QgsFileWidget
from qgis.PyQt import uic
from qgis.PyQt.QtCore import QCoreApplication, pyqtSignal
from qgis.PyQt.QtWidgets import QWidget

from ..core.errors import PovertyMapperError
from ..core.models.defaults import DEFAULT_MODEL_PATH
from ..core.models.model_file import MODEL_SUFFIX, ModelInfo, read_model_info
from .settings import DockSetting

FORM_CLASS, _ = uic.loadUiType(str(Path(__file__).with_name("model_panel.ui")))


def tr(text: str) -> str:
    return QCoreApplication.translate("ModelPanel", text)


class ModelPanel(QWidget, FORM_CLASS):
    modelChanged = pyqtSignal()  # another model file was chosen: model_info() describes it

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self._info: ModelInfo | None = None
        self.modelWidget.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        self.modelWidget.setFilter(tr("Poverty models (*{})").format(MODEL_SUFFIX))
        self.modelWidget.setFilePath(DockSetting.MODEL_PATH.read() or str(DEFAULT_MODEL_PATH))
        self._read_model()
        self.modelWidget.fileChanged.connect(self._on_file_changed)

    def model_path(self) -> str:
        return self.modelWidget.filePath() or str(DEFAULT_MODEL_PATH)

    def model_info(self) -> ModelInfo | None:
        """What the chosen file says about its model; None when it cannot be read."""
        return self._info

    def problem(self) -> str | None:
        """What the user must fix here before a run, or None."""
        if self._info is None:
            return tr("The chosen model file cannot be read: {} Choose another model file.").format(
                self.modelCard.text()
            )
        return None

    def save_settings(self) -> None:
        path = self.modelWidget.filePath()
        # The bundled model is remembered as "" so that it is found wherever the plugin is installed.
        DockSetting.MODEL_PATH.write("" if path == str(DEFAULT_MODEL_PATH) else path)

    def _on_file_changed(self) -> None:
        self._read_model()
        self.save_settings()
        self.modelChanged.emit()

    def _read_model(self) -> None:
        try:
            self._info = read_model_info(self.model_path())
        except PovertyMapperError as exc:
            self._info = None
            self.modelCard.setText(str(exc))
        else:
            self.modelCard.setText(self._info.card())
