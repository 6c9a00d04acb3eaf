"""The shipped default model is what scripts/train_default_model.py makes from the
real LSMS data (Yeh et al. 2020 release), and scores as documented."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import LSMS_DIR
from poverty_mapper.core.evaluation import lsms
from poverty_mapper.core.extractors.histogram import YEH_BIN_EDGES
from poverty_mapper.core.regression.metrics import squared_pearson
from poverty_mapper.core.regression.ridge import fit_ridge

RTOL = 1e-6


@pytest.fixture(scope="module")
def rebuilt(real_data):
    import train_default_model  # scripts/ is on sys.path (conftest)

    return train_default_model.build_default_model(LSMS_DIR)


@pytest.fixture(scope="module")
def lsms_set(real_data):
    return lsms.load_lsms(LSMS_DIR)


def _assert_same_nested(a, b, path="scores"):
    """Equal dicts, with floats compared to RTOL."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), path
        for key in a:
            _assert_same_nested(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=RTOL, abs=1e-6), path
    else:
        assert a == b, path


def test_rebuilding_gives_the_shipped_model(rebuilt, default_model):
    for attr in ("name", "target", "bands", "input_scaling", "pixel_size_m", "tile_size_px", "provenance", "radiometry", "domain"):
        assert getattr(rebuilt, attr) == getattr(default_model, attr), attr
    _assert_same_nested(rebuilt.scores.to_json(), default_model.scores.to_json())
    r, s = rebuilt.regressor, default_model.regressor
    assert r.alpha == pytest.approx(s.alpha, rel=RTOL)
    assert r.intercept == pytest.approx(s.intercept, rel=RTOL)
    _assert_same_nested(r.cv_scores, s.cv_scores, "cv_scores")
    for attr in ("coef", "x_mean", "x_scale"):
        np.testing.assert_allclose(getattr(r, attr), getattr(s, attr), rtol=RTOL, atol=1e-12, err_msg=attr)
    for attr in ("band_means", "band_stds", "edges"):
        np.testing.assert_allclose(
            getattr(rebuilt.extractor, attr), getattr(default_model.extractor, attr), rtol=RTOL, err_msg=attr
        )


def test_rebuilt_and_shipped_models_predict_alike(rebuilt, default_model, lsms_set):
    x = lsms_set.frequencies(("BLUE", "GREEN", "RED"))
    np.testing.assert_allclose(rebuilt.regressor.predict(x), default_model.regressor.predict(x), rtol=RTOL, atol=1e-9)


def test_pooled_score_on_the_provided_folds(default_model):
    pooled = default_model.scores.pooled.to_json()
    assert pooled["n"] == 3020
    assert 0.25 <= pooled["r2"] <= 0.30  # squared Pearson; reference 0.27 (README)
    assert pooled["R2"] <= pooled["r2"] + 1e-9
    assert sorted(default_model.scores.folds) == ["A", "B", "C", "D", "E"]
    assert sum(f.n for f in default_model.scores.folds.values()) == 3020


def test_pooled_score_recomputed_from_the_folds(default_model, lsms_set):
    """Refit each fold on train+val with its recorded alpha, pool the test predictions."""
    x = lsms_set.frequencies(("BLUE", "GREEN", "RED"))
    y = lsms_set.labels
    pred = np.full(y.size, np.nan)
    for name, split in lsms_set.folds.items():
        alpha = default_model.scores.folds[name].alpha
        trva = np.concatenate([split["train"], split["val"]])
        assert np.intersect1d(trva, split["test"]).size == 0  # nothing of the test split used
        pred[split["test"]] = fit_ridge(x[trva], y[trva], alpha).predict(x[split["test"]])
    assert not np.isnan(pred).any()  # the test splits cover all 3020 clusters
    r2 = squared_pearson(y, pred)
    assert r2 == pytest.approx(default_model.scores.pooled.r2, abs=1e-4)
    assert 0.25 <= r2 <= 0.30


def test_the_model_declares_its_inputs(default_model):
    assert default_model.bands == ("BLUE", "GREEN", "RED")
    assert default_model.pixel_size_m == 30.0
    assert default_model.tile_size_px == 224
    assert default_model.tile_size_m == pytest.approx(6720.0)
    ext = default_model.extractor
    assert ext.kind == "histogram" and ext.n_features == 3 * 102 == default_model.regressor.n_features
    np.testing.assert_array_equal(ext.edges, YEH_BIN_EDGES)
    # The standardization of the release (README table) for BLUE, GREEN, RED.
    np.testing.assert_allclose(ext.band_means, [0.062551, 0.090696, 0.105640])
    np.testing.assert_allclose(ext.band_stds, [0.023979, 0.032121, 0.051943])


def test_the_card_says_how_little_it_carries_within_and_across_countries(default_model):
    """The README reference on these folds: RGB histograms rank places within a country
    barely (r2 about 0.07) and carry nothing out of country (about 0.004)."""
    scores = default_model.scores
    assert 0.03 < scores.within_groups_r2 < 0.12 and scores.out_of_country_r2 < 0.02
    card = default_model.card()
    assert "Within groups" in card and "Out of country" in card and "±0.97" in card
