"""The command line `poverty-mapper`: installed into the environment, --help for every
command, the maps, fits and proxy networks of the engine from the same parameters, plain
progress lines when not on a terminal and a bar on one, errors that say what to fix, and
no QGIS or Qt."""
from __future__ import annotations

import configparser
import csv
import io
import os
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points

import numpy as np
import pytest
import rasterio

from conftest import ROOT
from poverty_mapper import cli
from poverty_mapper.core.extractors.histogram import HistogramExtractor
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.models.model_file import load_model, save_model
from poverty_mapper.core.training.clusters import Cluster, ClusterFitConfig, fit_clusters
from helpers import model_file, scene_model, raster  # noqa: F401 (model_file, raster: fixtures)


def _run(package_path, *args, code="from poverty_mapper.cli import main; sys.exit(main(sys.argv[1:]))"):
    env = dict(os.environ, PYTHONPATH=str(package_path))
    return subprocess.run([sys.executable, "-c", f"import sys\n{code}", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_command_is_installed_and_its_version_is_the_plugins():
    (script,) = entry_points(group="console_scripts", name="poverty-mapper")
    assert script.value == "poverty_mapper.cli:main"
    assert os.access(os.path.join(os.path.dirname(sys.executable), "poverty-mapper"), os.X_OK)
    metadata = configparser.ConfigParser()
    metadata.read(ROOT / "metadata.txt", encoding="utf-8")
    with open(ROOT / "pyproject.toml", "rb") as f:
        assert tomllib.load(f)["project"]["version"] == metadata["general"]["version"]


@pytest.mark.parametrize("command, expected", [
    ("predict", ["--model", "--nightlights", "--bounds", "--crs", "--mask", "--mask-crs", "[IMAGE] OUTPUT", "--stride", "--bands", "--radiometry", "--device", "--batch-size",
                 "--scheduler"]),
    ("fit", ["--outcome", "--weight", "--group", "--box-size", "--extractor", "--nightlights", "--with-lights",
             "--tile-size", "--folds", "--fold-distance", "--min-tiles", "--min-coverage", "--seed", "--report",
             "--scatter", "--scheduler"]),
    ("trainproxy", ["--nightlights", "--more-images", "--network", "--frozen-blocks", "--classes", "--binning", "--thresholds",
                    "--epochs", "--learning-rate", "--val-share", "--start-model", "--report", "--plot"]),
    ("info", ["model"]),
])
def test_every_command_has_help(package_path, command, expected):
    result = _run(package_path, command, "--help")
    assert result.returncode == 0, result.stderr
    missing = [option for option in expected if option not in result.stdout]
    assert missing == []


def test_defaults_come_from_the_engine():
    parser = cli.build_parser()
    fit = parser.parse_args(["fit", "i.tif", "c.csv", "m.povmodel", "--outcome", "o"])
    config = ClusterFitConfig("i.tif", (), "m.povmodel")
    assert (fit.box_size, fit.tile_size, fit.folds, fit.batch_size) == (
        config.box_size_m, config.tile_size_m, config.n_folds, config.batch_size)
    predict = parser.parse_args(["predict", "i.tif", "o.tif"])
    assert (predict.batch_size, predict.radiometry, predict.device) == (0, "auto", "auto")


def test_predict_writes_the_engines_map_without_qgis_or_qt(package_path, raster, tmp_path, model_file):
    out = tmp_path / "cli.tif"
    code = ("from poverty_mapper.cli import main\nstatus = main(sys.argv[1:])\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('qgis', 'PyQt5', 'PyQt6', 'sip'))\n"
            "print('loaded:', loaded)\nsys.exit(status)")
    result = _run(package_path, "predict", raster, out, "--model", model_file, "--device", "cpu", "--batch-size", "4",
                  code=code)
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout and f"Wrote {out}" in result.stdout
    # Not a terminal: plain progress lines, from 0 to 100 %.
    lines = [line for line in result.stderr.splitlines() if line.startswith("predict: ")]
    assert lines[-1] == "predict: 100 %" and len(lines) >= 3 and "\r" not in result.stderr
    predict_poverty_map(PredictRequest(str(raster), str(tmp_path / "engine.tif"), load_model(model_file),
                                       device="cpu", batch_size=4))
    with rasterio.open(out) as a, rasterio.open(tmp_path / "engine.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
        assert a.tags() == b.tags()


def test_info_prints_the_model_card(capsys, model_file):
    assert cli.main(["info", str(model_file)]) == 0
    assert capsys.readouterr().out.strip() == load_model(model_file).card().strip()


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal, log = Terminal(), io.StringIO()
    bar, lines = cli.Progress("predict", terminal), cli.Progress("predict", log)
    for fraction in np.linspace(0, 1, 41):
        bar(fraction)
        lines(fraction)
    bar.close()
    assert terminal.getvalue().count("\r") == 41 and terminal.getvalue().endswith("100%\n")
    assert log.getvalue().splitlines() == [f"predict: {p} %" for p in range(0, 101, 10)]


def test_fit_from_a_csv_gives_the_engines_fit(small_world, tmp_path, capsys):
    table = tmp_path / "clusters.csv"
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["x", "y", "asset_index", "households"])
        writer.writerows(small_world.clusters)
    options = dict(box_size_m=1500.0, tile_size_m=480.0, fold_distance_m=750.0)
    status = cli.main(["fit", str(small_world.image_path), str(table), str(tmp_path / "cli.povmodel"),
                       "--outcome", "asset_index", "--weight", "households", "--x-field", "x", "--y-field", "y",
                       "--clusters-crs", "EPSG:32636", "--box-size", "1500", "--tile-size", "480",
                       "--fold-distance", "750", "--device", "cpu", "--report", str(tmp_path / "cli.json")])
    assert status == 0, capsys.readouterr().err
    clusters = tuple(Cluster(x, y, o, w, str(i)) for i, (x, y, o, w) in enumerate(small_world.clusters))
    engine = fit_clusters(ClusterFitConfig(str(small_world.image_path), clusters, str(tmp_path / "engine.povmodel"),
                                           outcome_name="asset_index", use_weights=True, device="cpu", **options))
    pooled = engine.report.cv.pooled
    assert f"r² {pooled.r2:.3f}" in capsys.readouterr().out
    assert load_model(tmp_path / "cli.povmodel").card() == load_model(tmp_path / "engine.povmodel").card()


def test_trainproxy_trains_the_engines_network(small_world, tmp_path, capsys):
    status = cli.main(["trainproxy", str(small_world.image_path), str(small_world.lights_path),
                       str(tmp_path / "proxy.povmodel"), "--network", "small_cnn", "--tile-size", "480",
                       "--epochs", "1", "--binning", "quantiles", "--block-size", "2", "--device", "cpu"])
    assert status == 0, capsys.readouterr().err
    model = load_model(tmp_path / "proxy.povmodel")
    assert model.extractor.kind == "cnn" and model.tile_size_m == 480.0 and not model.can_predict


@pytest.mark.parametrize("args, lights, model", [
    (["i.tif", "m.povmodel"], None, "m.povmodel"),
    (["i.tif", "m.povmodel", "--nightlights", "l.tif"], "l.tif", "m.povmodel"),
    (["i.tif", "l.tif", "m.povmodel"], "l.tif", "m.povmodel"),  # the older form
    (["--epochs", "2", "i.tif", "l.tif", "m.povmodel"], "l.tif", "m.povmodel"),
])
def test_trainproxy_takes_the_lights_as_an_option_or_in_the_older_place(args, lights, model):
    parsed = cli.build_parser().parse_args(["trainproxy", *args])
    assert cli._proxy_paths(parsed) == (lights, model)


def test_trainproxy_without_lights_labels_with_the_bundled_lights(small_world, tmp_path, capsys):
    status = cli.main(["trainproxy", str(small_world.image_path), str(tmp_path / "proxy.povmodel"), "--network",
                       "small_cnn", "--tile-size", "480", "--epochs", "1", "--block-size", "2", "--device", "cpu",
                       "--report", str(tmp_path / "proxy.json")])
    assert status == 0, capsys.readouterr().err
    assert "Night lights: labels from the bundled NASA Black Marble 2016 lights" in capsys.readouterr().out
    assert "labels from the bundled NASA Black Marble 2016 lights" in (tmp_path / "proxy.json").read_text()
    assert load_model(tmp_path / "proxy.povmodel").provenance["data"].endswith("blackmarble2016_africa_luminance.tif")


def test_fit_with_lights_records_them_and_says_which_lights_the_baseline_used(small_world, tmp_path, capsys):
    csv_path = tmp_path / "clusters.csv"
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["x", "y", "asset_index"])
        writer.writerows((x, y, o) for x, y, o, _ in small_world.clusters)
    status = cli.main(["fit", str(small_world.image_path), str(csv_path), str(tmp_path / "m.povmodel"), "--outcome",
                       "asset_index", "--x-field", "x", "--y-field", "y", "--clusters-crs", "EPSG:32636",
                       "--box-size", "1500", "--tile-size", "480", "--fold-distance", "750", "--with-lights",
                       "--device", "cpu"])
    assert status == 0, capsys.readouterr().err
    assert "The bundled NASA Black Marble 2016 lights alone: r²" in capsys.readouterr().out
    assert load_model(tmp_path / "m.povmodel").lights_features.n_features == 35


@pytest.mark.parametrize("args, message", [
    (["trainproxy", "{raster}", "{tmp}/l.tif", "{tmp}/m.povmodel", "--nightlights", "{tmp}/l.tif"],
     "trainproxy takes IMAGE MODEL.povmodel [--nightlights LIGHTS.tif]"),
    (["info", "missing.povmodel"], "missing.povmodel"),
    (["predict", "{raster}", "{tmp}/m.tif", "--model", "{model}", "--scheduler", "tcp://127.0.0.1:9"],
     "Cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"),
    (["fit", "{raster}", "{tmp}/none.csv", "{tmp}/m.povmodel", "--outcome", "o"], "none.csv"),
])
def test_errors_say_what_to_fix_and_exit_1(raster, tmp_path, model_file, capsys, monkeypatch, args, message):
    monkeypatch.setattr("poverty_mapper.core.imagery.dask_run.CONNECT_TIMEOUT_S", 2.0)
    args = [a.format(raster=raster, tmp=tmp_path, model=model_file) for a in args]
    assert cli.main(args) == 1
    (error,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("poverty-mapper: error: ")]
    assert message in error
    assert not (tmp_path / "m.tif").exists() and not (tmp_path / "m.povmodel").exists()


def test_predict_with_night_lights_takes_the_night_lights_model(tmp_path, capsys):
    from generated_world import make_world

    world = make_world(tmp_path / "world", size=448, n_settlements=30, n_clusters=5)
    out = tmp_path / "lights_map.tif"
    assert cli.main(["predict", str(world.image_path), str(out), "--nightlights", str(world.lights_path),
                     "--stride", "3360", "--device", "cpu"]) == 0, capsys.readouterr().err
    out_text = capsys.readouterr().out
    assert "; night lights only, no image bands. Wrote" in out_text and "bands ;" not in out_text
    with rasterio.open(out) as dst:
        assert dst.tags()["MODEL"].startswith("Africa night lights (VIIRS)")
        assert dst.tags()["SOURCE_NIGHTLIGHTS"] == world.lights_path.name


# --- No image: the bundled Africa lights model maps a region -------------------------------


def test_predict_a_region_alone_with_the_africa_lights_model(tmp_path, capsys):
    """No image and no model: --bounds with --crs over Kinshasa give the engine's lights map,
    cell for cell; --mask alone (a GeoJSON polygon) is a region too."""
    from helpers import assert_same_map
    from poverty_mapper.core.inference.lights_map import LightsMapRequest, predict_lights_map
    from poverty_mapper.core.models.defaults import AFRICA_LIGHTS_MODEL_PATH

    out = tmp_path / "kinshasa.tif"
    assert cli.main(["predict", str(out), "--bounds", "15.2,-4.45,15.45,-4.25", "--crs", "EPSG:4326"]) == 0
    assert "night lights of 2016; no image read" in capsys.readouterr().out
    engine = tmp_path / "engine.tif"
    predict_lights_map(LightsMapRequest(load_model(AFRICA_LIGHTS_MODEL_PATH), str(engine),
                                        (15.2, -4.45, 15.45, -4.25), "EPSG:4326"))
    assert_same_map(out, engine)
    with rasterio.open(out) as ds:
        assert ds.count == 3 and ds.tags()["LIGHTS_YEAR"] == "2016"
    mask = tmp_path / "district.geojson"
    mask.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": '
                    '{"type": "Polygon", "coordinates": [[[15.25, -4.4], [15.35, -4.4], [15.35, -4.3], [15.25, -4.3], '
                    '[15.25, -4.4]]]}}]}')
    assert cli.main(["predict", str(tmp_path / "district.tif"), "--mask", str(mask)]) == 0, capsys.readouterr().err
    with rasterio.open(tmp_path / "district.tif") as ds:
        assert ds.crs.to_epsg() == 4326 and ds.bounds.left <= 15.25 and ds.read(1, masked=True).count() > 0


def test_predict_without_image_or_region_says_what_to_give(tmp_path, capsys):
    assert cli.main(["predict", str(tmp_path / "m.tif")]) == cli.EXIT_ERROR
    assert "Give the region to map: an image, or an extent" in capsys.readouterr().err
    assert not (tmp_path / "m.tif").exists()


def test_predict_outside_the_lights_says_so(tmp_path, capsys):
    assert cli.main(["predict", str(tmp_path / "france.tif"), "--bounds", "2,46,3,47", "--crs", "EPSG:4326"]) == 1
    assert "outside the area the bundled night lights cover" in capsys.readouterr().err
    assert not (tmp_path / "france.tif").exists()
