"""GENERATED districts shaped as real ones are (concave, with a hole, in several parts,
with thousands of vertices), a GENERATED poverty map under them in EPSG:32621 (as the
demo map), and an independent reference for their statistics: the map's cells weighted
by how many points of a fine grid inside each cell fall inside the polygon (even-odd
rule over the rings, matplotlib's point-in-polygon test), with no GEOS and no exactextract
involved.

Shared by tests/engine/test_zonal_worker.py and tests/qgis/test_zonal_in_qgis.py."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import rasterio
from affine import Affine
from matplotlib.path import Path

CRS = "EPSG:32621"
X0, Y0, CELL = 720_000.0, -2_805_000.0, 960.0
SIZE = 30  # cells a side
NODATA = -9999.0


def write_map(path) -> str:
    """A 30 x 30 map of 960 m cells: estimates varying from cell to cell, a block without an
    estimate (quality 2), a block of extrapolations (quality 1)."""
    rng = np.random.default_rng(23)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    values = (0.05 * cols - 0.03 * rows + rng.normal(0, 0.5, (SIZE, SIZE))).astype(np.float32)
    quality = np.zeros((SIZE, SIZE), np.float32)
    quality[14:17, 3:6] = 2
    quality[20:23, 20:26] = 1
    with rasterio.open(path, "w", driver="GTiff", width=SIZE, height=SIZE, count=2, dtype="float32", crs=CRS,
                       transform=Affine(CELL, 0, X0, 0, -CELL, Y0), nodata=NODATA) as dst:
        dst.write(values, 1)
        dst.write(quality, 2)
        dst.set_band_description(1, "generated index (generated units)")
        dst.set_band_description(2, "quality: 0 = within the range of the survey outcomes, 1 = outside it, 2 = none")
        dst.update_tags(QUANTITY="generated index", UNIT="generated units", MODEL="generated")
    return str(path)


def write_population(path) -> str:
    """People per pixel of half a map cell, varying, in the map's CRS."""
    rng = np.random.default_rng(5)
    people = rng.integers(0, 40, (2 * SIZE, 2 * SIZE)).astype(np.float32)
    with rasterio.open(path, "w", driver="GTiff", width=2 * SIZE, height=2 * SIZE, count=1, dtype="float32", crs=CRS,
                       transform=Affine(CELL / 2, 0, X0, 0, -CELL / 2, Y0), nodata=-1) as dst:
        dst.write(people, 1)
    return str(path)


def _ring(points) -> list[tuple[float, float]]:
    points = [(float(x), float(y)) for x, y in points]
    return points + [points[0]]


def _noisy_circle(cx: float, cy: float, radius: float, n: int, seed: int) -> list[tuple[float, float]]:
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = radius * (1 + 0.08 * np.sin(7 * angles) + 0.02 * np.random.default_rng(seed).standard_normal(n))
    return _ring(zip(cx + r * np.cos(angles), cy + r * np.sin(angles)))


def districts() -> dict[str, dict]:
    """Name -> GeoJSON geometry in the map's CRS (EPSG:32621), all on the map."""
    return {
        # the district of the crash report: a quadrilateral with no side along the grid
        "quadrilateral": {"type": "Polygon", "coordinates": [_ring(
            [(725000, -2825000), (740000, -2825000), (738000, -2810000), (726000, -2812000)])]},
        "concave": {"type": "Polygon", "coordinates": [_ring(
            [(722300, -2832100), (731700, -2833100), (729100, -2829000), (734900, -2825400), (727200, -2826100),
             (724100, -2821800)])]},
        "with a hole": {"type": "Polygon", "coordinates": [
            _ring([(735300, -2831000), (746100, -2829700), (744800, -2818900), (733900, -2820200)]),
            _ring([(738100, -2827100), (738900, -2823300), (742700, -2823900), (741500, -2827800)])[::-1],
        ]},
        "in two parts": {"type": "MultiPolygon", "coordinates": [
            [_ring([(721500, -2808200), (726900, -2807300), (725800, -2813700)])],
            [_ring([(730300, -2806600), (737700, -2808900), (735100, -2814400), (731200, -2812900)])],
        ]},
        "noisy circle, 5000 vertices": {"type": "Polygon", "coordinates": [_noisy_circle(735000, -2813000, 5200, 5000, 1)]},
    }


def reference(map_path: str, geometry: dict, population_path: str | None = None, samples: int = 16) -> dict:
    """Coverage, mean and population-weighted mean from point counts: ``samples`` x
    ``samples`` points in each cell of the polygon's bounding box."""
    with rasterio.open(map_path) as ds:
        values, quality, transform = ds.read(1), ds.read(2), ds.transform
    people = None
    if population_path is not None:
        with rasterio.open(population_path) as ds:
            pixels = ds.read(1)
        people = pixels.reshape(SIZE, 2, SIZE, 2).sum(axis=(1, 3))  # 2 x 2 pixels per cell, none nodata
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    rings = [np.asarray(ring, np.float64) for polygon in polygons for ring in polygon]
    xs = np.concatenate([r[:, 0] for r in rings])
    ys = np.concatenate([r[:, 1] for r in rings])
    col0, col1 = int((xs.min() - X0) // CELL), int((xs.max() - X0) // CELL) + 1
    row0, row1 = int((Y0 - ys.max()) // CELL), int((Y0 - ys.min()) // CELL) + 1
    offsets = (np.arange(samples) + 0.5) / samples
    cols = (np.arange(col0, col1)[:, None] + offsets).ravel()
    rows = (np.arange(row0, row1)[:, None] + offsets).ravel()
    grid_cols, grid_rows = np.meshgrid(cols, rows)
    px, py = transform * (grid_cols.ravel(), grid_rows.ravel())
    inside = np.zeros(px.size, bool)
    for ring in rings:
        inside ^= _inside_ring(ring, px, py)  # even-odd over the rings: holes come out
    cell_r = np.floor(grid_rows.ravel()).astype(int)[inside]
    cell_c = np.floor(grid_cols.ravel()).astype(int)[inside]
    estimated = (quality[cell_r, cell_c] != 2) & (values[cell_r, cell_c] != NODATA)
    v = values[cell_r, cell_c][estimated].astype(np.float64)
    out = {"coverage": estimated.sum() / inside.sum(), "mean": v.mean(),
           "cells": len(set(zip(cell_r[estimated], cell_c[estimated])))}
    if people is not None:
        w = people[cell_r, cell_c][estimated]
        out["weighted_mean"] = float((w * v).sum() / w.sum())
        out["population"] = float(w.sum() / samples**2)
    return out


def _inside_ring(ring: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Whether each point lies inside the (simple) ring: matplotlib's point-in-polygon test."""
    return Path(ring).contains_points(np.column_stack([px, py]))


def check_against_reference(stats, expected: dict, name: str) -> None:
    """Exact coverage against point counts on a 16 x 16 grid per cell (see reference)."""
    assert stats.mean == pytest.approx(expected["mean"], abs=2e-3), name
    assert stats.coverage == pytest.approx(expected["coverage"], abs=2e-3), name
    assert expected["cells"] <= stats.cells <= expected["cells"] + 5, name  # slivers the points miss
    if "weighted_mean" in expected:
        assert stats.weighted_mean == pytest.approx(expected["weighted_mean"], abs=2e-3), name
        assert stats.population == pytest.approx(expected["population"], rel=5e-3), name


def dead_pid() -> int:
    """The id of a process that has ended (a run killed before it cleaned up)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid
