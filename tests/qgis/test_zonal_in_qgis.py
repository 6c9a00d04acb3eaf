"""District statistics inside QGIS with real-shaped GENERATED districts (concave, with a
hole, in two parts, a noisy circle of 5000 vertices, the quadrilateral of a crash report)
in EPSG:4326 over a GENERATED map in EPSG:32621: through Processing, through the dock's
district export, and through ``qgis_process``.

``qgis_process`` (like the desktop) links QGIS's GDAL, GEOS and PROJ when it starts, so
their symbols come first for the libraries that wheels bundle; a Python host (this test
process) loads QGIS without that. The ``qgis_process`` run is what crashed (exit 139)
when exactextract ran inside QGIS's process. The numbers are checked against the engine
in this process and against point counts (tests/district_shapes.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsField,
    QgsGeometry,
    QgsProject,
    QgsRasterLayer,
    QgsVectorFileWriter,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QVariant

import district_shapes
from district_shapes import check_against_reference, dead_pid

QGIS_PROCESS = "/usr/bin/qgis_process.bin"
WGS84 = "EPSG:4326"
FIELDS = ("pov_cells", "pov_cover", "pov_mean", "pov_wmean", "pov_pop")


@pytest.fixture()
def generated(tmp_path):
    return (district_shapes.write_map(tmp_path / "generated_map.tif"),
            district_shapes.write_population(tmp_path / "generated_population.tif"))


def _to(crs_from: str, crs_to: str) -> QgsCoordinateTransform:
    return QgsCoordinateTransform(QgsCoordinateReferenceSystem(crs_from), QgsCoordinateReferenceSystem(crs_to),
                                  QgsProject.instance())


def _districts_in_wgs84() -> QgsVectorLayer:
    """district_shapes.districts(), built in the map's CRS and transformed to EPSG:4326."""
    layer = QgsVectorLayer(f"Polygon?crs={WGS84}", "generated districts", "memory")
    layer.dataProvider().addAttributes([QgsField("name", QVariant.String)])
    layer.updateFields()
    features = []
    for name, geometry in district_shapes.districts().items():
        shape = QgsGeometry.fromWkt(_wkt(geometry))
        assert shape.isGeosValid(), name
        shape.transform(_to(district_shapes.CRS, WGS84))
        feature = QgsFeature(layer.fields())
        feature.setGeometry(shape)
        feature.setAttributes([name])
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


def _wkt(geometry: dict) -> str:
    def ring(points):
        return "(" + ",".join(f"{x!r} {y!r}" for x, y in points) + ")"

    if geometry["type"] == "Polygon":
        return "POLYGON(" + ",".join(map(ring, geometry["coordinates"])) + ")"
    return "MULTIPOLYGON(" + ",".join("(" + ",".join(map(ring, p)) + ")" for p in geometry["coordinates"]) + ")"


def _rows(path: str) -> dict[str, dict]:
    layer = QgsVectorLayer(path, "written", "ogr")
    assert layer.isValid(), path
    assert layer.crs().authid() == WGS84  # the polygons keep their own CRS
    rows = {}
    for feature in layer.getFeatures():
        geometry = QgsGeometry(feature.geometry())
        geometry.transform(_to(WGS84, district_shapes.CRS))  # as the algorithm places it on the map
        rows[feature["name"]] = {"geometry": json.loads(geometry.asJson(17)),
                                 **{f: feature[f] for f in FIELDS if f in layer.fields().names()}}
    return rows


def _check(rows: dict, poverty_map: str, population: str | None) -> None:
    """Each district: the engine's numbers in this process, and point counts."""
    from poverty_mapper.core.maps.zonal import EstimateMap

    assert sorted(rows) == sorted(district_shapes.districts())
    with EstimateMap(poverty_map, population) as here:
        for name, row in rows.items():
            stats = here.stats(row["geometry"])
            assert row["pov_mean"] == pytest.approx(stats.mean, rel=1e-9), name
            assert (row["pov_cells"], row["pov_cover"]) == (stats.cells, pytest.approx(stats.coverage, rel=1e-9)), name
            if population is not None:
                assert (row["pov_wmean"], row["pov_pop"]) == pytest.approx((stats.weighted_mean, stats.population),
                                                                           rel=1e-9), name
            check_against_reference(stats, district_shapes.reference(poverty_map, row["geometry"], population), name)


def test_real_shaped_districts_in_another_crs_through_processing(poverty_provider, generated, tmp_path):
    import processing

    poverty_map, population = generated
    out = tmp_path / "districts.gpkg"
    result = processing.run("povertymapper:aggregate", {
        "INPUT": poverty_map, "POLYGONS": _districts_in_wgs84(), "POPULATION": population, "OUTPUT": str(out)})
    assert result["OUTPUT"] == str(out)
    _check(_rows(str(out)), poverty_map, population)
    assert list(tmp_path.glob("*.partial*")) == []


def test_a_worker_that_crashes_midway_fails_the_run_cleanly(poverty_provider, generated, tmp_path, monkeypatch):
    """As a library's fault in the worker would: the run fails with a message, QGIS stays
    up, the earlier output stays and nothing hidden is left beside it."""
    import processing
    from qgis.core import QgsProcessingException

    from poverty_mapper.provider import aggregate_algorithm

    poverty_map, _ = generated
    out = tmp_path / "districts.gpkg"
    processing.run("povertymapper:aggregate", {"INPUT": poverty_map, "POLYGONS": _districts_in_wgs84(), "OUTPUT": str(out)})
    earlier = out.read_bytes()
    real_stats = aggregate_algorithm.IsolatedEstimateMap.stats
    calls = []

    def stats_then_crash(estimates, *args):
        calls.append(1)
        if len(calls) == 2:
            os.kill(estimates._process.pid, signal.SIGSEGV)
        return real_stats(estimates, *args)

    monkeypatch.setattr(aggregate_algorithm.IsolatedEstimateMap, "stats", stats_then_crash)
    with pytest.raises(QgsProcessingException, match=r"stopped \(killed by signal 11\)"):
        processing.run("povertymapper:aggregate",
                       {"INPUT": poverty_map, "POLYGONS": _districts_in_wgs84(), "OUTPUT": str(out)})
    assert len(calls) == 2
    assert out.read_bytes() == earlier and list(tmp_path.glob("*.partial*")) == []


def test_real_shaped_districts_from_the_dock(qgis_iface, qgis_new_project, poverty_provider, generated, tmp_path, qtbot):
    from poverty_mapper.ui.dock import PovertyDock

    poverty_map, _ = generated
    dock = PovertyDock(qgis_iface)
    try:
        layer = QgsRasterLayer(poverty_map, "generated poverty map")
        districts = _districts_in_wgs84()
        QgsProject.instance().addMapLayers([layer, districts])
        panel = dock.exportPanel
        panel.mapCombo.setLayer(layer)
        panel.polygonsCombo.setLayer(districts)
        panel.aggregateFileWidget.setFilePath(str(tmp_path / "districts.gpkg"))
        with qtbot.waitSignal(panel.exported, timeout=120_000) as blocker:
            panel.aggregateButton.click()
        assert blocker.args[0] is True, panel.exportStatusLabel.text()
        _check(_rows(blocker.args[1]), poverty_map, None)
    finally:
        dock.unload()
        dock.deleteLater()
    assert list(tmp_path.glob("*.partial*")) == []


def test_qgis_process_aggregates_real_shaped_districts(poverty_provider, package_path, generated, tmp_path):
    """The crash report's run: ``qgis_process run povertymapper:aggregate`` ended with
    signal 11 (exit 139) on a district that is not a rectangle, leaving a hidden folder."""
    poverty_map, population = generated
    polygons = tmp_path / "districts_wgs84.gpkg"
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    error = QgsVectorFileWriter.writeAsVectorFormatV3(
        _districts_in_wgs84(), str(polygons), QgsProject.instance().transformContext(), options)
    assert error[0] == QgsVectorFileWriter.NoError, error
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QGIS_PLUGINPATH": str(package_path),
           "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path / "profile"),
           "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), _site_packages()) if p)}
    enable = subprocess.run([QGIS_PROCESS, "plugins", "enable", "poverty_mapper"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert enable.returncode == 0, enable.stdout + enable.stderr
    out = tmp_path / "districts.gpkg"
    crashed = _staging_folder_of_a_crashed_run(out)
    run = subprocess.run(
        [QGIS_PROCESS, "run", "povertymapper:aggregate", f"--INPUT={poverty_map}", f"--POLYGONS={polygons}",
         f"--POPULATION={population}", f"--OUTPUT={out}"],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    _check(_rows(str(out)), poverty_map, population)
    assert not crashed.exists() and list(tmp_path.glob("*.partial*")) == []


def _staging_folder_of_a_crashed_run(out: Path) -> Path:
    """The hidden folder a run that crashed while writing ``out`` leaves (its process is gone)."""
    from poverty_mapper.core.atomic import partial_path

    folder = partial_path(out)
    folder = folder.with_name(folder.name.replace(f"-{os.getpid()}-", f"-{dead_pid()}-"))
    folder.mkdir()
    (folder / out.name).write_bytes(b"half-written")
    return folder


def _site_packages() -> str:
    """Where this environment's rasterio and exactextract are (qgis_process runs the system Python)."""
    import exactextract

    return str(Path(exactextract.__file__).parents[1])
