"""The .povmodel file: round trip, deterministic bytes, and refusal of damaged,
newer or unsafe files. Models here are trained on generated data."""
from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from conftest import ROOT, TESTS
from poverty_mapper.core.errors import ModelFileError
from poverty_mapper.core.extractors.histogram import HistogramExtractor
from poverty_mapper.core.models.model_file import (
    FORMAT_VERSION,
    ModelDescription,
    ModelInfo,
    PovertyModel,
    Score,
    Scores,
    Target,
    TrainingDomain,
    load_model,
    read_model_info,
    read_model_metadata,
    save_model,
)
from poverty_mapper.core.regression.ridge import fit_ridge_cv
from helpers import object_npy, rewrite_model_zip


def _generated_model():
    """A small model: histogram features of generated 8 x 8 tiles, ridge to a generated
    target (the tiles' mean brightness)."""
    rng = np.random.default_rng(0)
    means, stds = np.array([0.06, 0.09, 0.11]), np.array([0.024, 0.032, 0.052])
    extractor = HistogramExtractor(means, stds)
    pixels = rng.uniform(0.0, 0.3, size=(60, 3, 8, 8)).astype(np.float32)
    pixels *= rng.uniform(0.3, 1.0, size=(60, 1, 1, 1)).astype(np.float32)
    x = extractor.extract(torch.from_numpy(pixels), torch.ones(60, 8, 8, dtype=torch.bool)).numpy()
    y = pixels.mean(axis=(1, 2, 3)) * 10
    regressor = fit_ridge_cv(x, y, np.arange(60) % 3)
    return PovertyModel(
        name="generated test model",
        target=Target("generated brightness", "tenths", "generated for tests, means nothing"),
        bands=("BLUE", "GREEN", "RED"),
        input_scaling="reflectance 0-1",
        pixel_size_m=30.0,
        tile_size_px=8,
        extractor=extractor,
        regressor=regressor,
        radiometry="reflectance",
        band_indexes=(1, 2, 3),
        domain=TrainingDomain.of_outcomes(y),
        scores=Scores(protocol="generated", pooled=Score(0.5, 0.4, 60)),
        provenance={"data": "60 generated tiles", "seed": 0},
    )


@pytest.fixture(scope="module")
def model():
    return _generated_model()


def test_round_trip_keeps_everything(model, tmp_path):
    path = save_model(model, tmp_path / "m.povmodel")
    again = load_model(path)
    for attr in ("name", "target", "bands", "input_scaling", "pixel_size_m", "tile_size_px", "radiometry", "band_indexes", "domain", "scores", "provenance"):
        assert getattr(again, attr) == getattr(model, attr), attr
    assert again.tile_size_m == 240.0
    for attr in ("band_means", "band_stds", "edges"):
        np.testing.assert_array_equal(getattr(again.extractor, attr), getattr(model.extractor, attr))
    r, r0 = again.regressor, model.regressor
    for attr in ("coef", "x_mean", "x_scale"):
        np.testing.assert_array_equal(getattr(r, attr), getattr(r0, attr))
    assert (r.alpha, r.intercept, r.cv_scores) == (r0.alpha, r0.intercept, r0.cv_scores)
    # Predictions are identical, features and all.
    rng = np.random.default_rng(1)
    pixels = torch.from_numpy(rng.uniform(0, 0.3, size=(4, 3, 8, 8)).astype(np.float32))
    valid = torch.from_numpy(rng.random((4, 8, 8)) > 0.1)
    f0, f1 = model.extractor.extract(pixels, valid), again.extractor.extract(pixels, valid)
    assert torch.equal(f0, f1)
    np.testing.assert_array_equal(model.regressor.predict(f0.numpy()), again.regressor.predict(f1.numpy()))
    assert again.card() == model.card()


def test_round_trip_of_a_feature_extractor_alone(model, tmp_path):
    features_only = dataclasses.replace(model, regressor=None, target=None, name="generated extractor")
    again = load_model(save_model(features_only, tmp_path / "features.povmodel"))
    assert again.regressor is None and again.target is None and not again.can_predict
    assert model.can_predict
    np.testing.assert_array_equal(again.extractor.band_means, model.extractor.band_means)
    assert "feature extractor only" in again.card()


def test_metadata_is_readable_alone(model, tmp_path):
    path = save_model(model, tmp_path / "m.povmodel")
    meta = read_model_metadata(path)
    assert meta["format"] == "poverty_mapper.model" and meta["format_version"] == FORMAT_VERSION
    assert meta["bands"] == ["BLUE", "GREEN", "RED"] and meta["tile_size_px"] == 8
    assert meta["target"]["name"] == "generated brightness"


FORMAT_1_FILE = TESTS / "data" / "format1_generated.povmodel"


def test_a_format_1_file_still_loads_with_its_facts_typed(tmp_path):
    """Written by the plugin before format 2 (a generated model): radiometry and band
    numbers lived in the free-form ``training`` dict, fold scores by fold name."""
    model = load_model(FORMAT_1_FILE)
    assert read_model_metadata(FORMAT_1_FILE)["format_version"] == 1
    assert model.radiometry == "landsat_c2_l2" and model.band_indexes == (1, 2, 3)
    assert "radiometry" not in model.provenance and model.provenance["data"] == "80 generated tiles"
    assert model.scores.pooled == Score(0.9, 0.89, 80)
    assert model.scores.folds["2"] == Score(0.88, 0.87, 40, 1.0)
    assert model.domain is None and model.can_predict
    path = save_model(model, tmp_path / "format2.povmodel")
    assert read_model_metadata(path)["format_version"] == 2
    again = load_model(path)
    assert (again.radiometry, again.band_indexes, again.scores) == (model.radiometry, model.band_indexes, model.scores)


def test_the_card_is_read_without_torch(model, tmp_path):
    """A model's card (what the dock shows) comes from its description alone: reading it
    imports neither torch nor any extractor."""
    path = save_model(model, tmp_path / "m.povmodel")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from _bootstrap import import_plugin_package; import_plugin_package();"
        "from poverty_mapper.core.models.model_file import read_model_info;"
        "info = read_model_info(sys.argv[2]); print(info.card());"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code, str(ROOT / "scripts"), str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == model.card()
    assert read_model_info(path) == model.info


def test_saving_twice_gives_identical_bytes(model, tmp_path):
    a = save_model(model, tmp_path / "a.povmodel").read_bytes()
    b = save_model(model, tmp_path / "b.povmodel").read_bytes()
    save_model(model, tmp_path / "a.povmodel")  # over the earlier file
    assert a == b == (tmp_path / "a.povmodel").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.povmodel", "b.povmodel"]  # no temporaries


def test_a_truncated_file_is_refused(model, tmp_path):
    data = save_model(model, tmp_path / "m.povmodel").read_bytes()
    cut = tmp_path / "cut.povmodel"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="cut.povmodel"):
        load_model(cut)


def test_a_newer_format_version_asks_to_update_the_plugin(model, tmp_path):
    path = save_model(model, tmp_path / "m.povmodel")
    newer = rewrite_model_zip(path, tmp_path / "newer.povmodel", change_meta=lambda m: m.update(format_version=999))
    with pytest.raises(ModelFileError, match=r"999.*update the Poverty Mapper plugin"):
        load_model(newer)
    with pytest.raises(ModelFileError, match="update"):
        read_model_metadata(newer)


def test_garbage_is_refused(tmp_path):
    junk = tmp_path / "junk.povmodel"
    junk.write_bytes(b"this is not a zip archive\x00\x01" * 50)
    with pytest.raises(ModelFileError, match="not a readable poverty model file"):
        load_model(junk)


def test_a_zip_that_is_not_a_model_is_refused(tmp_path):
    other = tmp_path / "other.povmodel"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("model.json", json.dumps({"format": "something else"}))
    with pytest.raises(ModelFileError, match="not a poverty model file"):
        load_model(other)
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ModelFileError):
        load_model(other)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "nowhere.povmodel")


def test_inconsistent_sizes_are_refused(model, tmp_path):
    path = save_model(model, tmp_path / "m.povmodel")
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.zeros(5))
    bad = rewrite_model_zip(path, tmp_path / "bad.povmodel", extra={"regressor/coef.npy": buf.getvalue()})
    with pytest.raises(ModelFileError):
        load_model(bad)


def test_a_pickled_object_array_is_refused_and_never_run(model, tmp_path):
    # The payload really does act when unpickled (control, with another marker) ...
    control = tmp_path / "control-marker"
    np.lib.format.read_array(io.BytesIO(object_npy(control)), allow_pickle=True)
    assert control.exists()
    # ... but loading a model file holding it refuses it without unpickling.
    marker = tmp_path / "marker"
    path = save_model(model, tmp_path / "m.povmodel")
    evil = rewrite_model_zip(path, tmp_path / "evil.povmodel", extra={"regressor/coef.npy": object_npy(marker)})
    with pytest.raises(ModelFileError, match="not plain numeric data"):
        load_model(evil)
    assert not marker.exists()
    # As an extra entry the loader does not need, it is never even unpacked.
    evil2 = rewrite_model_zip(path, tmp_path / "evil2.povmodel", extra={"extractor/extra.npy": object_npy(marker)})
    assert load_model(evil2).name == model.name
    assert not marker.exists()


def test_the_shipped_default_model_round_trips(default_model, tmp_path):
    again = load_model(save_model(default_model, tmp_path / "default.povmodel"))
    assert again.card() == default_model.card()
    np.testing.assert_array_equal(again.regressor.coef, default_model.regressor.coef)


def test_the_summary_says_what_from_what_and_how_well_in_two_lines(model):
    """The dock's first look at a model (its whole card behind 'Details')."""
    from poverty_mapper.core.models.defaults import BUNDLED_MODELS

    lines = model.info.summary().split("\n")
    assert lines[0] == "Predicts generated brightness from BLUE, GREEN, RED imagery at 30 m."
    assert len(lines) == 2 and lines[1].startswith("Scored r² ") and "cross-validated" in lines[1]
    lights = read_model_info(BUNDLED_MODELS["africa_nightlights_viirs"]).summary()
    assert "from night lights (nW/cm²/sr) beside any image of the area" in lights
    assert "r² 0.39 within countries without surveys" in lights  # the out-of-country score, where there is one
    extractor = dataclasses.replace(model, regressor=None, target=None, name="generated extractor")
    assert extractor.info.summary() == "generated extractor: a feature extractor only (fit it on survey clusters before mapping)."


def test_the_description_is_declared_once_and_written_as_it_is_read(model, tmp_path):
    """A model, its card and its file share one description: a field added to
    ModelDescription is carried by the model and the card, and read back as written."""
    described = {f.name for f in dataclasses.fields(ModelDescription)}
    assert described <= {f.name for f in dataclasses.fields(PovertyModel)}
    assert described <= {f.name for f in dataclasses.fields(ModelInfo)}
    path = save_model(model, tmp_path / "m.povmodel")
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("model.json"))
    assert {k: v for k, v in meta.items() if k in model.description.to_json()} == json.loads(json.dumps(model.description.to_json()))
    assert ModelDescription.from_json(meta) == model.description == load_model(path).description
    assert ModelDescription.fields_of(read_model_info(path)) == ModelDescription.fields_of(model)
