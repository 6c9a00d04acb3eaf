"""Run inside the real QGIS desktop (``qgis --code``) by scripts/desktop_check.sh.

Loads the bundled real scene, opens the Poverty Mapper dock, runs a prediction from it,
then saves a screenshot of the main window, one of the dock scrolled to its opened export
section, and a JSON of what is on screen, and exits (without the save-project question).
"""
import json
import os
import traceback
from pathlib import Path

from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface, plugins

OUT = Path(os.environ["DESKTOP_CHECK_OUT"])
SCENE = Path(os.environ["DESKTOP_CHECK_SCENE"])
state = {"errors": []}


def finish(code: int = 0) -> None:
    (OUT / "state.json").write_text(json.dumps(state, indent=2))
    QgsProject.instance().setDirty(False)
    os._exit(code)


def screenshot() -> None:
    try:
        window = iface.mainWindow()
        window.grab().save(str(OUT / "screenshot.png"))
        dock = plugins["poverty_mapper"].dock
        state["dock_visible"] = bool(dock.isVisible())
        state["dock_status"] = dock.statusLabel.text()
        layers = list(QgsProject.instance().mapLayers().values())
        state["layers"] = [layer.name() for layer in layers]
        state["renderers"] = {layer.name(): layer.renderer().type() for layer in layers if layer.renderer()}
        state["window_size"] = [window.width(), window.height()]
        export_map = dock.exportPanel.mapCombo.currentLayer()
        state["export_map"] = export_map.name() if export_map else None
        dock.exportPanel.exportGroup.setCollapsed(False)
        QTimer.singleShot(500, export_screenshot)
    except Exception:  # noqa: BLE001 (reported in state.json)
        state["errors"].append(traceback.format_exc())
        finish(1)


def export_screenshot() -> None:
    """The dock scrolled down to its export section, opened."""
    try:
        dock = plugins["poverty_mapper"].dock
        dock.scrollArea.ensureWidgetVisible(dock.exportPanel)
        QTimer.singleShot(300, lambda: save_dock(dock))
    except Exception:  # noqa: BLE001
        state["errors"].append(traceback.format_exc())
        finish(1)


def save_dock(dock) -> None:
    try:
        dock.grab().save(str(OUT / "dock_export.png"))
        state["dock_layout"] = {  # the contents must fit the dock's width: no sideways scrolling
            "content_width": dock.scrollContents.width(),
            "viewport_width": dock.scrollArea.viewport().width(),
            "scrolled_sideways": dock.scrollArea.horizontalScrollBar().value(),
        }
    except Exception:  # noqa: BLE001
        state["errors"].append(traceback.format_exc())
        finish(1)
    finish(0)


def on_finished(ok: bool) -> None:
    state["run_ok"] = bool(ok)
    iface.mapCanvas().zoomToFullExtent()  # the dock took width from the canvas since the scene was framed
    iface.mapCanvas().refreshAllLayers()
    QTimer.singleShot(2500, screenshot)  # let the canvas paint the new layer


def start() -> None:
    try:
        if "poverty_mapper" not in plugins:
            state["errors"].append(f"plugin not loaded; plugins: {sorted(plugins)}")
            finish(1)
        iface.mainWindow().setGeometry(0, 0, 1280, 800)  # no window manager under Xvfb to maximize
        layer = QgsRasterLayer(str(SCENE), "Parana Landsat 8 (real scene)")
        QgsProject.instance().addMapLayer(layer)
        iface.mapCanvas().setExtent(layer.extent())
        plugin = plugins["poverty_mapper"]
        plugin.action.setChecked(True)
        dock = plugin.dock
        dock.imagePanel.layerCombo.setLayer(layer)
        # The scene comes without night lights: the RGB model (the default reads a night-lights layer).
        combo = dock.modelPanel.modelCombo
        combo.setCurrentIndex(combo.findData("rgb_histogram"))
        dock.optionsPanel.outputFileRadio.setChecked(True)
        dock.optionsPanel.outputFileWidget.setFilePath(str(OUT / "poverty.tif"))
        dock.finished.connect(on_finished)
        dock.runButton.click()
    except Exception:  # noqa: BLE001
        state["errors"].append(traceback.format_exc())
        finish(1)


QTimer.singleShot(1500, start)
