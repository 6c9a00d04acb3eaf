"""Run inside the real QGIS desktop (``qgis --code``) by scripts/desktop_check.sh.

Drives the Poverty Mapper dock as an analyst would, one step after another:

0. the first look of a new analyst: the default Africa lights model (no image needed, no
   night-lights picker), Run disabled with its one-line reason (a region or an image), then
   "Load sample data" (the bundled scene as the image, the model that maps it, Run enabled);
1. the real 6-band Landsat 7 scene as the image: Run is refused, the bands left to choose;
2. the bundled real scene mapped to a GeoTIFF: the styled map, its notes in the dock;
3. the map summed up per district (one district smaller than a cell, one mostly off the
   map, one concave with a hole) with exact coverage;
4. XYZ tiles of the same scene (a layer that is no file) mapped for the map extent;
5. the real scene mapped again: each map named after its model and image, unique, in a
   group with its quality layer, which shows the cells not to trust on the map;
6. Identify on a flagged cell of the quality layer: the band names in the results panel,
   which opens beside the dock, and the room the dock's form keeps.

Saves screenshots of the main window and of the dock at each step, and a JSON of what is
on screen, then exits (without the save-project question).
"""
import json
import os
import traceback
from pathlib import Path

from qgis.core import QgsFeature, QgsGeometry, QgsProject, QgsRasterLayer, QgsRectangle, QgsVectorLayer
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtWidgets import QWidget
from qgis.utils import iface, plugins

OUT = Path(os.environ["DESKTOP_CHECK_OUT"])
SCENE = Path(os.environ["DESKTOP_CHECK_SCENE"])
LANDSAT7 = Path(os.environ["DESKTOP_CHECK_LANDSAT7"])
XYZ_URL = os.environ["DESKTOP_CHECK_XYZ_URL"]
state = {"errors": []}


def finish(code: int = 0) -> None:
    (OUT / "state.json").write_text(json.dumps(state, indent=2))
    QgsProject.instance().setDirty(False)
    os._exit(code)


def step(function):
    """A step that records its failure in state.json and ends the check."""
    def run(*args):
        try:
            function(*args)
        except Exception:  # noqa: BLE001 (reported in state.json)
            state["errors"].append(traceback.format_exc())
            finish(1)
    return run


def dock():
    return plugins["poverty_mapper"].dock


def later(ms: int, function) -> None:
    QTimer.singleShot(ms, step(function))


# 1. wrong bands ------------------------------------------------------------------------
@step
def start() -> None:
    if "poverty_mapper" not in plugins:
        state["errors"].append(f"plugin not loaded; plugins: {sorted(plugins)}")
        finish(1)
    iface.mainWindow().setGeometry(0, 0, 1280, 800)  # no window manager under Xvfb to maximize
    plugin = plugins["poverty_mapper"]
    state["toolbar"] = [a.text() for a in plugin.toolbar.actions()] if plugin.toolbar.isVisible() else []
    plugin.action.setChecked(True)
    later(1500, first_look)


# 0. the first five minutes ------------------------------------------------------------------
def _in_view(widget) -> bool:
    """Whether the widget is shown inside the dock's scroll view without scrolling."""
    view = dock().scrollArea.viewport()
    top = widget.mapTo(view, widget.rect().topLeft()).y()
    return widget.isVisible() and 0 <= top and top + widget.height() <= view.height()


def first_look() -> None:
    d = dock()
    state["first_look"] = {
        "model": d.modelPanel.modelCombo.currentData(),
        "run_enabled": d.runButton.isEnabled(),
        "run_hint": d.runHint.text() if d.runHint.isVisible() else "",
        "image": d.imagePanel.layerCombo.currentText(),  # none: the default reads the bundled lights
        "region": d.regionPanel.regionCombo.currentData(),
        "lights_picker_shown": d.nightlightsPanel.isVisible(),
        "model_summary": d.modelPanel.modelSummary.text(),
        "sample_button_in_view": _in_view(d.sampleRow.loadButton),
        "scroll_content_height": d.scrollContents.height(),
        "view_height": d.scrollArea.viewport().height(),
    }
    iface.mainWindow().grab().save(str(OUT / "first_look.png"))
    d.sampleRow.loadButton.click()
    later(1500, sample_loaded)


def sample_loaded() -> None:
    d = dock()
    layer = d.imagePanel.layerCombo.currentLayer()
    state["sample_loaded"] = {
        "image": layer.name() if layer else None,
        "model": d.modelPanel.modelCombo.currentData(),
        "run_enabled": d.runButton.isEnabled(),
        "run_hint": d.runHint.text() if d.runHint.isVisible() else "",
    }
    iface.mainWindow().grab().save(str(OUT / "sample_loaded.png"))
    if layer is not None:
        QgsProject.instance().removeMapLayer(layer.id())  # step 2 adds the same scene under its own name
    wrong_bands()


# 1. wrong bands (continued) ---------------------------------------------------------------
@step
def wrong_bands() -> None:
    # The scenes come without night lights and lie outside the bundled Africa lights: the RGB model.
    combo = dock().modelPanel.modelCombo
    combo.setCurrentIndex(combo.findData("rgb_histogram"))
    landsat7 = QgsRasterLayer(str(LANDSAT7), "Olinda Landsat 7 (6 bands)")
    QgsProject.instance().addMapLayer(landsat7)
    dock().imagePanel.layerCombo.setLayer(landsat7)
    dock().runButton.click()
    state["wrong_bands"] = {
        "running": dock().is_running(),
        "status": dock().statusLabel.text(),
        "bands": [combo.currentText() for combo in dock().imagePanel.band_combos],
    }
    later(800, lambda: (dock().grab().save(str(OUT / "dock_wrong_bands.png")), map_scene()))


# 2. the real scene mapped -----------------------------------------------------------------
def map_scene() -> None:
    layer = QgsRasterLayer(str(SCENE), "Parana Landsat 8 (real scene)")
    QgsProject.instance().addMapLayer(layer)
    d = dock()
    d.imagePanel.layerCombo.setLayer(layer)
    d.modelPanel.modelCombo.setCurrentIndex(d.modelPanel.modelCombo.findData("rgb_histogram"))
    d.optionsPanel.outputFileRadio.setChecked(True)
    d.optionsPanel.outputFileWidget.setFilePath(str(OUT / "poverty.tif"))
    d.finished.connect(on_mapped)
    d.runButton.click()


@step
def on_mapped(ok: bool) -> None:
    dock().finished.disconnect(on_mapped)
    state["run_ok"] = bool(ok)
    scene = next(layer for layer in QgsProject.instance().mapLayers().values() if layer.name().startswith("Parana"))
    iface.mapCanvas().setDestinationCrs(scene.crs())  # the project took the first layer's (Landsat 7) CRS
    iface.mapCanvas().setExtent(scene.extent())  # again: the dock took width from the canvas
    iface.mapCanvas().refreshAllLayers()
    later(2500, screenshot)  # let the canvas paint the new layer


def screenshot() -> None:
    window = iface.mainWindow()
    window.grab().save(str(OUT / "screenshot.png"))
    d = dock()
    state["dock_visible"] = bool(d.isVisible())
    state["dock_status"] = d.statusLabel.text()
    layers = list(QgsProject.instance().mapLayers().values())
    state["layers"] = [layer.name() for layer in layers]
    state["renderers"] = {layer.name(): layer.renderer().type() for layer in layers if layer.renderer()}
    state["window_size"] = [window.width(), window.height()]
    state["style_file"] = (OUT / "poverty.qml").is_file()
    export_map = d.exportPanel.mapCombo.currentLayer()
    state["export_map"] = export_map.name() if export_map else None
    d.exportPanel.exportGroup.setCollapsed(False)
    later(500, export_screenshot)


def export_screenshot() -> None:
    """The dock scrolled down to its export section, opened."""
    dock().scrollArea.ensureWidgetVisible(dock().exportPanel)
    later(300, save_dock)


def save_dock() -> None:
    d = dock()
    d.grab().save(str(OUT / "dock_export.png"))
    state["dock_layout"] = {  # the contents fit the dock's width: no sideways scrolling
        "content_width": d.scrollContents.width(),
        "viewport_width": d.scrollArea.viewport().width(),
        "scrolled_sideways": d.scrollArea.horizontalScrollBar().value(),
        "widest": sorted(((w.minimumSizeHint().width(), w.objectName() or type(w).__name__)
                          for w in d.scrollContents.findChildren(QWidget) if w.isVisible()), reverse=True)[:6],
    }
    aggregate()


# 3. districts ------------------------------------------------------------------------------
def aggregate() -> None:
    scene = next(layer for layer in QgsProject.instance().mapLayers().values() if layer.name().startswith("Parana"))
    e = scene.extent()
    districts = QgsVectorLayer(f"Polygon?crs={scene.crs().authid()}&field=name:string", "districts", "memory")
    shapes = {
        "small (2 km)": QgsRectangle(e.xMinimum() + 15_000, e.yMinimum() + 15_000, e.xMinimum() + 17_000, e.yMinimum() + 17_000),
        "mostly off the map": QgsRectangle(e.xMinimum() - 20_000, e.yMinimum() + 5_000, e.xMinimum() + 10_000, e.yMinimum() + 25_000),
        "inside": QgsRectangle(e.center().x(), e.center().y() - 10_000, e.center().x() + 15_000, e.center().y() + 5_000),
    }
    shapes = {name: QgsGeometry.fromRect(rectangle) for name, rectangle in shapes.items()}
    # Not a rectangle (such districts crashed QGIS when the statistics ran in its process):
    # the crash report's quadrilateral with a notch and a hole, moved off the scene's fill corner.
    shapes["concave with a hole"] = QgsGeometry.fromWkt(
        "POLYGON((737000 -2817000,752000 -2817000,750000 -2802000,744000 -2808000,738000 -2804000,737000 -2817000),"
        "(741000 -2814000,745000 -2810000,747000 -2814000,741000 -2814000))")
    features = []
    for name, geometry in shapes.items():
        feature = QgsFeature(districts.fields())
        feature.setGeometry(geometry)
        feature.setAttributes([name])
        features.append(feature)
    districts.dataProvider().addFeatures(features)
    QgsProject.instance().addMapLayer(districts)
    panel = dock().exportPanel
    panel.polygonsCombo.setLayer(districts)
    panel.aggregateFileWidget.setFilePath(str(OUT / "districts.gpkg"))
    panel.exported.connect(on_aggregated)
    panel.aggregateButton.click()


@step
def on_aggregated(ok: bool, path: str) -> None:
    panel = dock().exportPanel
    panel.exported.disconnect(on_aggregated)
    written = QgsVectorLayer(path, "check", "ogr")
    state["districts"] = {
        "ok": bool(ok),
        "status": panel.exportStatusLabel.text(),
        "fields": written.fields().names(),
        "rows": {f["name"]: {k: f[k] for k in ("pov_cover", "pov_mean", "pov_cells")} for f in written.getFeatures()},
        "renderer": written.renderer().type() if written.renderer() else None,
        "layer_names": [layer.name() for layer in QgsProject.instance().mapLayers().values()],
        # where the map starts (a whole cell west of the scene at most) and the district's west and east
        "map_west": dock().exportPanel.mapCombo.currentLayer().extent().xMinimum(),
        "off_map_west_east": [f.geometry().boundingBox().xMinimum() for f in written.getFeatures()
                              if f["name"] == "mostly off the map"]
        + [f.geometry().boundingBox().xMaximum() for f in written.getFeatures() if f["name"] == "mostly off the map"],
    }
    iface.mapCanvas().refreshAllLayers()
    dock().scrollArea.ensureWidgetVisible(panel.exportStatusLabel)  # the export's notes
    later(2500, lambda: (iface.mainWindow().grab().save(str(OUT / "districts.png")),
                         dock().grab().save(str(OUT / "dock_districts.png")), map_xyz()))


# 4. a layer that is no file ---------------------------------------------------------------
def map_xyz() -> None:
    layer = QgsRasterLayer(XYZ_URL, "XYZ tiles of the scene", "wms")
    QgsProject.instance().addMapLayer(layer)
    scene = next(layer for layer in QgsProject.instance().mapLayers().values() if layer.name().startswith("Parana"))
    extent = scene.extent()
    extent.grow(-3000)
    iface.mapCanvas().setDestinationCrs(scene.crs())  # the project took the Landsat 7 scene's CRS
    iface.mapCanvas().setExtent(extent)
    d = dock()
    # The bundled Kinshasa CNN was fitted on 8-bit true-colour renderings, as XYZ imagery is.
    d.modelPanel.modelCombo.setCurrentIndex(d.modelPanel.modelCombo.findData("kinshasa_cnn"))
    d.imagePanel.layerCombo.setLayer(layer)
    d.regionPanel.regionCombo.setCurrentIndex(d.regionPanel.regionCombo.findData("canvas"))
    d.optionsPanel.outputTempRadio.setChecked(True)
    state["xyz_bands"] = [combo.currentText() for combo in d.imagePanel.band_combos]
    d.finished.connect(on_xyz_mapped)
    d.runButton.click()


@step
def on_xyz_mapped(ok: bool) -> None:
    dock().finished.disconnect(on_xyz_mapped)  # the next run is another step's
    state["xyz"] = {"ok": bool(ok), "status": dock().statusLabel.text(),
                    "layers": [layer.name() for layer in QgsProject.instance().mapLayers().values()]}
    iface.mapCanvas().refreshAllLayers()
    later(2500, lambda: (iface.mainWindow().grab().save(str(OUT / "xyz.png")), map_again()))


# 5. map names and quality layers ----------------------------------------------------------
def map_again() -> None:
    """The real scene mapped once more with the same model: a second name, not the same one."""
    scene = next(layer for layer in QgsProject.instance().mapLayers().values() if layer.name().startswith("Parana"))
    d = dock()
    d.modelPanel.modelCombo.setCurrentIndex(d.modelPanel.modelCombo.findData("rgb_histogram"))
    d.imagePanel.layerCombo.setLayer(scene)
    d.regionPanel.regionCombo.setCurrentIndex(d.regionPanel.regionCombo.findData("layer"))
    d.optionsPanel.outputFileRadio.setChecked(True)
    d.optionsPanel.outputFileWidget.setFilePath(str(OUT / "poverty_again.tif"))
    d.finished.connect(on_mapped_again)
    d.runButton.click()


@step
def on_mapped_again(ok: bool) -> None:
    from poverty_mapper.provider.map_layers import is_quality_layer

    dock().finished.disconnect(on_mapped_again)
    project = QgsProject.instance()
    root = project.layerTreeRoot()
    maps, groups = [], []
    for layer in project.mapLayers().values():
        node = root.findLayer(layer.id())
        if layer.name().startswith("Poverty map") and node is not None:
            maps.append(layer.name())
            group = node.parent()
            groups.append({
                "group": group.name(),
                "children": [child.layer().name() for child in group.children()],
                "quality_visible": [child.isVisible() for child in group.children() if is_quality_layer(child.layer())],
                "quality_renderer": [child.layer().renderer().type() for child in group.children()
                                     if is_quality_layer(child.layer())],
            })
    combo = dock().exportPanel.mapCombo
    state["names"] = {"ok": bool(ok), "maps": maps, "groups": groups,
                      "export_list": [combo.layer(i).name() for i in range(combo.count())]}
    # The first map of the scene alone, with its quality layer over it.
    first = next(layer for layer in project.mapLayers().values() if layer.source() == str(OUT / "poverty.tif")
                 and not is_quality_layer(layer))
    first_group = root.findLayer(first.id()).parent()
    shown = {node.layer().id() for node in first_group.findLayers() if node.isVisible()}  # its own choice
    for node in root.findLayers():
        node.setItemVisibilityChecked(node.layer().id() in shown)
    first_group.setItemVisibilityChecked(True)
    for group in root.findGroups():
        group.setExpanded(True)
    iface.mapCanvas().setExtent(first.extent())
    iface.mapCanvas().refreshAllLayers()
    later(2500, quality_screenshot)


def quality_screenshot() -> None:
    iface.mainWindow().grab().save(str(OUT / "names_quality.png"))
    later(100, identify_flagged_cell)


# 6. Identify -----------------------------------------------------------------------------
def identify_flagged_cell() -> None:
    """Centres the map on a cell of the first map that its quality band flags, and opens
    QGIS's Identify tool (its results panel opens below the dock)."""
    import numpy as np
    import rasterio
    from qgis.core import QgsPointXY

    from poverty_mapper.provider.map_layers import is_quality_layer

    with rasterio.open(OUT / "poverty.tif") as ds:
        codes = ds.read(2)
        row, col = (int(v) for v in np.argwhere(np.isin(codes, (1, 3)))[0])
        x, y = ds.xy(row, col)
    first = next(layer for layer in QgsProject.instance().mapLayers().values()
                 if layer.source() == str(OUT / "poverty.tif") and not is_quality_layer(layer))
    group = QgsProject.instance().layerTreeRoot().findLayer(first.id()).parent()
    quality = next(node.layer() for node in group.findLayers() if is_quality_layer(node.layer()))
    iface.setActiveLayer(quality)
    iface.actionIdentify().trigger()
    iface.mapCanvas().setCenter(QgsPointXY(x, y))
    iface.mapCanvas().refresh()
    state["identify"] = {"code": int(codes[row, col]),
                         "window_before": [iface.mainWindow().width(), iface.mainWindow().height()]}
    later(1500, click_flagged_cell)


def click_flagged_cell() -> None:
    """The click as the canvas hands it to its map tool (QGIS's own Identify action), at the
    centre of the map: the flagged cell."""
    from qgis.gui import QgsMapMouseEvent
    from qgis.PyQt.QtCore import QEvent, QPoint, Qt

    canvas = iface.mapCanvas()
    where = QPoint(canvas.width() // 2, canvas.height() // 2)
    canvas.mapTool().canvasReleaseEvent(QgsMapMouseEvent(canvas, QEvent.MouseButtonRelease, where, Qt.LeftButton))
    later(1500, identify_screenshot)


def identify_screenshot() -> None:
    from qgis.PyQt.QtWidgets import QDockWidget, QTreeWidget

    panel = iface.mainWindow().findChild(QDockWidget, "IdentifyResultsDock")
    rows = []
    if panel is not None:
        for tree in panel.findChildren(QTreeWidget):
            items = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
            while items:
                item = items.pop(0)
                rows.append([item.text(0), item.text(1)])
                items.extend(item.child(i) for i in range(item.childCount()))
    d = dock()
    state["identify"].update({
        "panel_visible": bool(panel is not None and panel.isVisible()),
        "rows": rows,
        "dock_height": d.height(), "form_height": d.scrollArea.height(),
        "notes_height": d.notesArea.height() if hasattr(d, "notesArea") else None,
        "panel_height": panel.height() if panel is not None else None,
        "dock_min_height": d.minimumSizeHint().height(),
        "panel_min_height": panel.minimumSizeHint().height() if panel is not None else None,
        "window_size": [iface.mainWindow().width(), iface.mainWindow().height()],
    })
    iface.mainWindow().grab().save(str(OUT / "identify.png"))
    finish(0)


QTimer.singleShot(1500, start)
