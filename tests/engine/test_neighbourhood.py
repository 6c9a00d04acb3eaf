"""Map cells averaged over the survey fit's neighbourhood (GENERATED arrays)."""
from __future__ import annotations

import numpy as np

from poverty_mapper.core.inference.neighbourhood import NeighbourhoodMean, box_mean, neighbourhood_radius


def test_box_mean_equals_the_plain_window_mean():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(17, 23))
    values[rng.random(values.shape) < 0.2] = np.nan
    for radius in (0, 1, 2, 5):
        got = box_mean(values, radius)
        for r in range(values.shape[0]):
            for c in range(values.shape[1]):
                window = values[max(0, r - radius):r + radius + 1, max(0, c - radius):c + radius + 1]
                finite = window[np.isfinite(window)]
                if finite.size:
                    assert abs(got[r, c] - finite.mean()) < 1e-12
                else:
                    assert np.isnan(got[r, c])


def test_the_radius_follows_the_fit_box():
    assert neighbourhood_radius(None, 6720.0, 6720.0) == 0  # one tile per cluster
    assert neighbourhood_radius(10_000.0, 4280.0, 4280.0) == 1  # 3 x 3 tiles of 4.3 km
    assert neighbourhood_radius(1500.0, 480.0, 480.0) == 1
    assert neighbourhood_radius(10_000.0, 1920.0, 960.0) == 4  # a finer stride reaches more cells
    assert neighbourhood_radius(1500.0, 1920.0, 1920.0) == 0


class _Collect:
    def __init__(self):
        self.cells, self.values = [], []

    def add(self, cells, values):
        self.cells += list(cells)
        self.values += list(values)


def test_cells_without_their_own_estimate_stay_without():
    sink = _Collect()
    wrapper = NeighbourhoodMean(sink, (3, 3), 1)
    wrapper.add([(r, c) for r in range(3) for c in range(3)], np.array([1, 2, 3, 4, np.nan, 6, 7, 8, 9], float))
    wrapper.flush()
    got = dict(zip(sink.cells, sink.values))
    assert len(got) == 9 and np.isnan(got[(1, 1)])
    assert got[(0, 0)] == np.mean([1, 2, 4])  # its window's estimated cells
    assert sink.cells == sorted(sink.cells)  # row order, for the row writer
