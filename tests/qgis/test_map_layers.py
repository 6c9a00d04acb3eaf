"""A map as it enters the project, from the dock and from Processing: named after its model
and image (unique in the project), grouped with a quality layer that shows on the map where
its estimates are extrapolations or out of the model's domain, and Identify's band names
say what the codes mean."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from qgis.core import (
    QgsFeature,
    QgsGeometry,
    QgsMapRendererSequentialJob,
    QgsCategorizedSymbolRenderer,
    QgsMapSettings,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.gui import QgsMapCanvas, QgsMapToolIdentify
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor
from rasterio.transform import from_origin

from poverty_mapper.core.inference.writer import (
    INTERVAL_DESCRIPTION,
    NODATA,
    QUALITY_DESCRIPTION,
    QUALITY_EXTRAPOLATED,
    QUALITY_OK,
    QUALITY_OUT_OF_DOMAIN,
)
from poverty_mapper.provider.map_layers import (
    add_map_to_project,
    is_companion_layer,
    is_quality_layer,
    map_name,
    quality_layer,
    unique_name,
)
from dock_helpers import MODEL_NAME, SAMPLE, choose, dock, make_dock, run_and_wait, sample_layer  # noqa: F401 (fixtures)

pytestmark = pytest.mark.usefixtures("clean_settings")
UTM = "EPSG:32721"
CELL = 1000.0
X0, Y0 = 700_000.0, 7_200_000.0
# A GENERATED 2 x 3 map: trusted, extrapolated, out of domain (top row); trusted cells below.
CODES = np.array([[QUALITY_OK, QUALITY_EXTRAPOLATED, QUALITY_OUT_OF_DOMAIN], [QUALITY_OK] * 3], np.float32)


def _generated_map(path) -> str:
    with rasterio.open(path, "w", driver="GTiff", width=3, height=2, count=3, dtype="float32", crs=UTM,
                       transform=from_origin(X0, Y0, CELL, CELL), nodata=NODATA) as dst:
        dst.write(np.stack([np.full((2, 3), 0.5), CODES, np.full((2, 3), 0.3)]).astype(np.float32))
        names = ("generated index (generated units)", QUALITY_DESCRIPTION, INTERVAL_DESCRIPTION)
        for band, text in enumerate(names, 1):
            dst.set_band_description(band, text)
        dst.update_tags(QUANTITY="generated index", UNIT="generated units", MODEL="generated")
    return str(path)


def _cell_centre(row: int, col: int) -> QgsPointXY:
    return QgsPointXY(X0 + (col + 0.5) * CELL, Y0 - (row + 0.5) * CELL)


def _render(layer):
    """The layer alone, drawn over nothing at 30 px per cell: each cell's mean colour."""
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(QgsRectangle(X0, Y0 - 2 * CELL, X0 + 3 * CELL, Y0))
    settings.setOutputSize(QSize(90, 60))
    settings.setBackgroundColor(QColor(0, 0, 0, 0))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()

    def cell(row: int, col: int) -> QColor:
        pixels = [image.pixelColor(col * 30 + i, row * 30 + j) for i in range(3, 27) for j in range(3, 27)]
        mean = [sum(getattr(p, part)() for p in pixels) / len(pixels) for part in ("red", "green", "blue", "alpha")]
        return QColor(*(int(round(v)) for v in mean))
    return cell


def test_names_follow_model_image_and_mask_and_are_unique_in_the_project(qgis_new_project, tmp_path):
    names = {
        map_name("RGB model", "Parana Landsat 8"),
        map_name("Kinshasa CNN", "Parana Landsat 8"),
        map_name("RGB model", "Kinshasa 2015"),
        map_name("RGB model", "Parana Landsat 8", "districts"),
    }
    assert len(names) == 4 and map_name("RGB model", "Parana Landsat 8", "districts").endswith("within districts")
    project = QgsProject.instance()
    path = _generated_map(tmp_path / "generated_map.tif")
    project.addMapLayer(QgsRasterLayer(path, unique_name("Poverty map: m on i", project)))
    assert unique_name("Poverty map: m on i", project) == "Poverty map: m on i (2)"
    second = QgsRasterLayer(path, "Poverty map: m on i")
    add_map_to_project(second)
    assert second.name() == "Poverty map: m on i (2)"
    assert unique_name("Poverty map: m on i", project) == "Poverty map: m on i (3)"


def test_the_quality_layer_hatches_extrapolated_and_out_of_domain_cells_and_names_each_code(
        qgis_new_project, tmp_path):
    path = _generated_map(tmp_path / "generated_map.tif")
    layer = quality_layer(path, "Poverty map: generated model on generated image")
    assert isinstance(layer, QgsVectorLayer) and layer.isValid() and is_quality_layer(layer)
    assert (tmp_path / "generated_map.quality.gpkg").is_file()  # kept beside the map, for the saved project
    assert sorted(f["quality"] for f in layer.getFeatures()) == [QUALITY_EXTRAPOLATED, QUALITY_OUT_OF_DOMAIN]
    renderer = layer.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer) and renderer.classAttribute() == "quality"
    labels = {int(c.value()): c.label() for c in renderer.categories()}
    assert labels[QUALITY_OUT_OF_DOMAIN].startswith("3 = out of the model's domain")
    assert labels[QUALITY_EXTRAPOLATED].startswith("1 = extrapolation")
    cell = _render(layer)
    assert cell(1, 0).alpha() == 0 and cell(0, 0).alpha() == 0  # trusted: the map shows through
    assert cell(0, 1).alpha() > 0 and cell(0, 2).alpha() > 0  # extrapolated, out of domain: covered
    assert cell(0, 2).lightness() < cell(0, 1).lightness()  # out of domain darker than extrapolated


def test_identify_on_the_quality_layer_names_the_cell(qgis_new_project, tmp_path):
    path = _generated_map(tmp_path / "generated_map.tif")
    layer = quality_layer(path, "Poverty map: generated model on generated image")
    QgsProject.instance().addMapLayer(layer)
    canvas = QgsMapCanvas()
    canvas.setDestinationCrs(layer.crs())
    canvas.setExtent(QgsRectangle(X0, Y0 - 2 * CELL, X0 + 3 * CELL, Y0))
    canvas.resize(300, 200)
    results = QgsMapToolIdentify(canvas).identify(
        QgsGeometry.fromPointXY(_cell_centre(0, 2)), QgsMapToolIdentify.TopDownAll, [layer],
        QgsMapToolIdentify.VectorLayer)
    assert len(results) == 1 and results[0].mFeature["meaning"].startswith("3 = out of the model's domain")
    assert layer.displayExpression() == '"meaning"'  # Identify's feature line reads the meaning too
    canvas.deleteLater()


def test_identify_names_the_quality_and_interval_bands(qgis_new_project, tmp_path):
    path = _generated_map(tmp_path / "generated_map.tif")
    layer = QgsRasterLayer(path, "Poverty map: generated model on generated image")
    QgsProject.instance().addMapLayer(layer)
    canvas = QgsMapCanvas()
    canvas.setDestinationCrs(layer.crs())
    canvas.setExtent(layer.extent())
    canvas.resize(300, 200)
    results = QgsMapToolIdentify(canvas).identify(
        QgsGeometry.fromPointXY(_cell_centre(0, 2)), QgsMapToolIdentify.TopDownAll, [layer],
        QgsMapToolIdentify.RasterLayer)
    attributes = results[0].mAttributes
    assert attributes["Band 2: quality (1 extrapolation, 3 out of domain)"] == "3"
    assert "Band 3: interval80: 80 % interval half-width" in attributes
    canvas.deleteLater()


def test_two_dock_runs_give_two_named_groups_with_quality_layers_and_an_export_list_of_maps(
        dock, sample_layer, qtbot, tmp_path):
    dock.imagePanel.layerCombo.setLayer(sample_layer)
    maps = []
    for name in ("first.tif", "second.tif"):
        dock.optionsPanel.outputFileRadio.setChecked(True)
        dock.optionsPanel.outputFileWidget.setFilePath(str(tmp_path / name))
        ok, added = run_and_wait(dock, qtbot)
        assert ok is True and len(added) == 1
        maps.append(added[0])
    expected = f"Poverty map: {MODEL_NAME} on Parana Landsat 8"
    assert [m.name() for m in maps] == [expected, expected + " (2)"]
    root = QgsProject.instance().layerTreeRoot()
    for layer in maps:
        group = root.findLayer(layer.id()).parent()
        assert group.name() == layer.name()
        quality, estimate, interval = [child.layer() for child in group.children()]
        assert estimate is layer and is_quality_layer(quality) and child_visible(group, quality)
        assert is_companion_layer(interval) and interval.renderer().band() == 3
        assert not group.findLayer(interval.id()).isVisible()  # the interval: there when asked for
        assert isinstance(quality, QgsVectorLayer) and quality.source().startswith(layer.source()[:-4] + ".quality.gpkg")
        assert quality.name() != layer.name() and "quality" in quality.name()
        assert layer.metadata().title() == layer.name()
    # The sample is a Brazilian scene: its quality band flags cells, and the quality layer is drawn there.
    with rasterio.open(maps[0].source()) as ds:
        assert np.isin(ds.read(2), (QUALITY_EXTRAPOLATED, QUALITY_OUT_OF_DOMAIN)).any()
    combo = dock.exportPanel.mapCombo
    listed = [combo.layer(i).name() for i in range(combo.count())]
    assert expected in listed and expected + " (2)" in listed
    assert not any("quality" in name or "interval" in name for name in listed)  # no maps to export
    polygons = dock.exportPanel.polygonsCombo
    assert not any(is_companion_layer(polygons.layer(i)) for i in range(polygons.count()))  # no districts


def child_visible(group, layer) -> bool:
    return group.findLayer(layer.id()).isVisible()


def test_processing_loads_the_map_named_and_grouped_with_its_quality(poverty_provider, qgis_new_project, tmp_path):
    import processing

    image = QgsRasterLayer(str(SAMPLE), "Parana scene")
    districts = QgsVectorLayer(f"Polygon?crs={image.crs().authid()}", "generated districts", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromRect(image.extent().buffered(-5000)))
    districts.dataProvider().addFeatures([feature])
    QgsProject.instance().addMapLayers([image, districts])
    for name in ("a.tif", "b.tif"):
        processing.runAndLoadResults(
            "povertymapper:predict",
            {"INPUT": image.id(), "MODEL": str(SAMPLE.parents[1] / "models" / "default.povmodel"),
             "MASK": districts.id(), "OUTPUT": str(tmp_path / name)},
        )
    maps = [layer for layer in QgsProject.instance().mapLayers().values()
            if layer.name().startswith("Poverty map") and not is_companion_layer(layer)]
    expected = f"Poverty map: {MODEL_NAME} on Parana scene, within generated districts"
    assert sorted(m.name() for m in maps) == [expected, expected + " (2)"]
    root = QgsProject.instance().layerTreeRoot()
    for layer in maps:
        group = root.findLayer(layer.id()).parent()
        assert group.name() == layer.name()
        assert [is_quality_layer(child.layer()) for child in group.children()] == [True, False, False]
        assert group.children()[1].layer() is layer
        assert root.findLayerIds().count(layer.id()) == 1  # one node: moved into the group, not copied
