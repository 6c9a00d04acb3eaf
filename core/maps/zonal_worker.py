"""Per-polygon statistics of an estimate raster (:class:`~.zonal.EstimateMap`) computed
in a separate Python process.

QGIS's programs (the desktop, ``qgis_process``) link GDAL, GEOS and PROJ when they
start, so those libraries' symbols come first for every library loaded later. The
copies that Python wheels bundle (exactextract's GEOS, rasterio's GDAL, GEOS and PROJ)
keep their functions' names, so inside QGIS a wheel's call lands in QGIS's library
whenever that has a function of the name. exactextract's GEOS context and prepared
polygon were then made by QGIS's GEOS (3.11 on Debian 12) and handed to the one function
only the wheel's GEOS has (``GEOSPreparedContainsXY_r``, 3.12+), which read past the
older context: QGIS crashed (signal 11) for any polygon that is not a rectangle. A plain
Python process has no such libraries loaded first, so the statistics are computed there,
with the very same code (:mod:`.zonal`) and results. A worker that dies takes nothing
else down: the caller gets a :class:`WorkerError` saying so.

The worker is this file run as a script by the given interpreter (inside QGIS,
``sys.executable`` is QGIS itself) with the caller's import path; it loads the plugin's
package from the folder holding it, whatever that folder is called. Requests and
answers are lines of JSON on the worker's stdin and a private copy of its stdout (anything
a library prints goes to stderr); JSON gives floats back bit for bit.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys


def _import_package(package: str, root: str) -> None:
    """Registers the plugin's folder ``root`` as the package ``package`` (the worker's start)."""
    if package not in sys.modules:
        spec = importlib.util.spec_from_file_location(package, os.path.join(root, "__init__.py"),
                                                      submodule_search_locations=[root])
        module = importlib.util.module_from_spec(spec)
        sys.modules[package] = module
        spec.loader.exec_module(module)


if __name__ == "__main__":  # the worker, run as a script: serve from the module imported within the package
    del sys.path[0]  # this file's folder: its modules are the package's, imported as such
    _import_package(sys.argv[1], sys.argv[2])
    sys.exit(importlib.import_module(f"{sys.argv[1]}.core.maps.zonal_worker").serve())

import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from dataclasses import astuple  # noqa: E402
from pathlib import Path  # noqa: E402

from ..errors import PovertyMapperError  # noqa: E402

_PACKAGE = __package__.split(".")[0] if __package__ else None
_STDERR_TAIL = 2000  # characters of the worker's stderr quoted when it dies


class WorkerError(PovertyMapperError):
    """The worker process could not start, or stopped before answering."""


class IsolatedEstimateMap:
    """:class:`~.zonal.EstimateMap` in a worker process: the same ``stats``, ``crs_wkt``,
    ``with_population`` and ``close``; one worker per map, ended on ``close``."""

    def __init__(self, raster_path: str, population_path: str | None = None, python: str | None = None):
        """``python``: the interpreter to run the worker with (by default this one's,
        when this process is a Python and not a program that embeds one)."""
        python = python or sys.executable
        if "python" not in Path(python).name.lower():
            raise WorkerError(
                f"No Python interpreter was found to compute the statistics per polygon ({python} is not one); "
                "check the Python installation that comes with QGIS."
            )
        self._stderr = tempfile.TemporaryFile()
        self._process = _start(python, self._stderr)
        try:
            self._answer()  # the worker's imports went well
            self.crs_wkt, self.with_population = self._call("open", str(raster_path),
                                                            None if population_path is None else str(population_path))
        except BaseException:
            self.close()
            raise

    def stats(self, geometry: dict, poverty_line: float | None = None):
        from .zonal import ZoneStats

        return ZoneStats(*self._call("stats", geometry, poverty_line))

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.stdin.close()  # the worker ends at the end of its input
            process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            process.kill()
            process.wait()
        finally:
            process.stdout.close()
            self._stderr.close()

    def __enter__(self) -> "IsolatedEstimateMap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, request: str, *args):
        if self._process is None:
            raise WorkerError("The statistics worker was closed.")
        try:
            self._process.stdin.write(_line([request, *args]))
            self._process.stdin.flush()
        except (BrokenPipeError, OSError):
            self._died()
        return self._answer()

    def _answer(self):
        try:
            kind, value = json.loads(self._process.stdout.readline())
        except (ValueError, OSError):  # an empty line: the worker's output ended
            self._died()
        if kind == "user":
            raise PovertyMapperError(value)
        if kind == "error":
            raise WorkerError(f"Computing the statistics failed in the worker process: {value}")
        return value

    def _died(self):
        process = self._process
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        self._stderr.seek(0)
        detail = self._stderr.read().decode("utf-8", "replace").strip()[-_STDERR_TAIL:]
        self.close()
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        raise WorkerError(
            f"The separate process computing the statistics per polygon stopped ({how}). Check that "
            "exactextract and rasterio import in a plain Python "
            f"('{process.args[0]} -c \"import exactextract, rasterio\"'), then run again."
            + (f"\nIts last messages:\n{detail}" if detail else "")
        )


def _line(message: list) -> bytes:
    return json.dumps(message).encode("utf-8") + b"\n"


def _start(python: str, stderr) -> subprocess.Popen:
    root = Path(__file__).absolute().parents[2]  # the plugin's folder: core/maps/ lie under it
    env = dict(os.environ)
    path = [p for p in sys.path if p and os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
    try:
        return subprocess.Popen(
            [python, "-u", str(Path(__file__).absolute()), _PACKAGE or "poverty_mapper", str(root)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env,
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),  # no console window on Windows
        )
    except OSError as exc:
        raise WorkerError(
            f"Cannot start a Python process ({python}) for the statistics per polygon: {exc.strerror}."
        ) from exc


def serve() -> int:
    """The worker: answers ('open', raster, population) then ('stats', geometry, line)
    requests until its input ends."""
    import faulthandler
    import traceback

    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a library's prints must not mix with the answers
    faulthandler.enable()
    requests = sys.stdin.buffer

    def send(kind, value) -> None:
        answers.write(_line([kind, value]))
        answers.flush()

    try:
        from .zonal import EstimateMap
    except Exception as exc:  # noqa: BLE001 (reported to the caller)
        send("error", f"the worker could not import what it needs ({type(exc).__name__}: {exc})")
        return 1
    send("ok", None)
    estimates = None
    for line in requests:
        request, *args = json.loads(line)
        try:
            if request == "open":
                estimates = EstimateMap(*args)
                send("ok", (estimates.crs_wkt, estimates.with_population))
            else:
                send("ok", astuple(estimates.stats(*args)))
        except PovertyMapperError as exc:
            send("user", str(exc))
        except Exception as exc:  # noqa: BLE001 (reported to the caller)
            send("error", "".join(traceback.format_exception_only(type(exc), exc)).strip())
    if estimates is not None:
        estimates.close()
    return 0
