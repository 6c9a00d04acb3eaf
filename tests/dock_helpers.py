"""The dock as the QGIS tests drive it: a dock factory and the sample scene as fixtures, a
combo choice and a run awaited as a user would (shared by the dock's test modules)."""
from __future__ import annotations

import pytest
from qgis.core import QgsProject, QgsRasterLayer

from conftest import ROOT
from poverty_mapper.provider.map_layers import is_companion_layer

SAMPLE = ROOT / "resources" / "sample" / "parana_landsat8_l1_rgb_30m.tif"
MODEL_NAME = "LSMS Africa RGB histogram ridge v1"


def choose(combo, data) -> None:
    combo.setCurrentIndex(combo.findData(data))
    assert combo.currentData() == data


def choose_model_file(dock, path) -> None:
    """Chooses "Other model file…", then the file, as a user would."""
    from poverty_mapper.ui.model_panel import OTHER_FILE

    choose(dock.modelPanel.modelCombo, OTHER_FILE)
    dock.modelPanel.modelWidget.setFilePath(str(path))


@pytest.fixture()
def make_dock(qgis_iface, qgis_new_project, poverty_provider, qtbot):
    from poverty_mapper.ui.dock import PovertyDock

    docks = []

    def make():
        widget = PovertyDock(qgis_iface)
        docks.append(widget)
        return widget

    yield make
    for widget in docks:
        if widget.is_running():
            with qtbot.waitSignal(widget.finished, timeout=60_000):
                widget.cancel()
        widget.unload()
        widget.deleteLater()


@pytest.fixture()
def dock(make_dock):
    """A dock with the bundled RGB model chosen: the sample scene has no night-lights layer."""
    widget = make_dock()
    choose(widget.modelPanel.modelCombo, "rgb_histogram")
    return widget


@pytest.fixture()
def sample_layer(qgis_new_project):
    layer = QgsRasterLayer(str(SAMPLE), "Parana Landsat 8")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


def run_and_wait(dock, qtbot, timeout=120_000) -> tuple[bool, list]:
    """Clicks Run and waits for the run to end; returns its outcome and the layers it added."""
    before = set(QgsProject.instance().mapLayers())
    with qtbot.waitSignal(dock.finished, timeout=timeout) as blocker:
        dock.runButton.click()
        assert dock.is_running()
        assert not dock.runButton.isEnabled() and dock.cancelButton.isEnabled()
        panels = (dock.imagePanel, dock.regionPanel, dock.modelPanel, dock.optionsPanel)
        assert not any(panel.isEnabled() for panel in panels)  # inputs locked while it runs
    added = [QgsProject.instance().mapLayer(i) for i in set(QgsProject.instance().mapLayers()) - before]
    added = [layer for layer in added if not is_companion_layer(layer)]  # the maps; their quality layers apart
    assert dock.runButton.isEnabled() and not dock.cancelButton.isEnabled()
    assert all(panel.isEnabled() for panel in panels)
    return blocker.args[0], added
