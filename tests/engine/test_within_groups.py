"""Ridge within groups and leave-one-country-out scored for ranking (core.regression.within_groups,
core.regression.leave_group_out), on GENERATED data: group levels that the features confound,
the held-out country kept out of every choice, and the choice among candidates."""
from __future__ import annotations

import numpy as np
import pytest

from poverty_mapper.core.regression.leave_group_out import (
    leave_one_country_out_ranked,
    out_of_country_penalty,
    select_by_inner_scores,
)
from poverty_mapper.core.regression.metrics import demeaned, within_r2
from poverty_mapper.core.regression.ridge import fit_ridge
from poverty_mapper.core.regression.within_groups import demeaned_columns, fit_ridge_within

ALPHAS = (0.01, 1.0, 100.0, 10_000.0)


def confounded(seed=0, n_groups=8, per_group=60):
    """y = x + the group's level, and the groups with more x have a lower level: across
    groups x says the opposite of what it says inside one."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), per_group)
    shift = rng.uniform(0, 6, n_groups)
    x = shift[groups] + rng.normal(size=groups.size)
    y = x - 1.5 * shift[groups] + 0.2 * rng.normal(size=groups.size)
    return x[:, None], y, groups


def test_demeaning_takes_each_groups_mean():
    x = np.array([[1.0, 10.0], [3.0, 20.0], [5.0, 0.0]])
    np.testing.assert_allclose(demeaned_columns(x, np.array(["a", "a", "b"])), [[-1, -5], [1, 5], [0, 0]])
    np.testing.assert_allclose(demeaned_columns(x[:, 0], np.array([2, 2, 1])), demeaned(x[:, 0], np.array([2, 2, 1])))


def test_within_groups_the_slope_is_the_one_inside_a_group():
    x, y, groups = confounded()
    across = fit_ridge(x, y, 1e-6)
    within = fit_ridge_within(x, y, groups, 1e-6)
    assert across.folded()[0][0] < 0.5  # the group levels pull the slope down
    assert within.folded()[0][0] == pytest.approx(1.0, abs=0.05)
    assert within_r2(y, within.predict(x), groups) > within_r2(y, across.predict(x), groups)
    assert within.predict(x).mean() == pytest.approx(y.mean())  # levels around all the rows' mean


def test_a_held_out_country_takes_part_in_no_choice():
    x, y, groups = confounded(seed=1)
    countries = groups // 2  # four countries of two survey rounds each
    first = leave_one_country_out_ranked(x, y, countries, groups, within=True, alphas=ALPHAS)
    changed = y.copy()
    changed[countries == 0] = np.random.default_rng(3).normal(size=int((countries == 0).sum()))
    second = leave_one_country_out_ranked(x, changed, countries, groups, within=True, alphas=ALPHAS)
    np.testing.assert_array_equal(first.pred[countries == 0], second.pred[countries == 0])
    assert first.alphas["0"] == second.alphas["0"] and first.inner_scores["0"] == second.inner_scores["0"]
    assert not np.array_equal(first.pred[countries == 1], second.pred[countries == 1])
    assert first.calibration_residuals["0"].size == int((countries != 0).sum())


def test_the_inner_choice_is_the_penalty_that_ranks_best_on_the_other_countries():
    x, y, groups = confounded(seed=2)
    countries = groups // 2
    loco = leave_one_country_out_ranked(x, y, countries, groups, within=False, alphas=ALPHAS)
    others = countries != 3
    alpha, score = out_of_country_penalty(x[others], y[others], countries[others], groups[others], alphas=ALPHAS)
    assert loco.alphas["3"] == alpha and loco.inner_scores["3"] == pytest.approx(score)


def test_the_candidate_with_the_better_inner_score_is_chosen_per_country():
    x, y, groups = confounded(seed=4)
    countries = groups // 2
    results = {
        "across": leave_one_country_out_ranked(x, y, countries, groups, within=False, alphas=ALPHAS),
        "within": leave_one_country_out_ranked(x, y, countries, groups, within=True, alphas=ALPHAS),
    }
    pred, chosen = select_by_inner_scores(results, countries)
    assert set(chosen.values()) == {"within"}  # the confounded levels mislead the fit across groups
    np.testing.assert_array_equal(pred, results["within"].pred)
    assert within_r2(y, pred, groups) > within_r2(y, results["across"].pred, groups)
