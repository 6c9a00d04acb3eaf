"""The shipped default model is what scripts/train_default_model.py makes from the
real LSMS data (Yeh et al. 2020 release), and scores as documented."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import LSMS_DIR
from helpers import SCORE_ABS, assert_same_domain, assert_same_fit, assert_scores_close
from poverty_mapper.evaluation import lsms
from poverty_mapper.core.extractors.histogram import YEH_BIN_EDGES
from poverty_mapper.core.regression.metrics import squared_pearson
from poverty_mapper.core.regression.ridge import fit_ridge


@pytest.fixture(scope="module")
def rebuilt(real_data):
    import train_default_model  # scripts/ is on sys.path (conftest)

    return train_default_model.build_default_model(LSMS_DIR)


@pytest.fixture(scope="module")
def lsms_set(real_data):
    return lsms.load_lsms(LSMS_DIR)


def _cv_score(shipped):
    """The pooled out-of-fold R2 the shipped model's penalty search gave a penalty."""
    table = shipped.regressor.cv_scores["R2_by_alpha"]
    return lambda alpha: table[f"{alpha:.6g}"]


def test_rebuilding_gives_the_shipped_model(rebuilt, default_model):
    """The shipped file was built on another CPU: the same description, scores within
    what another CPU's sums move (a penalty may flip on a near tie: its score is compared)."""
    for attr in ("name", "target", "bands", "input_scaling", "pixel_size_m", "tile_size_px", "provenance", "radiometry"):
        assert getattr(rebuilt, attr) == getattr(default_model, attr), attr
    assert_same_domain(rebuilt.domain, default_model.domain)
    assert_scores_close(rebuilt.scores.to_json(), default_model.scores.to_json())
    assert_scores_close(rebuilt.regressor.cv_scores, default_model.regressor.cv_scores, "cv_scores")
    assert_same_fit(rebuilt.regressor, default_model.regressor, _cv_score(default_model))
    for attr in ("band_means", "band_stds", "edges"):
        np.testing.assert_allclose(
            getattr(rebuilt.extractor, attr), getattr(default_model.extractor, attr), rtol=1e-6, err_msg=attr
        )


def test_rebuilt_and_shipped_models_predict_alike(rebuilt, default_model, lsms_set):
    """Their estimates of the LSMS clusters score alike (within what a flipped near-tied
    penalty moves) and rank the clusters alike."""
    x, y = lsms_set.frequencies(("BLUE", "GREEN", "RED")), lsms_set.labels
    mine, shipped = rebuilt.regressor.predict(x), default_model.regressor.predict(x)
    assert squared_pearson(y, mine) == pytest.approx(squared_pearson(y, shipped), abs=SCORE_ABS)
    assert np.corrcoef(mine, shipped)[0, 1] > 0.99


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
    assert r2 == pytest.approx(default_model.scores.pooled.r2, abs=SCORE_ABS)
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
