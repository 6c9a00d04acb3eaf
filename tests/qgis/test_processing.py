"""The Processing algorithm, run through QGIS's Processing framework on real scenes."""
from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
import rasterio
from qgis.core import QgsApplication, QgsProcessingException, QgsRasterLayer, QgsReferencedRectangle, QgsRectangle, QgsCoordinateReferenceSystem, QgsVectorLayer, QgsFeature, QgsGeometry, QgsProject

from conftest import PARANA_SCENE, ROOT
from helpers import assert_same_map, engine_map
from poverty_mapper.core.models.defaults import DEFAULT_MODEL_PATH

SAMPLE = ROOT / "resources" / "sample" / "parana_landsat8_l1_rgb_30m.tif"
# The RGB histogram model, named: the sample scenes lie outside Africa, where the default
# (the Africa lights model) says it has no lights; test_processing_lights covers the default.
RGB = str(DEFAULT_MODEL_PATH)


@pytest.fixture()
def provider(poverty_provider):
    return poverty_provider


def test_provider_lists_predict(provider):
    algorithm = QgsApplication.processingRegistry().algorithmById("povertymapper:predict")
    assert algorithm is not None
    names = [p.name() for p in algorithm.parameterDefinitions()]
    for key in ("INPUT", "MODEL", "EXTENT", "MASK", "DEVICE", "STRIDE", "OUTPUT"):
        assert key in names
    assert algorithm.shortHelpString()


def test_every_parameter_of_every_algorithm_has_help(provider):
    """Each parameter's help is its tooltip in the Processing dialog and the Model Builder."""
    algorithms = provider.algorithms()
    assert len(algorithms) >= 6  # the five algorithms and the example model
    missing = [
        f"{algorithm.id()}: {parameter.name()}"
        for algorithm in algorithms
        for parameter in algorithm.parameterDefinitions()
        if not parameter.help().strip()
    ]
    assert missing == []


def test_predict_on_real_scene(provider, real_data, tmp_path):
    import processing

    out = tmp_path / "poverty.tif"
    result = processing.run(
        "povertymapper:predict",
        {"INPUT": str(PARANA_SCENE), "MODEL": RGB, "OUTPUT": str(out)},
    )
    assert result["OUTPUT"] == str(out)
    # The run in one line, an output of its own (the dock shows it).
    summary = re.match(r"Estimated (\d+) of (\d+) cells on \w+; bands [\d,]+; radiometry: ", result["SUMMARY"])
    n_estimated, n_cells = map(int, summary.groups())
    with rasterio.open(PARANA_SCENE) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs
        # Cells start on multiples of the cell size (6720 m) up and left of the scene's corner.
        cell = 224 * 30.0
        assert dst.transform.a == pytest.approx(cell)
        assert dst.transform.c == pytest.approx(np.floor(src.transform.c / cell) * cell)
        assert dst.transform.f == pytest.approx(np.ceil(src.transform.f / cell) * cell)
        assert dst.bounds.right >= src.bounds.right > dst.bounds.right - cell
        assert dst.bounds.bottom <= src.bounds.bottom < dst.bounds.bottom + cell
        values = dst.read(1, masked=True)
        assert dst.tags()["QUANTITY"] == "asset wealth index"
    # The scene's fill corner (about 16% of pixels) gives nodata cells; the rest is estimated.
    assert 0 < values.mask.sum() < values.size
    assert (n_cells, n_estimated) == (values.size, values.count())
    assert np.all(np.isfinite(values.compressed()))
    # Estimates of an asset index: a spread, within the range seen in the survey labels.
    assert values.std() > 0.01
    assert -3 < values.min() and values.max() < 3
    # Cell for cell the engine's own map (a band-order or extent slip would show here).
    assert_same_map(out, engine_map(PARANA_SCENE, tmp_path / "engine.tif", DEFAULT_MODEL_PATH))


def test_predict_with_extent_in_another_crs_and_mask(provider, real_data, tmp_path):
    import processing

    layer = QgsRasterLayer(str(SAMPLE), "sample")
    e = layer.extent()
    # The western half of the sample, given in WGS 84.
    half = QgsRectangle(e.xMinimum(), e.yMinimum(), e.center().x(), e.yMaximum())
    wgs84 = QgsCoordinateReferenceSystem("EPSG:4326")
    from qgis.core import QgsCoordinateTransform

    to_wgs = QgsCoordinateTransform(layer.crs(), wgs84, QgsProject.instance())
    extent = QgsReferencedRectangle(to_wgs.transformBoundingBox(half), wgs84)
    mask = QgsVectorLayer(f"Polygon?crs={layer.crs().authid()}", "mask", "memory")
    feature = QgsFeature()
    quarter = QgsRectangle(e.xMinimum(), e.center().y(), e.center().x(), e.yMaximum())
    feature.setGeometry(QgsGeometry.fromRect(quarter))
    mask.dataProvider().addFeatures([feature])

    out = tmp_path / "masked.tif"
    processing.run(
        "povertymapper:predict",
        {"MODEL": RGB, "INPUT": str(SAMPLE), "EXTENT": extent, "MASK": mask, "STRIDE": 1920, "OUTPUT": str(out)},
    )
    with rasterio.open(out) as dst:
        values = dst.read(1, masked=True)
        b = dst.bounds
    # The extent covers (a little more than, after reprojection) the western half.
    assert b.left <= e.xMinimum() + 30
    assert b.right < e.xMaximum() - 0.3 * e.width()
    # Only the north-west quarter (the mask) is estimated.
    north, south = values[: values.shape[0] // 2 - 1], values[values.shape[0] // 2 + 1 :]
    assert north.count() > 0
    assert south.count() == 0


def test_wrong_band_list_is_a_clear_error(provider, real_data, tmp_path):
    import processing

    with pytest.raises(QgsProcessingException, match="band"):
        processing.run(
            "povertymapper:predict",
            {"MODEL": RGB, "INPUT": str(SAMPLE), "BANDS": "1,2", "OUTPUT": str(tmp_path / "x.tif")},
        )
    assert not (tmp_path / "x.tif").exists()


def test_one_band_for_two_model_bands_is_a_clear_error(provider, real_data, tmp_path):
    import processing

    with pytest.raises(QgsProcessingException, match="would all read band 2 of the raster; each model band needs its own"):
        processing.run(
            "povertymapper:predict",
            {"MODEL": RGB, "INPUT": str(SAMPLE), "BANDS": "1,2,2", "OUTPUT": str(tmp_path / "x.tif")},
        )
    assert not (tmp_path / "x.tif").exists()


@pytest.mark.parametrize("name", ["poverty.png", "poverty"])
def test_an_output_that_is_no_geotiff_is_refused(provider, tmp_path, name):
    import processing

    with pytest.raises(QgsProcessingException, match="written as a GeoTIFF: give the output file the extension .tif"):
        processing.run("povertymapper:predict", {"MODEL": RGB, "INPUT": str(SAMPLE), "OUTPUT": str(tmp_path / name)})
    assert list(tmp_path.iterdir()) == []


def _image_without_crs(tmp_path):
    """A GENERATED 3-band Landsat-like image of 2 x 2 tiles of the default model, without a CRS
    (its corner on a multiple of the 6720 m cell, where the map's grid starts)."""
    path = tmp_path / "generated_without_crs.tif"
    rng = np.random.default_rng(1)
    with rasterio.open(path, "w", driver="GTiff", width=448, height=448, count=3, dtype="uint16",
                       transform=rasterio.transform.from_origin(104 * 6720, 1071 * 6720, 30, 30)) as dst:
        dst.write(rng.integers(7000, 12000, (3, 448, 448), dtype=np.uint16))
    return path


def test_a_crs_assigned_in_qgis_is_the_one_used(provider, tmp_path):
    """The file has no CRS; the layer was given one in QGIS (Layer Properties > Source): the map has it."""
    import processing

    layer = QgsRasterLayer(str(_image_without_crs(tmp_path)), "no crs")
    with pytest.raises(QgsProcessingException, match="no coordinate reference system"):
        processing.run("povertymapper:predict", {"MODEL": RGB, "INPUT": layer, "OUTPUT": str(tmp_path / "refused.tif")})
    layer.setCrs(QgsCoordinateReferenceSystem("EPSG:32721"))
    processing.run("povertymapper:predict", {"MODEL": RGB, "INPUT": layer, "OUTPUT": str(tmp_path / "map.tif")})
    with rasterio.open(tmp_path / "map.tif") as ds:
        assert ds.crs.to_epsg() == 32721 and ds.shape == (2, 2)


def test_a_mask_without_crs_is_refused(provider, tmp_path):
    import processing

    mask = QgsVectorLayer("Polygon", "mask without crs", "memory")
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(700_000, 7_190_000, 710_000, 7_200_000)))
    mask.dataProvider().addFeatures([feature])
    mask.setCrs(QgsCoordinateReferenceSystem())  # as a layer whose file says nothing of its CRS
    assert not mask.crs().isValid()
    from poverty_mapper.ui.processing_run import CollectingFeedback

    feedback = CollectingFeedback()  # refused while preparing: the reason goes to the feedback
    with pytest.raises(QgsProcessingException):
        processing.run("povertymapper:predict", {"MODEL": RGB, "INPUT": str(SAMPLE), "MASK": mask, "OUTPUT": str(tmp_path / "m.tif")},
                       feedback=feedback)
    assert any("mask polygons have no coordinate reference system" in e and "Assigned CRS" in e for e in feedback.errors)
    assert not (tmp_path / "m.tif").exists()


def test_a_layer_that_is_no_file_is_fetched_for_the_region(provider, xyz_layer_url, tmp_path):
    import processing

    layer = QgsRasterLayer(xyz_layer_url, "XYZ tiles of the scene", "wms")
    assert layer.isValid() and layer.providerType() == "wms"
    from poverty_mapper.ui.processing_run import CollectingFeedback

    refused = CollectingFeedback()  # the whole world at 30 m: refused while preparing, before any fetch
    with pytest.raises(QgsProcessingException):
        processing.run("povertymapper:predict", {"MODEL": RGB, "INPUT": layer, "OUTPUT": str(tmp_path / "world.tif")}, feedback=refused)
    assert any("is not a file, so it is fetched for the region" in e and "smaller region" in e for e in refused.errors)
    with rasterio.open(SAMPLE) as src:
        b = src.bounds
    extent = f"{b.left + 3000},{b.right - 3000},{b.bottom + 3000},{b.top - 3000} [EPSG:32621]"
    feedback = CollectingFeedback()
    processing.run("povertymapper:predict", {"MODEL": RGB, "INPUT": layer, "EXTENT": extent, "OUTPUT": str(tmp_path / "map.tif")},
                   feedback=feedback)
    assert any("Fetching 'XYZ tiles of the scene' for the region" in i for i in feedback.infos)
    with rasterio.open(tmp_path / "map.tif") as ds:
        estimates = ds.read(1, masked=True)
        assert ds.crs.to_epsg() == 3857 and ds.tags()["SOURCE_BANDS"] == "3,2,1"  # found by the fetched band names
    assert estimates.count() >= 16  # the region is about 32 x 35 km: 4 x 5 tiles of 6.72 km or more


def test_example_model_is_offered_in_the_toolbox(provider):
    ids = [a.id() for a in provider.algorithms()]
    assert "povertymapper:povertybydistrict" in ids
    assert [i for i in ids if " " in i] == []  # ids a command line takes without quotes
    model = QgsApplication.processingRegistry().algorithmById("povertymapper:povertybydistrict")
    assert model.displayName() == "Poverty by district (fit, predict, aggregate)"
    # One "Poverty Mapper" node in the toolbox: the provider's, with no group of that name inside.
    assert {a.group() for a in provider.algorithms()} == {""}
    assert {"povertymapper:fitclusters", "povertymapper:predict", "povertymapper:aggregate"} <= {
        model.childAlgorithm(c).algorithmId() for c in model.childAlgorithms()
    }


def test_maps_of_one_model_share_its_colour_scale(provider, real_data, tmp_path):
    """Two regions of the real scene, mapped with the bundled default: the same colour
    scale (the model's, survey mean at the middle colour), not each map's own range."""
    import processing

    from poverty_mapper.core.models.defaults import DEFAULT_MODEL_PATH
    from poverty_mapper.core.models.model_file import read_model_info
    from poverty_mapper.provider.styling import apply_poverty_style

    with rasterio.open(PARANA_SCENE) as src:
        b = src.bounds
    mid = (b.left + b.right) / 2
    halves = {"west": f"{b.left},{mid},{b.bottom},{b.top}", "east": f"{mid},{b.right},{b.bottom},{b.top}"}
    scales = {}
    for name, extent in halves.items():
        out = tmp_path / f"{name}.tif"
        processing.run("povertymapper:predict", {"MODEL": RGB, "INPUT": str(PARANA_SCENE), "EXTENT": f"{extent} [EPSG:32621]",
                                                 "OUTPUT": str(out)})
        # The style travels with the file: opened anew (the project closed), the map has its look.
        assert (tmp_path / f"{name}.qml").is_file()
        reopened = QgsRasterLayer(str(out), name)
        items = reopened.renderer().shader().rasterShaderFunction().colorRampItemList()
        scales[name + "_reopened"] = [(round(i.value, 6), i.label) for i in items]
        layer = QgsRasterLayer(str(out), name)
        apply_poverty_style(layer, "asset wealth index", "index")
        items = layer.renderer().shader().rasterShaderFunction().colorRampItemList()
        scales[name] = [(round(i.value, 6), i.label) for i in items]
        assert scales[name + "_reopened"] == scales[name]
        with rasterio.open(out) as ds:
            own = ds.read(1, masked=True)
        scales[name + "_own"] = (float(own.min()), float(own.max()))
    assert scales["west"] == scales["east"] and len(scales["west"]) == 3
    domain = read_model_info(DEFAULT_MODEL_PATH).domain
    lo, hi = domain.legend_range()
    assert [v for v, _ in scales["west"]] == pytest.approx([lo, domain.outcome_mean, hi], abs=1e-5)
    assert "survey mean" in scales["west"][1][1]
    assert scales["west_own"] != scales["east_own"]  # the maps differ; their scale does not


def test_a_map_without_estimates_gets_a_sensible_scale(provider, tmp_path):
    """A map holding only nodata (GENERATED) must not get a legend from the float limits."""
    from poverty_mapper.provider.styling import apply_poverty_style

    path = tmp_path / "empty.tif"
    profile = dict(driver="GTiff", width=4, height=4, count=1, dtype="float32", nodata=-9999.0, crs="EPSG:32621",
                   transform=rasterio.transform.from_origin(0, 0, 10, 10))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, 4, 4), -9999.0, np.float32))
    layer = QgsRasterLayer(str(path), "empty")
    apply_poverty_style(layer, "wealth", "index")
    renderer = layer.renderer()
    assert (renderer.classificationMin(), renderer.classificationMax()) == (0.0, 1.0)


def test_a_one_cell_map_is_written_and_opened_without_gdal_errors(provider, tmp_path, capfd):
    """A map of one estimated cell (its estimate and interval bands each of one value):
    QGIS's default colour stretch asked GDAL for those bands' histograms, and every run
    printed 'ERROR 5: ... dfMax should be strictly greater than dfMin' twice."""
    import processing

    from poverty_mapper.core.models.model_file import read_model_info
    from poverty_mapper.core.models.defaults import DEFAULT_MODEL_PATH
    from poverty_mapper.ui.result_layer import open_result_layer

    corner = tmp_path / "corner.tif"  # 240 x 240 px of the real scene: one cell of 224 px has enough pixels
    subprocess.run(["gdal_translate", "-q", "-srcwin", "0", "0", "240", "240", str(SAMPLE), str(corner)], check=True)
    out = tmp_path / "one.tif"
    capfd.readouterr()
    processing.run("povertymapper:predict", {"INPUT": str(corner), "MODEL": RGB, "OUTPUT": str(out)})
    with rasterio.open(out) as dst:
        assert dst.count >= 3 and dst.read(1, masked=True).count() == 1
    (tmp_path / "one.qml").unlink()  # opened as the dock opens a map it has not styled yet
    from datetime import date

    layer = open_result_layer(str(out), read_model_info(DEFAULT_MODEL_PATH), "corner", date(2026, 1, 1))
    assert layer.renderer().type() == "singlebandpseudocolor"
    err = capfd.readouterr().err
    assert "dfMax" not in err and "ERROR" not in err, err


def test_other_gdal_messages_still_reach_the_analyst_while_a_map_opens(capfd):
    from osgeo import gdal

    from poverty_mapper.provider.map_layers import constant_bands_unreported

    with constant_bands_unreported():
        gdal.Error(gdal.CE_Failure, 5, "x.tif, band 1: dfMax should be strictly greater than dfMin")
        gdal.Error(gdal.CE_Warning, 1, "x.tif: TIFFReadDirectory: unknown field with tag 42113")
    err = capfd.readouterr().err
    assert "dfMax" not in err
    assert "Warning 1: x.tif: TIFFReadDirectory: unknown field with tag 42113" in err


def test_predict_with_a_night_lights_layer(provider, tmp_path):
    """The bundled night-lights model through Processing, on a GENERATED world (image in
    UTM, lights in EPSG:4326): the default model when a night-lights layer is given."""
    import processing

    from generated_world import make_world

    world = make_world(tmp_path / "world", size=448, n_settlements=30, n_clusters=5)
    out = tmp_path / "lights_map.tif"
    processing.run("povertymapper:predict", {
        "INPUT": str(world.image_path), "NIGHTLIGHTS": str(world.lights_path), "STRIDE": 3360.0, "OUTPUT": str(out),
    })
    with rasterio.open(out) as dst:
        tags = dst.tags()
        values = dst.read(1, masked=True)
    assert tags["MODEL"].startswith("Africa night lights (VIIRS)")
    assert tags["SOURCE_NIGHTLIGHTS"] == world.lights_path.name
    assert values.count() >= 4 and values.compressed().std() > 0


def test_the_night_lights_model_without_a_lights_layer_says_what_to_give(provider, tmp_path):
    import processing

    from poverty_mapper.core.models.defaults import NIGHTLIGHTS_MODEL_PATH

    with pytest.raises(QgsProcessingException, match=r"night-lights layer.*nW/cm²/sr.*NIGHTLIGHTS parameter"):
        processing.run("povertymapper:predict", {
            "INPUT": str(SAMPLE), "MODEL": str(NIGHTLIGHTS_MODEL_PATH), "OUTPUT": str(tmp_path / "x.tif"),
        })
    assert not (tmp_path / "x.tif").exists()
def test_predict_and_fit_take_a_dask_scheduler_as_an_advanced_parameter(provider, tmp_path, monkeypatch, package_path):
    import processing
    from distributed import LocalCluster
    from qgis.core import QgsProcessingParameterDefinition

    registry = QgsApplication.processingRegistry()
    for name in ("predict", "fitclusters"):
        parameter = registry.algorithmById(f"povertymapper:{name}").parameterDefinition("SCHEDULER")
        assert parameter.flags() & QgsProcessingParameterDefinition.FlagAdvanced and "dask worker" in parameter.help()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        processing.run("povertymapper:predict", {"INPUT": str(SAMPLE), "MODEL": RGB, "OUTPUT": str(tmp_path / "local.tif")})
        processing.run("povertymapper:predict", {"INPUT": str(SAMPLE), "MODEL": RGB, "SCHEDULER": cluster.scheduler_address,
                                                 "OUTPUT": str(tmp_path / "dask.tif")})
    with rasterio.open(tmp_path / "local.tif") as local, rasterio.open(tmp_path / "dask.tif") as dask:
        expected = local.read()
        assert (expected[0] != local.nodata).any()
        np.testing.assert_allclose(dask.read(), expected, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr("poverty_mapper.core.imagery.dask_run.CONNECT_TIMEOUT_S", 3.0)
    with pytest.raises(QgsProcessingException, match="Cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"):
        processing.run("povertymapper:predict", {"INPUT": str(SAMPLE), "MODEL": RGB, "SCHEDULER": "tcp://127.0.0.1:9",
                                                 "OUTPUT": str(tmp_path / "unreachable.tif")})
    assert not (tmp_path / "unreachable.tif").exists()
