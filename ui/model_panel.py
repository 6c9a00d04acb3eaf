"""Model section of the dock: one of the bundled models, by name, or a model file; a
two-line summary of it, and its whole card behind "Details".

The names and the card come from the files' descriptions alone (:func:`read_model_info`),
so choosing a model neither loads its arrays nor imports torch; the prediction loads it.
"""
from __future__ import annotations

from pathlib import Path

from qgis.gui import QgsFileWidget
from qgis.PyQt import uic
from qgis.PyQt.QtCore import QCoreApplication, Qt, pyqtSignal
from qgis.PyQt.QtWidgets import QWidget

from ..core.errors import PovertyMapperError
from ..core.extractors.registry import extractor_class
from ..core.imagery.bundled_lights import LIGHTS_YEAR
from ..core.models.defaults import DEFAULT_MODEL_KEY, SAMPLE_MODEL_KEY, bundled_models
from ..core.models.model_file import MODEL_SUFFIX, ModelInfo, read_model_info
from .combo_box import select_data
from .settings import DockSetting

FORM_CLASS, _ = uic.loadUiType(str(Path(__file__).with_name("model_panel.ui")))

BUNDLED_PREFIX = "bundled:"  # how a bundled model is remembered: by its key, not its path
OTHER_FILE = "other file"  # the combo's data for "Other model file…" (no bundled key has a space)


def tr(text: str) -> str:
    return QCoreApplication.translate("ModelPanel", text)


EXAMPLE_KEYS = frozenset({SAMPLE_MODEL_KEY})  # bundled models offered as examples, never as a default


def reads_imagery(info: ModelInfo | None) -> bool:
    """Whether the model's features come from an image (False: the bundled night lights,
    where a region and a CRS are enough); True for an unknown or unreadable model."""
    if info is None:
        return True
    try:
        return bool(extractor_class(info.extractor_kind).reads_imagery)
    except ValueError:
        return True


def lights_note() -> str:
    """What a model of the bundled lights reads, in one line above its summary."""
    return tr("Night lights of {} (NASA Black Marble), bundled with the plugin: no image needed, a region "
              "is enough.").format(LIGHTS_YEAR)


def bundled_label(key: str, path: Path) -> str:
    """The combo's name for a bundled model: its own name and what it reads."""
    try:
        info = read_model_info(path)
    except PovertyMapperError:
        return key  # its card says what is wrong with it
    if not reads_imagery(info):
        return tr("{} (no image needed)").format(info.name)
    label = tr("{} ({}, {:g} m)").format(info.name, info.extractor_kind, info.pixel_size_m)
    return tr("Example: {}").format(label) if key in EXAMPLE_KEYS else label


class ModelPanel(QWidget, FORM_CLASS):
    modelChanged = pyqtSignal()  # another model was chosen: model_info() describes it

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self._info: ModelInfo | None = None
        self._bundled = bundled_models()
        for key, path in self._bundled.items():
            self.modelCombo.addItem(bundled_label(key, path), key)
        self.modelCombo.addItem(tr("Other model file…"), OTHER_FILE)
        self.modelWidget.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        self.modelWidget.setFilter(tr("Poverty models (*{})").format(MODEL_SUFFIX))
        self.modelCard.setVisible(False)
        self.detailsButton.toggled.connect(self._show_details)
        self._restore_settings()
        self._show_model()
        self.modelCombo.currentIndexChanged.connect(self._on_model_changed)
        self.modelWidget.fileChanged.connect(self._on_model_changed)

    def model_path(self) -> str:
        """The chosen bundled model's file, or the chosen model file ("" when none is chosen)."""
        key = self.modelCombo.currentData()
        return self.modelWidget.filePath() if key == OTHER_FILE else str(self._bundled[key])

    def add_below_choice(self, widget: QWidget) -> None:
        """Puts ``widget`` (what the chosen model needs besides the image) right under the
        model choice, above its summary."""
        self.modelLayout.insertWidget(self.modelLayout.indexOf(self.modelWidget) + 1, widget)

    def select_bundled(self, key: str) -> bool:
        """Chooses the bundled model ``key``; False when it is not there."""
        return select_data(self.modelCombo, key)

    def model_info(self) -> ModelInfo | None:
        """What the chosen file says about its model; None when it cannot be read."""
        return self._info

    def problem(self) -> str | None:
        """What the user must fix here before a run, or None."""
        if self._info is not None:
            return None
        if not self.model_path():
            return tr("Choose a model file, or one of the bundled models.")
        return tr("The chosen model file cannot be read: {} Choose another model file.").format(
            self.modelCard.text()
        )

    def save_settings(self) -> None:
        key = self.modelCombo.currentData()
        DockSetting.MODEL.write(self.modelWidget.filePath() if key == OTHER_FILE else BUNDLED_PREFIX + key)

    def _restore_settings(self) -> None:
        remembered = DockSetting.MODEL.read()
        if remembered and not remembered.startswith(BUNDLED_PREFIX):
            select_data(self.modelCombo, OTHER_FILE)
            self.modelWidget.setFilePath(remembered)
            return
        if not select_data(self.modelCombo, remembered[len(BUNDLED_PREFIX):]):
            # "" (what older versions remembered for the bundled model), or a bundled model no longer there
            select_data(self.modelCombo, DEFAULT_MODEL_KEY)

    def _on_model_changed(self) -> None:
        self._show_model()
        self.save_settings()
        self.modelChanged.emit()

    def _show_details(self, shown: bool) -> None:
        self.detailsButton.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.modelCard.setVisible(shown and self._info is not None)

    def _show_model(self) -> None:
        """The file widget only for "Other model file…"; the chosen model's summary below,
        its card behind "Details" (what is wrong with the file in the summary's place)."""
        self.modelWidget.setVisible(self.modelCombo.currentData() == OTHER_FILE)
        path = self.model_path()
        self._info = None
        if not path:
            text = tr("Choose a model file ({}).").format(MODEL_SUFFIX)
        else:
            try:
                self._info = read_model_info(path)
            except PovertyMapperError as exc:
                text = str(exc)
        self.modelCard.setText(self._info.card() if self._info else text)
        summary = self._info.summary() if self._info else text
        if self._info is not None and not reads_imagery(self._info):
            summary = f"{lights_note()}\n{summary}"
        self.modelSummary.setText(summary)
        self.detailsButton.setVisible(self._info is not None)
        self._show_details(self.detailsButton.isChecked())
