"""The dock's line for a plugin installed from its zip, whose bundled night lights (a
separate data file) are not set up yet: shown under the model choice while the chosen
model maps from those lights, with a button that installs the downloaded file through
Processing's 'Install the bundled night lights' (checked against its SHA-256)."""
from __future__ import annotations

from qgis.PyQt.QtCore import QCoreApplication, pyqtSignal
from qgis.PyQt.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QWidget

from ..core.imagery.lights_file import LIGHTS_FILE, lights_path
from ..core.models.model_file import ModelInfo
from .model_panel import reads_imagery
from .processing_run import ProcessingRun

INSTALL_ALGORITHM_ID = "povertymapper:installlights"


def tr(text: str) -> str:
    return QCoreApplication.translate("LightsInstallRow", text)


class LightsInstallRow(QWidget):
    installed = pyqtSignal(bool, str)  # True and where the lights now are, or False and why not

    def __init__(self, parent=None):
        super().__init__(parent)
        self._info: ModelInfo | None = None
        self._run: ProcessingRun | None = None
        self.label = QLabel(tr(
            "The bundled night lights this model maps from are not set up (a separate 58 MB file, {}).").format(
            LIGHTS_FILE), self)
        self.label.setWordWrap(True)
        self.installButton = QPushButton(tr("Install from file…"), self)
        self.installButton.setToolTip(tr(
            "Choose the downloaded {}: it is checked to be the file this plugin was built with, then copied to "
            "your user data folder. Nothing is written when the check fails.").format(LIGHTS_FILE))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.installButton)
        self.installButton.clicked.connect(self.choose_and_install)
        self.set_model(None)

    @property
    def needed(self) -> bool:
        """The chosen model maps from the bundled lights, and they are in neither place."""
        return not reads_imagery(self._info) and not lights_path().is_file()

    def set_model(self, info: ModelInfo | None) -> None:
        self._info = info
        self.setVisible(self.needed)

    def problem(self) -> str | None:
        if self.needed:
            return tr("The model '{}' maps from the bundled night lights, which are not set up: click 'Install from "
                      "file…' under the model and choose the downloaded {}, or choose another model.").format(
                self._info.name, LIGHTS_FILE)
        return None

    def run_hint(self) -> str | None:
        return tr("To run: install the bundled night lights (under the model), or choose another model.") \
            if self.needed else None

    def choose_file(self) -> str:
        path, _ = QFileDialog.getOpenFileName(self, tr("The downloaded night lights"), "",
                                              tr("Night lights ({})").format(LIGHTS_FILE))
        return path

    def choose_and_install(self) -> None:
        path = self.choose_file()
        if path:
            self.install(path)

    def install(self, path: str) -> None:
        """Installs ``path`` in a Processing task; :attr:`installed` says how it went."""
        self.installButton.setEnabled(False)

        def done(ok: bool, results: dict) -> None:
            run, self._run = self._run, None
            self.installButton.setEnabled(True)
            self.setVisible(self.needed)
            if ok:
                self.installed.emit(True, results.get("OUTPUT", ""))
            else:
                self.installed.emit(False, run.error_message(tr("The night lights could not be installed.")))

        self._run = ProcessingRun(INSTALL_ALGORITHM_ID, {"INPUT": path}, done)
        refused = self._run.start()
        if refused:
            self._run = None
            self.installButton.setEnabled(True)
            self.installed.emit(False, refused)
