"""The dock widget in a new project, driven as a user would (qgis_iface stub)."""
from __future__ import annotations

import dataclasses
import os
import shutil
from datetime import date

import numpy as np
import pytest
import rasterio
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsFeature,
    QgsGeometry,
    QgsProcessingFeatureSourceDefinition,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsReferencedRectangle,
    QgsSettings,
    QgsSingleBandPseudoColorRenderer,
    QgsTask,
    QgsVectorLayer,
)
from qgis.gui import QgsMapToolExtent, QgsMapToolPan
from qgis.PyQt.QtCore import Qt
from rasterio.transform import from_origin

from conftest import ROOT
from dock_helpers import MODEL_NAME, SAMPLE, choose, dock, choose_model_file, make_dock, run_and_wait, sample_layer  # noqa: F401 (fixtures)
from helpers import assert_same_map, engine_map
from poverty_mapper.core.models.defaults import DEFAULT_MODEL_PATH



def partial_files(folder) -> list[str]:
    return [name for name in os.listdir(folder) if ".partial" in name]


pytestmark = pytest.mark.usefixtures("clean_settings")  # no remembered choices before or after


@pytest.fixture()
def polygons(sample_layer):
    """Two squares over the sample scene, in its CRS; neither selected."""
    extent = sample_layer.extent()
    layer = QgsVectorLayer(f"Polygon?crs={sample_layer.crs().authid()}", "districts", "memory")
    features = []
    for dx in (0.0, 0.5):
        x0 = extent.xMinimum() + dx * extent.width()
        y0 = extent.yMinimum()
        feature = QgsFeature()
        feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(x0, y0, x0 + 0.4 * extent.width(), y0 + 0.4 * extent.height())))
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    QgsProject.instance().addMapLayer(layer)
    return layer


@pytest.fixture()
def four_band_layer(tmp_path, qgis_new_project):
    """A 4-band image whose bands are described red, green, blue, nir (in that order)."""
    path = tmp_path / "four_bands.tif"
    profile = dict(driver="GTiff", width=64, height=64, count=4, dtype="uint16", crs="EPSG:32721",
                   transform=from_origin(700_000, 7_200_000, 30, 30))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((4, 64, 64), 9000, np.uint16))
        for band, name in enumerate(("red", "green", "blue", "nir"), start=1):
            dst.set_band_description(band, name)
    layer = QgsRasterLayer(str(path), "four bands")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer





# -- model, layers, device, advanced --------------------------------------------------
def test_the_night_lights_model_shows_its_layer_picker(make_dock, sample_layer, qgis_iface):
    dock = make_dock()
    choose(dock.modelPanel.modelCombo, "africa_nightlights_viirs")  # the default reads the bundled lights
    assert dock.modelPanel.model_path().endswith("africa_nightlights_viirs.povmodel")
    card = dock.modelPanel.modelCard.text()
    assert "nW/cm²/sr" in card and "Out of country (fitted on the other countries): r² 0.39" in card
    assert not dock.nightlightsPanel.isHidden() and dock.nightlightsPanel.isEnabled()
    assert "nW/cm²/sr" in dock.nightlightsPanel.note.text()
    assert dock.imagePanel.band_combos == ()  # NIGHTLIGHTS comes from its own layer, not the image's bands
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    assert "choose a night-lights layer" in dock.problem() and "nW/cm²/sr" in dock.problem()
    assert not dock.runButton.isEnabled() and "night-lights layer" in dock.runHint.text()
    qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical).clear()
    dock.run()
    assert not dock.is_running()
    assert any("choose a night-lights layer" in m for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical))
    dock.nightlightsPanel.layerCombo.setLayer(sample_layer)
    assert dock.problem() is None
    assert dock.parameters()["NIGHTLIGHTS"] == sample_layer.id()
    choose(dock.modelPanel.modelCombo, "rgb_histogram")
    assert dock.nightlightsPanel.isHidden() and "NIGHTLIGHTS" not in dock.parameters()
    assert len(dock.imagePanel.band_combos) == 3


def test_dock_shows_the_rgb_model_card(dock):
    assert dock.modelPanel.modelCombo.currentText().startswith(f"Example: {MODEL_NAME}")
    assert dock.modelPanel.model_path().endswith("default.povmodel")
    assert dock.modelPanel.modelWidget.isHidden()  # no file picker showing the plugin's own path
    card = dock.modelPanel.modelCard.text()
    assert "asset wealth index" in card  # what it predicts
    assert "3020 LSMS cluster-years" in card  # trained on what
    assert "r² 0.27" in card and "R² 0.27" in card  # how good
    assert "BLUE, GREEN, RED" in card and "30 m" in card  # the imagery it expects


def test_dock_lists_only_raster_layers(dock, sample_layer, polygons):
    names = [dock.imagePanel.layerCombo.itemText(i) for i in range(dock.imagePanel.layerCombo.count())]
    assert names == ["Parana Landsat 8"]
    mask_names = [dock.regionPanel.maskLayerCombo.itemText(i) for i in range(dock.regionPanel.maskLayerCombo.count())]
    assert mask_names == ["districts"]


def test_without_gpu_cuda_is_disabled_and_auto_says_cpu(make_dock, monkeypatch):
    from poverty_mapper.ui import run_options_panel

    monkeypatch.setattr(run_options_panel, "cuda_device_name", lambda: None)  # whatever GPU this machine has
    dock = make_dock()
    choose(dock.modelPanel.modelCombo, "rgb_histogram")
    index = dock.optionsPanel.deviceCombo.findData("cuda")
    assert not dock.optionsPanel.deviceCombo.model().item(index).isEnabled()
    assert "no CUDA GPU" in dock.optionsPanel.deviceCombo.itemData(index, Qt.ItemDataRole.ToolTipRole)
    assert dock.optionsPanel.deviceCombo.currentData() == "auto"
    assert not dock.optionsPanel.deviceNote.isHidden()
    assert "No GPU found: running on the CPU" in dock.optionsPanel.deviceNote.text()
    choose(dock.optionsPanel.deviceCombo, "cpu")
    assert dock.optionsPanel.deviceNote.isHidden()
    assert dock.parameters()["DEVICE"] == 1


def test_with_a_gpu_cuda_is_offered_by_name(make_dock, monkeypatch):
    from poverty_mapper.ui import run_options_panel

    monkeypatch.setattr(run_options_panel, "cuda_device_name", lambda: "Test GPU 80GB")
    dock = make_dock()
    index = dock.optionsPanel.deviceCombo.findData("cuda")
    assert dock.optionsPanel.deviceCombo.model().item(index).isEnabled()
    assert "Test GPU 80GB" in dock.optionsPanel.deviceCombo.itemText(index)
    assert "No GPU found" not in dock.optionsPanel.deviceNote.text()
    choose(dock.optionsPanel.deviceCombo, "cuda")
    assert dock.parameters()["DEVICE"] == 2


def test_advanced_section_is_collapsed_and_feeds_the_parameters(dock, sample_layer):
    assert dock.optionsPanel.advancedGroup.isCollapsed()
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    dock.optionsPanel.strideSpin.setValue(960)
    dock.optionsPanel.batchSpin.setValue(8)
    choose(dock.optionsPanel.radiometryCombo, "landsat_c2_l2")
    params = dock.parameters()
    assert params["STRIDE"] == 960 and params["BATCH_SIZE"] == 8
    assert params["RADIOMETRY"] == 3  # the algorithm's enum: auto, reflectance, landsat_c1_l1, landsat_c2_l2, …
    assert params["INPUT"] == sample_layer.id()
    assert params["MODEL"].endswith("default.povmodel")
    assert params["OUTPUT"] == "TEMPORARY_OUTPUT"


def test_progress_text_estimates_time_left_from_elapsed_time():
    from poverty_mapper.ui.dock import progress_text

    assert progress_text(25, 60) == "Tiles: 25 % done, 1 min 0 s elapsed, about 3 min 0 s left"
    assert progress_text(50, 10) == "Tiles: 50 % done, 10 s elapsed, about 10 s left"
    assert "estimating" in progress_text(0, 3)


# -- band mapping -----------------------------------------------------------------------
def test_band_mapping_preselects_by_band_name_and_follows_the_combos(dock, four_band_layer):
    dock.imagePanel.layerCombo.setLayer(four_band_layer)
    labels = [dock.imagePanel.bandsLayout.itemAt(row, dock.imagePanel.bandsLayout.ItemRole.LabelRole).widget().text()
              for row in range(dock.imagePanel.bandsLayout.rowCount())]
    assert labels == ["BLUE", "GREEN", "RED"]
    assert [combo.currentData() for combo in dock.imagePanel.band_combos] == [3, 2, 1]
    assert [dock.imagePanel.band_combos[0].itemText(i) for i in range(5)] == [
        "Choose a band…", "Band 1: red", "Band 2: green", "Band 3: blue", "Band 4: nir"]
    assert dock.parameters()["BANDS"] == "3,2,1"
    choose(dock.imagePanel.band_combos[0], 4)
    assert dock.parameters()["BANDS"] == "4,2,1"


def test_band_mapping_falls_back_to_band_order(dock, sample_layer):
    dock.imagePanel.layerCombo.setLayer(sample_layer)  # three bands without names
    assert dock.parameters()["BANDS"] == "1,2,3"
    assert dock.imagePanel.bandsNote.text() == ""


def _refused_with(dock, qgis_iface, text) -> None:
    """Run is clicked and refused before any task starts, with ``text`` in the message bar."""
    dock.run()
    assert not dock.is_running()
    assert any(text in m for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical))


def test_a_one_band_raster_is_refused_with_the_engines_reason(dock, tmp_path, qgis_iface):
    """A population raster chosen as the image: not bands 1,1,1, but the reason it cannot be mapped."""
    path = tmp_path / "population.tif"
    with rasterio.open(path, "w", driver="GTiff", width=32, height=32, count=1, dtype="float32", crs="EPSG:32721",
                       transform=from_origin(700_000, 7_200_000, 100, 100)) as dst:
        dst.write(np.full((1, 32, 32), 12.5, np.float32))
    layer = QgsRasterLayer(str(path), "population")
    QgsProject.instance().addMapLayer(layer)
    dock.imagePanel.layerCombo.setLayer(layer)
    assert [combo.currentData() for combo in dock.imagePanel.band_combos] == [None, None, None]
    assert "has only 1" in dock.imagePanel.bandsNote.text() and dock.imagePanel.bandsNote.isVisibleTo(dock)
    _refused_with(dock, qgis_iface, "needs 3 bands (BLUE, GREEN, RED) but the raster has only 1")


def test_bands_that_cannot_be_matched_are_left_to_the_user(dock, real_data, qgis_iface):
    """The real 6-band Landsat 7 scene: no silent 1,2,3; the user chooses, then it runs with those."""
    layer = QgsRasterLayer(str(real_data / "scenes" / "landsat7_olinda_6band_28m.tif"), "Olinda Landsat 7")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    dock.imagePanel.layerCombo.setLayer(layer)
    assert [combo.currentData() for combo in dock.imagePanel.band_combos] == [None, None, None]
    assert "Cannot tell which of the raster's 6 bands" in dock.imagePanel.bandsNote.text()
    _refused_with(dock, qgis_iface, "Choose which band of 'Olinda Landsat 7' holds each of the model's bands")
    for combo, band in zip(dock.imagePanel.band_combos, (1, 2, 3)):  # ETM+ bands 1, 2, 3: blue, green, red
        choose(combo, band)
    assert dock.problem() is None and not dock.imagePanel.bandsNote.isVisibleTo(dock)
    assert dock.parameters()["BANDS"] == "1,2,3"


def test_a_layer_that_is_no_file_is_mapped_for_the_map_extent(dock, xyz_layer_url, sample_layer, qtbot, qgis_iface):
    """XYZ tiles (a 'wms' layer): its fetched image's red, green, blue feed the model; the region is the map extent."""
    layer = QgsRasterLayer(xyz_layer_url, "XYZ imagery", "wms")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    dock.imagePanel.layerCombo.setLayer(layer)
    assert [combo.currentData() for combo in dock.imagePanel.band_combos] == [3, 2, 1]  # blue, green, red by name
    qgis_iface.mapCanvas().setDestinationCrs(sample_layer.crs())
    extent = sample_layer.extent()
    extent.grow(-3000)
    qgis_iface.mapCanvas().setExtent(extent)
    choose(dock.regionPanel.regionCombo, "canvas")
    ok, added = run_and_wait(dock, qtbot)
    assert ok is True and len(added) == 1
    with rasterio.open(added[0].source()) as ds:
        assert ds.read(1, masked=True).count() >= 16


def _split_sample(folder) -> list[str]:
    """The bundled real scene (Landsat 8 B2, B3, B4) as per-band files named as USGS names them."""
    paths = []
    with rasterio.open(SAMPLE) as src:
        for band, number in ((3, 4), (2, 3), (1, 2)):  # chosen red, green, blue: not the model's order
            path = folder / f"LC08_L1TP_224077_20200518_20200527_01_T1_B{number}.TIF"
            profile = {**src.profile, "count": 1}
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(src.read(band), 1)
            paths.append(str(path))
    return paths


def test_a_band_set_of_single_band_files_is_mapped(dock, tmp_path, qtbot, monkeypatch):
    from qgis.PyQt.QtWidgets import QFileDialog

    paths = _split_sample(tmp_path)
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *args, **kwargs: (paths, ""))
    dock.imagePanel.bandSetButton.click()
    layer = dock.imagePanel.layerCombo.currentLayer()
    assert layer.source().endswith("LC08_L1TP_224077_20200518_20200527_01_T1_red_green_blue.vrt")
    assert [combo.currentData() for combo in dock.imagePanel.band_combos] == [3, 2, 1]  # BLUE is B2, the third file
    ok, added = run_and_wait(dock, qtbot)
    assert ok is True and len(added) == 1
    # Cell for cell the engine's map of the three-band scene the files were cut from.
    assert_same_map(added[0].source().split("|")[0], engine_map(SAMPLE, tmp_path / "engine.tif", DEFAULT_MODEL_PATH))


def test_a_band_set_says_what_is_wrong(dock, tmp_path, monkeypatch):
    from qgis.PyQt.QtWidgets import QFileDialog

    from poverty_mapper.ui.band_set import band_name

    assert [band_name(f"LE07_L1TP_214066_20020622_B{n}.TIF") for n in (1, 2, 3, 8)] == ["blue", "green", "red", "B8"]
    assert band_name("LC09_L2SP_224077_20220518_SR_B2.TIF") == "blue"
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *args, **kwargs: ([str(SAMPLE), str(SAMPLE)], ""))
    dock.imagePanel.bandSetButton.click()
    assert "has 3 bands; a band set is made of single-band files" in dock.imagePanel.bandsNote.text()


def test_one_band_chosen_for_two_model_bands_is_refused(dock, sample_layer, qgis_iface):
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    for combo in dock.imagePanel.band_combos:
        choose(combo, 1)
    assert "each model band needs its own band" in dock.imagePanel.bandsNote.text()
    _refused_with(dock, qgis_iface, "The model's bands BLUE and GREEN and RED would all read band 1")


# -- regions ----------------------------------------------------------------------------
def test_region_whole_layer_has_neither_extent_nor_mask(dock, sample_layer):
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    choose(dock.regionPanel.regionCombo, "layer")
    params = dock.parameters()
    assert "EXTENT" not in params and "MASK" not in params


def test_region_map_extent_is_the_canvas_extent_in_its_crs(dock, sample_layer, qgis_iface):
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(sample_layer.crs())
    extent = sample_layer.extent()
    canvas.setExtent(QgsRectangle(extent.xMinimum(), extent.yMinimum(), extent.center().x(), extent.center().y()))
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    choose(dock.regionPanel.regionCombo, "canvas")
    params = dock.parameters()
    assert isinstance(params["EXTENT"], QgsReferencedRectangle)
    assert params["EXTENT"] == QgsRectangle(canvas.extent())
    assert params["EXTENT"].crs() == sample_layer.crs()
    assert "MASK" not in params


def test_region_selected_features_masks_with_the_selection(dock, sample_layer, polygons, qgis_iface):
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    choose(dock.regionPanel.regionCombo, "selected")
    assert not dock.regionPanel.maskRow.isHidden() and dock.regionPanel.drawRow.isHidden()
    dock.regionPanel.maskLayerCombo.setLayer(polygons)

    dock.run()  # nothing selected yet
    assert not dock.is_running()
    assert any("No features are selected in 'districts'" in m
               for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical))

    first = next(polygons.getFeatures())
    polygons.selectByIds([first.id()])
    params = dock.parameters()
    mask = params["MASK"]
    assert isinstance(mask, QgsProcessingFeatureSourceDefinition)
    assert mask.source.staticValue() == polygons.id()
    assert mask.selectedFeaturesOnly
    assert params["EXTENT"] == first.geometry().boundingBox()
    assert params["EXTENT"].crs() == polygons.crs()


def test_region_drawn_rectangle_uses_a_map_tool_and_gives_the_previous_one_back(dock, sample_layer, qgis_iface):
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(sample_layer.crs())
    pan = QgsMapToolPan(canvas)
    canvas.setMapTool(pan)
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    choose(dock.regionPanel.regionCombo, "drawn")
    assert not dock.regionPanel.drawRow.isHidden() and dock.regionPanel.maskRow.isHidden()

    dock.run()  # nothing drawn yet
    assert not dock.is_running()
    assert any("Draw the region on the map first" in m
               for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical))

    dock.regionPanel.drawButton.click()
    tool = canvas.mapTool()
    assert isinstance(tool, QgsMapToolExtent)
    extent = sample_layer.extent()
    drawn = QgsRectangle(extent.xMinimum() + 1000, extent.yMinimum() + 2000, extent.xMinimum() + 15000, extent.yMinimum() + 16000)
    tool.extentChanged.emit(drawn)
    assert canvas.mapTool() is pan
    params = dock.parameters()
    assert params["EXTENT"] == drawn
    assert params["EXTENT"].crs() == sample_layer.crs()
    assert "MASK" not in params
    assert "EPSG:32621" in dock.regionPanel.drawnExtentLabel.text()


# -- running ----------------------------------------------------------------------------
def test_run_adds_a_styled_poverty_layer_with_metadata(dock, sample_layer, qtbot):
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    dock.optionsPanel.batchSpin.setValue(8)  # 42 tiles: several progress steps
    progress: list[tuple[int, str]] = []
    dock.progressBar.valueChanged.connect(lambda value: progress.append((value, dock.progressLabel.text())))
    ok, added = run_and_wait(dock, qtbot)
    assert ok is True
    assert len(added) == 1
    layer = added[0]
    assert isinstance(layer, QgsRasterLayer) and layer.isValid()
    assert layer.name() == f"Poverty map: {MODEL_NAME} on Parana Landsat 8"
    assert isinstance(layer.renderer(), QgsSingleBandPseudoColorRenderer)
    metadata = layer.metadata()
    assert metadata.title() == layer.name()
    for part in (MODEL_NAME, "Parana Landsat 8", date.today().isoformat(), "not survey measurements"):
        assert part in metadata.abstract()
    assert "poverty" in metadata.keywords()["Poverty Mapper"]
    assert MODEL_NAME in metadata.keywords()["Poverty Mapper"]
    assert dock.progressBar.value() == 100
    assert any(0 < value < 100 and "% done" in text for value, text in progress), progress
    assert dock.progressLabel.text().startswith("Done in")
    assert "Estimated" in dock.statusLabel.text()  # the algorithm's own count of cells
    # The run's warnings reach the dock: Level-1 DN read as approximate reflectance, and
    # the cells outside the survey outcomes' range (extrapolations) on this Brazilian scene.
    status = dock.statusLabel.text()
    assert "Note: Level-1 DN" in status and "extrapolations" in status


def test_run_writes_the_chosen_file(dock, sample_layer, qtbot, tmp_path):
    target = tmp_path / "poverty.tif"
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    dock.optionsPanel.outputFileRadio.setChecked(True)
    assert dock.optionsPanel.outputFileWidget.isEnabled()
    dock.optionsPanel.outputFileWidget.setFilePath(str(target))
    assert dock.parameters()["OUTPUT"] == str(target)
    ok, added = run_and_wait(dock, qtbot)
    assert ok is True
    assert target.is_file()
    assert len(added) == 1 and added[0].source() == str(target)
    assert partial_files(tmp_path) == []


def test_run_on_a_drawn_rectangle_maps_only_that_rectangle(dock, sample_layer, qtbot, qgis_iface, tmp_path):
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(sample_layer.crs())
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    choose(dock.regionPanel.regionCombo, "drawn")
    dock.regionPanel.drawButton.click()
    extent = sample_layer.extent()
    drawn = QgsRectangle(extent.xMinimum(), extent.yMinimum(), extent.xMinimum() + 14_000, extent.yMinimum() + 14_000)
    canvas.mapTool().extentChanged.emit(drawn)
    ok, added = run_and_wait(dock, qtbot)
    assert ok is True and len(added) == 1
    # 14 km square, tiles of 6.72 km: 3 x 3 cells, where the whole scene gives 6 x 7.
    assert (added[0].width(), added[0].height()) == (3, 3)
    assert added[0].extent().intersects(drawn)


def test_run_on_selected_features_succeeds(dock, sample_layer, polygons, qtbot):
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    choose(dock.regionPanel.regionCombo, "selected")
    dock.regionPanel.maskLayerCombo.setLayer(polygons)
    first = next(polygons.getFeatures())
    polygons.selectByIds([first.id()])
    ok, added = run_and_wait(dock, qtbot)
    assert ok is True and len(added) == 1
    assert added[0].width() < 6 and added[0].height() < 7  # the selection's bounds, not the scene's


def test_cancel_stops_the_run_and_leaves_no_file(dock, sample_layer, qtbot, qgis_iface, tmp_path, monkeypatch):
    """The run is held inside its first batch until Cancel is clicked, then let go: it
    stops before a second batch, whatever the machine's speed."""
    import threading

    from poverty_mapper.core.inference import mapping_job

    first_batch, clicked, batches = threading.Event(), threading.Event(), []
    estimate_tiles = mapping_job.estimate_tiles

    def held_first_batch(*args):
        batches.append(len(args[2]))
        if len(batches) == 1:
            first_batch.set()
            clicked.wait(timeout=600)  # never waits for ever should the test itself fail
        return estimate_tiles(*args)

    monkeypatch.setattr(mapping_job, "estimate_tiles", held_first_batch)
    target = tmp_path / "canceled.tif"
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    dock.optionsPanel.strideSpin.setValue(120)  # about 110,000 overlapping tiles: minutes of work
    dock.optionsPanel.batchSpin.setValue(16)
    dock.optionsPanel.outputFileRadio.setChecked(True)
    dock.optionsPanel.outputFileWidget.setFilePath(str(target))
    before = set(QgsProject.instance().mapLayers())
    criticals = len(qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical))
    dock.runButton.click()
    assert dock.is_running()
    qtbot.waitUntil(first_batch.is_set, timeout=300_000)
    assert partial_files(tmp_path) != []  # the engine is writing its temporary file
    with qtbot.waitSignal(dock.finished, timeout=300_000) as blocker:
        dock.cancelButton.click()
        clicked.set()
    assert batches == [16]  # the batch it was in finished; no other began
    assert blocker.args == [False]
    assert set(QgsProject.instance().mapLayers()) == before
    assert not target.exists()
    assert partial_files(tmp_path) == []
    assert "Cancelled" in dock.statusLabel.text()
    assert len(qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical)) == criticals  # not an error
    assert dock.progressBar.value() < 100
    assert dock.runButton.isEnabled() and not dock.cancelButton.isEnabled()


def test_leaving_the_drawn_region_gives_the_map_tool_back(dock, qgis_iface):
    canvas = qgis_iface.mapCanvas()
    pan = QgsMapToolPan(canvas)
    canvas.setMapTool(pan)
    choose(dock.regionPanel.regionCombo, "drawn")
    dock.regionPanel.drawButton.click()
    assert isinstance(canvas.mapTool(), QgsMapToolExtent)
    choose(dock.regionPanel.regionCombo, "layer")
    assert canvas.mapTool() is pan


def test_unload_stops_a_run_and_gives_the_map_tool_back(dock, sample_layer, qtbot, qgis_iface):
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(sample_layer.crs())
    pan = QgsMapToolPan(canvas)
    canvas.setMapTool(pan)
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    dock.optionsPanel.strideSpin.setValue(120)
    choose(dock.regionPanel.regionCombo, "drawn")
    dock.regionPanel.drawButton.click()
    canvas.mapTool().extentChanged.emit(sample_layer.extent())
    dock.regionPanel.drawButton.click()  # drawing again while the plugin is unloaded
    assert isinstance(canvas.mapTool(), QgsMapToolExtent)
    dock.runButton.click()
    task = dock.task
    qtbot.waitUntil(lambda: task.status() == QgsTask.TaskStatus.Running, timeout=30_000)
    dock.unload()
    assert task.status() == QgsTask.TaskStatus.Terminated
    assert canvas.mapTool() is pan


def test_a_run_outlives_its_dock_until_qgis_deletes_the_task(qgis_iface, qgis_new_project, poverty_provider,
                                                             sample_layer, qtbot):
    """The task refers to its run's context and feedback until QGIS deletes it (after the
    main thread's 'finished'): a dock unloaded and dropped mid-run must not take them along."""
    import gc
    import weakref

    from qgis.PyQt import sip
    from qgis.PyQt.QtCore import QCoreApplication, QEvent

    from poverty_mapper.ui import processing_run
    from poverty_mapper.ui.dock import PovertyDock

    dock = PovertyDock(qgis_iface)
    choose(dock.modelPanel.modelCombo, "rgb_histogram")
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    dock.optionsPanel.strideSpin.setValue(120)
    dock.runButton.click()
    task = dock.task
    qtbot.waitUntil(lambda: task.status() == QgsTask.TaskStatus.Running, timeout=30_000)
    run = weakref.ref(dock._run)
    dock.unload()
    dock.deleteLater()
    del dock
    gc.collect()
    assert run() is not None and run() in processing_run._LIVE_RUNS  # QGIS still holds the task

    def released() -> bool:  # QGIS deletes a finished task with deleteLater: run those deletions
        QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
        return run() is None

    qtbot.waitUntil(released, timeout=30_000)
    assert sip.isdeleted(task)


# -- errors -----------------------------------------------------------------------------
def test_run_without_layer_says_what_to_do(dock, qgis_iface):
    dock.run()
    assert not dock.is_running()
    messages = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical)
    assert any("raster layer" in m for m in messages)


def test_unreadable_model_is_reported(dock, sample_layer, tmp_path, qgis_iface):
    bad = tmp_path / "broken.povmodel"
    bad.write_bytes(b"not a model")
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    choose_model_file(dock, bad)
    assert "not a readable poverty model file" in dock.modelPanel.modelCard.text()
    assert dock.imagePanel.band_combos == ()
    dock.run()
    assert not dock.is_running()
    messages = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical)
    assert any("cannot be read" in m and "not a readable poverty model file" in m for m in messages)


def test_algorithm_error_reaches_message_bar_and_log(dock, sample_layer, qtbot, qgis_iface, tmp_path, default_model):
    from poverty_mapper.core.models.model_file import save_model

    extractor_only = tmp_path / "extractor_only.povmodel"
    save_model(dataclasses.replace(default_model, target=None, regressor=None), extractor_only)
    logged = []

    def collect(message, tag, level):
        logged.append((tag, level, message))

    QgsApplication.messageLog().messageReceived.connect(collect)
    try:
        dock.imagePanel.layerCombo.setLayer(sample_layer)
        choose_model_file(dock, extractor_only)
        assert "feature extractor only" in dock.modelPanel.modelCard.text()
        ok, added = run_and_wait(dock, qtbot)
    finally:
        QgsApplication.messageLog().messageReceived.disconnect(collect)
    assert ok is False and added == []
    messages = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical)
    assert any("holds only a feature extractor" in m and "Fit poverty model on survey clusters" in m for m in messages)
    assert any(tag == "Poverty Mapper" and level == Qgis.MessageLevel.Critical and "holds only a feature extractor" in message
               for tag, level, message in logged)
    assert "holds only a feature extractor" in dock.statusLabel.text()


def test_file_output_without_a_path_is_refused(dock, sample_layer, qgis_iface):
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    dock.optionsPanel.outputFileRadio.setChecked(True)
    dock.run()
    assert not dock.is_running()
    assert any("Choose the output file" in m for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical))


@pytest.mark.parametrize("name", ["poverty.png", "poverty"])
def test_an_output_that_is_no_geotiff_is_refused(dock, sample_layer, qgis_iface, tmp_path, name):
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    dock.optionsPanel.outputFileRadio.setChecked(True)
    dock.optionsPanel.outputFileWidget.setFilePath(str(tmp_path / name))
    _refused_with(dock, qgis_iface, f"give the output file the extension .tif (not '{name}')")
    assert list(tmp_path.iterdir()) == []


def test_the_file_of_a_loaded_map_is_not_overwritten(dock, sample_layer, qgis_iface, tmp_path):
    earlier = tmp_path / "earlier.tif"
    shutil.copy(SAMPLE, earlier)
    QgsProject.instance().addMapLayer(QgsRasterLayer(str(earlier), "earlier map"))
    before = earlier.read_bytes()
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    dock.optionsPanel.outputFileRadio.setChecked(True)
    dock.optionsPanel.outputFileWidget.setFilePath(str(earlier))
    _refused_with(dock, qgis_iface, "'earlier.tif' is the file of the layer 'earlier map' in this project")
    assert earlier.read_bytes() == before


def test_an_image_smaller_than_one_tile_is_refused_before_run(dock, tmp_path, qgis_iface):
    path = tmp_path / "generated_small.tif"
    with rasterio.open(path, "w", driver="GTiff", width=100, height=80, count=3, dtype="uint16", crs="EPSG:32721",
                       transform=from_origin(700_000, 7_200_000, 30, 30)) as dst:
        dst.write(np.full((3, 80, 100), 9000, np.uint16))
    layer = QgsRasterLayer(str(path), "small scene")
    QgsProject.instance().addMapLayer(layer)
    dock.imagePanel.layerCombo.setLayer(layer)
    expected = "The image 'small scene' covers 3.0 x 2.4 km, smaller than one 6.72 km tile of the model"
    assert expected in dock.imagePanel.bandsNote.text()  # seen as soon as the image is chosen
    _refused_with(dock, qgis_iface, expected)


def test_a_refused_run_replaces_the_previous_result_in_the_status_line(dock, sample_layer, qgis_iface):
    dock.statusLabel.setText("Estimated 42 of 42 cells (an earlier run)")
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    dock.optionsPanel.outputFileRadio.setChecked(True)
    dock.run()
    assert dock.statusLabel.text() == "Choose the output file, or choose a temporary layer as output."


def test_a_narrow_dock_scrolls_sideways(dock, qtbot):
    dock.resize(200, 600)
    dock.show()
    qtbot.waitExposed(dock)
    qtbot.wait(200)  # the scroll area lays out
    bar = dock.scrollArea.horizontalScrollBar()
    assert bar.isVisible() and bar.maximum() > 0  # the cut-off part can be reached


# -- settings ---------------------------------------------------------------------------
def test_settings_are_remembered_between_sessions(make_dock, tmp_path):
    from poverty_mapper.core.models.defaults import DEFAULT_MODEL_PATH

    model = tmp_path / "my.povmodel"
    shutil.copy(DEFAULT_MODEL_PATH, model)
    output = tmp_path / "map.tif"
    first = make_dock()
    choose_model_file(first, model)
    choose(first.optionsPanel.deviceCombo, "cpu")
    choose(first.optionsPanel.radiometryCombo, "sentinel2_l2a")
    first.optionsPanel.strideSpin.setValue(960)
    first.optionsPanel.batchSpin.setValue(16)
    choose(first.regionPanel.regionCombo, "canvas")
    first.optionsPanel.outputFileRadio.setChecked(True)
    first.optionsPanel.outputFileWidget.setFilePath(str(output))
    assert QgsSettings().value("poverty_mapper/stride_m", type=float) == 960
    assert QgsSettings().value("poverty_mapper/model_path", type=str) == str(model)

    second = make_dock()
    assert second.modelPanel.model_path() == str(model)
    assert second.optionsPanel.deviceCombo.currentData() == "cpu"
    assert second.optionsPanel.radiometryCombo.currentData() == "sentinel2_l2a"
    assert second.optionsPanel.strideSpin.value() == 960
    assert second.optionsPanel.batchSpin.value() == 16
    assert second.regionPanel.regionCombo.currentData() == "canvas"
    assert second.optionsPanel.outputFileRadio.isChecked() and not second.optionsPanel.outputTempRadio.isChecked()
    # The folder is remembered, never the file: the next run must not overwrite the last map.
    assert second.optionsPanel.outputFileWidget.filePath() == ""
    assert second.optionsPanel.outputFileWidget.defaultRoot() == str(output.parent)


def test_defaults_without_remembered_settings(dock):
    assert dock.optionsPanel.deviceCombo.currentData() == "auto"
    assert dock.optionsPanel.strideSpin.value() == 0 and dock.optionsPanel.strideSpin.text() == "tile size"
    assert dock.optionsPanel.batchSpin.value() == 0 and dock.optionsPanel.batchSpin.text() == "automatic"
    assert dock.regionPanel.regionCombo.currentData() == "layer"
    assert dock.optionsPanel.outputTempRadio.isChecked() and not dock.optionsPanel.outputFileWidget.isEnabled()


def test_remembered_settings_table_defaults_are_valid_choices():
    from poverty_mapper.ui.region_panel import Region
    from poverty_mapper.ui.run_options_panel import OutputMode
    from poverty_mapper.ui.settings import DockSetting

    assert len({setting.key for setting in DockSetting}) == len(DockSetting)
    assert all(setting.key.startswith("poverty_mapper/") for setting in DockSetting)
    assert all(setting.read() == setting.default for setting in DockSetting)  # nothing remembered yet
    assert Region(DockSetting.REGION.default) is Region.LAYER
    assert OutputMode(DockSetting.OUTPUT_MODE.default) is OutputMode.TEMPORARY
