"""fitclusters through Processing against bad cluster layers: a NULL geometry, NaN
coordinates, a latitude of 95, polygons, all weights 0, an outcome of 1e300, an empty
layer or a text outcome end in a message that says what to fix (or a warning that counts
what was left out), never a Python traceback; a destination folder that cannot be
written is refused before the fit. Layers are GENERATED (tests/generated_world.py)."""
from __future__ import annotations

import subprocess

import pytest
from qgis.core import (
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

from generated_world import IMAGE_CRS
from helpers import recording_feedback


def _layer(world, edit=None, outcome_type=QVariant.Double, kind="Point") -> QgsVectorLayer:
    """The generated clusters as a WGS 84 layer, with ``edit(i, feature)`` applied to each."""
    layer = QgsVectorLayer(f"{kind}?crs=EPSG:4326", "clusters", "memory")
    layer.dataProvider().addAttributes([QgsField("wealth", outcome_type), QgsField("hh", QVariant.Double)])
    layer.updateFields()
    to_wgs = QgsCoordinateTransform(
        QgsCoordinateReferenceSystem(IMAGE_CRS.to_wkt()), QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance()
    )
    features = []
    for i, (x, y, outcome, weight) in enumerate(world.clusters):
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromPointXY(to_wgs.transform(QgsPointXY(x, y))))
        feature.setAttributes([outcome, weight])
        if edit is not None:
            edit(i, feature)
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


def _run(world, tmp_path, layer, feedback=None, **extra):
    import processing

    return processing.run(
        "povertymapper:fitclusters",
        {"INPUT": str(world.image_path), "CLUSTERS": layer, "OUTCOME": "wealth", "BOX_SIZE": 1500, "TILE_SIZE": 480,
         "FOLD_DISTANCE": 750, "OUTPUT_MODEL": str(tmp_path / "m.povmodel"), **extra},
        feedback=feedback,
    )


def _no_geometry(i, feature):
    if i == 0:
        feature.setGeometry(QgsGeometry())


def _nan_coordinates(i, feature):
    if i == 1:
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(float("nan"), float("nan"))))


def _latitude_95(i, feature):
    if i == 2:
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(feature.geometry().asPoint().x(), 95.0)))


@pytest.mark.parametrize("edit", [_no_geometry, _nan_coordinates, _latitude_95])
def test_clusters_without_a_valid_location_are_counted_and_left_out(poverty_provider, small_world, tmp_path, edit):
    feedback = recording_feedback()
    _run(small_world, tmp_path, _layer(small_world, edit), feedback, OUTPUT_PREDICTIONS=str(tmp_path / "p.gpkg"))
    assert any("1 cluster has no valid location" in w for w in feedback.warnings), feedback.warnings
    assert QgsVectorLayer(str(tmp_path / "p.gpkg"), "p", "ogr").featureCount() == 39


def test_polygon_clusters_are_taken_at_their_centroid_and_said_so(poverty_provider, small_world, tmp_path):
    def square(i, feature):
        feature.setGeometry(feature.geometry().buffer(1e-4, 4))

    feedback = recording_feedback()
    _run(small_world, tmp_path, _layer(small_world, square, kind="Polygon"), feedback)
    assert any(w.startswith("40 clusters are lines or polygons") for w in feedback.warnings), feedback.warnings


@pytest.mark.parametrize("case, message", [
    ("all weights 0", "Every cluster's weight is 0"),
    ("outcome 1e300", "an outcome beyond ±1e+12 (e.g. 1e+300)"),
    ("empty layer", "holds no clusters"),
    ("text outcome", "No cluster has a numeric outcome in 'wealth'"),
])
def test_bad_clusters_are_a_message_not_a_traceback(poverty_provider, small_world, tmp_path, case, message):
    def edit(i, feature):
        if case == "all weights 0":
            feature.setAttribute("hh", 0.0)
        elif case == "outcome 1e300" and i == 0:
            feature.setAttribute("wealth", 1e300)
        elif case == "text outcome":
            feature.setAttribute("wealth", "rich")

    layer = _layer(small_world, edit, QVariant.String if case == "text outcome" else QVariant.Double)
    if case == "empty layer":
        layer.dataProvider().truncate()
    with pytest.raises(QgsProcessingException, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        _run(small_world, tmp_path, layer, WEIGHT="hh" if case == "all weights 0" else None)
    assert not (tmp_path / "m.povmodel").exists()


def test_a_read_only_predictions_folder_is_refused_before_the_fit(poverty_provider, small_world, tmp_path):
    """It was found only after the model had been written."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        with pytest.raises(QgsProcessingException, match=r"Cannot write in the folder .*read_only of the out-of-fold predictions"):
            _run(small_world, tmp_path, _layer(small_world), OUTPUT_PREDICTIONS=str(folder / "p.gpkg"))
    finally:
        subprocess.run(["umount", str(folder)], check=True)
    assert not (tmp_path / "m.povmodel").exists()
