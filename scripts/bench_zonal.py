"""District statistics on GENERATED maps of growing size: peak resident memory (VmHWM) of
the worker process that computes them inside QGIS (core/maps/zonal_worker.py), its time
and the time of the same computation in this process, for one district of 5000
vertices covering about 60 % of the map.

    .venv/bin/python scripts/bench_zonal.py [--sizes 2048 8192]

The maps (float32, 30 m cells, tiled, deflate) are written to a temporary folder."""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import astuple
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bootstrap import import_plugin_package  # noqa: E402

import_plugin_package()
from poverty_mapper.core.maps.zonal import EstimateMap  # noqa: E402
from poverty_mapper.core.maps.zonal_worker import IsolatedEstimateMap  # noqa: E402

CELL = 30.0


def _write_map(path: Path, size: int) -> None:
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=1, dtype="float32", crs="EPSG:32621",
                       transform=Affine(CELL, 0, 0, 0, -CELL, 0), nodata=-9999, tiled=True, compress="deflate") as dst:
        for row in range(0, size, 512):
            rows = min(512, size - row)
            dst.write(np.random.default_rng(row).normal(0, 1, (rows, size)).astype(np.float32), 1,
                      window=Window(0, row, size, rows))
        dst.update_tags(QUANTITY="generated index", UNIT="generated units")


def _district(size: int) -> dict:
    """A noisy circle of 5000 vertices over the middle of the map."""
    angles = np.linspace(0, 2 * np.pi, 5000, endpoint=False)
    radius = 0.44 * size * CELL * (1 + 0.05 * np.sin(9 * angles))
    centre = size * CELL / 2
    ring = [(float(centre + r * np.cos(a)), float(-centre + r * np.sin(a))) for r, a in zip(radius, angles)]
    return {"type": "Polygon", "coordinates": [ring + ring[:1]]}


def _peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192])
    sizes = parser.parse_args().sizes
    print("| map (cells) | cells in the district | worker peak memory | worker time | in-process time | same numbers |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            path = Path(folder) / f"generated_map_{size}.tif"
            _write_map(path, size)
            district = _district(size)
            start = time.perf_counter()
            with EstimateMap(str(path)) as here:  # first: it reads the file into the page cache for both
                here_stats = here.stats(district)
            here_s = time.perf_counter() - start
            start = time.perf_counter()
            with IsolatedEstimateMap(str(path)) as isolated:
                worker_stats = isolated.stats(district)
                peak = _peak_mb(isolated._process.pid)
            worker_s = time.perf_counter() - start
            print(f"| {size}² | {worker_stats.cells} | {peak:.1f} MB | {worker_s:.2f} s | {here_s:.2f} s "
                  f"| {astuple(worker_stats) == astuple(here_stats)} |")
            path.unlink()


if __name__ == "__main__":
    main()
