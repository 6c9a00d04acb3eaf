"""Ridge regression, penalty choice by cross-validation, grouped folds and the two
scores (r² and R²), on generated data with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from poverty_mapper.core.regression.metrics import coefficient_of_determination, squared_pearson
from poverty_mapper.core.regression.ridge import (
    DEFAULT_ALPHAS,
    FeatureScaling,
    PenaltySearch,
    RidgeRegressor,
    choose_alpha,
    cv_alpha_scores,
    fit_ridge,
    fit_ridge_cv,
)
from poverty_mapper.core.regression.folds import group_folds

TRUE_COEF = np.array([1.5, -2.0, 0.0, 0.7, 3.0])
TRUE_BIAS = 4.0


def _generated_linear(n=300, noise=0.01, seed=0):
    """Generated data: features on different scales and offsets, y linear in them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, TRUE_COEF.size)) * [1.0, 10.0, 0.1, 3.0, 0.5] + [0.0, 5.0, -2.0, 1.0, 0.3]
    y = x @ TRUE_COEF + TRUE_BIAS + noise * rng.normal(size=n)
    return x, y


def test_fit_ridge_recovers_a_known_linear_relation():
    x, y = _generated_linear()
    model = fit_ridge(x, y, alpha=1e-6)
    w, b = model.folded()
    np.testing.assert_allclose(w, TRUE_COEF, atol=0.01)
    assert b == pytest.approx(TRUE_BIAS, abs=0.05)
    assert coefficient_of_determination(y, model.predict(x)) > 0.9999


def test_a_large_penalty_shrinks_towards_the_mean():
    x, y = _generated_linear()
    model = fit_ridge(x, y, alpha=1e9)
    assert np.all(np.abs(model.coef) < 1e-3)
    np.testing.assert_allclose(model.predict(x), y.mean(), atol=1e-2)


def test_constant_features_are_left_alone():
    x, y = _generated_linear()
    x = np.column_stack([x, np.full(len(y), 7.0)])  # carries no information
    model = fit_ridge(x, y, alpha=1e-6)
    assert model.x_scale[-1] == 1.0 and model.coef[-1] == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.isfinite(model.predict(x)))


def test_folded_weights_give_identical_predictions():
    x, y = _generated_linear(noise=1.0)
    model = fit_ridge(x, y, alpha=3.0)
    w, b = model.folded()
    x_new = np.random.default_rng(9).normal(size=(50, x.shape[1])) * 4
    np.testing.assert_allclose(x_new @ w + b, model.predict(x_new), rtol=1e-12, atol=1e-10)


def test_cv_picks_a_large_alpha_for_pure_noise():
    """Generated targets independent of the features: the best out-of-fold model is the
    mean, i.e. the largest penalty."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 30))
    y = rng.normal(size=200)
    folds = np.arange(200) % 5
    model = fit_ridge_cv(x, y, folds)
    assert model.alpha >= 1e3
    assert max(model.cv_scores["R2_by_alpha"].values()) < 0.05


def test_cv_picks_a_small_alpha_for_a_clean_linear_target():
    x, y = _generated_linear(noise=0.01)
    folds = np.arange(len(y)) % 5
    model = fit_ridge_cv(x, y, folds)
    assert model.alpha <= 0.1
    scores = model.cv_scores["R2_by_alpha"]
    assert len(scores) == len(DEFAULT_ALPHAS)
    assert scores[f"{model.alpha:.6g}"] == pytest.approx(max(scores.values()))
    assert max(scores.values()) > 0.999


def test_cv_scores_are_out_of_fold():
    """Pure-noise generated data with more features than samples per fold: in-sample
    fits are perfect, out-of-fold scores with a tiny penalty are poor."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 100))
    y = rng.normal(size=60)
    folds = np.arange(60) % 3
    assert coefficient_of_determination(y, fit_ridge(x, y, 1e-3).predict(x)) > 0.99
    assert cv_alpha_scores(x, y, folds, [1e-3])[0] < 0.1


def test_cv_needs_two_folds():
    x, y = _generated_linear(n=20)
    with pytest.raises(ValueError, match="two folds"):
        fit_ridge_cv(x, y, np.zeros(20, dtype=int))


def test_spec_round_trip():
    x, y = _generated_linear(noise=0.5)
    model = fit_ridge_cv(x, y, np.arange(len(y)) % 4)
    spec, arrays = model.to_spec()
    again = RidgeRegressor.from_spec(spec, arrays)
    assert again.alpha == model.alpha and again.intercept == model.intercept
    assert again.cv_scores == model.cv_scores
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="unknown regressor"):
        RidgeRegressor.from_spec({**spec, "kind": "lasso"}, arrays)


# --- features that vary in almost no sample ----------------------------------------------


def _rare_feature_data(seed=0):
    """Generated: y linear in 5 ordinary features; a sixth is 0 except tiny values in
    three training samples, and a test sample holds 10 000 times more of it."""
    x, y = _generated_linear(n=100, noise=0.1, seed=seed)
    rare = np.zeros(len(y))
    rare[[3, 50, 77]] = [1e-5, 2e-5, 1e-5]
    x_train = np.column_stack([x, rare])
    x_test = np.column_stack([x[:1], [0.1]])
    return x_train, y, x_test


def test_plain_standardization_lets_a_rare_feature_dominate():
    x, y, x_test = _rare_feature_data()
    model = fit_ridge(x, y, alpha=1.0)
    z = (x_test - model.x_mean) / model.x_scale
    assert z[0, -1] > 1_000  # thousands of standard deviations
    assert abs(model.predict(x_test)[0] - model.predict(x[:1])[0]) > 10


def test_a_rare_feature_is_left_out_and_scales_have_a_floor():
    x, y, x_test = _rare_feature_data()
    left_out = fit_ridge(x, y, alpha=1.0, scaling=FeatureScaling(min_support=0.1))
    assert left_out.coef[-1] == 0.0
    assert left_out.predict(x_test)[0] == pytest.approx(left_out.predict(x[:1])[0])
    floored = fit_ridge(x, y, alpha=1.0, scaling=FeatureScaling(floor=0.2))
    plain_scales = fit_ridge(x, y, alpha=1.0).x_scale
    np.testing.assert_allclose(floored.x_scale, np.maximum(plain_scales, 0.2 * np.median(plain_scales)))
    assert floored.x_scale[-1] > 1_000 * plain_scales[-1]
    z = (x_test - floored.x_mean) / floored.x_scale
    assert abs(z[0, -1]) < 2  # 10 000 times the training values, yet under two units
    # Dense features (all varying in most samples, similar scales) are untouched by either.
    dense = fit_ridge(x[:, :-1], y, alpha=1.0, scaling=FeatureScaling(floor=0.01, min_support=0.1))
    np.testing.assert_allclose(dense.coef, fit_ridge(x[:, :-1], y, alpha=1.0).coef)


def test_constant_features_stay_unscaled_with_a_floor():
    x, y = _generated_linear()
    x = np.column_stack([x, np.full(len(y), 7.0)])
    model = fit_ridge(x, y, alpha=1e-6, scaling=FeatureScaling(floor=0.5, min_support=0.1))
    assert model.x_scale[-1] == 1.0 and model.coef[-1] == 0.0


# --- a penalty at an end of the grid --------------------------------------------------


def test_a_penalty_at_the_upper_end_is_searched_further_and_flagged():
    """Pure-noise generated targets: the best penalty is the largest; the grid grows a
    decade at a time up to its limit, and the choice says it is still at the end."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(200, 30)), rng.normal(size=200)
    folds = np.arange(200) % 5
    fixed = choose_alpha(x, y, folds, PenaltySearch())
    assert fixed.alpha == DEFAULT_ALPHAS[-1] and fixed.edge == "upper" and fixed.at_limit
    extended = choose_alpha(x, y, folds, PenaltySearch(limits=(1e-6, 1e9)))
    assert extended.edge == "upper" and extended.at_limit
    assert extended.alphas[-1] == pytest.approx(1e9) and extended.alpha > DEFAULT_ALPHAS[-1]
    assert extended.summary()["alpha_range"] == [pytest.approx(1e-3), pytest.approx(1e9)]


def test_a_penalty_at_the_lower_end_becomes_interior_when_the_grid_grows():
    """Generated data whose best penalty (about 0.1) lies below a grid of 10..1000."""
    x, y = _generated_linear(n=60, noise=1.0, seed=3)
    x = np.column_stack([x, np.random.default_rng(3).normal(size=(60, 20))])  # noise features
    folds = np.arange(60) % 5
    grid = (10.0, 100.0, 1000.0)
    choice = choose_alpha(x, y, folds, PenaltySearch(grid, limits=(1e-6, 1e9)))
    assert choice.edge == "lower" and not choice.at_limit
    assert choice.alpha < 10.0 and choice.alphas[0] < choice.alpha  # interior now
    assert len(choice.scores) == len(choice.alphas)
    model = fit_ridge_cv(x, y, folds, search=PenaltySearch(grid, limits=(1e-6, 1e9)))
    assert model.alpha == choice.alpha and model.cv_scores["alpha_edge"] == "lower"
    assert len(model.cv_scores["R2_by_alpha"]) == len(choice.alphas)


def test_an_interior_penalty_is_not_flagged():
    x, y = _generated_linear(n=80, noise=2.0, seed=4)
    x = np.column_stack([x, np.random.default_rng(4).normal(size=(80, 40))])
    choice = choose_alpha(x, y, np.arange(80) % 5, PenaltySearch(limits=(1e-6, 1e9)))
    assert choice.edge is None and not choice.at_limit and choice.alphas == DEFAULT_ALPHAS


# --- group_folds ---------------------------------------------------------------------


def test_group_folds_keep_equal_groups_together():
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 40, size=500)
    folds = group_folds(groups, 5)
    assert folds.shape == (500,)
    assert set(np.unique(folds)) == {0, 1, 2, 3, 4}
    for g in np.unique(groups):
        assert len(np.unique(folds[groups == g])) == 1
    # Groups are spread evenly over the folds (40 groups -> 8 per fold).
    groups_per_fold = [len(np.unique(groups[folds == f])) for f in range(5)]
    assert groups_per_fold == [8] * 5


def test_group_folds_with_locations_as_rows():
    """Generated (lat, lon) pairs: samples at the same location share a fold."""
    rng = np.random.default_rng(4)
    places = rng.uniform(-10, 10, size=(12, 2))
    idx = rng.integers(0, 12, size=100)
    locs = places[idx]
    folds = group_folds(locs, 3, seed=7)
    for p in range(12):
        if np.any(idx == p):
            assert len(np.unique(folds[idx == p])) == 1
    np.testing.assert_array_equal(folds, group_folds(locs, 3, seed=7))  # deterministic


def test_group_folds_deal_large_groups_first_to_the_emptiest_fold():
    sizes = [35, 2, 1, 1, 1, 1, 1, 1, 1]  # the Kinshasa clusters linked at 10 km, for example
    groups = np.repeat(np.arange(len(sizes)), sizes)
    folds = group_folds(groups, 5, seed=0)
    assert sorted(np.bincount(folds, minlength=5).tolist()) == [2, 2, 2, 3, 35]
    for g in range(len(sizes)):
        assert len(np.unique(folds[groups == g])) == 1
    # Which groups share a fold: the 35 alone; the pair with one single; the singles in pairs.
    sizes_by_fold = sorted(sorted(sizes[g] for g in set(groups[folds == f].tolist())) for f in range(5))
    assert sizes_by_fold == [[1, 1], [1, 1], [1, 1], [1, 2], [35]]


def test_group_folds_refuse_too_few_groups():
    with pytest.raises(ValueError, match="too few"):
        group_folds([1, 1, 2, 2, 3], 5)


# --- metrics ---------------------------------------------------------------------------


def test_r2_and_coefficient_of_determination_differ_on_a_known_case():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    # Perfectly correlated but twice too large: r² = 1, R² = 1 - 30 / 5 = -5.
    assert squared_pearson(y, 2 * y) == pytest.approx(1.0)
    assert coefficient_of_determination(y, 2 * y) == pytest.approx(-5.0)
    # Off by a constant: r² = 1, R² = 1 - 4 * 0.25 / 5 = 0.8.
    assert squared_pearson(y, y + 0.5) == pytest.approx(1.0)
    assert coefficient_of_determination(y, y + 0.5) == pytest.approx(0.8)
    assert coefficient_of_determination(y, y) == 1.0


def test_r2_keeps_the_sign_of_the_correlation_and_says_a_negative_one_is_no_skill():
    from poverty_mapper.core.regression.metrics import describe_r2

    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert squared_pearson(y, -y) == pytest.approx(-1.0)
    assert squared_pearson(y, np.array([4.0, 2.0, 3.0, 1.0])) == pytest.approx(-0.64)
    assert describe_r2(-0.649) == "r² -0.649 (negative: the predictions run against the outcome; no skill)"
    assert describe_r2(0.5) == "r² 0.500"


def test_metrics_of_constant_inputs():
    y = np.array([1.0, 2.0, 3.0])
    assert squared_pearson(y, np.full(3, 2.0)) == 0.0
    assert coefficient_of_determination(y, np.full(3, 2.0)) == pytest.approx(0.0)
    assert coefficient_of_determination(np.full(3, 5.0), y) == 0.0


@pytest.mark.parametrize("shape", [(80, 12), (12, 80)])
def test_a_failed_svd_falls_back_to_the_gram_matrix(monkeypatch, shape):
    """LAPACK's SVD can fail to converge on a real feature matrix; the fit then goes
    through the eigenvectors of the Gram matrix and gives the same coefficients."""
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=shape), rng.normal(size=shape[0])
    expected = fit_ridge(x, y, alpha=0.5).coef

    def failing_svd(*args, **kwargs):
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(np.linalg, "svd", failing_svd)
    np.testing.assert_allclose(fit_ridge(x, y, alpha=0.5).coef, expected, rtol=1e-8, atol=1e-10)


# --- a second block of features, weighed against the first -----------------------------------


def test_a_weighted_second_block_is_a_ridge_with_a_penalty_of_its_own():
    """Standardized features, the block from column 3 on times w: the penalty alpha acts
    on it as alpha / w² would (generalized ridge), solved here from its normal equations."""
    x, y = _generated_linear(n=60, noise=0.5, seed=3)
    alpha, w = 30.0, 4.0
    model = fit_ridge(x, y, alpha, scaling=FeatureScaling(block_start=3, block_weight=w))
    z = (x - x.mean(0)) / x.std(0)
    z[:, 3:] *= w
    coef = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    np.testing.assert_allclose(model.predict(x), z @ coef + y.mean(), rtol=1e-9, atol=1e-9)
    plain = fit_ridge(x, y, alpha)
    assert not np.allclose(model.predict(x), plain.predict(x))  # the weight changes the fit


def test_the_block_weight_is_chosen_with_the_penalty_and_reported():
    x, y = _generated_linear(n=120, noise=1.0, seed=4)
    folds = np.arange(y.size) % 5
    weights = (0.1, 1.0, 10.0)
    search = PenaltySearch(scaling=FeatureScaling(block_start=2), block_weights=weights)
    choice = choose_alpha(x, y, folds, search)
    best = {w: choose_alpha(x, y, folds, PenaltySearch(scaling=FeatureScaling(block_start=2, block_weight=w)))
            for w in weights}
    top = max(weights, key=lambda w: best[w].scores.max())
    assert choice.block_weight == top and choice.alpha == best[top].alpha
    assert choice.scaling.block_weight == top and choice.summary()["block_weight"] == top
    assert "block_weight" not in choose_alpha(x, y, folds).summary()  # one block: the summary as before
    regressor = fit_ridge_cv(x, y, folds, search=search)
    assert regressor.cv_scores["block"] == {"start": 2, "weight": top, "weights_searched": list(weights)}
