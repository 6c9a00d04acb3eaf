"""The dock's export section on a GENERATED poverty raster and GENERATED districts."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsFeature,
    QgsGeometry,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from rasterio.transform import from_origin

from conftest import ROOT

SAMPLE = ROOT / "resources" / "sample" / "parana_landsat8_l1_rgb_30m.tif"

X0, Y0, CELL = 500_000.0, 1_000_000.0, 1000.0
VALUES = np.arange(16, dtype=np.float32).reshape(4, 4)  # generated estimates
VALUES[0, 0] = -9999.0  # one nodata cell


@pytest.fixture()
def dock(qgis_iface, qgis_new_project, poverty_provider):
    from poverty_mapper.ui.dock import PovertyDock

    widget = PovertyDock(qgis_iface)
    qgis_iface.messageBar().clear_messages()
    yield widget
    qgis_iface.messageBar().clear_messages()
    widget.unload()
    widget.deleteLater()


@pytest.fixture()
def poverty_map(tmp_path, qgis_new_project):
    path = tmp_path / "generated_poverty.tif"
    with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32",
                       crs="EPSG:32636", transform=from_origin(X0, Y0, CELL, CELL), nodata=-9999.0) as dst:
        dst.write(VALUES, 1)
        dst.update_tags(QUANTITY="generated wealth", UNIT="index")
    layer = QgsRasterLayer(str(path), "generated poverty map")
    QgsProject.instance().addMapLayer(layer)
    return layer


@pytest.fixture()
def districts(qgis_new_project):
    """Two generated districts: the western and the eastern half of the map."""
    layer = QgsVectorLayer("Polygon?crs=EPSG:32636&field=name:string", "generated districts", "memory")
    features = []
    for name, x0 in (("west", X0), ("east", X0 + 2 * CELL)):
        f = QgsFeature(layer.fields())
        f.setGeometry(QgsGeometry.fromRect(QgsRectangle(x0, Y0 - 4 * CELL, x0 + 2 * CELL, Y0)))
        f.setAttributes([name])
        features.append(f)
    layer.dataProvider().addFeatures(features)
    QgsProject.instance().addMapLayer(layer)
    return layer


@pytest.mark.parametrize("suffix", [".shp", ".gpkg"])
def test_cells_export_writes_and_adds_the_layer(dock, poverty_map, tmp_path, qtbot, qgis_iface, suffix):
    panel = dock.exportPanel
    panel.mapCombo.setLayer(poverty_map)
    panel.cellsFileWidget.setFilePath(str(tmp_path / f"cells{suffix}"))
    with qtbot.waitSignal(panel.exported, timeout=60_000) as blocker:
        panel.cellsButton.click()
    assert blocker.args[0] is True
    written = QgsVectorLayer(blocker.args[1], "check", "ogr")
    assert written.isValid() and written.featureCount() == 15  # 16 cells, one nodata
    values = sorted(f["estimate"] for f in written.getFeatures())
    assert values == pytest.approx(sorted(VALUES.ravel()[1:].tolist()))
    added = [layer for layer in QgsProject.instance().mapLayers().values() if layer.name() == "generated poverty map: cells"]
    assert len(added) == 1 and isinstance(added[0], QgsVectorLayer)
    assert added[0].source().split("|")[0] == str(tmp_path / f"cells{suffix}")
    assert added[0].featureCount() == 15
    successes = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Success)
    assert any(str(tmp_path / f"cells{suffix}") in m for m in successes)
    assert list(tmp_path.glob("*.partial")) == []


@pytest.mark.parametrize("with_population", [False, True])
def test_aggregate_from_the_dock(dock, poverty_map, districts, tmp_path, qtbot, qgis_iface, with_population):
    panel = dock.exportPanel
    panel.mapCombo.setLayer(poverty_map)
    panel.polygonsCombo.setLayer(districts)
    assert panel.populationCombo.currentLayer() is None  # optional: empty unless chosen
    if with_population:
        # Generated population: everybody lives in the northernmost row of cells.
        pop_path = tmp_path / "generated_population.tif"
        population = np.zeros((4, 4), np.float32)
        population[0] = 100.0
        with rasterio.open(pop_path, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32",
                           crs="EPSG:32636", transform=from_origin(X0, Y0, CELL, CELL)) as dst:
            dst.write(population, 1)
        pop_layer = QgsRasterLayer(str(pop_path), "generated population")
        QgsProject.instance().addMapLayer(pop_layer)
        panel.populationCombo.setLayer(pop_layer)
    panel.aggregateFileWidget.setFilePath(str(tmp_path / "districts.gpkg"))
    with qtbot.waitSignal(panel.exported, timeout=60_000) as blocker:
        panel.aggregateButton.click()
    assert blocker.args[0] is True
    layer = QgsVectorLayer(blocker.args[1], "check", "ogr")
    written = {f["name"]: f for f in layer.getFeatures()}
    assert ("pov_wmean" in layer.fields().names()) is with_population
    assert written["west"]["pov_cells"] == 7 and written["east"]["pov_cells"] == 8
    names = [layer.name() for layer in QgsProject.instance().mapLayers().values()]
    assert "generated districts: generated poverty map" in names  # which polygons, which map
    # The western half lies on one cell without an estimate: said in the dock, not only in the log.
    assert written["west"]["pov_cover"] == pytest.approx(7 / 8, abs=1e-6)
    assert "Note: 1 polygon(s) are covered only in part" in panel.exportStatusLabel.text()
    assert any("1 note(s)" in m for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Warning))
    west = [v for v in VALUES[:, :2].ravel() if v != -9999.0]
    east = VALUES[:, 2:].ravel()
    assert written["west"]["pov_mean"] == pytest.approx(np.mean(west))
    assert written["east"]["pov_mean"] == pytest.approx(np.mean(east))
    if with_population:
        # Only the north row is populated; in the west its first cell has no estimate.
        assert written["west"]["pov_wmean"] == pytest.approx(VALUES[0, 1])
        assert written["east"]["pov_wmean"] == pytest.approx(VALUES[0, 2:].mean())


def test_a_poverty_line_that_is_no_number_is_refused(dock, poverty_map, districts, qgis_iface, tmp_path):
    panel = dock.exportPanel
    panel.mapCombo.setLayer(poverty_map)
    panel.polygonsCombo.setLayer(districts)
    panel.povertyLineEdit.setText("two dollars")
    panel.aggregateFileWidget.setFilePath(str(tmp_path / "districts.gpkg"))
    panel.aggregateButton.click()
    assert not panel.is_running()
    assert any("'two dollars' is not a number" in m for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical))


def test_export_without_an_output_file_says_what_to_do(dock, poverty_map, qgis_iface):
    panel = dock.exportPanel
    panel.mapCombo.setLayer(poverty_map)
    panel.cellsFileWidget.setFilePath("")
    logged = []

    def collect(message, tag, level):
        logged.append((tag, level, message))

    QgsApplication.messageLog().messageReceived.connect(collect)
    try:
        panel.cellsButton.click()
    finally:
        QgsApplication.messageLog().messageReceived.disconnect(collect)
    assert not panel.is_running()
    assert any("Choose the file" in m for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical))
    assert any(tag == "Poverty Mapper" and level == Qgis.MessageLevel.Critical and "Choose the file" in message
               for tag, level, message in logged)


def test_export_to_another_format_is_refused(dock, poverty_map, districts, qgis_iface, tmp_path):
    panel = dock.exportPanel
    panel.mapCombo.setLayer(poverty_map)
    panel.polygonsCombo.setLayer(districts)
    panel.aggregateFileWidget.setFilePath(str(tmp_path / "districts.csv"))
    panel.aggregateButton.click()
    assert not panel.is_running()
    messages = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical)
    assert any("shapefile (.shp) or a GeoPackage (.gpkg)" in m for m in messages)
    assert not (tmp_path / "districts.csv").exists()


def test_algorithm_failure_reaches_the_message_bar(dock, poverty_map, qgis_iface, tmp_path, qtbot):
    panel = dock.exportPanel
    panel.mapCombo.setLayer(poverty_map)
    panel.cellsFileWidget.setFilePath(str(tmp_path / "no such folder" / "cells.gpkg"))
    with qtbot.waitSignal(panel.exported, timeout=60_000) as blocker:
        panel.cellsButton.click()
    assert blocker.args[0] is False
    messages = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical)
    assert "Could not create layer" in panel.exportStatusLabel.text()
    assert messages and messages[-1].endswith(panel.exportStatusLabel.text())
    assert panel.cellsButton.isEnabled() and panel.aggregateButton.isEnabled()
    assert not any(layer.name() == "generated poverty map: cells" for layer in QgsProject.instance().mapLayers().values())


def test_a_fresh_map_from_the_dock_is_the_one_exported(clean_settings, dock, qtbot, tmp_path):
    """Map the bundled real scene from the dock, then export its cells without choosing the map."""
    scene = QgsRasterLayer(str(SAMPLE), "Parana Landsat 8")
    QgsProject.instance().addMapLayer(scene)
    dock.imagePanel.layerCombo.setLayer(scene)
    dock.modelPanel.modelCombo.setCurrentIndex(dock.modelPanel.modelCombo.findData("rgb_histogram"))  # no lights here
    with qtbot.waitSignal(dock.finished, timeout=120_000) as mapped:
        dock.runButton.click()
    assert mapped.args == [True]
    result = dock.exportPanel.mapCombo.currentLayer()
    assert result is not None and result.name().startswith("Poverty map")
    with rasterio.open(result.source()) as src:
        estimates = src.read(1, masked=True).compressed()
    dock.exportPanel.cellsFileWidget.setFilePath(str(tmp_path / "cells.shp"))
    with qtbot.waitSignal(dock.exportPanel.exported, timeout=60_000) as exported:
        dock.exportPanel.cellsButton.click()
    assert exported.args[0] is True
    values = sorted(f["estimate"] for f in QgsVectorLayer(exported.args[1], "check", "ogr").getFeatures())
    assert values == pytest.approx(sorted(estimates.tolist()), rel=1e-6)
