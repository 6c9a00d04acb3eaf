"""Bad input, faults and hostile files through QGIS Processing: the algorithms say what
to fix, write vector outputs only when complete (an earlier file of the same name stays
byte-identical after a failed run), and make no network call.

Rasters, layers and models are GENERATED (tests/generated_world.py, tests/test_export.py's
poverty map); no number here is an accuracy.
"""
from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest
import rasterio
from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsField,
    QgsGeometry,
    QgsPointXY,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProject,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QVariant

from generated_world import IMAGE_CRS
from poverty_mapper.core.training.clusters import Cluster, ClusterFitConfig, fit_clusters
from poverty_mapper.provider import aggregate_algorithm, to_polygons_algorithm
from helpers import (
    wgs84_clusters,
    MAP_ESTIMATES, MAP_UTM, districts_layer, layer_files, object_npy, partial_leftovers, recording_feedback,
    rewrite_model_zip, write_earlier_layer, write_poverty_map,
)

EARLIER = b"an earlier output of the same name, to be kept byte for byte"


@pytest.fixture(scope="module")
def world(small_world):
    return small_world  # conftest's session-wide generated world


@pytest.fixture(scope="module")
def fitted_model(world, tmp_path_factory) -> str:
    """A histogram model fitted on the generated world's clusters (480 m tiles)."""
    path = tmp_path_factory.mktemp("robust_model") / "generated.povmodel"
    clusters = tuple(Cluster(x, y, o, w) for x, y, o, w in world.clusters)
    fit_clusters(ClusterFitConfig(str(world.image_path), clusters, str(path), outcome_name="wealth",
                                  box_size_m=1500, tile_size_m=480, device="cpu", fold_distance_m=750))
    return str(path)


# --- survey clusters through fitclusters --------------------------------------------------


def test_fitclusters_with_clusters_in_another_crs_counts_what_it_leaves_out(poverty_provider, world, tmp_path):
    import processing

    rows = [(x, y, f"{o:.6f}") for x, y, o, _ in world.clusters]
    rows[0] = (*rows[0][:2], None)  # missing
    rows[1] = (*rows[1][:2], "n/a")  # not a number
    rows[2] = (*rows[2][:2], "nan")
    east = world.transform.c + 256 * 30.0
    rows += [(east + 3000, rows[5][1], "1.0"), (east + 9000, rows[6][1], "1.0")]  # outside the image
    rows += [(x, y, "0.5") for x, y, _ in rows[10:14]]  # surveyed again at the same places
    (tmp_path / "oof.gpkg").write_bytes(EARLIER)  # replaced, as it should be, by a complete run
    feedback = recording_feedback()
    result = processing.run(
        "povertymapper:fitclusters",
        {"INPUT": str(world.image_path), "CLUSTERS": wgs84_clusters(rows), "OUTCOME": "wealth", "BOX_SIZE": 1500,
         "TILE_SIZE": 480, "FOLD_DISTANCE": 0, "OUTPUT_MODEL": str(tmp_path / "m.povmodel"),
         "OUTPUT_REPORT": str(tmp_path / "cv.json"), "OUTPUT_PREDICTIONS": str(tmp_path / "oof.gpkg")},
        feedback=feedback,
    )
    report = json.loads((tmp_path / "cv.json").read_text())
    assert report["clusters"] == {"given": 46, "used": 46 - 5, "groups": 40 - 3}
    assert "3 clusters without a numeric outcome (missing, NaN or text) left out." in feedback.warnings
    assert "2 clusters outside the image left out." in feedback.warnings
    predictions = QgsVectorLayer(result["OUTPUT_PREDICTIONS"], "oof", "ogr")
    assert predictions.isValid() and predictions.featureCount() == 41
    assert predictions.crs().authid() == "EPSG:4326"
    folds_at = {}
    for feature in predictions.getFeatures():
        folds_at.setdefault(feature.geometry().asWkt(6), set()).add(feature["fold"])
    assert len(folds_at) == 37 and all(len(folds) == 1 for folds in folds_at.values())
    assert partial_leftovers(tmp_path) == []


def test_fitclusters_predictions_carry_the_cluster_fields_the_lights_and_the_coverage(poverty_provider, world, tmp_path):
    """The out-of-fold layer answers 'does the image beat night lights among the rural
    clusters?': each cluster keeps its own fields (an 'observed' of its own too), with
    the image model's and the nightlights model's out-of-fold predictions beside them."""
    import processing

    layer = QgsVectorLayer(f"Point?crs={IMAGE_CRS.to_string()}", "clusters", "memory")
    layer.dataProvider().addAttributes([
        QgsField("wealth", QVariant.Double), QgsField("urban", QVariant.Int),
        QgsField("region", QVariant.String), QgsField("observed", QVariant.String),
    ])
    layer.updateFields()
    features = []
    for i, (x, y, outcome, _) in enumerate(world.clusters):
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        feature.setAttributes([outcome, i % 2, f"region {i % 3}", "by the survey team"])
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    result = processing.run(
        "povertymapper:fitclusters",
        {"INPUT": str(world.image_path), "CLUSTERS": layer, "OUTCOME": "wealth", "BOX_SIZE": 1500, "TILE_SIZE": 480,
         "FOLD_DISTANCE": 750, "NIGHTLIGHTS": str(world.lights_path), "MIN_TILES": 2,
         "OUTPUT_MODEL": str(tmp_path / "m.povmodel"), "OUTPUT_PREDICTIONS": str(tmp_path / "oof.gpkg")},
    )
    oof = QgsVectorLayer(result["OUTPUT_PREDICTIONS"], "oof", "ogr")
    names = oof.fields().names()
    assert {"wealth", "urban", "region", "observed", "observed_2", "predicted", "residual", "fold", "nl_pred",
            "nl_resid", "tiles_used", "tiles_box", "covered"} <= set(names)
    rows = list(oof.getFeatures())
    assert len(rows) == 40
    for row in rows:
        assert row["observed"] == "by the survey team" and row["region"].startswith("region ")
        assert row["observed_2"] == pytest.approx(row["wealth"])
        assert row["residual"] == pytest.approx(row["observed_2"] - row["predicted"])
        assert row["nl_resid"] == pytest.approx(row["observed_2"] - row["nl_pred"])
        assert row["tiles_box"] == 16 and 2 <= row["tiles_used"] <= 16 and 0 < row["covered"] <= 1
    assert any(abs(r["nl_pred"] - r["predicted"]) > 1e-6 for r in rows)  # two models, side by side
    assert sorted({r["fold"] for r in rows}) == [0, 1, 2, 3, 4]


def test_fitclusters_names_the_fields_when_the_outcome_field_does_not_exist(poverty_provider, world, tmp_path):
    import processing

    out = tmp_path / "m.povmodel"
    out.write_bytes(EARLIER)
    feedback = recording_feedback()
    with pytest.raises(QgsProcessingException):
        processing.run(
            "povertymapper:fitclusters",
            {"INPUT": str(world.image_path), "CLUSTERS": wgs84_clusters([(x, y, "1") for x, y, *_ in world.clusters]),
             "OUTCOME": "income", "OUTPUT_MODEL": str(out)},
            feedback=feedback,
        )
    assert any("has no field 'income'; choose one of: wealth, hh" in e for e in feedback.errors), feedback.errors
    assert out.read_bytes() == EARLIER


def test_fitclusters_with_fewer_clusters_than_folds_need(poverty_provider, world, tmp_path):
    import processing

    out = tmp_path / "m.povmodel"
    out.write_bytes(EARLIER)
    with pytest.raises(QgsProcessingException, match="Only 6 clusters .* at least 10 are needed for 5-fold"):
        processing.run(
            "povertymapper:fitclusters",
            {"INPUT": str(world.image_path),
             "CLUSTERS": wgs84_clusters([(x, y, str(o)) for x, y, o, _ in world.clusters[:6]]),
             "OUTCOME": "wealth", "BOX_SIZE": 1500, "TILE_SIZE": 480, "OUTPUT_MODEL": str(out),
             "OUTPUT_PREDICTIONS": str(tmp_path / "oof.gpkg")},
        )
    assert out.read_bytes() == EARLIER and not (tmp_path / "oof.gpkg").exists()


# --- predict: models and rasters that are wrong -------------------------------------------


def _predict(world, model, out, **extra):
    import processing

    return processing.run(
        "povertymapper:predict", {"INPUT": str(world.image_path), "MODEL": str(model), "OUTPUT": str(out), **extra}
    )


def test_predict_refuses_a_truncated_model_naming_it(poverty_provider, world, fitted_model, tmp_path):
    data = Path(fitted_model).read_bytes()
    cut = tmp_path / "cut.povmodel"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "map.tif"
    out.write_bytes(EARLIER)
    with pytest.raises(QgsProcessingException, match=r"cut\.povmodel is not a readable poverty model file"):
        _predict(world, cut, out)
    assert out.read_bytes() == EARLIER and partial_leftovers(tmp_path) == []


def test_predict_refuses_a_model_file_crafted_to_run_code_and_runs_none(poverty_provider, world, fitted_model, tmp_path):
    marker = tmp_path / "marker-created-by-unpickling"
    evil = rewrite_model_zip(fitted_model, tmp_path / "evil.povmodel", extra={"regressor/coef.npy": object_npy(marker)})
    with pytest.raises(QgsProcessingException, match=r"evil\.povmodel: refused an array that is not plain numeric data"):
        _predict(world, evil, tmp_path / "map.tif")
    assert not marker.exists()
    assert not (tmp_path / "map.tif").exists()


def test_predict_names_the_bands_when_the_model_wants_other_bands(poverty_provider, world, fitted_model, tmp_path):
    swir = rewrite_model_zip(fitted_model, tmp_path / "swir.povmodel",
                    change_meta=lambda m: m.update(bands=["NIR", "SWIR1", "SWIR2"], provenance={}))
    with pytest.raises(QgsProcessingException, match=r"expects the bands NIR, SWIR1, SWIR2, but the raster's bands are blue, green, red"):
        _predict(world, swir, tmp_path / "map.tif")
    assert not (tmp_path / "map.tif").exists()


def test_predict_on_a_truncated_raster_names_the_file(poverty_provider, world, fitted_model, tmp_path):
    with rasterio.open(world.image_path) as src:
        profile, data = src.profile, src.read()
    full = tmp_path / "generated_full.tif"
    with rasterio.open(full, "w", **profile) as dst:  # no band names: the TIFF directory stays first
        dst.write(data)
    cut = tmp_path / "generated_cut.tif"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    out = tmp_path / "map.tif"
    out.write_bytes(EARLIER)
    import processing

    with pytest.raises(QgsProcessingException, match=r"Cannot read the raster .*generated_cut\.tif.*damaged or incomplete"):
        processing.run("povertymapper:predict", {"INPUT": str(cut), "MODEL": fitted_model, "BANDS": "1,2,3",
                                                 "OUTPUT": str(out)})
    assert out.read_bytes() == EARLIER and partial_leftovers(tmp_path) == []


def test_predict_refuses_a_folder_as_output(poverty_provider, world, fitted_model, tmp_path):
    (tmp_path / "map.tif").mkdir()
    with pytest.raises(QgsProcessingException, match="is a folder; choose a file name"):
        _predict(world, fitted_model, tmp_path / "map.tif")


@pytest.mark.parametrize("after", [0, 2])
def test_predict_canceled_keeps_the_earlier_map(poverty_provider, world, fitted_model, tmp_path, after):
    import processing

    out = tmp_path / "map.tif"
    out.write_bytes(EARLIER)
    with pytest.raises(QgsProcessingException, match="Canceled: no output was written"):
        processing.run(
            "povertymapper:predict",
            {"INPUT": str(world.image_path), "MODEL": fitted_model, "STRIDE": 240, "BATCH_SIZE": 4, "OUTPUT": str(out)},
            feedback=recording_feedback(cancel_after=after),
        )
    assert out.read_bytes() == EARLIER and partial_leftovers(tmp_path) == []


# --- vector outputs appear only when complete -------------------------------------------


@pytest.mark.parametrize("suffix", [".gpkg", ".shp"])
def test_topolygons_failing_midway_keeps_the_earlier_layer(poverty_provider, tmp_path, monkeypatch, suffix):
    import processing

    poverty_map = write_poverty_map(tmp_path / "generated_map.tif", MAP_ESTIMATES)
    out = tmp_path / f"cells{suffix}"
    earlier = write_earlier_layer(out)
    made = []

    def feature_then_fail(*args):
        made.append(1)
        if len(made) == 5:
            raise RuntimeError("generated failure while writing the fifth cell")
        return QgsFeature(*args)

    monkeypatch.setattr(to_polygons_algorithm, "QgsFeature", feature_then_fail)
    with pytest.raises(QgsProcessingException):
        processing.run("povertymapper:topolygons", {"INPUT": poverty_map, "OUTPUT": str(out)})
    assert len(made) == 5  # it failed with a layer half written
    assert layer_files(tmp_path, "cells") == earlier
    assert partial_leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".gpkg", ".shp"])
def test_topolygons_replaces_the_earlier_layer_when_complete(poverty_provider, tmp_path, suffix):
    import processing

    poverty_map = write_poverty_map(tmp_path / "generated_map.tif", MAP_ESTIMATES)
    out = tmp_path / f"cells{suffix}"
    write_earlier_layer(out)
    (tmp_path / "cells.qix").write_bytes(b"a stale spatial index of the earlier shapefile")
    result = processing.run("povertymapper:topolygons", {"INPUT": poverty_map, "OUTPUT": str(out)})
    assert result["OUTPUT"] == str(out)
    layer = QgsVectorLayer(str(out), "cells", "ogr")
    assert layer.isValid() and layer.featureCount() == 15
    if suffix == ".gpkg":  # the table is named after the file, not after a temporary name
        assert [s.split("!!::!!")[1] for s in layer.dataProvider().subLayers()] == ["cells"]
    else:
        assert not (tmp_path / "cells.qix").exists()
        assert {p.suffix for p in tmp_path.glob("cells.*")} >= {".shp", ".shx", ".dbf", ".prj"}
    assert partial_leftovers(tmp_path) == []


def test_aggregate_canceled_midway_keeps_the_earlier_layer(poverty_provider, tmp_path):
    import processing

    poverty_map = write_poverty_map(tmp_path / "generated_map.tif", MAP_ESTIMATES)
    out = tmp_path / "districts.gpkg"
    processing.run("povertymapper:aggregate", {"INPUT": poverty_map, "POLYGONS": districts_layer(MAP_UTM), "OUTPUT": str(out)})
    earlier = out.read_bytes()
    doubled = write_poverty_map(tmp_path / "generated_doubled.tif", np.where(MAP_ESTIMATES == -9999, -9999, 2 * MAP_ESTIMATES))
    with pytest.raises(QgsProcessingException, match="Canceled: no output was written"):
        processing.run(
            "povertymapper:aggregate", {"INPUT": doubled, "POLYGONS": districts_layer(MAP_UTM), "OUTPUT": str(out)},
            feedback=recording_feedback(cancel_after=1),  # after the first of four districts
        )
    assert out.read_bytes() == earlier
    assert partial_leftovers(tmp_path) == []


def test_aggregate_failing_midway_keeps_the_earlier_layer(poverty_provider, tmp_path, monkeypatch):
    import processing

    poverty_map = write_poverty_map(tmp_path / "generated_map.tif", MAP_ESTIMATES)
    out = tmp_path / "districts.shp"
    earlier = write_earlier_layer(out)
    real_stats = aggregate_algorithm.IsolatedEstimateMap.stats
    calls = []

    def stats_then_fail(*args):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device (generated)")
        return real_stats(*args)

    monkeypatch.setattr(aggregate_algorithm.IsolatedEstimateMap, "stats", stats_then_fail)
    with pytest.raises(QgsProcessingException):
        processing.run("povertymapper:aggregate", {"INPUT": poverty_map, "POLYGONS": districts_layer(MAP_UTM), "OUTPUT": str(out)})
    assert len(calls) == 3
    assert layer_files(tmp_path, "districts") == earlier
    assert partial_leftovers(tmp_path) == []


def test_a_layer_to_load_is_registered_under_its_final_name(poverty_provider, tmp_path):
    """As the toolbox runs it (open the output after running): QGIS loads the final file."""
    poverty_map = write_poverty_map(tmp_path / "generated_map.tif", MAP_ESTIMATES)
    out = tmp_path / "cells.gpkg"
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("povertymapper:topolygons")
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    definition = QgsProcessingOutputLayerDefinition(str(out), QgsProject.instance())
    results, ok = algorithm.run({"INPUT": poverty_map, "OUTPUT": definition}, context, QgsProcessingFeedback())
    assert ok and results["OUTPUT"] == str(out)
    assert list(context.layersToLoadOnCompletion()) == [str(out)]
    assert QgsVectorLayer(str(out), "cells", "ogr").featureCount() == 15
    assert partial_leftovers(tmp_path) == []


def test_temporary_and_memory_outputs_still_work(poverty_provider, tmp_path):
    import processing

    poverty_map = write_poverty_map(tmp_path / "generated_map.tif", MAP_ESTIMATES)
    for destination in ("TEMPORARY_OUTPUT", "memory:cells"):
        result = processing.run("povertymapper:topolygons", {"INPUT": poverty_map, "OUTPUT": destination})
        layer = result["OUTPUT"] if isinstance(result["OUTPUT"], QgsVectorLayer) else QgsVectorLayer(result["OUTPUT"])
        assert layer.featureCount() == 15, destination


# --- no network ---------------------------------------------------------------------------


def test_the_plugin_makes_no_network_call(poverty_provider, world, tmp_path, monkeypatch):
    """fitclusters (histogram), trainproxy (one epoch) and predict with every way of
    opening a connection from Python refused."""
    import processing

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network access is disabled in this test")

    for name in ("socket", "create_connection", "getaddrinfo"):
        monkeypatch.setattr(socket, name, refuse)
    with pytest.raises(OSError, match="disabled"):
        socket.create_connection(("example.org", 80))  # the guard works
    attempts.clear()

    fit = processing.run(
        "povertymapper:fitclusters",
        {"INPUT": str(world.image_path),
         "CLUSTERS": wgs84_clusters([(x, y, str(o)) for x, y, o, _ in world.clusters]),
         "OUTCOME": "wealth", "BOX_SIZE": 1500, "TILE_SIZE": 480, "EXTRACTOR": 0, "FOLD_DISTANCE": 750,
         "OUTPUT_MODEL": str(tmp_path / "fit.povmodel"), "OUTPUT_REPORT": str(tmp_path / "cv.json")},
    )
    proxy = processing.run(
        "povertymapper:trainproxy",
        {"INPUT": str(world.image_path), "NIGHTLIGHTS": str(world.lights_path), "TILE_SIZE": 480, "EPOCHS": 1,
         "OUTPUT_MODEL": str(tmp_path / "proxy.povmodel")},
    )
    mapped = processing.run(
        "povertymapper:predict",
        {"INPUT": str(world.image_path), "MODEL": fit["OUTPUT_MODEL"], "OUTPUT": str(tmp_path / "map.tif")},
    )
    assert Path(proxy["OUTPUT_MODEL"]).is_file() and Path(fit["OUTPUT_MODEL"]).is_file()
    with rasterio.open(mapped["OUTPUT"]) as ds:
        assert ds.read(1, masked=True).count() > 0
    assert attempts == []
