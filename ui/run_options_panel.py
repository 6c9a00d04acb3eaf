"""Run options of the dock: the device, the advanced knobs (stride, batch, radiometry)
and where the map goes (a temporary layer or a GeoTIFF file)."""
from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from qgis.core import QgsProject
from qgis.gui import QgsFileWidget
from qgis.PyQt import uic
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtWidgets import QWidget

from ..core.device import cuda_device_name
from ..core.errors import PovertyMapperError
from ..core.inference.writer import check_geotiff_name
from ..core.imagery.radiometry import PRESETS
from .combo_box import select_data
from .settings import DockSetting

FORM_CLASS, _ = uic.loadUiType(str(Path(__file__).with_name("run_options_panel.ui")))


def tr(text: str) -> str:
    return QCoreApplication.translate("RunOptionsPanel", text)


def output_file_problem(path: str) -> str | None:
    """Why the map cannot be written to ``path`` (a GeoTIFF), or None."""
    try:
        check_geotiff_name(path)
    except PovertyMapperError as exc:
        return str(exc)
    target = Path(path).resolve()
    for layer in QgsProject.instance().mapLayers().values():
        source = layer.source().split("|")[0]
        if source and Path(source).resolve() == target:
            return tr("'{}' is the file of the layer '{}' in this project: choose another file name, so as not "
                      "to overwrite that map.").format(Path(path).name, layer.name())
    return None


class OutputMode(enum.Enum):
    TEMPORARY = "temporary"
    FILE = "file"


@dataclass(frozen=True)
class RunOptions:
    device: str  # one of DEVICE_CHOICES
    radiometry: str  # one of RADIOMETRY_KEYS
    stride_m: float  # 0 = the model's tile size
    batch_size: int  # 0 = automatic
    output_path: str | None  # None = temporary layer


class RunOptionsPanel(QWidget, FORM_CLASS):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self._gpu_name = cuda_device_name()
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
        self._on_device_changed()
        self._on_output_mode_changed()
        self.deviceCombo.currentIndexChanged.connect(self._on_device_changed)
        self.outputFileRadio.toggled.connect(self._on_output_mode_changed)
        for signal in (
            self.deviceCombo.currentIndexChanged,
            self.radiometryCombo.currentIndexChanged,
            self.strideSpin.valueChanged,
            self.batchSpin.valueChanged,
            self.outputFileRadio.toggled,
            self.outputFileWidget.fileChanged,
        ):
            signal.connect(self.save_settings)

    def options(self) -> RunOptions:
        return RunOptions(
            device=self.deviceCombo.currentData(),
            radiometry=self.radiometryCombo.currentData(),
            stride_m=float(self.strideSpin.value()),
            batch_size=int(self.batchSpin.value()),
            output_path=(self.outputFileWidget.filePath() or None) if self.outputFileRadio.isChecked() else None,
        )

    def problem(self) -> str | None:
        """What the user must fix here before a run, or None."""
        if not self.outputFileRadio.isChecked():
            return None
        if not self.outputFileWidget.filePath():
            return tr("Choose the output file, or choose a temporary layer as output.")
        return output_file_problem(self.outputFileWidget.filePath())

    def save_settings(self) -> None:
        DockSetting.DEVICE.write(self.deviceCombo.currentData())
        DockSetting.RADIOMETRY.write(self.radiometryCombo.currentData())
        DockSetting.STRIDE_M.write(float(self.strideSpin.value()))
        DockSetting.BATCH_SIZE.write(int(self.batchSpin.value()))
        mode = OutputMode.FILE if self.outputFileRadio.isChecked() else OutputMode.TEMPORARY
        DockSetting.OUTPUT_MODE.write(mode.value)
        if self.outputFileWidget.filePath():
            DockSetting.OUTPUT_FOLDER.write(str(Path(self.outputFileWidget.filePath()).parent))

    def _restore_settings(self) -> None:
        select_data(self.deviceCombo, DockSetting.DEVICE.read())
        if not self.deviceCombo.model().item(self.deviceCombo.currentIndex()).isEnabled():
            select_data(self.deviceCombo, "auto")  # CUDA remembered, but no GPU now
        select_data(self.radiometryCombo, DockSetting.RADIOMETRY.read())
        self.strideSpin.setValue(DockSetting.STRIDE_M.read())
        self.batchSpin.setValue(DockSetting.BATCH_SIZE.read())
        self.outputFileRadio.setChecked(DockSetting.OUTPUT_MODE.read() == OutputMode.FILE.value)
        self.outputTempRadio.setChecked(not self.outputFileRadio.isChecked())
        self.outputFileWidget.setDefaultRoot(DockSetting.OUTPUT_FOLDER.read())  # the folder, not the file

    def _fill_device_combo(self) -> None:
        self.deviceCombo.addItem(tr("Auto (the GPU when there is one)"), "auto")
        self.deviceCombo.addItem(tr("CPU"), "cpu")
        if self._gpu_name:
            self.deviceCombo.addItem(tr("CUDA: {}").format(self._gpu_name), "cuda")
            return
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

    def _on_output_mode_changed(self) -> None:
        self.outputFileWidget.setEnabled(self.outputFileRadio.isChecked())
