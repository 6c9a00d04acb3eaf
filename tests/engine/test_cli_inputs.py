"""The command line against bad input: every error a user can cause ends in one line that
says what to fix and exit status 1 (no traceback), before anything is written; tables
as spreadsheets save them (semicolons, Windows text) and vector files are read; a
SIGTERM cleans up as Ctrl-C does. Inputs are GENERATED (tests/generated_world.py)."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from rasterio.warp import transform

from poverty_mapper import cli
from poverty_mapper.cli_inputs import read_clusters_table
from helpers import model_file, raster  # noqa: F401 (fixtures)

FIT_OPTIONS = ["--x-field", "x", "--y-field", "y", "--clusters-crs", "EPSG:32636", "--box-size", "1500",
               "--tile-size", "480", "--fold-distance", "750", "--device", "cpu"]


def _table(path, rows, header=("x", "y", "wealth", "hh"), delimiter=",", encoding="utf-8"):
    with path.open("w", newline="", encoding=encoding) as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _main(args) -> int:
    """``cli.main``'s status; argument errors end in SystemExit, as argparse does."""
    try:
        return cli.main(args)
    except SystemExit as exc:
        return exc.code


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if "error:" in line]
    return line


def _edit(rows, column, value, first=1):
    return [tuple(value if (j == column and i < first) else v for j, v in enumerate(r)) for i, r in enumerate(rows)]


@pytest.mark.parametrize("case, extra, message", [
    ("empty weight", ["--weight", "hh"], "1 cluster has a weight that is missing, not a number or below 0"),
    ("text weight", ["--weight", "hh"], "1 cluster has a weight that is missing, not a number or below 0"),
    ("zero weights", ["--weight", "hh"], "Every cluster's weight is 0"),
    ("outcome 1e300", [], "1 cluster has an outcome beyond ±1e+12 (e.g. 1e+300) in 'wealth'"),
    ("constant outcome", [], "The outcome is 1 at every cluster used: there is nothing to fit"),
    ("text outcome", [], "No cluster has a numeric outcome in 'wealth'"),
    ("no coordinates", [], "None of the 40 clusters with an outcome has a valid location"),
    ("folds 0", ["--folds", "0"], "needs at least 2 folds, not 0"),
    ("tile size 0", ["--tile-size", "0"], "The tile size must be more than 0 m, not 0"),
    ("box size 0", ["--box-size", "0"], "The box size must be more than 0 m, not 0"),
    ("seed -1", ["--seed", "-1"], "The seed must be 0 or more, not -1"),
    ("batch size 0", ["--batch-size", "0"], "The batch size must be 1 or more tiles, not 0"),
    ("bands x", ["--bands", "x"], "Band list 'x' is not a list of band numbers"),
])
def test_fit_errors_are_one_line_that_says_what_to_fix(small_world, tmp_path, capsys, case, extra, message):
    rows = list(small_world.clusters)
    rows = {
        "empty weight": lambda: _edit(rows, 3, ""),
        "text weight": lambda: _edit(rows, 3, "many"),
        "zero weights": lambda: _edit(rows, 3, 0, first=len(rows)),
        "outcome 1e300": lambda: _edit(rows, 2, 1e300),
        "constant outcome": lambda: _edit(rows, 2, 1.0, first=len(rows)),
        "text outcome": lambda: _edit(rows, 2, "rich", first=len(rows)),
        "no coordinates": lambda: _edit(rows, 0, "", first=len(rows)),
    }.get(case, lambda: rows)()
    table = _table(tmp_path / "clusters.csv", rows)
    model = tmp_path / "m.povmodel"
    status = _main(["fit", str(small_world.image_path), str(table), str(model), "--outcome", "wealth",
                    *FIT_OPTIONS, *extra])
    assert status == 1
    assert message in _one_error_line(capsys)
    assert not model.exists()


@pytest.mark.parametrize("args, message", [
    (["predict", "{raster}", "{tmp}/m.tif", "--model", "{model}", "--stride", "-5"], "The stride (distance between cell"),
    (["predict", "{raster}", "{tmp}/m.tif", "--model", "{model}", "--mask", "{tmp}/bad.json"],
     "cannot be read as a vector file"),
    (["predict", "{raster}", "{tmp}/m.png", "--model", "{model}"],
     "written as a GeoTIFF: give the output file the extension .tif (not 'm.png')"),
    (["predict", "{raster}", "{tmp}/m.tif", "--model", "{model}", "--scheduler", "garbage"],
     "names a host 'garbage' that this machine cannot find"),
    (["predict", "{raster}", "{tmp}/m.tif", "--model", "{model}", "--scheduler", "tcp://host:port"],
     "is not a Dask scheduler address"),
    (["trainproxy", "{raster}", "{raster}", "{tmp}/m.povmodel", "--learning-rate", "-1"], "The learning rate must be above 0"),
    (["trainproxy", "{raster}", "{raster}", "{tmp}/m.povmodel", "--frozen-blocks", "99"], "The frozen blocks must be 0 to 16"),
    (["trainproxy", "{raster}", "{raster}", "{tmp}/m.povmodel", "--classes", "1"], "at least 2 night-light classes"),
    (["trainproxy", "{raster}", "{raster}", "{tmp}/m.povmodel", "--thresholds", "a,b"], "give class edges in radiance"),
])
def test_predict_and_trainproxy_errors_are_one_line(raster, tmp_path, model_file, capsys, args, message):  # noqa: F811
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    args = [a.format(raster=raster, tmp=tmp_path, model=model_file) for a in args]
    started = time.monotonic()
    assert _main(args) == 1
    assert message in _one_error_line(capsys)
    assert time.monotonic() - started < 20  # a wrong scheduler address took 64 s, then a TimeoutError
    assert not (tmp_path / "m.tif").exists() and not (tmp_path / "m.png").exists()
    assert not (tmp_path / "m.povmodel").exists()


def test_predict_help_prints_a_plain_percent_sign(capsys):
    with pytest.raises(SystemExit):
        cli.main(["predict", "--help"])
    out = capsys.readouterr().out
    assert "80 % interval" in " ".join(out.split()) and "%%" not in out


def test_a_semicolon_cp1252_table_is_read_as_a_spreadsheet_saves_it(tmp_path):
    path = _table(tmp_path / "clusters.csv", [(1.5, 2.5, 0.3, 12), ("", 3.0, 0.1, 4)],
                  header=("x", "y", "richesse", "ménages"), delimiter=";", encoding="cp1252")
    table = read_clusters_table(str(path), "x", "y")
    assert table.fields == ["x", "y", "richesse", "ménages"]
    assert [r["ménages"] for r in table.rows] == ["12", "4"]
    assert table.rows[0]["__x"] == 1.5 and np.isnan(table.rows[1]["__x"])
    assert any("cp1252" in n for n in table.notes)


def test_geojson_points_with_empty_coordinates_or_no_geometry_have_no_location(tmp_path):
    """Empty coordinates ended in an IndexError."""
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": []}, "properties": {"wealth": 1}},
                {"type": "Feature", "geometry": None, "properties": {"wealth": 2}},
                {"type": "Feature", "geometry": {"type": "Point", "coordinates": [30.5, -1.5]}, "properties": {"wealth": 3}}]
    path = tmp_path / "clusters.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    table = read_clusters_table(str(path), "lon", "lat")
    assert [r["wealth"] for r in table.rows] == [1, 2, 3]
    assert [np.isnan(r["__x"]) for r in table.rows] == [True, True, False]
    assert (table.rows[2]["__x"], table.rows[2]["__y"]) == (30.5, -1.5)


def test_without_gdal_bindings_geojson_is_still_read_and_other_formats_are_refused(tmp_path, monkeypatch):
    from poverty_mapper.core.errors import PovertyMapperError

    monkeypatch.setitem(sys.modules, "osgeo", None)  # as in an environment with rasterio alone
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": []}, "properties": {"wealth": 1}},
                {"type": "Feature", "geometry": {"type": "Point", "coordinates": [30.5, -1.5]}, "properties": {"wealth": 3}}]
    (tmp_path / "c.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    table = read_clusters_table(str(tmp_path / "c.geojson"), "lon", "lat")
    assert np.isnan(table.rows[0]["__x"]) and table.rows[1]["__x"] == 30.5
    (tmp_path / "c.gpkg").write_bytes(b"SQLite format 3\0")
    with pytest.raises(PovertyMapperError, match=r"needs GDAL's Python bindings .* give the clusters as GeoJSON or CSV"):
        read_clusters_table(str(tmp_path / "c.gpkg"), "lon", "lat")
    (tmp_path / "bad.geojson").write_text("{not json", encoding="utf-8")
    with pytest.raises(PovertyMapperError, match=r"is not valid GeoJSON"):
        read_clusters_table(str(tmp_path / "bad.geojson"), "lon", "lat")


def test_fit_reads_clusters_from_a_geopackage_and_counts_those_without_a_location(small_world, tmp_path, capsys):
    """A GeoPackage (a UnicodeDecodeError before) in its own CRS, with a NULL geometry,
    GeoJSON-style empty coordinates and a latitude of 95 among the points."""
    from osgeo import ogr, osr

    lon, lat = transform("EPSG:32636", "EPSG:4326", [c[0] for c in small_world.clusters],
                         [c[1] for c in small_world.clusters])
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp_path / "clusters.gpkg"))
    layer = dataset.CreateLayer("clusters", srs, ogr.wkbPoint)
    layer.CreateField(ogr.FieldDefn("wealth", ogr.OFTReal))
    for i, (x, y, (_, _, o, _)) in enumerate(zip(lon, lat, small_world.clusters)):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("wealth", o)
        if i == 0:
            feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({x} 95)"))
        elif i != 1:  # the second has no geometry
            feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({x} {y})"))
        layer.CreateFeature(feature)
    dataset = layer = None
    status = cli.main(["fit", str(small_world.image_path), str(tmp_path / "clusters.gpkg"), str(tmp_path / "m.povmodel"),
                       "--outcome", "wealth", "--box-size", "1500", "--tile-size", "480", "--fold-distance", "750",
                       "--device", "cpu", "--report", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert status == 0, err
    assert "2 clusters have no valid location" in err
    assert json.loads((tmp_path / "r.json").read_text())["clusters"]["used"] == 38


def test_predict_reads_its_mask_from_a_geopackage(raster, tmp_path, model_file, capsys):  # noqa: F811
    """A GeoPackage mask in the image's CRS (a UnicodeDecodeError before): only cells inside are mapped."""
    import rasterio
    from osgeo import ogr, osr

    with rasterio.open(raster) as ds:
        left, bottom, right, top = ds.bounds
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32621)
    dataset = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp_path / "districts.gpkg"))
    layer = dataset.CreateLayer("districts", srs, ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    mid = (left + right) / 2
    feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON (({mid} {bottom}, {right} {bottom}, {right} {top}, "
                                                  f"{mid} {top}, {mid} {bottom}))"))
    layer.CreateFeature(feature)
    dataset = layer = None
    out = tmp_path / "masked.tif"
    assert cli.main(["predict", str(raster), str(out), "--model", str(model_file), "--mask",
                     str(tmp_path / "districts.gpkg"), "--device", "cpu"]) == 0, capsys.readouterr().err
    with rasterio.open(out) as dst:
        estimates = dst.read(1, masked=True)
    half = estimates.shape[1] // 2
    assert estimates[:, : half - 1].mask.all() and not estimates[:, half + 1:].mask.all()


def test_sigterm_cancels_like_ctrl_c_and_leaves_no_partial_file(package_path, tmp_path):
    """SIGTERM (a batch system ending a job) left a hidden .partial until the same output ran again."""
    from generated_world import make_world

    world = make_world(tmp_path / "world", size=448, n_settlements=30, n_clusters=5)
    out = tmp_path / "lights_map.tif"
    env_code = "from poverty_mapper.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", f"import sys\n{env_code}", "predict", str(world.image_path), str(out),
         "--nightlights", str(world.lights_path), "--stride", "120", "--batch-size", "1", "--device", "cpu"],
        env={**__import__("os").environ, "PYTHONPATH": str(package_path)}, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".lights_map.tif.*.partial*")) and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "canceled; no output was written" in err and "Traceback" not in err
    assert list(tmp_path.glob(".lights_map.tif*")) == [] and not out.exists()


# A batch that does not look at cancel (a long read): the first Ctrl-C can only ask, the second stops it.
_STUCK_BATCH = """
import sys, time
from poverty_mapper.core import atomic
from poverty_mapper.core.inference import predict

def stuck(request, progress=None, is_canceled=None, executor=None):
    with atomic.atomic_output(request.output_path) as tmp:
        tmp.write_bytes(b"half a map")
        print("batch running", file=sys.stderr, flush=True)
        while True:
            time.sleep(0.01)

predict.predict_poverty_map = stuck
from poverty_mapper.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_second_ctrl_c_stops_at_once_without_a_traceback_or_a_file(package_path, raster, model_file, tmp_path):  # noqa: F811
    out = tmp_path / "map.tif"
    process = subprocess.Popen(
        [sys.executable, "-c", _STUCK_BATCH, "predict", str(raster), str(out), "--model", str(model_file),
         "--device", "cpu"],
        env={**__import__("os").environ, "PYTHONPATH": str(package_path)}, stderr=subprocess.PIPE, text=True,
    )
    seen = []
    for wanted, then in (("batch running", signal.SIGINT), ("Canceling after the current batch", signal.SIGINT)):
        while not any(wanted in line for line in seen):
            line = process.stderr.readline()
            assert line, "".join(seen)
            seen.append(line)
        process.send_signal(then)
    _, err = process.communicate(timeout=60)
    err = "".join(seen) + err
    assert process.returncode == 130, err
    assert "canceled; no output was written" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("map", ".map"))) == []
