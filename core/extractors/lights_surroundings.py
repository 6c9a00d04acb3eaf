"""Features of a place's night lights and of its surroundings, from the bundled luminance.

A survey cluster's published position is displaced by up to 2 km (urban) or 5-10 km
(rural), and the wealth of a place shows in the lights around it as well as at it (a
village beside a lit town, a lit town far from any other). So a place is described by
boxes of the bundled lights (core.imagery.bundled_lights) of several sizes centred on its
pixel, from the pixel itself to 101 x 101 pixels (about 62 km at the equator), and for
each box:

- ``log1p_mean``: log(1 + the mean luminance);
- ``mean_log1p``: the mean of log(1 + luminance) (the same, less swayed by one bright spot);
- for each lit threshold t: ``sqrt_share_ge_t``, the square root of the share of the
  box's pixels of luminance t or more, and ``any_ge_t``, 1 when at least one is (a
  pixel that bright lies within half the box's side: distances to lit places, in steps).

The sums over every box come from summed-area tables (whole numbers, exact) of the
luminance read once around all the places at hand, so a survey's clusters and every cell of a map get the same
numbers from the same code, and a map costs a few table look-ups per cell. On the DHS
clusters these features, fitted within survey rounds, rank wealth out of country better
than the 6.72 km box's histogram (scripts/evaluate_africa_lights.py).
"""
from __future__ import annotations

import numpy as np

# Box sides in lights pixels (611.5 m at the equator): the pixel, 1.8, 3.1, 6.7, 12.8,
# 19, 37 and 62 km.
SURROUNDING_SIDES = (1, 3, 5, 11, 21, 31, 61, 101)
# Luminance levels a pixel must reach to count as lit (unlit land reads about 5-25).
LIT_THRESHOLDS = (32, 64, 128, 255)
# log(1 + luminance) in fixed point (2^-20, a millionth): summed as whole numbers, every
# box's sum is exact, so a place's features do not depend on the block it was read in.
_LOG1P_SCALE = 2.0**20
_LOG1P_FIXED = np.round(np.log1p(np.arange(256, dtype=np.float64)) * _LOG1P_SCALE).astype(np.int64)


def surroundings_margin(sides=SURROUNDING_SIDES) -> int:
    """How many pixels the largest box reaches beyond its centre pixel."""
    return max(sides) // 2


def surroundings_feature_names(sides=SURROUNDING_SIDES, thresholds=LIT_THRESHOLDS) -> tuple[str, ...]:
    """The names of :func:`surroundings_features`' columns, in order."""
    names = []
    for side in sides:
        names += [f"box{side}_log1p_mean", f"box{side}_mean_log1p"]
        for t in thresholds:
            names += [f"box{side}_sqrt_share_ge_{t}", f"box{side}_any_ge_{t}"]
    return tuple(names)


def check_sides_and_thresholds(sides, thresholds) -> None:
    """Refuse box sides that are not odd and positive, and thresholds outside 1-255."""
    if not sides or any(int(s) != s or s < 1 or s % 2 == 0 for s in sides):
        raise ValueError(f"box sides must be odd whole numbers of pixels, at least 1, not {tuple(sides)}")
    if any(int(t) != t or not 1 <= t <= 255 for t in thresholds):
        raise ValueError(f"lit thresholds must be whole luminance levels from 1 to 255, not {tuple(thresholds)}")


def _summed_area(values: np.ndarray) -> np.ndarray:
    """Table ``[h + 1, w + 1]`` whose entry (r, c) is the sum of ``values[:r, :c]``."""
    table = np.zeros((values.shape[0] + 1, values.shape[1] + 1), values.dtype)
    np.cumsum(values, axis=0, out=table[1:, 1:])
    np.cumsum(table[1:, 1:], axis=1, out=table[1:, 1:])
    return table


def _box_sums(table: np.ndarray, rows: np.ndarray, cols: np.ndarray, half: int) -> np.ndarray:
    r0, r1, c0, c1 = rows - half, rows + half + 1, cols - half, cols + half + 1
    return table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]


def surroundings_features(
    luminance: np.ndarray, rows, cols, sides=SURROUNDING_SIDES, thresholds=LIT_THRESHOLDS,
) -> np.ndarray:
    """The features (module docstring) of the places at pixels ``rows``, ``cols`` of
    ``luminance`` (uint8 ``[h, w]``, the bundled lights' values): float64
    ``[n, len(sides) * (2 + 2 * len(thresholds))]``, columns named by
    :func:`surroundings_feature_names`. Every place's largest box must lie inside
    ``luminance``."""
    check_sides_and_thresholds(sides, thresholds)
    luminance = np.asarray(luminance)
    if luminance.ndim != 2 or luminance.dtype != np.uint8:
        raise ValueError(f"luminance must be a uint8 [h, w] array, not {luminance.dtype} {luminance.shape}")
    rows, cols = np.asarray(rows, np.int64).ravel(), np.asarray(cols, np.int64).ravel()
    margin = surroundings_margin(sides)
    h, w = luminance.shape
    if rows.size and (rows.min() < margin or cols.min() < margin or rows.max() >= h - margin
                      or cols.max() >= w - margin):
        raise ValueError(f"every place needs {margin} pixels of luminance around it inside the array")
    tables = [_summed_area(luminance.astype(np.int64)), _summed_area(_LOG1P_FIXED[luminance])]
    tables += [_summed_area((luminance >= t).astype(np.int64)) for t in thresholds]
    columns = []
    for side in sides:
        area = float(side * side)
        sums = [_box_sums(table, rows, cols, side // 2) for table in tables]
        columns += [np.log1p(sums[0] / area), sums[1] / (area * _LOG1P_SCALE)]
        for lit in sums[2:]:
            columns += [np.sqrt(lit / area), (lit > 0).astype(np.float64)]
    return np.column_stack(columns) if columns else np.zeros((rows.size, 0))
