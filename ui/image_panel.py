"""Image section of the dock: the satellite image and which of its bands feeds each model band."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qgis.core import QgsMapLayerProxyModel, QgsProject, QgsRasterLayer, QgsUnitTypes
from qgis.PyQt import uic
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import QComboBox, QFileDialog, QLabel, QWidget

from ..core.errors import PovertyMapperError
from ..core.imagery.bands import duplicate_band_message, guess_band_indexes
from ..core.options import TileOptions
from ..provider.layer_inputs import RENDERED_BANDS, is_file_layer
from .band_set import build_band_set
from .combo_box import select_data

FORM_CLASS, _ = uic.loadUiType(str(Path(__file__).with_name("image_panel.ui")))


def tr(text: str) -> str:
    return QCoreApplication.translate("ImagePanel", text)


NO_IMAGE_TEXT = QCoreApplication.translate("ImagePanel", "(none: map the region from the bundled night lights)")


@dataclass(frozen=True)
class ImageChoice:
    layer_id: str | None
    band_indexes: tuple[int, ...]  # 1-based layer band per model band; empty = let the engine guess


def _band_description(layer: QgsRasterLayer, band: int) -> str:
    """The band's description from its QGIS name ('Band 1: red' gives 'red')."""
    name = layer.bandName(band)
    return name.split(": ", 1)[1] if ": " in name else ""


@dataclass(frozen=True)
class BandGuess:
    """The engine's guess of the layer band for each model band, or why it cannot guess."""

    band_indexes: tuple[int, ...] | None
    problem: str | None = None


def layer_bands(layer: QgsRasterLayer) -> list[tuple[str, str, str]]:
    """(label, description, colour interpretation) of each band the engine will read: a file's
    own bands; for a layer that is no file (XYZ, WMS...), the bands of its fetched image."""
    if not is_file_layer(layer):
        return [(tr("Band {}: {}").format(i, name), name, name) for i, name in enumerate(RENDERED_BANDS, start=1)]
    provider = layer.dataProvider()
    return [(layer.bandName(b), _band_description(layer, b), provider.colorInterpretationName(b).lower())
            for b in range(1, layer.bandCount() + 1)]


def guessed_bands(model_bands: tuple[str, ...], layer: QgsRasterLayer) -> BandGuess:
    """The engine's own guess (by band names, colour interpretation, or in order when the
    counts agree); when it cannot tell, no guess and its reason: the user chooses."""
    bands = layer_bands(layer)
    try:
        return BandGuess(guess_band_indexes(model_bands, [b[1] for b in bands], [b[2] for b in bands]))
    except PovertyMapperError as exc:
        return BandGuess(None, str(exc))


class ImagePanel(QWidget, FORM_CLASS):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setupUi(self)
        self._model_bands: tuple[str, ...] = ()
        self._band_combos: list[QComboBox] = []
        self._guess_problem: str | None = None
        self._tile_size_m: float | None = None
        self._imagery_needed = True
        self.layerCombo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self._clear_band_combos()
        self.layerCombo.layerChanged.connect(self._rebuild_band_combos)
        self.bandSetButton.clicked.connect(self._choose_band_set)

    @property
    def band_combos(self) -> tuple[QComboBox, ...]:
        """One combo per model band, in the model's band order."""
        return tuple(self._band_combos)

    def set_model_bands(self, bands: tuple[str, ...], tile_size_m: float | None = None) -> None:
        """The bands the chosen model reads (none when it cannot be read), and its tile size."""
        self._model_bands = bands
        self._tile_size_m = tile_size_m
        self._rebuild_band_combos()

    def set_imagery_needed(self, needed: bool) -> None:
        """For a model that reads no imagery (the bundled night lights) the image is optional:
        an empty first entry says so, and the band choices are hidden."""
        self._imagery_needed = needed
        layer = self.layerCombo.currentLayer()
        self.layerCombo.setAllowEmptyLayer(not needed, NO_IMAGE_TEXT)
        if not needed and layer is None:
            self.layerCombo.setLayer(None)  # the empty entry, not the first layer
        self.imageGroup.setTitle(tr("Satellite image") if needed else tr("Satellite image (optional)"))
        for widget in (self.bandSetButton, self.bandsLabel, self.bandsWidget):
            widget.setVisible(needed)
        self._rebuild_band_combos()

    @property
    def imagery_needed(self) -> bool:
        return self._imagery_needed

    def choice(self) -> ImageChoice:
        layer = self.layerCombo.currentLayer()
        return ImageChoice(
            layer_id=layer.id() if layer else None,
            band_indexes=tuple(int(c.currentData()) for c in self._band_combos if c.currentData() is not None),
        )

    def problem(self) -> str | None:
        """What the user must fix here before a run, or None."""
        layer = self.layerCombo.currentLayer()
        if layer is None:
            return tr("Choose a satellite image (a raster layer) first.") if self._imagery_needed else None
        if not self._model_bands or not self._imagery_needed:
            return None
        if isinstance(layer, QgsRasterLayer) and len(layer_bands(layer)) < len(self._model_bands):
            return self._guess_problem
        chosen = [combo.currentData() for combo in self._band_combos]
        if any(band is None for band in chosen):
            return tr("Choose which band of '{}' holds each of the model's bands ({}): {}").format(
                layer.name(), ", ".join(self._model_bands), self._guess_problem or ""
            )
        return duplicate_band_message(chosen, self._model_bands) or self._size_problem(layer)

    def _size_problem(self, layer) -> str | None:
        """An image too small for one tile of the model, said before Run (as the engine would after it)."""
        crs = layer.crs()
        if not self._tile_size_m or not crs.isValid() or crs.isGeographic() or not is_file_layer(layer):
            return None  # degrees: the engine measures it
        to_m = QgsUnitTypes.fromUnitToUnitFactor(crs.mapUnits(), QgsUnitTypes.DistanceMeters)
        width_m, height_m = layer.extent().width() * to_m, layer.extent().height() * to_m
        tile = self._tile_size_m
        if min(1.0, width_m / tile) * min(1.0, height_m / tile) >= TileOptions().min_valid_fraction:
            return None
        return tr("The image '{}' covers {:.1f} x {:.1f} km, smaller than one {:g} km tile of the model: use a "
                  "larger image, or a model with smaller tiles.").format(
            layer.name(), width_m / 1000, height_m / 1000, tile / 1000)

    def add_band_set(self, paths: list[str]) -> QgsRasterLayer:
        """Stacks single-band files into one image (a VRT beside them), adds it and chooses it."""
        vrt = build_band_set(paths)
        layer = QgsRasterLayer(str(vrt), vrt.stem)
        QgsProject.instance().addMapLayer(layer)
        self.layerCombo.setLayer(layer)
        return layer

    def _choose_band_set(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self, tr("Single-band files, one per band"), "", tr("Rasters (*.tif *.TIF *.tiff *.jp2 *.vrt);;All files (*)"))
        if not paths:
            return
        try:
            self.add_band_set(paths)
        except PovertyMapperError as exc:
            self.bandsNote.setText(str(exc))
            self.bandsNote.show()

    def _rebuild_band_combos(self) -> None:
        """One combo per model band listing the layer's bands, the best guess preselected."""
        self._clear_band_combos()
        layer = self.layerCombo.currentLayer()
        if not self._model_bands or not self._imagery_needed or not isinstance(layer, QgsRasterLayer):
            return
        guess = guessed_bands(self._model_bands, layer)
        self._guess_problem = guess.problem
        for i, model_band in enumerate(self._model_bands):
            combo = self._band_combo(layer)
            select_data(combo, guess.band_indexes[i] if guess.band_indexes else None)
            combo.currentIndexChanged.connect(self._show_band_problem)
            self.bandsLayout.addRow(QLabel(model_band, self.bandsWidget), combo)
            self._band_combos.append(combo)
        self._show_band_problem()

    def _show_band_problem(self) -> None:
        """Under the bands: why they cannot be used as they are (the engine's reason)."""
        problem = self.problem() if self._band_combos else None
        self.bandsNote.setText(problem or "")
        self.bandsNote.setVisible(bool(problem))

    def _clear_band_combos(self) -> None:
        while self.bandsLayout.rowCount():
            self.bandsLayout.removeRow(0)
        self._band_combos = []
        self._guess_problem = None
        self.bandsNote.clear()
        self.bandsNote.hide()  # an empty label would still leave a gap under the bands

    def _band_combo(self, layer: QgsRasterLayer) -> QComboBox:
        combo = QComboBox(self.bandsWidget)
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(10)
        combo.addItem(tr("Choose a band…"), None)
        for band, (label, _description, _interpretation) in enumerate(layer_bands(layer), start=1):
            combo.addItem(label, band)
        return combo
