"""What the dock says in QGIS's message bar: a mask off the image names its layer, errors of
earlier runs go when the next run starts, the 'see the dock' warning and 'Cancelled' stay on
top of QGIS's own 'Task complete' / 'Task failed'.

A real QgsMessageBar stands in for the stub's (which keeps no items), and a slot on the
task manager pushes what QGIS's main window pushes when a task ends (QGIS 3.22: after the
task's own finishing code, "Task complete" or "Task failed" with the task's description)."""
from __future__ import annotations

import pytest
from qgis.core import Qgis, QgsApplication, QgsFeature, QgsGeometry, QgsProject, QgsRectangle, QgsTask, QgsVectorLayer
from qgis.gui import QgsMessageBar

from dock_helpers import choose, make_dock, run_and_wait, sample_layer  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("clean_settings")


@pytest.fixture()
def dock(make_dock):  # noqa: F811
    widget = make_dock()
    choose(widget.modelPanel.modelCombo, "rgb_histogram")
    return widget


@pytest.fixture()
def bar(qgis_iface, monkeypatch):
    """A real message bar for the dock, and QGIS's notices when a task ends."""
    real = QgsMessageBar()
    monkeypatch.setattr(qgis_iface, "messageBar", lambda: real)
    notices = []

    def notify(task_id, status):
        task = QgsApplication.taskManager().task(task_id)
        if task is not None and status in (QgsTask.TaskStatus.Complete, QgsTask.TaskStatus.Terminated):
            title = "Task complete" if status == QgsTask.TaskStatus.Complete else "Task failed"
            notices.append((title, task.description()))
            real.pushInfo(title, task.description())

    QgsApplication.taskManager().statusChanged.connect(notify)
    real.notices = notices
    yield real
    QgsApplication.taskManager().statusChanged.disconnect(notify)
    real.deleteLater()


def shown(bar) -> list[tuple[str, str, Qgis.MessageLevel]]:
    return [(item.title(), item.text(), item.level()) for item in bar.items()]


def _polygon_layer(name, crs, rectangle):
    layer = QgsVectorLayer(f"Polygon?crs={crs.authid()}", name, "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromRect(rectangle))
    layer.dataProvider().addFeatures([feature])
    QgsProject.instance().addMapLayer(layer)
    layer.selectAll()
    return layer


def test_a_mask_off_the_image_names_its_layer_and_the_image(dock, sample_layer, qgis_iface):  # noqa: F811
    extent = sample_layer.extent()
    x0, y0 = extent.xMaximum() + 50_000, extent.yMaximum() + 50_000
    far = _polygon_layer("districts of another province", sample_layer.crs(), QgsRectangle(x0, y0, x0 + 10_000, y0 + 10_000))
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    choose(dock.regionPanel.regionCombo, "selected")
    dock.regionPanel.maskLayerCombo.setLayer(far)
    dock.run()
    assert not dock.is_running()  # refused before any work
    expected = "The mask polygons of 'districts of another province' do not overlap the image 'Parana Landsat 8'"
    assert expected in dock.statusLabel.text()
    assert any(expected in m for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Critical))


def test_a_mask_smaller_than_a_cell_names_its_layer(dock, sample_layer, qtbot):  # noqa: F811
    centre = sample_layer.extent().center()
    tiny = _polygon_layer("one village", sample_layer.crs(),
                          QgsRectangle(centre.x() + 5, centre.y() + 5, centre.x() + 25, centre.y() + 25))
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    choose(dock.regionPanel.regionCombo, "selected")
    dock.regionPanel.maskLayerCombo.setLayer(tiny)
    ok, added = run_and_wait(dock, qtbot)
    assert ok is False and added == []
    assert "The mask polygons of 'one village' cover no cell of the raster parana_landsat8_l1_rgb_30m.tif" \
        in dock.statusLabel.text()


def test_errors_of_earlier_runs_go_when_the_next_run_starts(dock, sample_layer, qtbot, bar, tmp_path):  # noqa: F811
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    dock.optionsPanel.outputFileRadio.setChecked(True)
    dock.run()  # no output file chosen
    dock.optionsPanel.outputFileWidget.setFilePath(str(tmp_path / "map.png"))
    dock.run()  # not a GeoTIFF
    assert not dock.is_running()
    errors = [m for m in shown(bar) if m[2] == Qgis.MessageLevel.Critical]
    assert len(errors) == 1 and ".png" in errors[0][1]  # the first one went with the second run
    dock.optionsPanel.outputTempRadio.setChecked(True)
    ok, added = run_and_wait(dock, qtbot)
    assert ok is True and len(added) == 1
    assert not [m for m in shown(bar) if m[2] == Qgis.MessageLevel.Critical]


def test_the_see_the_dock_warning_stays_on_top_of_task_complete(dock, sample_layer, qtbot, bar):  # noqa: F811
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    ok, added = run_and_wait(dock, qtbot)
    assert ok is True and len(added) == 1
    assert dock.feedback.warnings  # the Level-1 scene read by a model of another radiometry: notes
    assert [title for title, _ in bar.notices] == ["Task complete"]  # QGIS did say it
    top = bar.currentItem()
    assert (top.title(), top.level()) == ("Poverty Mapper", Qgis.MessageLevel.Warning)
    assert "see the dock" in top.text()
    assert not [m for m in shown(bar) if m[0] == "Task complete"]  # the plugin's message says more


def test_cancel_is_reported_as_cancelled_not_as_failed(dock, sample_layer, qtbot, bar):  # noqa: F811
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    dock.optionsPanel.strideSpin.setValue(120)  # minutes of work
    dock.runButton.click()
    qtbot.waitUntil(lambda: dock.task is not None and dock.task.status() == QgsTask.TaskStatus.Running, timeout=30_000)
    with qtbot.waitSignal(dock.finished, timeout=60_000) as blocker:
        dock.cancelButton.click()
    assert blocker.args == [False]
    assert [title for title, _ in bar.notices] == ["Task failed"]  # what QGIS says of a cancelled task
    top = bar.currentItem()
    assert (top.title(), top.text(), top.level()) == ("Poverty Mapper", "Cancelled: no map was written.",
                                                      Qgis.MessageLevel.Info)
    assert not [m for m in shown(bar) if m[0] == "Task failed" or m[2] == Qgis.MessageLevel.Critical]
    assert dock.statusLabel.text() == "Cancelled: no output was written."
