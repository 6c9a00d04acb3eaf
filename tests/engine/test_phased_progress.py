"""The progress bar split between named training phases, and its cancel check."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poverty_mapper.core.errors import Canceled
from poverty_mapper.core.training.clusters import CLUSTER_PHASES
from poverty_mapper.core.training.progress import PhasedProgress
from poverty_mapper.core.training.proxy import PROXY_PHASES


def test_a_phase_fraction_maps_into_its_share():
    seen = []
    phases = PhasedProgress({"read": 1.0, "train": 3.0}, seen.append)
    phases["read"].report(0.5)
    phases["train"].report(0.0)
    phases["train"].report(0.5)
    phases["train"].report(1.0)
    assert seen == [0.125, 0.25, 0.625, 1.0]


def test_fractions_outside_zero_to_one_are_clipped():
    seen = []
    phases = PhasedProgress({"read": 1.0, "train": 1.0}, seen.append)
    phases["read"].report(1.7)  # e.g. the last, short chunk counted as a whole one
    phases["train"].report(-0.2)
    assert seen == [0.5, 0.5]


def test_done_reaches_the_end_and_a_silent_phase_is_passed_over():
    seen = []
    phases = PhasedProgress({"features": 9.0, "cross-validation": 1.0, "report": 0.0}, seen.append)
    phases["features"].report(1.0)
    phases.done()
    assert seen == [0.9, 1.0]
    assert phases["report"].share == 0.0 and phases["report"].start == 1.0


def test_weights_that_cannot_split_the_bar_are_refused():
    with pytest.raises(ValueError):
        PhasedProgress({"a": 0.0, "b": 0.0})
    with pytest.raises(ValueError):
        PhasedProgress({"a": 2.0, "b": -1.0})


def test_the_cancel_check_is_asked_once_per_check_and_raises_when_canceled():
    answers = iter([False, False, True])
    asked = []

    def is_canceled():
        asked.append(True)
        return next(answers)

    phase = PhasedProgress({"epochs": 1.0}, None, is_canceled)["epochs"]
    phase.check_canceled()
    phase.check_canceled()
    with pytest.raises(Canceled):
        phase.check_canceled()
    assert len(asked) == 3


def test_without_callbacks_the_bar_is_split_alike_and_nothing_cancels():
    """A run given no progress bar nor cancel check (a script) splits its phases as one
    given them, is never canceled, and its reports go nowhere."""
    seen = []
    heard = PhasedProgress({"read": 1.0, "train": 3.0}, seen.append)
    silent = PhasedProgress({"read": 1.0, "train": 3.0})
    assert [(p.name, p.start, p.share) for p in silent.phases.values()] == \
        [(p.name, p.start, p.share) for p in heard.phases.values()] == [("read", 0.0, 0.25), ("train", 0.25, 0.75)]
    assert [phase.is_canceled() for phase in silent.phases.values()] == [False, False]
    for _ in range(3):
        silent["train"].check_canceled()  # raises Canceled if anything said stop
    assert silent["read"].report(0.5) is None and silent.done() is None
    heard["read"].report(0.5)
    assert seen == [0.125]  # the same report, heard where a callback is given


@settings(max_examples=60, deadline=None)
@given(
    weights=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=6).filter(lambda w: sum(w) > 0.01),
    steps=st.integers(1, 7),
)
def test_reporting_the_phases_in_order_moves_the_bar_forward_to_the_end(weights, steps):
    seen = []
    phases = PhasedProgress({f"phase {i}": w for i, w in enumerate(weights)}, seen.append)
    for name in phases.phases:
        for k in range(steps + 1):
            phases[name].report(k / steps)
    phases.done()
    assert all(0.0 <= f <= 1.0 for f in seen)
    assert all(b >= a - 1e-12 for a, b in zip(seen, seen[1:]))
    assert seen[-2] == pytest.approx(1.0) and seen[-1] == 1.0
    shares = [phase.share for phase in phases.phases.values()]
    assert sum(shares) == pytest.approx(1.0)
    assert [s for s, w in zip(shares, weights) if w == 0.0] == [0.0] * weights.count(0.0)


def test_the_trainers_split_their_bars_as_before():
    proxy = PhasedProgress(PROXY_PHASES)
    assert list(PROXY_PHASES) == ["labelled tiles", "classes", "network", "epochs", "report"]
    assert (proxy["labelled tiles"].start, proxy["labelled tiles"].share) == (0.0, 0.2)
    assert (proxy["epochs"].start, proxy["epochs"].share) == (0.2, 0.8)
    clusters = PhasedProgress(CLUSTER_PHASES)
    assert list(CLUSTER_PHASES) == [
        "tiles per cluster", "features", "cross-validation", "baseline", "training imagery", "report",
    ]
    assert (clusters["features"].start, clusters["features"].share) == (0.0, 0.9)
