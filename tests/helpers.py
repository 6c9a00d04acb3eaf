"""Helpers shared by test modules of both folders (tests/engine, tests/qgis).

A test module imports what it needs from here (or from ``generated_world`` and
``faults``), never from another test module.

Numbers stored from another machine (a shipped model's scores and coefficients) are
compared with tolerances: numpy's SIMD loops, OpenBLAS, MKL, oneDNN and PyTorch pick other
kernels on other CPUs, so the last bits of sums differ, and a penalty chosen on a near tie
can flip to its neighbour on the grid. A choice is judged by what it gives (its score).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable

import numpy as np
import pytest

# A score (r2, R2) or an interval half-width: stored to 4 or 6 decimals; another CPU's
# sums, or a near-tied penalty that flipped, move it by far less than this.
SCORE_ABS = 1e-3
# A coefficient fitted with the same penalty on another CPU, relative to the largest one.
COEF_REL = 1e-6
# Keys of a scores dict that hold a choice (a penalty), not a figure.
CHOICES = frozenset({"alpha"})


def assert_scores_close(rebuilt, shipped, path: str = "scores") -> None:
    """Nested dicts of scores: the same keys, texts and counts; floats within SCORE_ABS.
    The penalties chosen are not compared: the scores beside them say what they give."""
    if isinstance(shipped, dict):
        assert isinstance(rebuilt, dict) and set(rebuilt) == set(shipped), f"{path}: {sorted(rebuilt)} != {sorted(shipped)}"
        for key in shipped:
            if key not in CHOICES:
                assert_scores_close(rebuilt[key], shipped[key], f"{path}.{key}")
    elif isinstance(shipped, float) or isinstance(rebuilt, float):
        assert rebuilt == pytest.approx(shipped, abs=SCORE_ABS), path
    else:
        assert rebuilt == shipped, path


def assert_same_fit(rebuilt, shipped, score_of: Callable[[float], float]) -> None:
    """Two ridge regressors fitted on the same data (one shipped from another machine).

    The penalty each chose scores the same (``score_of(alpha)``: the selection score of a
    penalty, higher is better) within SCORE_ABS. When both chose the same penalty, the
    coefficients agree within COEF_REL of the largest, and the intercepts likewise.
    """
    assert score_of(rebuilt.alpha) == pytest.approx(score_of(shipped.alpha), abs=SCORE_ABS), (
        f"penalty {rebuilt.alpha:g} scores otherwise than the shipped {shipped.alpha:g}"
    )
    for attr in ("x_mean", "x_scale"):
        np.testing.assert_allclose(getattr(rebuilt, attr), getattr(shipped, attr), rtol=COEF_REL, err_msg=attr)
    if rebuilt.alpha == pytest.approx(shipped.alpha, rel=1e-9):
        size = float(np.abs(shipped.coef).max())
        np.testing.assert_allclose(rebuilt.coef, shipped.coef, rtol=0, atol=COEF_REL * size, err_msg="coef")
        assert rebuilt.intercept == pytest.approx(shipped.intercept, rel=COEF_REL, abs=COEF_REL * size)


def assert_same_domain(rebuilt, shipped) -> None:
    """Training domains: the same counts and extremes; means and spreads (stored to 6
    decimals, from sums) within 1e-5."""
    assert dataclasses.asdict(rebuilt) == pytest.approx(dataclasses.asdict(shipped), abs=1e-5)


def without_figures(text: str) -> str:
    """A text with its decimal figures and penalties blanked: a card's or provenance's
    wording, compared apart from its numbers (which are compared with tolerances)."""
    return re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "#", text)
