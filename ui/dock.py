"""The Poverty Mapper dock: pick an image, a region and a model, run, get a map.

The dock composes its panels (image and bands, region, model, run options, export),
turns their values (one frozen :class:`DockSettings`) into the parameters of the
Processing algorithm ``povertymapper:predict`` and runs that in a
``QgsProcessingAlgRunnerTask``, so the dock, the toolbox, the Model Builder and
qgis_process share one code path. The panels remember their choices with QgsSettings.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from qgis.core import Qgis, QgsMessageLog, QgsProcessing, QgsProcessingFeatureSourceDefinition, QgsProject
from qgis.PyQt import sip, uic
from qgis.PyQt.QtCore import QCoreApplication, QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import QDockWidget, QLabel

from ..core.device import DEVICE_CHOICES
from ..core.imagery.bundled_lights import LIGHTS_YEAR
from ..core.imagery.lights_layer import image_bands
from ..core.models.defaults import SAMPLE_MODEL_KEY
from ..core.models.model_file import ModelInfo
from ..provider.base import RADIOMETRY_KEYS
from ..provider.map_layers import add_map_to_project
from ..provider.predict_algorithm import PredictAlgorithm
from .export_panel import ExportPanel
from .image_panel import ImageChoice, ImagePanel
from .model_panel import ModelPanel, reads_imagery
from .notes_area import NotesArea
from .lights_install_row import LightsInstallRow
from .nightlights_panel import NightLightsPanel
from .messages import LOG_TAG, RunMessages
from .processing_run import CollectingFeedback, ProcessingRun
from .combo_box import select_data
from .region_panel import Region, RegionChoice, RegionPanel
from .result_layer import open_result_layer
from .run_options_panel import RunOptions, RunOptionsPanel
from .sample_data import SampleDataRow, load_sample_layer

FORM_CLASS, _ = uic.loadUiType(str(Path(__file__).with_name("dock.ui")))
ALGORITHM_ID = "povertymapper:predict"


def tr(text: str) -> str:
    return QCoreApplication.translate("PovertyDock", text)


@dataclass(frozen=True)
class DockSettings:
    """What the dock's panels say, as plain values."""

    image: ImageChoice
    region: RegionChoice
    model_path: str
    options: RunOptions
    nightlights_layer_id: str | None = None  # for a model that reads night lights


@dataclass(frozen=True)
class _RunInfo:
    """What the result layer needs from the moment the run started."""

    model: ModelInfo
    input_name: str
    started: float  # time.monotonic()
    mask_name: str | None = None  # the polygons the map is limited to


def duration_text(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return tr("{} s").format(seconds)
    if seconds < 3600:
        return tr("{} min {} s").format(seconds // 60, seconds % 60)
    return tr("{} h {} min").format(seconds // 3600, seconds % 3600 // 60)


def progress_text(percent: float, elapsed_s: float) -> str:
    """Tile progress and time left, assuming the remaining tiles go as fast as the done ones."""
    if percent <= 0:
        return tr("Tiles: 0 % done, {} elapsed; estimating the time left…").format(duration_text(elapsed_s))
    left = elapsed_s * (100.0 - percent) / percent
    return tr("Tiles: {:.0f} % done, {} elapsed, about {} left").format(
        percent, duration_text(elapsed_s), duration_text(left)
    )


def predict_parameters(settings: DockSettings) -> dict:
    """Processing parameters for ``povertymapper:predict``."""
    image, region, options = settings.image, settings.region, settings.options
    alg = PredictAlgorithm
    params = {
        alg.MODEL: settings.model_path,
        alg.RADIOMETRY: RADIOMETRY_KEYS.index(options.radiometry),
        alg.DEVICE: DEVICE_CHOICES.index(options.device),
        alg.STRIDE: options.stride_m,
        alg.BATCH_SIZE: options.batch_size,
        alg.OUTPUT: options.output_path or QgsProcessing.TEMPORARY_OUTPUT,
    }
    if image.layer_id:  # none: the region and its CRS are the map's (a model of the bundled lights)
        params[alg.INPUT] = image.layer_id
        params[alg.BANDS] = ",".join(str(b) for b in image.band_indexes)
    if region.extent is not None:
        params[alg.EXTENT] = region.extent
    if settings.nightlights_layer_id:
        params[alg.NIGHTLIGHTS] = settings.nightlights_layer_id
    if region.mask_layer_id:
        params[alg.MASK] = QgsProcessingFeatureSourceDefinition(region.mask_layer_id, selectedFeaturesOnly=True)
    return params


class PovertyDock(QDockWidget, FORM_CLASS):
    finished = pyqtSignal(bool)  # a run ended: True when its layer was added

    def __init__(self, iface, parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self.notesArea = NotesArea(self.dockContents)  # the notes scroll; the form keeps its room
        self.mainLayout.replaceWidget(self.statusLabel, self.notesArea)
        self.notesArea.hold(self.statusLabel)
        self.iface = iface
        self.messages = RunMessages(iface)
        self._run: ProcessingRun | None = None
        self._last_feedback: CollectingFeedback | None = None
        self._run_info: _RunInfo | None = None
        self.imagePanel = ImagePanel(self.scrollContents)
        self.regionPanel = RegionPanel(iface, self.scrollContents)
        self.modelPanel = ModelPanel(self.scrollContents)
        self.nightlightsPanel = NightLightsPanel(self.scrollContents)
        self.modelPanel.add_below_choice(self.nightlightsPanel)  # above the model's summary
        self.lightsInstallRow = LightsInstallRow(self.scrollContents)  # a zip install without the lights file
        self.modelPanel.add_below_choice(self.lightsInstallRow)
        self.optionsPanel = RunOptionsPanel(self.scrollContents)
        self.exportPanel = ExportPanel(iface, self.scrollContents)
        self.sampleRow = SampleDataRow(self.scrollContents)
        panels = (self.sampleRow, self.imagePanel, self.regionPanel, self.modelPanel, self.optionsPanel,
                  self.exportPanel)
        for panel in panels:
            self.scrollLayout.insertWidget(self.scrollLayout.count() - 1, panel)  # above the spacer
        self.runHint = QLabel(self.dockContents)  # why Run is disabled, in one line
        self.runHint.setWordWrap(True)
        self.mainLayout.insertWidget(self.mainLayout.indexOf(self.scrollArea) + 2, self.runHint)  # under Run
        self._show_model_bands()
        self.modelPanel.modelChanged.connect(self._show_model_bands)
        self.nightlightsPanel.layerCombo.layerChanged.connect(self._show_run_state)
        self.lightsInstallRow.installed.connect(self._lights_installed)
        self.imagePanel.layerCombo.layerChanged.connect(self._show_run_state)
        self.regionPanel.regionCombo.currentIndexChanged.connect(self._show_run_state)
        self.sampleRow.loadButton.clicked.connect(self.load_sample_data)
        self.runButton.clicked.connect(self.run)
        self.cancelButton.clicked.connect(self.cancel)

    def settings(self) -> DockSettings:
        """The panels' values; the map extent is taken now."""
        return DockSettings(
            image=self.imagePanel.choice(),
            region=self.regionPanel.choice(),
            model_path=self.modelPanel.model_path(),
            options=self.optionsPanel.options(),
            nightlights_layer_id=self.nightlightsPanel.layer_id(),
        )

    def parameters(self, settings: DockSettings | None = None) -> dict:
        """Processing parameters for ``povertymapper:predict``."""
        return predict_parameters(settings or self.settings())

    def problem(self) -> str | None:
        """What the user must fix before a run, or None."""
        panels = (self.imagePanel, self.modelPanel, self.nightlightsPanel, self.lightsInstallRow, self.regionPanel,
                  self.optionsPanel)
        return next(filter(None, (panel.problem() for panel in panels)), None) or self._region_problem()

    def _maps_the_region_alone(self) -> bool:
        """No image, and a model that reads none: the region and its CRS give the map."""
        return not self.imagePanel.imagery_needed and self.imagePanel.layerCombo.currentLayer() is None

    def _region_problem(self) -> str | None:
        """Without an image there is no whole layer to map: the region must be given."""
        if self._maps_the_region_alone() and self.regionPanel.region() is Region.LAYER:
            return tr("No image is chosen, so there is no whole layer to map: choose the region (the current map "
                      "extent, a rectangle drawn on the map, or selected polygons of a layer), or an image.")
        return None

    def _show_model_bands(self) -> None:
        info = self.modelPanel.model_info()
        self.imagePanel.set_imagery_needed(reads_imagery(info))
        self.imagePanel.set_model_bands(  # NIGHTLIGHTS: its own layer
            image_bands(info.bands) if info else (), info.tile_size_m if info else None)
        self.nightlightsPanel.set_model(info)
        self.lightsInstallRow.set_model(info)
        self._show_run_state()

    def _show_run_state(self) -> None:
        """Run is disabled, with a one-line reason, while the model waits for its night lights
        or, with no image, for a region."""
        hint = self.nightlightsPanel.run_hint() or self.lightsInstallRow.run_hint()
        if hint is None and self._region_problem():
            hint = tr("To run: choose a region (the map extent, a rectangle, polygons) or an image.")
        self.runHint.setText(hint or "")
        self.runHint.setVisible(bool(hint))
        self.runButton.setEnabled(not hint and not self.is_running())

    def load_sample_data(self) -> None:
        """The bundled sample scene as the image, the whole of it as the region, and a model
        that maps it from that image alone: a first map with one click on Run."""
        layer = load_sample_layer(self.iface)
        self.imagePanel.layerCombo.setLayer(layer)
        select_data(self.regionPanel.regionCombo, Region.LAYER.value)
        self.modelPanel.select_bundled(SAMPLE_MODEL_KEY)
        self.progressLabel.clear()
        self.statusLabel.setText(tr("Sample loaded: {} with the model '{}'. Click Run for a first map.").format(
            layer.name(), self.modelPanel.modelCombo.currentText()))

    # -- running --------------------------------------------------------------------
    def run(self) -> None:
        self.messages.clear()  # the errors and notes of earlier runs
        problem = self.problem()
        if problem:
            self.progressBar.setValue(0)
            self.progressLabel.clear()
            self.statusLabel.setText(problem)  # not the previous run's result
            self._show_error(problem)
            return
        settings = self.settings()
        layer = QgsProject.instance().mapLayer(settings.image.layer_id) if settings.image.layer_id else None
        mask = QgsProject.instance().mapLayer(settings.region.mask_layer_id) if settings.region.mask_layer_id else None
        input_name = layer.name() if layer is not None else tr("night lights {}").format(LIGHTS_YEAR)
        self._run_info = _RunInfo(self.modelPanel.model_info(), input_name, time.monotonic(),
                                  mask.name() if mask is not None else None)
        self._run = ProcessingRun(ALGORITHM_ID, self.parameters(settings), self._finished, self._show_progress)
        refused = self._run.start()
        if refused:
            self._last_feedback, self._run = self._run.feedback, None
            self._show_failure(refused, self._last_feedback.textLog())
            return
        self.progressBar.setValue(0)
        self.progressLabel.setText(progress_text(0, 0))
        self.statusLabel.setText(tr("Mapping…"))
        self._set_running(True)

    @property
    def task(self):
        """The running prediction task, if any."""
        return self._run.task if self._run is not None else None

    @property
    def feedback(self):
        return self._run.feedback if self._run is not None else self._last_feedback

    def cancel(self) -> None:
        """Stops the run after the current batch; nothing is written."""
        if self._run is not None:
            self.statusLabel.setText(tr("Cancelling after the current batch…"))
            self._run.cancel()

    def unload(self) -> None:
        """Before the plugin goes: stop a run (its feedback and context must outlive it)
        and give the map its previous tool back."""
        task = self.task
        self.cancel()
        if task is not None:
            task.waitForFinished(60_000)
        self.exportPanel.unload()
        self.regionPanel.unload()

    def is_running(self) -> bool:
        return self.task is not None

    def _set_running(self, running: bool) -> None:
        self.cancelButton.setEnabled(running)
        for panel in (self.sampleRow, self.imagePanel, self.regionPanel, self.modelPanel, self.optionsPanel):
            panel.setEnabled(not running)  # the run uses what they said when it started
        self.runButton.setEnabled(not running)
        if not running:
            self._show_run_state()

    def _show_progress(self, percent: float) -> None:
        self.progressBar.setValue(int(percent))
        if self._run_info is not None:
            self.progressLabel.setText(progress_text(percent, time.monotonic() - self._run_info.started))

    def _finished(self, successful: bool, results: dict) -> None:
        """Main thread: add the styled layer, or say what went wrong. The message bar hears
        of it once QGIS has said the task ended (:class:`RunMessages`); then ``finished``."""
        run_info, feedback = self._run_info, self._run.feedback
        task_description = self._run.task.description()
        self._last_feedback, self._run = feedback, None
        self._set_running(False)
        elapsed = duration_text(time.monotonic() - run_info.started)
        if not successful:
            if feedback.isCanceled():
                self.progressLabel.setText(tr("Cancelled after {}.").format(elapsed))
                self.statusLabel.setText(tr("Cancelled: no output was written."))
                QgsMessageLog.logMessage(tr("Cancelled: no output was written."), LOG_TAG, Qgis.MessageLevel.Info)
                self._say_after(task_description, False, tr("Cancelled: no map was written."), Qgis.MessageLevel.Info)
            else:
                message = (feedback.errors[-1] if feedback.errors else "") or tr(
                    "The prediction failed; see the Poverty Mapper log for details."
                )
                self.progressLabel.clear()
                self.statusLabel.setText(message)
                self.messages.after_task(task_description, lambda: self._report_failure(message, feedback.textLog()))
            return
        output = results[PredictAlgorithm.OUTPUT]
        layer = open_result_layer(
            output, run_info.model, run_info.input_name, date.today(), run_info.mask_name)
        if layer is None:
            message = tr("The prediction ran but its output cannot be opened: {}").format(output)
            self.messages.after_task(task_description, lambda: self._report_failure(message))
            return
        add_map_to_project(layer)  # in a group with its quality layer: where not to trust it
        self.exportPanel.set_poverty_map(layer)
        self.progressBar.setValue(100)
        self.progressLabel.setText(tr("Done in {}.").format(elapsed))
        summary = results.get(PredictAlgorithm.SUMMARY) or ""  # the algorithm's own line: cells, device, bands
        warnings = [tr("Note: {}").format(w) for w in feedback.warnings]
        self.statusLabel.setText("\n".join(filter(None, [summary, *warnings, tr("Output: {}").format(output)])))
        note = None
        if feedback.warnings:  # extrapolations, another radiometry, a constant map: said where it is seen
            note = tr("The map is done, with {} note(s): see the dock.").format(len(warnings))
        self._say_after(task_description, True, note, Qgis.MessageLevel.Warning, 0)  # until the next run

    def _say_after(self, task_description: str, ok: bool, text: str | None, level, duration: int = -1) -> None:
        """Once QGIS has said the task ended: the run's own message on top (QGIS's notice
        taken away where there is one), then ``finished``."""
        def say() -> None:
            if sip.isdeleted(self):  # the plugin was unloaded meanwhile
                return
            if text:
                self.messages.push(text, level, duration)
            self.finished.emit(ok)

        if text:
            self.messages.after_task(task_description, say)
        else:  # QGIS's "Task complete" says all there is to say
            QTimer.singleShot(0, say)

    def _report_failure(self, message: str, details: str = "") -> None:
        if sip.isdeleted(self):
            return
        self._show_error(message, details)
        self.finished.emit(False)

    def _show_failure(self, message: str, details: str = "") -> None:
        self.progressLabel.clear()
        self.statusLabel.setText(message)
        self._report_failure(message, details)

    def _lights_installed(self, ok: bool, where_or_why: str) -> None:
        if ok:
            text = tr("The bundled night lights are set up: {}").format(where_or_why)
            self.statusLabel.setText(text)
            self.messages.push(text, Qgis.MessageLevel.Success, duration=10)
        else:
            self.statusLabel.setText(where_or_why)
            self._show_error(where_or_why)
        self._show_run_state()

    def _show_error(self, message: str, details: str = "") -> None:
        """The message bar says what to fix; the log panel keeps the details."""
        self.messages.error(message, details)
