"""trainproxy -> fitclusters -> predict through QGIS Processing, on a GENERATED world
(tests/generated_world.py), with the clusters in another CRS than the image."""
from __future__ import annotations

import json

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
    QgsProcessingException,
    QgsProject,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QVariant

from generated_world import IMAGE_CRS, make_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("generated_world_processing"), size=512, n_clusters=80)


def _cluster_layer(world, bad_rows: int = 0) -> QgsVectorLayer:
    """Clusters as a WGS 84 point layer; ``bad_rows`` extra clusters get a text outcome."""
    layer = QgsVectorLayer("Point?crs=EPSG:4326", "clusters", "memory")
    provider = layer.dataProvider()
    provider.addAttributes([QgsField("wealth", QVariant.Double), QgsField("hh", QVariant.Int), QgsField("note", QVariant.String)])
    layer.updateFields()
    to_wgs = QgsCoordinateTransform(
        QgsCoordinateReferenceSystem(IMAGE_CRS.to_wkt()), QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance()
    )
    features = []
    for i, (x, y, outcome, weight) in enumerate(world.clusters):
        f = QgsFeature(layer.fields())
        f.setGeometry(QgsGeometry.fromPointXY(to_wgs.transform(QgsPointXY(x, y))))
        f.setAttributes([outcome if i >= bad_rows else None, int(weight), ""])
        features.append(f)
    provider.addFeatures(features)
    return layer


def test_algorithms_are_registered_with_help(poverty_provider):
    for name in ("trainproxy", "fitclusters", "predict"):
        algorithm = QgsApplication.processingRegistry().algorithmById(f"povertymapper:{name}")
        assert algorithm is not None, name
        assert len(algorithm.shortHelpString()) > 200


def test_chain_through_processing(poverty_provider, world, tmp_path):
    import processing

    proxy = processing.run(
        "povertymapper:trainproxy",
        {
            "INPUT": str(world.image_path),
            "NIGHTLIGHTS": str(world.lights_path),
            "TILE_SIZE": 480,
            "EPOCHS": 4,
            "BATCH_SIZE": 64,
            "OUTPUT_MODEL": str(tmp_path / "proxy.povmodel"),
            "OUTPUT_REPORT": str(tmp_path / "proxy.json"),
            "OUTPUT_PLOT": str(tmp_path / "proxy.png"),
        },
    )
    report = json.loads((tmp_path / "proxy.json").read_text())
    assert len(report["epochs"]) == 4
    assert (tmp_path / "proxy.png").is_file()

    clusters = _cluster_layer(world, bad_rows=3)
    fit = processing.run(
        "povertymapper:fitclusters",
        {
            "INPUT": str(world.image_path),
            "CLUSTERS": clusters,
            "OUTCOME": "wealth",
            "WEIGHT": "hh",
            "BOX_SIZE": 1500,
            "EXTRACTOR": 2,  # model file
            "EXTRACTOR_MODEL": proxy["OUTPUT_MODEL"],
            "NIGHTLIGHTS": str(world.lights_path),
            "OUTPUT_MODEL": str(tmp_path / "fit.povmodel"),
            "OUTPUT_REPORT": str(tmp_path / "cv.json"),
            "OUTPUT_PREDICTIONS": str(tmp_path / "oof.gpkg"),
            "OUTPUT_SCATTER": str(tmp_path / "scatter.png"),
        },
    )
    cv = json.loads((tmp_path / "cv.json").read_text())
    assert cv["clusters"]["given"] == len(world.clusters)
    assert cv["clusters"]["used"] == len(world.clusters) - 3  # the three without an outcome
    assert cv["cv"]["pooled"]["r2"] > 0.7
    assert "r2" in cv["nightlights_baseline"]["pooled"]
    predictions = QgsVectorLayer(fit["OUTPUT_PREDICTIONS"], "oof", "ogr")
    assert predictions.isValid()
    assert predictions.featureCount() == len(world.clusters) - 3
    assert predictions.crs().authid() == "EPSG:4326"
    assert {"observed", "predicted", "residual", "fold"} <= set(predictions.fields().names())

    out = processing.run(
        "povertymapper:predict",
        {"INPUT": str(world.image_path), "MODEL": fit["OUTPUT_MODEL"], "OUTPUT": str(tmp_path / "map.tif")},
    )
    with rasterio.open(out["OUTPUT"]) as ds:
        assert ds.tags()["QUANTITY"] == "wealth"
        assert ds.read(1, masked=True).count() > 0.9 * ds.width * ds.height


def test_missing_outcome_field_is_a_clear_error(poverty_provider, world, tmp_path):
    import processing

    with pytest.raises(QgsProcessingException):
        processing.run(
            "povertymapper:fitclusters",
            {
                "INPUT": str(world.image_path),
                "CLUSTERS": _cluster_layer(world),
                "OUTCOME": "income",
                "OUTPUT_MODEL": str(tmp_path / "x.povmodel"),
            },
        )
    assert not (tmp_path / "x.povmodel").exists()


def test_predict_refuses_a_proxy_model_alone(poverty_provider, world, tmp_path):
    import processing

    processing.run(
        "povertymapper:trainproxy",
        {"INPUT": str(world.image_path), "NIGHTLIGHTS": str(world.lights_path), "TILE_SIZE": 480,
         "EPOCHS": 1, "OUTPUT_MODEL": str(tmp_path / "proxy.povmodel")},
    )
    with pytest.raises(QgsProcessingException, match="survey clusters"):
        processing.run(
            "povertymapper:predict",
            {"INPUT": str(world.image_path), "MODEL": str(tmp_path / "proxy.povmodel"), "OUTPUT": str(tmp_path / "m.tif")},
        )


def test_trainproxy_takes_the_network_frozen_blocks_and_more_scenes(poverty_provider, world, tmp_path):
    import processing
    from qgis.core import QgsProcessingFeedback

    class Feedback(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.lines = []

        def pushInfo(self, info):  # noqa: N802 (QGIS API)
            self.lines.append(info)
            super().pushInfo(info)

    feedback = Feedback()
    common = {"INPUT": str(world.image_path), "NIGHTLIGHTS": str(world.lights_path), "TILE_SIZE": 960, "EPOCHS": 2,
              "BATCH_SIZE": 32}
    processing.run("povertymapper:trainproxy", {
        **common, "MORE_IMAGES": [str(world.image_path)], "NETWORK": 0, "FROZEN_BLOCKS": 5,
        "OUTPUT_MODEL": str(tmp_path / "imagenet.povmodel"), "OUTPUT_REPORT": str(tmp_path / "imagenet.json"),
    }, feedback=feedback)
    report = json.loads((tmp_path / "imagenet.json").read_text())
    assert report["network"]["architecture"] == "efficientnet_lite0" and report["network"]["start"] == "ImageNet"
    assert report["network"]["frozen_blocks"] == 5 and len(report["scenes"]) == 2
    assert any("Epoch 1/2" in line and "min left" in line for line in feedback.lines)
    assert any("balanced accuracy" in line and "chance" in line for line in feedback.lines)

    processing.run("povertymapper:trainproxy", {
        **common, "NETWORK": 2, "OUTPUT_MODEL": str(tmp_path / "small.povmodel"),
        "OUTPUT_REPORT": str(tmp_path / "small.json"),
    })
    assert json.loads((tmp_path / "small.json").read_text())["network"]["architecture"] == "small_cnn"


def test_fitclusters_scores_within_a_group_field(poverty_provider, world, tmp_path):
    """The 'note' field names each cluster's (GENERATED) group: the report and the card
    give r2 within the groups."""
    import processing

    from poverty_mapper.core.models.model_file import load_model

    clusters = _cluster_layer(world)
    middle = sorted(f.geometry().asPoint().y() for f in clusters.getFeatures())[len(world.clusters) // 2]
    clusters.startEditing()
    for feature in clusters.getFeatures():
        clusters.changeAttributeValue(feature.id(), 2, "north" if feature.geometry().asPoint().y() >= middle else "south")
    clusters.commitChanges()
    processing.run("povertymapper:fitclusters", {
        "INPUT": str(world.image_path), "CLUSTERS": clusters, "OUTCOME": "wealth", "GROUP": "note",
        "BOX_SIZE": 1500, "FOLD_DISTANCE": 750, "OUTPUT_MODEL": str(tmp_path / "fit.povmodel"),
        "OUTPUT_REPORT": str(tmp_path / "cv.json"),
    })
    within = json.loads((tmp_path / "cv.json").read_text())["cv"]["within_groups"]
    assert within["groups"] == 2 and 0 < within["r2"] <= 1
    assert "Within groups" in load_model(tmp_path / "fit.povmodel").card()


def test_trainproxy_without_a_lights_layer_labels_with_the_bundled_lights(poverty_provider, world, tmp_path):
    """The generated world lies in Africa: daytime imagery alone trains the proxy; the
    bundled sample scene (Paraguay) is refused with the coverage message."""
    import processing

    from poverty_mapper.core.models.model_file import load_model
    from conftest import ROOT

    common = {"TILE_SIZE": 960, "EPOCHS": 1, "NETWORK": 2, "BATCH_SIZE": 32}
    processing.run("povertymapper:trainproxy", {
        **common, "INPUT": str(world.image_path), "OUTPUT_MODEL": str(tmp_path / "proxy.povmodel"),
        "OUTPUT_REPORT": str(tmp_path / "proxy.json"),
    })
    report = json.loads((tmp_path / "proxy.json").read_text())
    assert report["labels"].startswith("labels from the bundled NASA Black Marble 2016 lights")
    assert load_model(tmp_path / "proxy.povmodel").provenance["labels"].startswith("labels from the bundled")
    sample = ROOT / "resources" / "sample" / "parana_landsat8_l1_rgb_30m.tif"
    with pytest.raises(QgsProcessingException, match="outside the area the bundled night lights cover"):
        processing.run("povertymapper:trainproxy", {
            **common, "INPUT": str(sample), "OUTPUT_MODEL": str(tmp_path / "parana.povmodel"),
        })
    assert not (tmp_path / "parana.povmodel").exists()


def test_fitclusters_with_the_bundled_lights_features(poverty_provider, world, tmp_path):
    import processing

    from poverty_mapper.core.models.model_file import load_model

    processing.run("povertymapper:fitclusters", {
        "INPUT": str(world.image_path), "CLUSTERS": _cluster_layer(world), "OUTCOME": "wealth", "BOX_SIZE": 1500,
        "FOLD_DISTANCE": 750, "WITH_LIGHTS": True, "OUTPUT_MODEL": str(tmp_path / "fit.povmodel"),
        "OUTPUT_REPORT": str(tmp_path / "cv.json"),
    })
    model = load_model(tmp_path / "fit.povmodel")
    assert model.lights_features.n_features == 35
    assert model.regressor.n_features == model.extractor.n_features + 35
    cv = json.loads((tmp_path / "cv.json").read_text())
    assert "bundled NASA Black Marble 2016" in cv["nightlights_baseline"]["features"]
    with pytest.raises(QgsProcessingException, match="not supported yet"):
        processing.run("povertymapper:predict", {
            "INPUT": str(world.image_path), "MODEL": str(tmp_path / "fit.povmodel"), "OUTPUT": str(tmp_path / "m.tif"),
        })
