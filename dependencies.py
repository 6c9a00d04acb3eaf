"""Fail-soft start when the Python packages the engine needs are missing or fail to load."""
from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REQUIRED = {
    "torch": "PyTorch runs the feature extractors (CPU or CUDA)",
    "rasterio": "rasterio reads imagery in windows and writes the estimate rasters",
    "exactextract": "exactextract measures how much of each map cell lies in a district",
}

# What pip installs for each missing module (numpy and affine pinned with them: numpy 2 breaks
# Debian's GDAL bindings, affine 3 Debian's attrs).
REQUIREMENTS = {
    "torch": ("torch",),
    "rasterio": ("rasterio>=1.4,<1.5", "affine<3", "numpy<2"),
    "exactextract": ("exactextract==0.3.0", "numpy<2"),
}
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # the CPU build: no GB of CUDA libraries
DEPENDENCIES_FOLDER_NAME = "poverty_mapper_dependencies"

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


def dependencies_folder() -> Path:
    """Where the plugin installs its packages: a folder of the QGIS profile, put on sys.path
    at start-up (QGIS's own Python may be system-managed, where pip refuses --user)."""
    from qgis.core import QgsApplication

    return Path(QgsApplication.qgisSettingsDirPath()) / "python" / DEPENDENCIES_FOLDER_NAME


def add_dependencies_folder() -> None:
    try:
        folder = str(dependencies_folder())
    except ImportError:  # no QGIS (the engine alone): nothing to add
        return
    if os.path.isdir(folder) and folder not in sys.path:
        sys.path.insert(0, folder)
        importlib.invalidate_caches()


def qgis_python() -> str | None:
    """The Python interpreter QGIS runs (inside QGIS sys.executable is QGIS itself)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    prefix = Path(sys.base_exec_prefix)  # the interpreter QGIS embeds, not a virtual environment
    for candidate in (prefix / "bin" / f"python{version}", prefix / "bin" / "python3", prefix / "python.exe",
                      prefix / "python3.exe", Path(sys.executable)):
        if candidate.is_file() and "python" in candidate.name.lower():
            return str(candidate)
    return None


@dataclass(frozen=True)
class InstallPlan:
    """One pip command installing the missing packages into the plugin's folder."""

    python: str | None
    target: Path
    requirements: tuple[str, ...]
    find_links: tuple[str, ...] = ()
    no_index: bool = False  # only find_links (a local wheel folder), never an index
    reinstall: bool = False

    def command(self) -> list[str]:
        command = [self.python or "python3", "-m", "pip", "install", "--disable-pip-version-check",
                   "--no-input", "--progress-bar", "off", "--upgrade", "--target", str(self.target)]
        if self.reinstall:
            command.append("--force-reinstall")
        if self.no_index:
            command.append("--no-index")
        for folder in self.find_links:
            command += ["--find-links", folder]
        if not self.no_index and any(r.startswith("torch") for r in self.requirements):
            command += ["--extra-index-url", TORCH_CPU_INDEX]
        return command + list(self.requirements)

    def manual_command(self) -> str:
        return " ".join(f'"{part}"' if any(c in part for c in " <>") else part for part in self.command())


def install_plan(problems: list[DependencyProblem], target: Path | None = None, *, find_links=(), no_index=False,
                 python: str | None = None) -> InstallPlan:
    requirements = tuple(dict.fromkeys(r for p in problems for r in REQUIREMENTS.get(p.name, (p.name,))))
    return InstallPlan(python or qgis_python(), target or dependencies_folder(), requirements,
                       tuple(str(f) for f in find_links), no_index, reinstall=any(p.error for p in problems))


def why_not_installable(plan: InstallPlan) -> str | None:
    """Why the plan cannot run here (no Python found, no pip), with what to do; None when it can."""
    if plan.python is None or not Path(plan.python).is_file():
        return ("The Python that QGIS runs was not found, so the plugin cannot install packages itself. "
                + INSTALL_HINT)
    check = subprocess.run([plan.python, "-m", "pip", "--version"], capture_output=True, text=True)
    if check.returncode != 0:
        return (f"QGIS's Python ({plan.python}) has no pip, so the plugin cannot install packages itself. "
                "On Debian or Ubuntu install it with 'sudo apt install python3-pip' and try again; elsewhere "
                + INSTALL_HINT)
    return None


@dataclass
class InstallOutcome:
    ok: bool
    output: list[str] = field(default_factory=list)

    def tail(self, lines: int = 8) -> str:
        return "\n".join(self.output[-lines:])


def run_install(plan: InstallPlan, on_line: Callable[[str], None] = lambda line: None,
                is_canceled: Callable[[], bool] = lambda: False) -> InstallOutcome:
    """Runs pip, line by line; stops it when ``is_canceled`` says so."""
    plan.target.mkdir(parents=True, exist_ok=True)
    outcome = InstallOutcome(False)
    process = subprocess.Popen(plan.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    for line in process.stdout:
        outcome.output.append(line.rstrip())
        on_line(line.rstrip())
        if is_canceled():
            process.kill()
            break
    outcome.ok = process.wait() == 0 and not is_canceled()
    return outcome


def install_progress(line: str, done: float) -> float:
    """A rough share done from pip's output: collecting, then installing, then done."""
    if line.startswith("Collecting") or line.startswith("Processing"):
        return min(80.0, done + 8.0)
    if line.startswith("Installing collected packages"):
        return 90.0
    if line.startswith("Successfully installed"):
        return 100.0
    return done


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
            from .dependency_installer import InstallerEntry

            self.installer = InstallerEntry(self.iface, self.problems)
            text += " Or click 'Install dependencies' on the Poverty Mapper toolbar: the plugin installs them for QGIS."
            self.iface.messageBar().pushMessage("Poverty Mapper", text, level=Qgis.Warning, duration=0)

    def unload(self) -> None:
        installer = getattr(self, "installer", None)
        if installer is not None:
            installer.unload()
