"""The Poverty Mapper dock: pick an image, a region and a model, run, get a map.

The dock only collects settings (one frozen :class:`DockSettings`), turns them into
the parameters of the Processing algorithm ``povertymapper:predict`` and runs that in
a ``QgsProcessingAlgRunnerTask``, so the dock, the toolbox, the Model Builder and
qgis_process share one code path. It remembers its choices with QgsSettings.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import torch
from qgis.core import (
    Qgis,
    QgsMapLayerProxyModel,
    QgsMessageLog,
    QgsProcessing,
    QgsProcessingFeatureSourceDefinition,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsReferencedRectangle,
    QgsSettings,
    QgsVectorLayer,
)
from qgis.gui import QgsFileWidget, QgsMapToolExtent
from qgis.PyQt import sip, uic
from qgis.PyQt.QtCore import QCoreApplication, Qt, pyqtSignal
from qgis.PyQt.QtWidgets import QComboBox, QDockWidget, QLabel

from ..core.imagery.bands import guess_band_indexes
from ..core.models.defaults import DEFAULT_MODEL_PATH
from ..core.device import DEVICE_CHOICES
from ..core.errors import PovertyMapperError
from ..core.models.model_file import MODEL_SUFFIX, PovertyModel, load_model
from ..core.imagery.radiometry import PRESETS
from ..provider.base import RADIOMETRY_KEYS
from .export_panel import ExportPanel
from .processing_run import LOG_TAG, CollectingFeedback, ProcessingRun, show_error
from .result_layer import open_result_layer

FORM_CLASS, _ = uic.loadUiType(str(Path(__file__).with_name("dock.ui")))
ALGORITHM_ID = "povertymapper:predict"
SETTINGS_PREFIX = "poverty_mapper/"


def tr(text: str) -> str:
    return QCoreApplication.translate("PovertyDock", text)


class Region(enum.Enum):
    LAYER = "layer"
    MAP_CANVAS = "canvas"
    SELECTED_FEATURES = "selected"
    DRAWN = "drawn"


class OutputMode(enum.Enum):
    TEMPORARY = "temporary"
    FILE = "file"


@dataclass(frozen=True)
class DockSettings:
    """What the dock's widgets say, as plain values."""

    layer_id: str | None
    band_indexes: tuple[int, ...]  # 1-based layer band per model band; empty = let the engine guess
    region: Region
    extent: QgsReferencedRectangle | None  # map extent, drawn rectangle or selection's bounds
    mask_layer_id: str | None  # polygon layer whose selected features bound the map
    model_path: str
    device: str  # one of DEVICE_CHOICES
    radiometry: str  # one of RADIOMETRY_KEYS
    stride_m: float  # 0 = the model's tile size
    batch_size: int  # 0 = automatic
    output_path: str | None  # None = temporary layer


@dataclass(frozen=True)
class _RunInfo:
    """What the result layer needs from the moment the run started."""

    model: PovertyModel
    input_name: str
    started: float  # time.monotonic()


def detected_gpu_name() -> str | None:
    """The name of the CUDA GPU PyTorch sees, or None."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


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


def _band_description(layer: QgsRasterLayer, band: int) -> str:
    """The band's description from its QGIS name ('Band 1: red' gives 'red')."""
    name = layer.bandName(band)
    return name.split(": ", 1)[1] if ": " in name else ""


def guessed_bands(model_bands: tuple[str, ...], layer: QgsRasterLayer) -> tuple[int, ...]:
    """Best guess of the layer band for each model band; else 1..n (capped at the band count)."""
    provider = layer.dataProvider()
    count = layer.bandCount()
    try:
        return guess_band_indexes(
            model_bands,
            [_band_description(layer, b) for b in range(1, count + 1)],
            [provider.colorInterpretationName(b).lower() for b in range(1, count + 1)],
        )
    except PovertyMapperError:
        return tuple(min(i, count) for i in range(1, len(model_bands) + 1))


class PovertyDock(QDockWidget, FORM_CLASS):
    finished = pyqtSignal(bool)  # a run ended: True when its layer was added

    def __init__(self, iface, parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self.exportPanel = ExportPanel(iface, self.scrollContents)
        self.scrollLayout.insertWidget(self.scrollLayout.count() - 1, self.exportPanel)
        self.iface = iface
        self._run: ProcessingRun | None = None
        self._last_feedback: CollectingFeedback | None = None
        self._run_info: _RunInfo | None = None
        self._model: PovertyModel | None = None
        self._band_combos: list[QComboBox] = []
        self._drawn_extent: QgsReferencedRectangle | None = None
        self._extent_tool: QgsMapToolExtent | None = None
        self._previous_tool = None
        self._gpu_name = detected_gpu_name()

        self.layerCombo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.maskLayerCombo.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.regionCombo.addItem(tr("Whole layer"), Region.LAYER.value)
        self.regionCombo.addItem(tr("Current map extent"), Region.MAP_CANVAS.value)
        self.regionCombo.addItem(tr("Selected features of a polygon layer"), Region.SELECTED_FEATURES.value)
        self.regionCombo.addItem(tr("Rectangle drawn on the map"), Region.DRAWN.value)
        self.modelWidget.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        self.modelWidget.setFilter(tr("Poverty models (*{})").format(MODEL_SUFFIX))
        self._fill_device_combo()
        self.radiometryCombo.addItem(tr("Auto (from the data type)"), "auto")
        for key, preset in PRESETS.items():
            self.radiometryCombo.addItem(preset.label, key)
        self.strideSpin.setSpecialValueText(tr("tile size"))
        self.strideSpin.setToolTip(tr("Distance between tile centres; smaller than the tile size gives a finer map from overlapping tiles, and takes longer."))
        self.batchSpin.setSpecialValueText(tr("automatic"))
        self.batchSpin.setToolTip(tr("Tiles read and estimated together (automatic: small on the CPU, large on a GPU); cancelling takes effect after the current batch."))
        self.outputFileWidget.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.outputFileWidget.setFilter(tr("GeoTIFF (*.tif *.tiff)"))

        self._restore_settings()
        self._on_model_changed(self.modelWidget.filePath())
        self._on_region_changed()
        self._on_device_changed()
        self._on_output_mode_changed()

        self.layerCombo.layerChanged.connect(self._rebuild_band_combos)
        self.modelWidget.fileChanged.connect(self._on_model_changed)
        self.regionCombo.currentIndexChanged.connect(self._on_region_changed)
        self.drawButton.clicked.connect(self.start_drawing)
        self.deviceCombo.currentIndexChanged.connect(self._on_device_changed)
        self.outputFileRadio.toggled.connect(self._on_output_mode_changed)
        for signal in (
            self.modelWidget.fileChanged,
            self.regionCombo.currentIndexChanged,
            self.deviceCombo.currentIndexChanged,
            self.radiometryCombo.currentIndexChanged,
            self.strideSpin.valueChanged,
            self.batchSpin.valueChanged,
            self.outputFileRadio.toggled,
            self.outputFileWidget.fileChanged,
        ):
            signal.connect(self.save_settings)
        self.runButton.clicked.connect(self.run)
        self.cancelButton.clicked.connect(self.cancel)

    # -- settings -------------------------------------------------------------------
    def settings(self) -> DockSettings:
        """The widgets' values; the map extent is taken now."""
        layer = self.layerCombo.currentLayer()
        region = Region(self.regionCombo.currentData())
        mask_layer = self.maskLayerCombo.currentLayer()
        extent = None
        if region is Region.MAP_CANVAS:
            canvas = self.iface.mapCanvas()
            extent = QgsReferencedRectangle(canvas.extent(), canvas.mapSettings().destinationCrs())
        elif region is Region.DRAWN:
            extent = self._drawn_extent
        elif region is Region.SELECTED_FEATURES and isinstance(mask_layer, QgsVectorLayer) and mask_layer.selectedFeatureCount():
            extent = QgsReferencedRectangle(mask_layer.boundingBoxOfSelected(), mask_layer.crs())
        output_file = self.outputFileRadio.isChecked()
        return DockSettings(
            layer_id=layer.id() if layer else None,
            band_indexes=tuple(int(combo.currentData()) for combo in self._band_combos if combo.currentData() is not None),
            region=region,
            extent=extent,
            mask_layer_id=mask_layer.id() if region is Region.SELECTED_FEATURES and mask_layer else None,
            model_path=self.modelWidget.filePath() or str(DEFAULT_MODEL_PATH),
            device=self.deviceCombo.currentData(),
            radiometry=self.radiometryCombo.currentData(),
            stride_m=float(self.strideSpin.value()),
            batch_size=int(self.batchSpin.value()),
            output_path=(self.outputFileWidget.filePath() or None) if output_file else None,
        )

    def parameters(self, settings: DockSettings | None = None) -> dict:
        """Processing parameters for ``povertymapper:predict``."""
        settings = settings or self.settings()
        params = {
            "INPUT": settings.layer_id,
            "MODEL": settings.model_path,
            "BANDS": ",".join(str(b) for b in settings.band_indexes),
            "RADIOMETRY": RADIOMETRY_KEYS.index(settings.radiometry),
            "DEVICE": DEVICE_CHOICES.index(settings.device),
            "STRIDE": settings.stride_m,
            "BATCH_SIZE": settings.batch_size,
            "OUTPUT": settings.output_path or QgsProcessing.TEMPORARY_OUTPUT,
        }
        if settings.extent is not None:
            params["EXTENT"] = settings.extent
        if settings.region is Region.SELECTED_FEATURES and settings.mask_layer_id:
            params["MASK"] = QgsProcessingFeatureSourceDefinition(settings.mask_layer_id, selectedFeaturesOnly=True)
        return params

    def problem(self, settings: DockSettings) -> str | None:
        """What the user must fix before a run, or None."""
        if settings.layer_id is None:
            return tr("Choose a satellite image (a raster layer) first.")
        if self._model is None:
            return tr("The chosen model file cannot be read: {} Choose another model file.").format(self.modelCard.text())
        if settings.region is Region.SELECTED_FEATURES:
            mask_layer = QgsProject.instance().mapLayer(settings.mask_layer_id or "")
            if mask_layer is None:
                return tr("Choose the polygon layer whose selected features bound the region.")
            if mask_layer.selectedFeatureCount() == 0:
                return tr("No features are selected in '{}': select the polygons to map, or choose another region.").format(mask_layer.name())
        if settings.region is Region.DRAWN and settings.extent is None:
            return tr("Draw the region on the map first (button 'Draw on map'), or choose another region.")
        if self.outputFileRadio.isChecked() and settings.output_path is None:
            return tr("Choose the output file, or choose a temporary layer as output.")
        return None

    def save_settings(self) -> None:
        """Remember the choices for the next session."""
        settings = QgsSettings()
        model_path = self.modelWidget.filePath()
        # The bundled model is remembered as "" so that it is found wherever the plugin is installed.
        settings.setValue(SETTINGS_PREFIX + "model_path", "" if model_path == str(DEFAULT_MODEL_PATH) else model_path)
        settings.setValue(SETTINGS_PREFIX + "device", self.deviceCombo.currentData())
        settings.setValue(SETTINGS_PREFIX + "radiometry", self.radiometryCombo.currentData())
        settings.setValue(SETTINGS_PREFIX + "stride_m", float(self.strideSpin.value()))
        settings.setValue(SETTINGS_PREFIX + "batch_size", int(self.batchSpin.value()))
        settings.setValue(SETTINGS_PREFIX + "region", self.regionCombo.currentData())
        mode = OutputMode.FILE if self.outputFileRadio.isChecked() else OutputMode.TEMPORARY
        settings.setValue(SETTINGS_PREFIX + "output_mode", mode.value)
        settings.setValue(SETTINGS_PREFIX + "output_path", self.outputFileWidget.filePath())

    def _restore_settings(self) -> None:
        settings = QgsSettings()

        def value(key: str, default, kind):
            return settings.value(SETTINGS_PREFIX + key, default, type=kind)

        self.modelWidget.setFilePath(value("model_path", "", str) or str(DEFAULT_MODEL_PATH))
        self._select_data(self.deviceCombo, value("device", "auto", str))
        if not self.deviceCombo.model().item(self.deviceCombo.currentIndex()).isEnabled():
            self._select_data(self.deviceCombo, "auto")  # CUDA remembered, but no GPU now
        self._select_data(self.radiometryCombo, value("radiometry", "auto", str))
        self.strideSpin.setValue(value("stride_m", 0.0, float))
        self.batchSpin.setValue(value("batch_size", 0, int))
        try:
            region = Region(value("region", Region.LAYER.value, str))
        except ValueError:
            region = Region.LAYER
        self._select_data(self.regionCombo, region.value)
        self.outputFileRadio.setChecked(value("output_mode", OutputMode.TEMPORARY.value, str) == OutputMode.FILE.value)
        self.outputTempRadio.setChecked(not self.outputFileRadio.isChecked())
        self.outputFileWidget.setFilePath(value("output_path", "", str))

    @staticmethod
    def _select_data(combo: QComboBox, data) -> None:
        index = combo.findData(data)
        if index >= 0:
            combo.setCurrentIndex(index)

    # -- widgets --------------------------------------------------------------------
    def _fill_device_combo(self) -> None:
        self.deviceCombo.addItem(tr("Auto (the GPU when there is one)"), "auto")
        self.deviceCombo.addItem(tr("CPU"), "cpu")
        if self._gpu_name:
            self.deviceCombo.addItem(tr("CUDA: {}").format(self._gpu_name), "cuda")
        else:
            self.deviceCombo.addItem(tr("CUDA (no GPU found)"), "cuda")
            index = self.deviceCombo.count() - 1
            self.deviceCombo.model().item(index).setEnabled(False)
            self.deviceCombo.setItemData(
                index,
                tr("PyTorch sees no CUDA GPU here. A GPU needs its driver and a CUDA build of PyTorch."),
                Qt.ItemDataRole.ToolTipRole,
            )

    def _on_device_changed(self) -> None:
        if self.deviceCombo.currentData() != "auto":
            self.deviceNote.hide()
            return
        if self._gpu_name:
            self.deviceNote.setText(tr("Running on the GPU: {}.").format(self._gpu_name))
        else:
            self.deviceNote.setText(tr("No GPU found: running on the CPU."))
        self.deviceNote.show()

    def _on_model_changed(self, path: str) -> None:
        try:
            self._model = load_model(path or DEFAULT_MODEL_PATH)
        except PovertyMapperError as exc:
            self._model = None
            self.modelCard.setText(str(exc))
        else:
            self.modelCard.setText(self._model.card())
        self._rebuild_band_combos()

    def _rebuild_band_combos(self) -> None:
        """One combo per model band listing the layer's bands, the best guess preselected."""
        while self.bandsLayout.rowCount():
            self.bandsLayout.removeRow(0)
        self._band_combos = []
        self.bandsNote.clear()
        self.bandsNote.hide()  # an empty label would still leave a gap under the bands
        layer = self.layerCombo.currentLayer()
        if self._model is None or not isinstance(layer, QgsRasterLayer):
            return
        guess = guessed_bands(self._model.bands, layer)
        for model_band, layer_band in zip(self._model.bands, guess):
            combo = QComboBox(self.bandsWidget)
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(10)
            for band in range(1, layer.bandCount() + 1):
                combo.addItem(layer.bandName(band), band)
            self._select_data(combo, layer_band)
            self.bandsLayout.addRow(QLabel(model_band, self.bandsWidget), combo)
            self._band_combos.append(combo)
        if layer.bandCount() < len(self._model.bands):
            self.bandsNote.setText(
                tr("This layer has {} band(s) but the model expects {}: check that it is the right image.").format(
                    layer.bandCount(), len(self._model.bands)
                )
            )
            self.bandsNote.show()

    def _on_region_changed(self) -> None:
        region = Region(self.regionCombo.currentData())
        selected = region is Region.SELECTED_FEATURES
        drawn = region is Region.DRAWN
        self.maskRow.setVisible(selected)
        self.drawRow.setVisible(drawn)
        if not drawn:
            self._restore_map_tool()
        self._show_drawn_extent()

    def _on_output_mode_changed(self) -> None:
        self.outputFileWidget.setEnabled(self.outputFileRadio.isChecked())

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

    # -- running --------------------------------------------------------------------
    def run(self) -> None:
        settings = self.settings()
        problem = self.problem(settings)
        if problem:
            self._show_error(problem)
            return
        self.save_settings()
        layer = QgsProject.instance().mapLayer(settings.layer_id)
        self._run_info = _RunInfo(self._model, layer.name(), time.monotonic())
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
        self._restore_map_tool()

    def is_running(self) -> bool:
        return self.task is not None

    def _set_running(self, running: bool) -> None:
        self.runButton.setEnabled(not running)
        self.cancelButton.setEnabled(running)

    def _show_progress(self, percent: float) -> None:
        self.progressBar.setValue(int(percent))
        if self._run_info is not None:
            self.progressLabel.setText(progress_text(percent, time.monotonic() - self._run_info.started))

    def _finished(self, successful: bool, results: dict) -> None:
        """Main thread: add the styled layer, or say what went wrong."""
        run_info, feedback = self._run_info, self._run.feedback
        self._last_feedback, self._run = feedback, None
        self._set_running(False)
        elapsed = duration_text(time.monotonic() - run_info.started)
        if not successful:
            if feedback.isCanceled():
                self.progressLabel.setText(tr("Canceled after {}.").format(elapsed))
                self.statusLabel.setText(tr("Canceled: no output was written."))
                QgsMessageLog.logMessage(tr("Canceled: no output was written."), LOG_TAG, Qgis.MessageLevel.Info)
                self.finished.emit(False)
            else:
                message = (feedback.errors[-1] if feedback.errors else "") or tr(
                    "The prediction failed; see the Poverty Mapper log for details."
                )
                self._show_failure(message, feedback.textLog())
            return
        layer = open_result_layer(results["OUTPUT"], run_info.model, run_info.input_name, date.today())
        if layer is None:
            self._show_error(tr("The prediction ran but its output cannot be opened: {}").format(results["OUTPUT"]))
            self.finished.emit(False)
            return
        QgsProject.instance().addMapLayer(layer)
        self.exportPanel.set_poverty_map(layer)
        self.progressBar.setValue(100)
        self.progressLabel.setText(tr("Done in {}.").format(elapsed))
        summary = feedback.infos[-1] if feedback.infos else ""
        self.statusLabel.setText("\n".join(filter(None, [summary, tr("Output: {}").format(results["OUTPUT"])])))
        self.finished.emit(True)

    def _show_failure(self, message: str, details: str = "") -> None:
        self.progressLabel.clear()
        self.statusLabel.setText(message)
        self._show_error(message, details)
        self.finished.emit(False)

    def _show_error(self, message: str, details: str = "") -> None:
        """The message bar says what to fix; the log panel keeps the details."""
        show_error(self.iface, message, details)
