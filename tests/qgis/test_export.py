"""Getting estimates out for analysts, through QGIS Processing: ``povertymapper:topolygons``
(a poverty map as grid-cell polygons), ``povertymapper:aggregate`` (per-district means,
plain and population-weighted) and the example model fit -> predict -> aggregate.

The rasters are GENERATED GeoTIFFs written into tmp_path; the model runs on the
GENERATED world of tests/generated_world.py. None of the numbers is an accuracy."""
from __future__ import annotations

import os
import subprocess
import sys
from xml.etree.ElementTree import canonicalize

import numpy as np
import pytest
import rasterio
from affine import Affine
from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsField,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QVariant

from conftest import ROOT
from generated_world import IMAGE_CRS, PIXEL_M, make_world
from helpers import (
    DISTRICTS, MAP_CELL, MAP_ESTIMATES, MAP_NODATA, MAP_UTM, MAP_X0, MAP_Y0, districts_layer, write_poverty_map,
)

EXAMPLE_MODEL = ROOT / "resources" / "models" / "fit_predict_aggregate.model3"

# People per poverty cell (the generated population raster has 2 x 2 pixels per cell).
PEOPLE = np.array(
    [[10, 30, 1, 1],
     [0, 60, 1, 1],
     [1, 1, 5, 5],
     [3, 1, 10, 100]], dtype=np.float64,
)
_SW_SHARES, _SW_VALUES, _SW_PEOPLE = np.array([1, 0.4, 0.6, 0.24]), np.array([9, 10, 13, 14]), np.array([1, 1, 3, 1])
EXPECTED = {
    "north-west": (4, 1.0, 3.5, (1 * 10 + 2 * 30 + 5 * 0 + 6 * 60) / 100, 100),
    "south-east": (3, 0.75, 38 / 3, (11 * 5 + 12 * 5 + 15 * 10) / 20, 20),
    "south-west": (4, 1.0, (_SW_SHARES * _SW_VALUES).sum() / _SW_SHARES.sum(),
                   (_SW_SHARES * _SW_PEOPLE * _SW_VALUES).sum() / (_SW_SHARES * _SW_PEOPLE).sum(),
                   (_SW_SHARES * _SW_PEOPLE).sum()),
    "outside": (0, 0.0, None, None, 0),
}


@pytest.fixture()
def poverty_map(tmp_path) -> str:
    """The generated 4 x 4 poverty map of MAP_ESTIMATES."""
    return write_poverty_map(tmp_path / "generated_poverty.tif", MAP_ESTIMATES)


@pytest.fixture()
def population(tmp_path) -> str:
    """A generated population raster at 500 m (2 x 2 pixels per poverty cell) summing to
    PEOPLE per cell. In the cell of estimate 2 the 30 people sit on two pixels and the
    other two are nodata, so only a sum (not a mean) of the pixels gives 30."""
    pixels = np.repeat(np.repeat(PEOPLE / 4, 2, 0), 2, 1).astype(np.float32)
    pixels[0:2, 2:4] = [[15, 15], [-1, -1]]
    with rasterio.open(
        tmp_path / "generated_population.tif", "w", driver="GTiff", width=8, height=8, count=1, dtype="float32",
        crs=MAP_UTM, transform=Affine(MAP_CELL / 2, 0, MAP_X0, 0, -MAP_CELL / 2, MAP_Y0), nodata=-1,
    ) as dst:
        dst.write(pixels, 1)
    return str(tmp_path / "generated_population.tif")


def _value(feature, name):
    value = feature[name]
    return None if value is None or (hasattr(value, "isNull") and value.isNull()) else value


def test_algorithms_are_registered_with_help(poverty_provider):
    registry = QgsApplication.processingRegistry()
    for name, keys in (("topolygons", {"INPUT", "FIELD_NAME", "OUTPUT"}),
                       ("aggregate", {"INPUT", "POLYGONS", "POPULATION", "POVERTY_LINE", "OUTPUT"})):
        algorithm = registry.algorithmById(f"povertymapper:{name}")
        assert algorithm is not None, name
        assert {p.name() for p in algorithm.parameterDefinitions()} == keys
        assert len(algorithm.shortHelpString()) > 300
    field_name = registry.algorithmById("povertymapper:topolygons").parameterDefinition("FIELD_NAME")
    assert field_name.defaultValue() == "estimate"


# --- topolygons -------------------------------------------------------------------------


def _check_cells(path: str, raster: str, field: str) -> QgsVectorLayer:
    """The polygon layer at ``path`` holds one square per estimated cell of ``raster``,
    with that cell's value (as rasterio reads it), in the raster's CRS."""
    layer = QgsVectorLayer(path, "cells", "ogr")
    assert layer.isValid()
    assert [n for n in layer.fields().names() if n != "fid"] == [field, "quantity", "unit"]  # fid: GeoPackage's key
    assert layer.fields().field(field).type() == QVariant.Double
    assert layer.fields().field("quantity").type() == QVariant.String
    assert layer.crs().authid() == MAP_UTM
    with rasterio.open(raster) as ds:
        values = ds.read(1, masked=True)
        cell_area = abs(ds.transform.a * ds.transform.e)
        seen = {}
        for feature in layer.getFeatures():
            centre = feature.geometry().centroid().asPoint()
            row, col = ds.index(centre.x(), centre.y())
            assert feature.geometry().area() == pytest.approx(cell_area)
            seen[(row, col)] = (feature[field], feature["quantity"], feature["unit"])
    assert layer.featureCount() == values.count() == len(seen)
    for (row, col), (value, quantity, unit) in seen.items():
        assert not values.mask[row, col]
        assert value == pytest.approx(float(values[row, col]), abs=1e-9)
        assert (quantity, unit) == ("generated index", "generated units")
    return layer


@pytest.fixture()
def random_map(tmp_path) -> str:
    """A generated 9 x 7 poverty map of random values with float32 precision, 10 nodata cells."""
    rng = np.random.default_rng(3)
    values = rng.normal(0, 1.5, (7, 9)).astype(np.float32) / 7
    values.ravel()[rng.choice(values.size, 10, replace=False)] = MAP_NODATA
    return write_poverty_map(tmp_path / "generated_random_poverty.tif", values, cell=240.0)


def test_topolygons_to_shapefile(poverty_provider, random_map, tmp_path):
    import processing

    result = processing.run(
        "povertymapper:topolygons", {"INPUT": random_map, "OUTPUT": str(tmp_path / "cells.shp")}
    )
    layer = _check_cells(result["OUTPUT"], random_map, "estimate")
    assert layer.featureCount() == 9 * 7 - 10
    assert layer.renderer().type() == "graduatedSymbol" and layer.renderer().classAttribute() == "estimate"


class _Warnings(QgsProcessingFeedback):
    def __init__(self):
        super().__init__()
        self.warnings: list[str] = []

    def pushWarning(self, warning):  # noqa: N802 (QGIS API)
        self.warnings.append(warning)
        super().pushWarning(warning)


def test_topolygons_to_geopackage_with_a_long_field_name(poverty_provider, poverty_map, tmp_path):
    import processing

    feedback = _Warnings()
    result = processing.run(
        "povertymapper:topolygons",
        {"INPUT": poverty_map, "FIELD_NAME": "estimate_of_wealth", "OUTPUT": str(tmp_path / "cells.gpkg")},
        feedback=feedback,
    )
    layer = _check_cells(result["OUTPUT"], poverty_map, "estimate_o")  # shortened to 10 characters
    assert any("'estimate_o'" in w and "10 characters" in w for w in feedback.warnings), feedback.warnings
    assert sorted(f["estimate_o"] for f in layer.getFeatures()) == list(range(1, 16))


def test_topolygons_refuses_an_unusable_field_name(poverty_provider, poverty_map, tmp_path):
    import processing

    with pytest.raises(QgsProcessingException, match="letters, digits and underscores"):
        processing.run(
            "povertymapper:topolygons",
            {"INPUT": poverty_map, "FIELD_NAME": "1 wealth", "OUTPUT": str(tmp_path / "bad.gpkg")},
        )
    with pytest.raises(QgsProcessingException, match="taken"):
        processing.run(
            "povertymapper:topolygons",
            {"INPUT": poverty_map, "FIELD_NAME": "unit", "OUTPUT": str(tmp_path / "bad2.gpkg")},
        )


# --- aggregate --------------------------------------------------------------------------


def _aggregated(path: str) -> dict[str, QgsFeature]:
    layer = QgsVectorLayer(path, "aggregated", "ogr")
    assert layer.isValid()
    return layer, {f["name"]: f for f in layer.getFeatures()}


def test_aggregate_with_population_over_wgs84_polygons_to_shapefile(poverty_provider, poverty_map, population, tmp_path):
    import processing

    result = processing.run(
        "povertymapper:aggregate",
        {"INPUT": poverty_map, "POLYGONS": districts_layer("EPSG:4326"), "POPULATION": population,
         "OUTPUT": str(tmp_path / "districts.shp")},
    )
    layer, features = _aggregated(result["OUTPUT"])
    assert layer.fields().names() == [
        "name", "code", "pov_cover", "pov_mean", "pov_wmean", "pov_pop", "pov_extra", "pov_ood", "pov_cells"]
    assert all(len(name) <= 10 for name in layer.fields().names())
    assert layer.fields().field("pov_mean").type() == QVariant.Double
    assert layer.fields().field("pov_wmean").type() == QVariant.Double
    assert layer.fields().field("pov_cells").type() in (QVariant.Int, QVariant.LongLong)
    assert layer.crs().authid() == "EPSG:4326"
    assert set(features) == {name for name, *_ in DISTRICTS}
    for name, (cells, cover, mean, weighted, people) in EXPECTED.items():
        feature = features[name]
        assert feature["code"] == dict((d[0], d[1]) for d in DISTRICTS)[name]
        assert feature["pov_cells"] == cells, name
        assert feature["pov_cover"] == pytest.approx(cover, abs=1e-4), name  # WGS84 polygons: transformed edges
        assert feature["pov_pop"] == pytest.approx(people, abs=1e-3), name
        if mean is None:
            assert _value(feature, "pov_mean") is None and _value(feature, "pov_wmean") is None
        else:
            assert feature["pov_mean"] == pytest.approx(mean, abs=1e-4), name
            assert feature["pov_wmean"] == pytest.approx(weighted, abs=1e-4), name
    # Styled beside the file (red = poorer ... blue = wealthier, on the population-weighted mean).
    reopened = QgsVectorLayer(result["OUTPUT"], "reopened", "ogr")
    assert reopened.renderer().type() == "graduatedSymbol" and reopened.renderer().classAttribute() == "pov_wmean"
    assert (tmp_path / "districts.qml").is_file()
    # The geometry is the input's, in its CRS.
    inputs = {f["name"]: f for f in districts_layer("EPSG:4326").getFeatures()}
    for name, feature in features.items():
        assert feature.geometry().boundingBox().toString(6) == inputs[name].geometry().boundingBox().toString(6)


def test_aggregate_without_population(poverty_provider, poverty_map, tmp_path):
    import processing

    result = processing.run(
        "povertymapper:aggregate",
        {"INPUT": poverty_map, "POLYGONS": districts_layer(MAP_UTM), "OUTPUT": str(tmp_path / "districts.gpkg")},
    )
    layer, features = _aggregated(result["OUTPUT"])
    names = layer.fields().names()
    assert "pov_wmean" not in names
    assert layer.renderer().type() == "graduatedSymbol" and layer.renderer().classAttribute() == "pov_mean"  # GeoPackage
    assert {"name", "code", "pov_mean", "pov_cells"} <= set(names)
    assert layer.crs().authid() == MAP_UTM
    for name, (cells, cover, mean, _weighted, _people) in EXPECTED.items():
        assert features[name]["pov_cells"] == cells, name
        assert features[name]["pov_cover"] == pytest.approx(cover, abs=1e-6), name  # exactextract: float32 shares
        if mean is None:
            assert _value(features[name], "pov_mean") is None
        else:
            assert features[name]["pov_mean"] == pytest.approx(mean, abs=1e-6), name


def test_aggregate_replaces_result_fields_of_an_earlier_run(poverty_provider, poverty_map, tmp_path):
    import processing

    first = processing.run(
        "povertymapper:aggregate",
        {"INPUT": poverty_map, "POLYGONS": districts_layer(MAP_UTM), "OUTPUT": str(tmp_path / "first.gpkg")},
    )
    doubled = write_poverty_map(tmp_path / "generated_doubled.tif", np.where(MAP_ESTIMATES == MAP_NODATA, MAP_NODATA, 2 * MAP_ESTIMATES))
    second = processing.run(
        "povertymapper:aggregate",
        {"INPUT": doubled, "POLYGONS": first["OUTPUT"], "OUTPUT": str(tmp_path / "second.gpkg")},
    )
    layer, features = _aggregated(second["OUTPUT"])
    assert layer.fields().names().count("pov_mean") == 1
    assert features["north-west"]["pov_mean"] == pytest.approx(7.0, abs=1e-6)


# --- the example model ------------------------------------------------------------------


def test_example_model_file_is_what_the_script_writes(tmp_path):
    out = tmp_path / "regenerated.model3"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_example_model.py"), "--out", str(out)],
        check=True, capture_output=True, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    # Compared as canonical XML: Qt may write attributes in another order.
    assert canonicalize(from_file=str(out)) == canonicalize(from_file=str(EXAMPLE_MODEL))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("generated_world_model"), size=384, n_clusters=60)


def test_example_model_runs_fit_predict_aggregate(poverty_provider, world, tmp_path):
    """The .model3 chains fitclusters -> predict -> aggregate on the GENERATED world."""
    import processing

    from poverty_mapper.core.models.model_file import load_model

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(EXAMPLE_MODEL))
    steps = {model.childAlgorithm(c).algorithmId() for c in model.childAlgorithms()}
    assert steps == {"povertymapper:fitclusters", "povertymapper:predict", "povertymapper:aggregate"}

    clusters = QgsVectorLayer(f"Point?crs={IMAGE_CRS.to_string()}", "clusters", "memory")
    clusters.dataProvider().addAttributes([QgsField("wealth", QVariant.Double)])
    clusters.updateFields()
    points = []
    for x, y, outcome, _weight in world.clusters:
        feature = QgsFeature(clusters.fields())
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        feature.setAttributes([outcome])
        points.append(feature)
    clusters.dataProvider().addFeatures(points)

    # Three districts: vertical strips covering the generated world.
    side = world.density.shape[0] * PIXEL_M
    x0, y_top = world.transform.c, world.transform.f
    districts = QgsVectorLayer(f"Polygon?crs={IMAGE_CRS.to_string()}", "districts", "memory")
    districts.dataProvider().addAttributes([QgsField("name", QVariant.String)])
    districts.updateFields()
    strips = []
    for i in range(3):
        feature = QgsFeature(districts.fields())
        feature.setGeometry(QgsGeometry.fromRect(
            QgsRectangle(x0 + i * side / 3, y_top - side, x0 + (i + 1) * side / 3, y_top)))
        feature.setAttributes([f"strip {i}"])
        strips.append(feature)
    districts.dataProvider().addFeatures(strips)

    result = processing.run(  # by its toolbox id, as qgis_process runs it
        "povertymapper:povertybydistrict",
        {
            "image": str(world.image_path),
            "clusters": clusters,
            "outcome": "wealth",
            "box_size": 1500,
            "districts": districts,
            "population": str(world.lights_path),  # any raster of counts will do; this one is in WGS 84
            "aggregate:districts": str(tmp_path / "districts.gpkg"),
            "fitclusters:model_file": str(tmp_path / "fitted.povmodel"),
        },
    )
    fitted = load_model(result["fitclusters:model_file"])
    assert fitted.can_predict
    assert fitted.target.name == "wealth"
    layer = QgsVectorLayer(result["aggregate:districts"], "out", "ogr")
    assert layer.isValid()
    assert layer.featureCount() == 3
    assert {"name", "pov_mean", "pov_wmean", "pov_cells"} <= set(layer.fields().names())
    # The fitted model's tiles are 1920 m: the generated world (11.52 km) is 6 x 6 cells wide; the
    # grid starts on multiples of the cell size, so a strip overlaps two columns of cells or parts of three.
    for feature in layer.getFeatures():
        assert 12 <= feature["pov_cells"] <= 21 and 0.5 < feature["pov_cover"] <= 1.0
    for feature in layer.getFeatures():
        # Outcomes of the generated clusters lie in about 0..2: so must district means.
        assert -0.5 < feature["pov_mean"] < 2.5
        assert -0.5 < feature["pov_wmean"] < 2.5


def test_topolygons_carries_the_quality_code_of_a_real_map(poverty_provider, real_data, tmp_path):
    """The real Parana scene mapped with the RGB model at 960 m cells: the cells it
    flags as extrapolations (band 2 = 1) keep that code in the polygons' 'quality' field."""
    import processing

    from conftest import PARANA_SCENE

    processing.run("povertymapper:predict", {"INPUT": str(PARANA_SCENE), "MODEL": str(ROOT / "resources" / "models" / "default.povmodel"),
                                             "STRIDE": 960, "OUTPUT": str(tmp_path / "map.tif")})
    with rasterio.open(tmp_path / "map.tif") as ds:
        quality, interval = ds.read(2, masked=True), ds.read(3, masked=True)
    flagged = int(np.sum(quality == 1))
    assert flagged > 0
    result = processing.run("povertymapper:topolygons", {"INPUT": str(tmp_path / "map.tif"), "OUTPUT": str(tmp_path / "cells.gpkg")})
    layer = QgsVectorLayer(result["OUTPUT"], "cells", "ogr")
    codes = [f["quality"] for f in layer.getFeatures()]
    assert len(codes) == int(np.sum(np.isin(quality, (0, 1, 3))))
    assert codes.count(1) == flagged and set(codes) <= {0, 1, 3}
    # Each cell's 80 % interval half-width travels too: at least the model's cross-validated one.
    intervals = sorted(f["interval80"] for f in layer.getFeatures())
    assert intervals == pytest.approx(sorted(interval.data[np.isin(quality.data, (0, 1, 3))].tolist()), rel=1e-6)
    assert min(intervals) >= 0.97 - 1e-3


# --- what is refused --------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["topolygons", "aggregate"])
def test_the_satellite_image_is_refused_as_the_poverty_map(poverty_provider, real_data, tmp_path, algorithm):
    """The real Haiti image is no poverty map: no 207,545 polygons of pixel values."""
    import processing

    out = tmp_path / "out.gpkg"
    with pytest.raises(QgsProcessingException, match="is not a poverty map.*Predict poverty map"):
        processing.run(f"povertymapper:{algorithm}", {
            "INPUT": str(real_data / "scenes" / "haiti_rgbn_5m.tif"), "POLYGONS": districts_layer(MAP_UTM), "OUTPUT": str(out)})
    assert not out.exists()


def test_polygons_without_a_crs_are_refused(poverty_provider, poverty_map, tmp_path):
    import processing

    districts = districts_layer(MAP_UTM)
    districts.setCrs(QgsCoordinateReferenceSystem())
    with pytest.raises(QgsProcessingException, match="no coordinate reference system.*Assigned CRS"):
        processing.run("povertymapper:aggregate",
                       {"INPUT": poverty_map, "POLYGONS": districts, "OUTPUT": str(tmp_path / "out.gpkg")})


def test_share_below_a_poverty_line_for_a_consumption_map(poverty_provider, population, tmp_path):
    import processing

    consumption_map = write_poverty_map(tmp_path / "generated_consumption.tif", MAP_ESTIMATES)
    with rasterio.open(consumption_map, "r+") as ds:
        ds.update_tags(QUANTITY="generated consumption", UNIT="generated USD per person per day")
    result = processing.run("povertymapper:aggregate", {
        "INPUT": consumption_map, "POLYGONS": districts_layer(MAP_UTM), "POPULATION": population, "POVERTY_LINE": 5.5,
        "OUTPUT": str(tmp_path / "districts.gpkg")})
    _layer, features = _aggregated(result["OUTPUT"])
    assert features["north-west"]["pov_below"] == pytest.approx(0.4, abs=1e-6)  # 10 + 30 of 100 below 5.5
    assert features["south-east"]["pov_below"] == pytest.approx(0.0)
    assert _value(features["outside"], "pov_below") is None


def test_a_poverty_line_is_refused_for_an_index_map_and_without_population(poverty_provider, tmp_path, population):
    import processing

    index_map = tmp_path / "generated_index.tif"
    write_poverty_map(index_map, MAP_ESTIMATES)
    with rasterio.open(index_map, "r+") as ds:
        ds.update_tags(QUANTITY="asset wealth index", UNIT="index (survey standard deviations)")
    with pytest.raises(QgsProcessingException, match="an index without a poverty line"):
        processing.run("povertymapper:aggregate", {
            "INPUT": str(index_map), "POLYGONS": districts_layer(MAP_UTM), "POPULATION": population, "POVERTY_LINE": 0.0,
            "OUTPUT": str(tmp_path / "a.gpkg")})
    with pytest.raises(QgsProcessingException, match="give a population raster too"):
        processing.run("povertymapper:aggregate", {
            "INPUT": str(index_map), "POLYGONS": districts_layer(MAP_UTM), "POVERTY_LINE": 1.0, "OUTPUT": str(tmp_path / "b.gpkg")})
