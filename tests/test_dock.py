"""The dock widget in a new project, driven as a user would (qgis_iface stub)."""
from __future__ import annotations

import pytest
from qgis.core import Qgis, QgsProject, QgsRasterLayer, QgsSingleBandPseudoColorRenderer

from conftest import ROOT

SAMPLE = ROOT / "resources" / "sample" / "parana_landsat8_l1_rgb_30m.tif"


@pytest.fixture()
def dock(qgis_iface, qgis_new_project, poverty_provider):
    from poverty_mapper.ui.dock import PovertyDock

    widget = PovertyDock(qgis_iface)
    yield widget
    widget.cancel()
    widget.deleteLater()


@pytest.fixture()
def sample_layer(qgis_new_project):
    layer = QgsRasterLayer(str(SAMPLE), "Parana Landsat 8")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


def test_dock_preselects_default_model_and_shows_card(dock):
    assert dock.modelWidget.filePath().endswith("default.povmodel")
    assert "asset wealth index" in dock.modelCard.text()
    assert "r² 0.27" in dock.modelCard.text()


def test_dock_lists_only_raster_layers(dock, sample_layer):
    from qgis.core import QgsVectorLayer

    points = QgsVectorLayer("Point?crs=EPSG:4326", "points", "memory")
    QgsProject.instance().addMapLayer(points)
    names = [dock.layerCombo.itemText(i) for i in range(dock.layerCombo.count())]
    assert names == ["Parana Landsat 8"]


def test_run_adds_a_styled_poverty_layer(dock, sample_layer, qtbot):
    dock.layerCombo.setLayer(sample_layer)
    before = set(QgsProject.instance().mapLayers())
    with qtbot.waitSignal(dock.finished, timeout=120_000) as blocker:
        dock.runButton.click()
        assert dock.is_running()
        assert not dock.runButton.isEnabled()
    assert blocker.args[0] is True
    added = [QgsProject.instance().mapLayer(i) for i in set(QgsProject.instance().mapLayers()) - before]
    assert len(added) == 1
    layer = added[0]
    assert isinstance(layer, QgsRasterLayer) and layer.isValid()
    assert "asset wealth index" in layer.name()
    assert isinstance(layer.renderer(), QgsSingleBandPseudoColorRenderer)
    assert dock.progressBar.value() == 100
    assert dock.runButton.isEnabled() and not dock.cancelButton.isEnabled()


def test_run_without_layer_says_what_to_do(dock, qgis_iface):
    dock.run()
    assert not dock.is_running()
    messages = qgis_iface.messageBar().get_messages(Qgis.Critical)
    assert any("raster layer" in m for m in messages)


def test_unreadable_model_is_reported(dock, tmp_path):
    bad = tmp_path / "broken.povmodel"
    bad.write_bytes(b"not a model")
    dock.modelWidget.setFilePath(str(bad))
    assert "not a readable poverty model file" in dock.modelCard.text()
