"""Folds that keep neighbours together: single-linkage groups of points closer than a
distance, on GENERATED positions checked against a brute-force answer, and ground
distances in metres from geographic and projected coordinates."""
from __future__ import annotations

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.warp import transform as warp_transform

from poverty_mapper.core.imagery.tiling import ground_positions_m
from poverty_mapper.core.regression.folds import linked_groups


def _brute_force_groups(points: np.ndarray, distance: float) -> np.ndarray:
    """Connected components of the 'closer than distance' graph, the slow way."""
    n = len(points)
    near = np.linalg.norm(points[:, None] - points[None], axis=2) < distance
    label = -np.ones(n, int)
    for start in range(n):
        if label[start] >= 0:
            continue
        label[start], stack = start, [start]
        while stack:
            i = stack.pop()
            for j in np.flatnonzero(near[i] & (label < 0)):
                label[j] = start
                stack.append(j)
    return label


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return all(len(set(b[a == g])) == 1 for g in set(a)) and len(set(a)) == len(set(b))


@pytest.mark.parametrize("dims,distance", [(2, 300.0), (2, 1000.0), (3, 500.0), (3, 2500.0)])
def test_groups_are_the_connected_components_of_near_neighbours(dims, distance):
    rng = np.random.default_rng(dims + int(distance))
    points = rng.uniform(0, 20_000, (300, dims))
    groups = linked_groups(points, distance)
    assert _same_partition(groups, _brute_force_groups(points, distance))
    assert set(groups.tolist()) == set(range(groups.max() + 1))  # numbered 0, 1, ...


def test_chains_link_and_the_distance_is_strict():
    points = np.array([[0.0, 0], [900, 0], [1800, 0], [2700, 0], [10_000, 0], [11_000, 0]])
    groups = linked_groups(points, 1000.0)
    assert groups[0] == groups[1] == groups[2] == groups[3]  # a chain of 900 m steps
    assert groups[4] != groups[5]  # exactly 1000 m apart: not closer than 1000 m
    assert groups[3] != groups[4]


def test_distance_zero_groups_the_same_place_only():
    points = np.array([[5.0, 5.0], [5.0, 5.0], [5.0, 5.5], [100.0, 0.0]])
    groups = linked_groups(points, 0.0)
    assert groups[0] == groups[1] and len(set(groups.tolist())) == 3


def test_thousands_of_points_take_moments():
    import time

    points = np.random.default_rng(0).uniform(0, 1e6, (5000, 3))
    start = time.perf_counter()
    groups = linked_groups(points, 10_000.0)
    assert time.perf_counter() - start < 5.0
    assert 1 < groups.max() + 1 < 5000


def test_ground_positions_measure_metres_in_any_crs():
    """Two generated points 10 km apart along a meridian at 60 degrees north: their
    distance is 10 km from WGS 84 coordinates and from Web Mercator ones (where the map
    shows them twice as far apart), and from UTM."""
    lon, lat0 = 15.0, 60.0
    lat1 = lat0 + 10_000.0 / 111_412.0  # metres per degree of latitude at 60 N
    geographic = ground_positions_m(CRS.from_epsg(4326), [lon, lon], [lat0, lat1])
    d = np.linalg.norm(geographic[1] - geographic[0])
    assert d == pytest.approx(10_000.0, rel=1e-3)
    for epsg in (3857, 32633):
        xs, ys = warp_transform("EPSG:4326", f"EPSG:{epsg}", [lon, lon], [lat0, lat1])
        projected = ground_positions_m(CRS.from_epsg(epsg), xs, ys)
        assert np.linalg.norm(projected[1] - projected[0]) == pytest.approx(d, rel=1e-6)
    xs, ys = warp_transform("EPSG:4326", "EPSG:3857", [lon, lon], [lat0, lat1])
    assert ys[1] - ys[0] == pytest.approx(2 * d, rel=0.01)  # what a planar distance would say
