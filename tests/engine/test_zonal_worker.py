"""Statistics per polygon in a separate Python process (core/maps/zonal_worker.py), on
GENERATED maps and real-shaped GENERATED districts (tests/district_shapes.py), and
the clean-up of what a killed run leaves beside a vector output (core/atomic.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import astuple

import numpy as np
import pytest
import rasterio

import district_shapes
from district_shapes import check_against_reference, dead_pid
from poverty_mapper.core.atomic import partial_path, remove_abandoned_partials
from poverty_mapper.core.errors import PovertyMapperError
from poverty_mapper.core.maps.zonal import EstimateMap
from poverty_mapper.core.maps.zonal_worker import IsolatedEstimateMap, WorkerError


@pytest.fixture()
def generated(tmp_path):
    return (district_shapes.write_map(tmp_path / "generated_map.tif"),
            district_shapes.write_population(tmp_path / "generated_population.tif"))


def test_the_worker_gives_the_engines_numbers_for_real_shaped_districts(generated):
    """Concave, with a hole, in two parts, 5000 vertices, sides off the grid: the worker's
    numbers are the engine's in this process, and agree with point counts."""
    poverty_map, population = generated
    with IsolatedEstimateMap(poverty_map, population) as isolated, EstimateMap(poverty_map, population) as here:
        assert isolated.crs_wkt == here.crs_wkt and isolated.with_population
        for name, geometry in district_shapes.districts().items():
            stats = isolated.stats(geometry, 0.2)
            assert astuple(stats) == pytest.approx(astuple(here.stats(geometry, 0.2)), rel=1e-12), name
            assert None not in astuple(stats), name
            check_against_reference(stats, district_shapes.reference(poverty_map, geometry, population), name)


def test_a_worker_that_crashes_is_an_error_not_a_crash(generated):
    poverty_map, _ = generated
    geometry = district_shapes.districts()["concave"]
    with IsolatedEstimateMap(poverty_map) as isolated:
        assert isolated.stats(geometry).cells > 0
        os.kill(isolated._process.pid, signal.SIGSEGV)  # as a library's fault would end it
        with pytest.raises(WorkerError, match=r"stopped \(killed by signal 11\).*exactextract and rasterio import"):
            isolated.stats(geometry)
    assert isolated._process is None  # closed, nothing left running


def test_the_workers_refusals_say_what_to_fix(generated, tmp_path):
    poverty_map, _ = generated
    no_crs = tmp_path / "generated_population_without_crs.tif"
    with rasterio.open(no_crs, "w", driver="GTiff", width=2, height=2, count=1, dtype="float32") as dst:
        dst.write(np.ones((1, 2, 2), np.float32))
    with pytest.raises(PovertyMapperError, match="no coordinate reference system.*Assign projection"):
        IsolatedEstimateMap(poverty_map, str(no_crs))
    with pytest.raises(PovertyMapperError, match="Cannot open the raster"):
        IsolatedEstimateMap(str(tmp_path / "missing.tif"))


def test_a_program_that_is_not_python_is_not_started(generated):
    """Inside QGIS sys.executable is QGIS itself: never started as the worker."""
    with pytest.raises(WorkerError, match="No Python interpreter was found"):
        IsolatedEstimateMap(generated[0], python="/usr/bin/qgis.bin")
    with pytest.raises(WorkerError, match="Cannot start a Python process"):
        IsolatedEstimateMap(generated[0], python="/nonexistent/python3")


def test_the_staging_folder_of_a_killed_run_is_removed_by_the_next_run(tmp_path):
    """A vector output is written in a hidden folder beside it; a run killed while writing
    (e.g. QGIS crashing) leaves it, the next run for that output removes it."""
    out = tmp_path / "districts.gpkg"
    mine = partial_path(out)
    killed = mine.with_name(mine.name.replace(f"-{os.getpid()}-", f"-{dead_pid()}-"))
    for folder in (mine, killed):
        folder.mkdir()
        (folder / out.name).write_bytes(b"half-written")
    remove_abandoned_partials(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [mine.name]  # a live run's folder stays


def test_an_earlier_output_a_killed_run_had_moved_aside_comes_back(tmp_path):
    out = tmp_path / "districts.gpkg"
    mine = partial_path(out)
    killed = mine.with_name(mine.name.replace(f"-{os.getpid()}-", f"-{dead_pid()}-"))
    (killed / "earlier").mkdir(parents=True)
    (killed / "earlier" / out.name).write_bytes(b"earlier layer")
    remove_abandoned_partials(out)
    assert [p.name for p in tmp_path.iterdir()] == [out.name] and out.read_bytes() == b"earlier layer"
