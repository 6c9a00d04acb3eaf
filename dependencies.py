"""Fail-soft start when the Python packages the engine needs are missing or fail to load."""
from __future__ import annotations

import importlib
import sys
import importlib.util
from dataclasses import dataclass

REQUIRED = {
    "torch": "PyTorch runs the feature extractors (CPU or CUDA)",
    "rasterio": "rasterio reads imagery in windows and writes the estimate rasters",
    "exactextract": "exactextract measures how much of each map cell lies in a district",
}

INSTALL_HINT = (
    "Install them into the Python that QGIS uses, then restart QGIS. On Linux: "
    "'python3 -m pip install --user torch rasterio exactextract \"affine<3\"' (for a CPU-only PyTorch add "
    "'--index-url https://download.pytorch.org/whl/cpu'); on Windows run the same command in "
    "the OSGeo4W Shell. See the plugin's README, section 'Installing into QGIS'."
)

REPAIR_HINT = (
    "Reinstall them into the Python that QGIS uses, then restart QGIS: "
    "'python3 -m pip install --user --force-reinstall torch rasterio exactextract \"affine<3\"' (on Windows in "
    "the OSGeo4W Shell). A PyTorch built for CUDA fails to load without a matching GPU driver: "
    "update the driver, or install the CPU-only build by adding "
    "'--index-url https://download.pytorch.org/whl/cpu'."
)


@dataclass(frozen=True)
class DependencyProblem:
    name: str
    error: str | None = None  # None: not installed; else why importing it failed

    def describe(self) -> str:
        if self.error is None:
            return f"{self.name}: {REQUIRED[self.name]}"
        return f"{self.name}: {self.error}"


def _import_error(name: str) -> str | None:
    """Why importing ``name`` fails, or None when it imports."""
    try:
        importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 (a broken native library raises OSError, ImportError, RuntimeError…)
        return f"{type(exc).__name__}: {exc}"
    return None


def dependency_problems() -> list[DependencyProblem]:
    """The required packages that are not installed, or are installed but fail to import."""
    problems = []
    for name in REQUIRED:
        if importlib.util.find_spec(name) is None:
            problems.append(DependencyProblem(name))
            continue
        error = _import_error(name)
        if error is not None:
            problems.append(DependencyProblem(name, error))
    return problems


def problems_message(problems: list[DependencyProblem]) -> str:
    """What failed and what to do, for the message bar."""
    missing = "; ".join(p.describe() for p in problems if p.error is None)
    broken = "; ".join(p.describe() for p in problems if p.error is not None)
    parts = []
    if missing:
        parts.append(f"Poverty Mapper needs Python packages that are not installed ({missing}). {INSTALL_HINT}")
    if broken:
        parts.append(f"Poverty Mapper cannot load Python packages that are installed ({broken}). {REPAIR_HINT}")
    return " ".join(parts)


class MissingDependenciesPlugin:
    """Stands in for the plugin when dependencies are missing or broken: says how to fix it."""

    def __init__(self, iface, problems: list[DependencyProblem]):
        self.iface = iface
        self.problems = problems

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API)
        """Headless (qgis_process): no message bar, and QGIS would only say "Algorithm ... not
        found": say on stderr what is missing and how to fix it."""
        if self.iface is None:
            sys.stderr.write(
                problems_message(self.problems)
                + " Under qgis_process, packages installed in a virtual environment are seen only when its "
                "site-packages folder is on PYTHONPATH (see the README).\n"
            )

    def initGui(self) -> None:  # noqa: N802 (QGIS API)
        from qgis.core import Qgis, QgsMessageLog

        text = problems_message(self.problems)
        QgsMessageLog.logMessage(text, "Poverty Mapper", Qgis.Warning)
        if self.iface is not None:
            self.iface.messageBar().pushMessage("Poverty Mapper", text, level=Qgis.Warning, duration=0)

    def unload(self) -> None:
        pass
