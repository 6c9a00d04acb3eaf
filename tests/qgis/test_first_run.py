"""The first five minutes in the dock: the default Africa lights model, which needs no image
and waits only for a region, each with a one-line reason under Run; the VIIRS model's
night-lights picker right under the model choice, the model's card behind "Details", Run
disabled while that model waits for its night lights; and a first real map from the bundled
sample (in Brazil, outside the Africa lights: mapped with the RGB example model)."""
from __future__ import annotations

import pytest
from qgis.core import QgsCoordinateTransform, QgsProject
from qgis.PyQt.QtCore import QPoint

from dock_helpers import choose, choose_model_file, make_dock, run_and_wait, sample_layer  # noqa: F401 (fixtures)
from poverty_mapper.core.models.defaults import DEFAULT_MODEL_KEY, NIGHTLIGHTS_MODEL_KEY, SAMPLE_MODEL_KEY

pytestmark = pytest.mark.usefixtures("clean_settings")


def y_in(widget, ancestor) -> int:
    return widget.mapTo(ancestor, QPoint(0, 0)).y()


def shown_dock(dock, qtbot, width=400, height=700):
    dock.resize(width, height)
    dock.show()
    qtbot.waitExposed(dock)
    qtbot.wait(100)  # the scroll area lays out
    return dock


def one_line(hint: str) -> bool:
    return "\n" not in hint and 0 < len(hint) <= 80


def test_a_first_start_needs_no_image_and_run_waits_for_a_region(make_dock, qgis_iface, request):  # noqa: F811
    from qgis.core import Qgis

    dock = make_dock()  # no model remembered, no layers: the Africa lights model
    assert dock.modelPanel.modelCombo.currentData() == DEFAULT_MODEL_KEY
    assert dock.modelPanel.model_path().endswith("africa_lights.povmodel")
    assert dock.nightlightsPanel.isHidden()  # it reads the bundled lights, no layer to pick
    assert dock.imagePanel.layerCombo.currentLayer() is None and dock.imagePanel.problem() is None  # optional
    assert dock.regionPanel.regionCombo.currentData() == "layer"  # no image: no whole layer to map
    assert not dock.runButton.isEnabled() and not dock.runHint.isHidden()
    assert one_line(dock.runHint.text()) and dock.runHint.text().startswith("To run: choose a region")
    assert "or an image" in dock.runHint.text()
    dock.run()  # called all the same: refused in one sentence, nothing started
    assert not dock.is_running()
    assert "No image is chosen" in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical)[-1]
    choose(dock.regionPanel.regionCombo, "canvas")  # a region is enough
    assert dock.runButton.isEnabled() and dock.runHint.isHidden() and dock.problem() is None
    choose(dock.regionPanel.regionCombo, "layer")
    assert not dock.runButton.isEnabled()
    dock.imagePanel.layerCombo.setLayer(request.getfixturevalue("sample_layer"))  # or an image: its extent is mapped
    assert dock.runButton.isEnabled() and dock.runHint.isHidden()
    assert dock.modelPanel.modelCombo.currentData() == DEFAULT_MODEL_KEY  # an image changes no model


def test_the_night_lights_picker_is_right_under_the_model_choice(make_dock, qtbot):  # noqa: F811
    dock = shown_dock(make_dock(), qtbot)
    assert dock.nightlightsPanel.isHidden()  # the default model reads the bundled lights
    choose(dock.modelPanel.modelCombo, NIGHTLIGHTS_MODEL_KEY)  # the model of a radiance layer
    qtbot.wait(100)
    assert dock.modelPanel.model_path().endswith("africa_nightlights_viirs.povmodel")
    panel, contents = dock.modelPanel, dock.scrollContents
    picker = dock.nightlightsPanel.layerCombo
    assert picker.isVisible()
    assert y_in(panel.modelCombo, contents) < y_in(picker, contents) < y_in(panel.modelSummary, contents)
    view = dock.scrollArea.viewport().height()
    assert y_in(picker, contents) + picker.height() <= view  # seen without scrolling
    assert "nW/cm²/sr" in dock.nightlightsPanel.note.text()


def test_the_model_card_is_a_summary_with_its_details_behind_a_button(make_dock, qtbot):  # noqa: F811
    dock = shown_dock(make_dock(), qtbot)
    panel = dock.modelPanel
    note, summary = panel.modelSummary.text().split("\n", 1)  # the default: what it reads, then its summary
    assert "no image needed" in note and "2016" in note and "NASA Black Marble" in note
    assert summary.count("\n") <= 1 and "asset wealth index" in summary and "within countries without surveys" in summary
    assert not panel.modelCard.isVisible() and panel.detailsButton.isVisible()
    choose(panel.modelCombo, NIGHTLIGHTS_MODEL_KEY)
    summary = panel.modelSummary.text()
    assert summary.count("\n") <= 1  # two lines of text
    assert "asset wealth index" in summary and "night lights (nW/cm²/sr)" in summary and "r² 0.39" in summary
    assert not panel.modelCard.isVisible() and panel.detailsButton.isVisible()
    collapsed = dock.scrollContents.sizeHint().height()
    panel.detailsButton.click()
    qtbot.wait(50)
    assert panel.modelCard.isVisible() and "Out of country (fitted on the other countries): r² 0.39" in panel.modelCard.text()
    assert dock.scrollContents.sizeHint().height() > collapsed + 200  # the card is long; collapsed it is out of the way
    choose(panel.modelCombo, "kinshasa_cnn")
    assert panel.modelCard.isVisible() and panel.modelCard.text().startswith("Kinshasa CNN")  # stays open
    panel.detailsButton.click()
    assert not panel.modelCard.isVisible()


def test_an_unreadable_model_file_shows_why_in_the_summary(make_dock, tmp_path):  # noqa: F811

    dock = make_dock()
    bad = tmp_path / "broken.povmodel"
    bad.write_bytes(b"not a model")
    choose_model_file(dock, bad)
    assert "not a readable poverty model file" in dock.modelPanel.modelSummary.text()
    assert dock.modelPanel.detailsButton.isHidden()


def test_run_waits_for_the_night_lights_with_a_one_line_reason(make_dock, sample_layer, qgis_iface):  # noqa: F811
    from qgis.core import Qgis

    dock = make_dock()
    choose(dock.modelPanel.modelCombo, NIGHTLIGHTS_MODEL_KEY)  # the default only with a radiance layer
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    assert not dock.runButton.isEnabled()
    hint = dock.runHint.text()
    assert not dock.runHint.isHidden() and one_line(hint)
    assert hint == "To run: choose a night-lights layer under the model, or another model."
    dock.run()  # called all the same (a shortcut, a script): refused in one sentence
    assert not dock.is_running()
    message = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical)[-1]
    assert "choose a night-lights layer (nW/cm²/sr) under the model, or choose another model" in message
    dock.nightlightsPanel.layerCombo.setLayer(sample_layer)
    assert dock.runButton.isEnabled() and dock.runHint.isHidden()
    dock.nightlightsPanel.layerCombo.setLayer(None)
    assert not dock.runButton.isEnabled()
    choose(dock.modelPanel.modelCombo, "rgb_histogram")  # a model of the image alone
    assert dock.runButton.isEnabled() and dock.runHint.isHidden()
    choose(dock.modelPanel.modelCombo, DEFAULT_MODEL_KEY)  # the bundled lights over the image's extent
    assert dock.runButton.isEnabled() and dock.runHint.isHidden()


def test_load_sample_data_then_run_makes_a_first_map(make_dock, qtbot, qgis_iface):  # noqa: F811
    from poverty_mapper.core.models.defaults import SAMPLE_SCENE_PATH

    dock = make_dock()  # a first start: the Africa lights model, no layers, no region yet
    assert QgsProject.instance().count() == 0 and not dock.runButton.isEnabled()
    assert dock.modelPanel.modelCombo.currentData() == DEFAULT_MODEL_KEY
    assert not dock.sampleRow.isHidden()
    dock.sampleRow.loadButton.click()
    layer = dock.imagePanel.layerCombo.currentLayer()
    assert layer is not None and layer.isValid() and layer.source() == str(SAMPLE_SCENE_PATH)
    assert QgsProject.instance().mapLayer(layer.id()) is layer
    # The scene is in Brazil, outside the Africa lights: the RGB example model maps it from its own bands.
    assert dock.modelPanel.modelCombo.currentData() == SAMPLE_MODEL_KEY == "rgb_histogram"
    assert dock.regionPanel.regionCombo.currentData() == "layer"
    assert dock.runButton.isEnabled() and dock.problem() is None
    assert "Click Run" in dock.statusLabel.text()
    canvas = qgis_iface.mapCanvas()  # in whatever CRS the map had (the scene's own on a fresh map)
    to_canvas = QgsCoordinateTransform(layer.crs(), canvas.mapSettings().destinationCrs(), QgsProject.instance())
    assert canvas.extent().intersects(to_canvas.transformBoundingBox(layer.extent()))  # shown on the map
    dock.sampleRow.loadButton.click()  # again: the same layer, not a second one
    assert QgsProject.instance().count() == 1
    ok, added = run_and_wait(dock, qtbot)
    assert ok is True and len(added) == 1
    assert added[0].isValid() and added[0].width() > 1 and added[0].height() > 1
