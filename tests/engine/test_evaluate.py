"""`make eval` on the real LSMS folds: the baseline reproduces, the best variant beats the
bar, and the choice of the best variant depends on the val splits only."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import LSMS_DIR

from poverty_mapper.core.evaluation import lsms
from poverty_mapper.core.evaluation.fixed_folds import evaluate_on_folds
from poverty_mapper.core.evaluation.lsms_features import (
    VARIANTS,
    select_by_validation,
    validation_predictions,
    validation_scores,
)
from poverty_mapper.core.regression.metrics import coefficient_of_determination, squared_pearson


@pytest.fixture(scope="module")
def data(real_data):
    return lsms.load_lsms(LSMS_DIR)


@pytest.fixture(scope="module")
def features(data):
    return {name: make(data) for name, make in VARIANTS.items()}


@pytest.fixture(scope="module")
def train_val_only(data):
    """The folds with their test splits removed: selection code cannot even reach them."""
    return {name: {"train": s["train"], "val": s["val"]} for name, s in data.folds.items()}


@pytest.fixture(scope="module")
def val_scores(data, features, train_val_only):
    return {name: validation_scores(x, data.labels, train_val_only) for name, x in features.items()}


def test_lsms_set_has_nightlight_scalars(data):
    assert data.nls_center.shape == data.nls_mean.shape == (len(data),)
    assert np.all(np.isfinite(data.nls_center)) and np.all(np.isfinite(data.nls_mean))


def test_variants_are_finite_and_deterministic(data, features):
    for name, x in features.items():
        assert x.shape[0] == len(data), name
        assert np.all(np.isfinite(x)), name
    np.testing.assert_array_equal(VARIANTS["rff_summary_nl"](data), features["rff_summary_nl"])


def test_rgb_reproduces_the_reference(data, features):
    pooled = evaluate_on_folds(features["rgb"], data.labels, data.folds)["pooled"]
    assert pooled["n"] == 3020
    assert abs(pooled["r2"] - 0.27) <= 0.01


def test_best_variant_beats_the_bar_on_test(data, features, val_scores):
    best = select_by_validation(val_scores)
    assert best not in ("rgb", "nightlights", "all_bands")
    pooled = evaluate_on_folds(features[best], data.labels, data.folds)["pooled"]
    assert pooled["n"] == 3020
    assert pooled["r2"] > 0.40
    assert pooled["r2"] > evaluate_on_folds(features["nightlights"], data.labels, data.folds)["pooled"]["r2"]


def test_selection_ignores_test_labels(data, features, val_scores):
    """Scramble each fold's test labels before that fold's val fit: every alpha, every val
    score, the pooled val scores and hence the chosen variant stay exactly the same."""
    rng = np.random.default_rng(0)
    scrambled_scores = {}
    for name, x in features.items():
        idx, preds = [], []
        for fold in sorted(data.folds):
            split = data.folds[fold]
            y = data.labels.copy()
            y[split["test"]] = rng.permutation(y[split["test"]]) * 3.0 + 1.0
            pred, alpha = validation_predictions(x, y, split["train"], split["val"])
            assert alpha == val_scores[name]["folds"][fold]["alpha"], (name, fold)
            assert round(squared_pearson(data.labels[split["val"]], pred), 4) == val_scores[name]["folds"][fold]["r2"]
            idx.append(split["val"])
            preds.append(pred)
        idx, preds = np.concatenate(idx), np.concatenate(preds)
        r2 = round(squared_pearson(data.labels[idx], preds), 4)
        scrambled_scores[name] = {"pooled": {"r2": r2, "R2": coefficient_of_determination(data.labels[idx], preds)}}
        assert r2 == val_scores[name]["pooled"]["r2"], name
    assert select_by_validation(scrambled_scores) == select_by_validation(val_scores)


def test_val_splits_cover_every_cluster_once(data):
    val = np.concatenate([data.folds[f]["val"] for f in lsms.FOLD_NAMES])
    np.testing.assert_array_equal(np.sort(val), np.arange(len(data)))
