"""The survey stage's columns for a network's features (core.regression.columns): chosen on
inner folds among the features, their principal components and the network's class
scores, and stored as a ridge on the features. Data here are GENERATED."""
from __future__ import annotations

import numpy as np
import pytest

from poverty_mapper.core.regression.columns import (
    FEATURES,
    LinearMap,
    choose_columns,
    composed,
    fit_chosen,
    fit_columns_cv,
    network_candidates,
)
from poverty_mapper.core.regression.cross_validation import nested_cv
from poverty_mapper.core.regression.folds import group_folds
from poverty_mapper.core.regression.ridge import PenaltySearch, fit_ridge

SEARCH = PenaltySearch(limits=(1e-6, 1e9))


def _data(n=60, p=300, seed=0):
    """Features with a few strong directions (as a network's are) and an outcome that
    follows the first of them; many more features than samples."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(n, 3)) * np.array([5.0, 3.0, 2.0])
    x = factors @ rng.normal(size=(3, p)) + rng.normal(scale=1.0, size=(n, p))
    y = factors[:, 0] + rng.normal(scale=1.0, size=n)
    return x, y


def test_a_composed_ridge_predicts_as_the_ridge_on_its_columns():
    x, y = _data()
    columns = network_candidates(None)[2].fit(x)  # pca k=4
    model = fit_ridge(columns(x), y, 3.0)
    flat = composed(columns, model, x.shape[1])
    new = np.random.default_rng(1).normal(size=(5, x.shape[1]))
    np.testing.assert_allclose(flat.predict(new), model.predict(columns(new)), rtol=1e-9, atol=1e-9)
    assert flat.coef.shape == (x.shape[1],)
    assert composed(LinearMap(None), model, 3) is model


def test_the_head_candidate_is_the_network_class_scores():
    rng = np.random.default_rng(2)
    weight, bias = rng.normal(size=(3, 20)), rng.normal(size=3)
    head = network_candidates((weight, bias))[-1]
    x = rng.normal(size=(4, 20))
    assert head.name == "head"
    np.testing.assert_allclose(head.fit(x)(x), x @ weight.T + bias)


def test_few_strong_directions_win_over_all_the_features_on_inner_folds():
    x, y = _data()
    folds = group_folds(np.arange(y.size), 5, 0)
    choice = choose_columns(x, y, folds, network_candidates(None), SEARCH)
    assert choice.name.startswith("pca")
    assert choice.inner_scores[choice.name] == max(choice.inner_scores.values())
    assert set(choice.inner_scores) == {"features", "pca k=2", "pca k=4", "pca k=8", "pca k=16"}
    # the final fit, stored as a ridge on the features, names what it chose
    final = fit_columns_cv(x, y, folds, network_candidates(None), SEARCH)
    assert final.cv_scores["columns"]["chosen"] == choice.name
    np.testing.assert_allclose(final.predict(x), fit_chosen(x, y, choice).predict(x))


def test_nested_cross_validation_chooses_inside_each_outer_fold():
    x, y = _data(seed=3)
    groups = np.arange(y.size) // 2
    pred, folds, per_fold = nested_cv(x, y, groups, 5, 0, search=SEARCH, candidates=network_candidates(None))
    plain, _, plain_folds = nested_cv(x, y, groups, 5, 0, search=SEARCH)
    assert all(f.columns is not None for f in per_fold) and all(f.columns is None for f in plain_folds)
    assert "columns" in per_fold[0].to_json() and "columns" not in plain_folds[0].to_json()
    # on such data the chosen columns predict held-out samples better than all the features
    assert np.corrcoef(pred, y)[0, 1] > np.corrcoef(plain, y)[0, 1]
    # the features alone as the only candidate are the plain fit
    only, _, _ = nested_cv(x, y, groups, 5, 0, search=SEARCH, candidates=(FEATURES,))
    np.testing.assert_allclose(only, plain)


@pytest.mark.parametrize("k", [2, 16])
def test_pca_columns_are_fitted_on_the_training_features_only(k):
    x, _ = _data()
    pca = network_candidates(None)[1 if k == 2 else 4]
    train, test = x[:40], x[40:]
    columns = pca.fit(train)
    z = columns(train)
    assert z.shape == (40, k)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-9)  # centred on the training features
    assert not np.allclose(columns(test).mean(0), 0, atol=1e-6)
