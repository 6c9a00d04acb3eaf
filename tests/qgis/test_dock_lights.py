"""The dock's default path: the bundled Africa lights model (NASA Black Marble 2016) maps a
region with no image. The region is the map canvas's extent in UTM 33S around Kinshasa (lit)
or in EPSG:4326 around Paris (outside the lights); the engine's own map of the same region
is the reference, cell for cell."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from qgis.core import Qgis, QgsCoordinateReferenceSystem, QgsRectangle, QgsReferencedRectangle

from dock_helpers import choose, make_dock, run_and_wait  # noqa: F401 (fixtures)
from poverty_mapper.core.models.defaults import AFRICA_LIGHTS_MODEL_PATH, DEFAULT_MODEL_KEY

pytestmark = pytest.mark.usefixtures("clean_settings")  # the default model, not a remembered one

UTM_33S = "EPSG:32733"
KINSHASA_UTM = (530_000.0, 9_524_000.0)  # Gombe, about 15.31 E 4.30 S
PARIS = QgsRectangle(2.2, 48.8, 2.5, 48.9)


def show_on_canvas(iface, rectangle: QgsRectangle, crs: str) -> QgsReferencedRectangle:
    """The canvas in ``crs`` over ``rectangle``; the extent it shows (its own aspect ratio)."""
    canvas = iface.mapCanvas()
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem(crs))
    canvas.setExtent(rectangle)
    canvas.refresh()
    return QgsReferencedRectangle(canvas.extent(), canvas.mapSettings().destinationCrs())


def test_no_image_is_needed_but_a_region_is(make_dock, qgis_iface):
    from poverty_mapper.provider.predict_algorithm import PredictAlgorithm as alg

    dock = make_dock()
    assert dock.modelPanel.modelCombo.currentData() == DEFAULT_MODEL_KEY
    assert dock.imagePanel.layerCombo.currentLayer() is None
    assert dock.imagePanel.layerCombo.currentText() == "(none: map the region from the bundled night lights)"
    assert dock.imagePanel.bandsWidget.isHidden() and dock.imagePanel.bandSetButton.isHidden()
    choose(dock.regionPanel.regionCombo, "layer")  # no image: no whole layer
    assert not dock.runButton.isEnabled()
    assert dock.runHint.text().startswith("To run: choose a region (the map extent")
    dock.run()
    assert not dock.is_running() and "No image is chosen" in dock.statusLabel.text()

    x, y = KINSHASA_UTM
    shown = show_on_canvas(qgis_iface, QgsRectangle(x - 10_000, y - 10_000, x + 10_000, y + 10_000), UTM_33S)
    choose(dock.regionPanel.regionCombo, "canvas")
    assert dock.runButton.isEnabled() and dock.runHint.isHidden()
    params = dock.parameters()
    assert alg.INPUT not in params and alg.BANDS not in params
    assert params[alg.MODEL] == str(AFRICA_LIGHTS_MODEL_PATH)
    assert params[alg.EXTENT].crs().authid() == UTM_33S and params[alg.EXTENT] == shown


def test_a_model_of_imagery_still_asks_for_an_image(make_dock):
    dock = make_dock()
    choose(dock.modelPanel.modelCombo, "rgb_histogram")
    assert not dock.imagePanel.bandsLabel.isHidden()
    assert dock.imagePanel.problem() == "Choose a satellite image (a raster layer) first."


def test_a_canvas_extent_over_kinshasa_maps_as_the_engine(make_dock, qgis_iface, qtbot, tmp_path):
    from poverty_mapper.core.inference.lights_map import LightsMapRequest, predict_lights_map
    from poverty_mapper.core.models.model_file import load_model

    x, y = KINSHASA_UTM
    shown = show_on_canvas(qgis_iface, QgsRectangle(x - 15_000, y - 15_000, x + 15_000, y + 15_000), UTM_33S)
    dock = make_dock()
    choose(dock.regionPanel.regionCombo, "canvas")
    ok, added = run_and_wait(dock, qtbot)
    assert ok is True and len(added) == 1, dock.statusLabel.text()
    bounds = (shown.xMinimum(), shown.yMinimum(), shown.xMaximum(), shown.yMaximum())
    expected = predict_lights_map(LightsMapRequest(load_model(AFRICA_LIGHTS_MODEL_PATH), str(tmp_path / "engine.tif"),
                                                   bounds, UTM_33S))
    with rasterio.open(added[0].source()) as got, rasterio.open(expected.output_path) as want:
        assert got.crs.to_string() == UTM_33S and got.transform.almost_equals(want.transform)
        got_values, want_values = got.read(1, masked=True), want.read(1, masked=True)
        assert got.tags()["LIGHTS_YEAR"] == "2016"
    assert got_values.shape == want_values.shape and got_values.count() == expected.n_estimated > 100
    np.testing.assert_array_equal(got_values.mask, want_values.mask)
    np.testing.assert_allclose(got_values.compressed(), want_values.compressed(), rtol=1e-6, atol=1e-6)
    assert want_values.compressed().std() > 0  # a city and its outskirts, not one value
    assert added[0].renderer().type() == "singlebandpseudocolor"  # styled as every map


def test_a_region_outside_africa_says_so_and_leaves_no_file(make_dock, qgis_iface, qtbot, tmp_path):
    show_on_canvas(qgis_iface, PARIS, "EPSG:4326")
    dock = make_dock()
    choose(dock.regionPanel.regionCombo, "canvas")
    out = tmp_path / "paris.tif"
    dock.optionsPanel.outputFileRadio.setChecked(True)
    dock.optionsPanel.outputFileWidget.setFilePath(str(out))
    ok, added = run_and_wait(dock, qtbot)
    assert ok is False and added == []
    expected = "outside the area the bundled night lights cover"
    assert expected in dock.statusLabel.text()
    assert any(expected in m for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical))
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_zip_install_without_the_lights_file_installs_it_from_the_dock(make_dock, qtbot, qgis_iface, monkeypatch,
                                                                         tmp_path):
    """A plugin from the zip has no lights raster: the dock says so under the default model,
    keeps Run disabled, refuses another file with the check's message, and installs the
    downloaded file through Processing, after which it maps."""
    from poverty_mapper.core.imagery import lights_file
    from poverty_mapper.core.imagery.lights_file import SHIPPED_LIGHTS, installed_lights_path

    monkeypatch.setenv("POVERTY_MAPPER_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(lights_file, "SHIPPED_LIGHTS", tmp_path / "plugin" / SHIPPED_LIGHTS.name)
    dock = make_dock()
    row = dock.lightsInstallRow
    assert not row.isHidden() and "not set up" in row.label.text()
    x, y = KINSHASA_UTM
    show_on_canvas(qgis_iface, QgsRectangle(x - 10_000, y - 10_000, x + 10_000, y + 10_000), UTM_33S)
    choose(dock.regionPanel.regionCombo, "canvas")
    assert not dock.runButton.isEnabled()
    assert dock.runHint.text() == "To run: install the bundled night lights (under the model), or choose another model."

    other = tmp_path / SHIPPED_LIGHTS.name
    other.write_bytes(b"0" * 1000)
    monkeypatch.setattr(row, "choose_file", lambda: str(other))
    with qtbot.waitSignal(row.installed, timeout=60_000) as refused:
        row.installButton.click()
    assert refused.args[0] is False and "not the bundled night lights" in refused.args[1]
    assert not installed_lights_path().exists() and not row.isHidden() and not dock.runButton.isEnabled()

    monkeypatch.setattr(row, "choose_file", lambda: str(SHIPPED_LIGHTS))
    with qtbot.waitSignal(row.installed, timeout=60_000) as done:
        row.installButton.click()
    assert done.args == [True, str(installed_lights_path())]
    assert installed_lights_path().is_file() and lights_file.lights_path() == installed_lights_path()
    assert row.isHidden() and dock.runButton.isEnabled()
    assert dock.statusLabel.text().startswith("The bundled night lights are set up")

    choose(dock.modelPanel.modelCombo, "rgb_histogram")  # a model of imagery needs no lights
    assert row.isHidden()
