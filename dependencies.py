"""The Python packages the engine needs: which are missing or fail to load, what to say
about it, and the pip commands that install them for QGIS's Python (run from the
desktop by dependency_installer.py). The plugin that stands in for Poverty Mapper
meanwhile is stand_in_plugin.py."""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

REQUIRED = {
    "torch": "PyTorch runs the feature extractors (CPU or CUDA)",
    "rasterio": "rasterio reads imagery in windows and writes the estimate rasters",
    "exactextract": "exactextract measures how much of each map cell lies in a district",
}

# What pip installs for each missing module: the pins of requirements.txt (numpy and affine
# pinned with them: numpy 2 breaks Debian's GDAL bindings, affine 3 Debian's attrs), which
# tests/qgis/test_dependency_install.py holds them to. PyTorch is left to its index, which
# offers a build for the Python that QGIS runs (3.9 on Windows, 3.11 on Debian 12, ...).
REQUIREMENTS = {
    "torch": ("torch",),
    "rasterio": ("rasterio>=1.4,<1.5", "affine<3", "numpy<2"),
    "exactextract": ("exactextract==0.3.0", "numpy<2"),
}
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"  # the CPU build: no GB of CUDA libraries
TORCH_CUDA_INDEX = "https://download.pytorch.org/whl/cu126"  # the CUDA build, for an NVIDIA GPU
DEPENDENCIES_FOLDER_NAME = "poverty_mapper_dependencies"


def _requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def _shell_word(requirement: str) -> str:
    return f'"{requirement}"' if any(c in requirement for c in " <>,") else requirement


def manual_commands(reinstall: bool = False) -> tuple[str, str]:
    """The two pip commands that install every required package by hand, from
    :data:`REQUIREMENTS`: PyTorch's CPU build from its own index, then the others."""
    wanted = dict.fromkeys(r for name in REQUIRED for r in REQUIREMENTS[name])
    pip = "python3 -m pip install --user" + (" --force-reinstall" if reinstall else "")
    torch = " ".join(_shell_word(r) for r in wanted if _requirement_name(r) == "torch")
    others = " ".join(_shell_word(r) for r in wanted if _requirement_name(r) != "torch")
    return f"{pip} {torch} --index-url {TORCH_CPU_INDEX}", f"{pip} {others}"


INSTALL_HINT = (
    "Install them into the Python that QGIS uses, then restart QGIS. On Linux, PyTorch's CPU build from its own "
    "index first, then the others: '{}' and '{}'; on Windows run the same commands in the OSGeo4W Shell. See the "
    "plugin's README, section 'Installing into QGIS'."
).format(*manual_commands())

REPAIR_HINT = (
    "Reinstall them into the Python that QGIS uses, then restart QGIS: '{}' (PyTorch's CPU build) and '{}' (on "
    "Windows in the OSGeo4W Shell). A PyTorch built for CUDA fails to load without a matching GPU driver: update "
    "the driver, or install the CPU-only build as above."
).format(*manual_commands(reinstall=True))


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
class TorchBuild:
    """One PyTorch build the installer offers: pip takes torch from its index and no other."""

    key: str  # "cpu" or "cuda"
    index: str
    download: str  # its size, in words, for the dialog


TORCH_BUILDS = {
    "cpu": TorchBuild("cpu", TORCH_CPU_INDEX, "about 200 MB to download (the Linux wheel of torch 2.13 is 192 MB), "
                                              "about 850 MB installed with its dependencies"),
    "cuda": TorchBuild("cuda", TORCH_CUDA_INDEX, "several GB to download: about 5.6 GB installed with NVIDIA's CUDA "
                                                 "libraries and Triton"),
}


def nvidia_gpu_name() -> str | None:
    """The first NVIDIA GPU's name as its driver reports it, or None (no GPU, no driver)."""
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    return names[0] if done.returncode == 0 and names else None


@dataclass(frozen=True)
class InstallPlan:
    """pip commands installing the missing packages into the plugin's folder: PyTorch alone
    from its build's index (never another), then the others from pip's usual index."""

    python: str | None
    target: Path
    requirements: tuple[str, ...]
    find_links: tuple[str, ...] = ()
    no_index: bool = False  # only find_links (a local wheel folder), never an index
    reinstall: bool = False
    torch_build: str = "cpu"  # a key of TORCH_BUILDS
    torch_index: str = TORCH_CPU_INDEX  # where torch comes from: the chosen build's index

    @property
    def installs_torch(self) -> bool:
        return any(_requirement_name(r) == "torch" for r in self.requirements)

    def with_torch_build(self, key: str) -> "InstallPlan":
        return replace(self, torch_build=key, torch_index=TORCH_BUILDS[key].index)

    def _pip(self, target: Path) -> list[str]:
        command = [self.python or "python3", "-m", "pip", "install", "--disable-pip-version-check",
                   "--no-input", "--progress-bar", "off", "--upgrade", "--target", str(target)]
        if self.reinstall:
            command.append("--force-reinstall")
        if self.no_index:
            command.append("--no-index")
        for folder in self.find_links:
            command += ["--find-links", folder]
        return command

    def steps(self, target: Path | None = None) -> list[list[str]]:
        """The pip commands, in order (into ``target``, the plan's folder by default)."""
        target = target or self.target
        torch = [r for r in self.requirements if _requirement_name(r) == "torch"]
        others = [r for r in self.requirements if _requirement_name(r) != "torch"]
        steps = []
        if torch:  # --index-url: this index alone, so pip cannot fall back to another build
            steps.append(self._pip(target) + ([] if self.no_index else ["--index-url", self.torch_index]) + torch)
        if others:
            steps.append(self._pip(target) + others)
        return steps

    def command(self) -> list[str]:
        """The first pip command (PyTorch's, where it is installed)."""
        return self.steps()[0]

    def manual_command(self) -> str:
        return "\n".join(" ".join(f'"{part}"' if any(c in part for c in " <>") else part for part in step)
                         for step in self.steps())


def install_plan(problems: list[DependencyProblem], target: Path | None = None, *, find_links=(), no_index=False,
                 python: str | None = None) -> InstallPlan:
    requirements = tuple(dict.fromkeys(r for p in problems for r in REQUIREMENTS.get(p.name, (p.name,))))
    return InstallPlan(python or qgis_python(), target or dependencies_folder(), requirements,
                       tuple(str(f) for f in find_links), no_index, reinstall=any(p.error for p in problems),
                       torch_index=TORCH_CPU_INDEX)


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
    canceled: bool = False
    problem: str | None = None  # why it stopped, in words, where pip's output does not say it

    def tail(self, lines: int = 8) -> str:
        return "\n".join(self.output[-lines:])


def not_the_cpu_build(report: dict) -> str | None:
    """What in pip's installation report (``pip install --dry-run --report``) is not PyTorch's
    CPU build: a CUDA torch wheel, NVIDIA's libraries, Triton; None when all is CPU."""
    for item in report.get("install", []):
        metadata = item.get("metadata", {})
        name = str(metadata.get("name", "")).lower().replace("_", "-")
        version = str(metadata.get("version", ""))
        url = item.get("download_info", {}).get("url", "")
        if name.startswith("nvidia-") or name == "triton":
            return f"{name} {version} ({url})"
        # Linux and Windows CPU wheels carry the local version +cpu; macOS wheels have no CUDA.
        if name == "torch" and sys.platform != "darwin" and not version.endswith("+cpu"):
            return f"torch {version} ({url})"
    return None


def _run_pip(command: list[str], outcome: InstallOutcome, on_line: Callable[[str], None],
             is_canceled: Callable[[], bool]) -> int | None:
    """Runs one pip command, its output line by line; kills it (and its children) when
    ``is_canceled`` says so, within a second even while pip prints nothing. None: canceled."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                               start_new_session=(os.name == "posix"))
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while process.poll() is None or reader.is_alive() or not lines.empty():
        if is_canceled():
            _kill(process)
            reader.join(5)
            return None
        try:
            line = lines.get(timeout=0.2).rstrip()
        except queue.Empty:
            continue
        outcome.output.append(line)
        on_line(line)
    return process.wait()


def _kill(process: subprocess.Popen) -> None:
    try:
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _check_cpu_build(plan: InstallPlan, staging: Path, outcome: InstallOutcome, on_line, is_canceled) -> bool | None:
    """For the CPU build: what pip would install for torch, asked first (--dry-run --report);
    False (with the reason in ``outcome.problem``) where that is not the CPU build."""
    report_path = staging.parent / (staging.name + ".report.json")
    command = plan.steps(staging)[0]
    command = command[:4] + ["--dry-run", "--ignore-installed", "--report", str(report_path)] + command[4:]
    try:
        code = _run_pip(command, outcome, on_line, is_canceled)
        if code is None:
            return None
        if code != 0 and any("no such option: --dry-run" in line or "no such option: --report" in line
                             for line in outcome.output):
            outcome.problem = ("The pip of QGIS's Python is too old to say first what it would install (pip 22.2 "
                               "or later can), so nothing was installed. Upgrade it: "
                               f"'{plan.python} -m pip install --user --upgrade pip', then try again.")
            return False
        if code != 0:
            outcome.problem = (f"PyTorch's CPU build could not be had from {plan.torch_index} (pip's last lines "
                               "are above); nothing was installed. Check the network connection and try again.")
            return False
        wrong = not_the_cpu_build(json.loads(report_path.read_text(encoding="utf-8")))
    finally:
        report_path.unlink(missing_ok=True)
    if wrong:
        outcome.problem = (f"pip would install {wrong}, not PyTorch's CPU build, so nothing was installed. An extra "
                           "package index in pip's configuration (pip.conf, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS) "
                           "offers it: remove it, or choose the CUDA build if this computer has an NVIDIA GPU.")
        return False
    return True


def run_install(plan: InstallPlan, on_line: Callable[[str], None] = lambda line: None,
                is_canceled: Callable[[], bool] = lambda: False) -> InstallOutcome:
    """Runs pip into a temporary folder beside the target, line by line, and moves what it
    installed into the target only when every step succeeded: a failure or a cancel (which
    stops pip at once) leaves the target as it was."""
    plan.target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{plan.target.name}.installing-", dir=plan.target.parent))
    outcome = InstallOutcome(False)
    try:
        if plan.installs_torch and plan.torch_build == "cpu":
            checked = _check_cpu_build(plan, staging, outcome, on_line, is_canceled)
            if not checked:
                outcome.canceled = checked is None
                return outcome
        for step in plan.steps(staging):
            code = _run_pip(step, outcome, on_line, is_canceled)
            if code is None:
                outcome.canceled = True
                return outcome
            if code != 0:
                return outcome
        _move_into_place(staging, plan.target)
        outcome.ok = True
        return outcome
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _distribution(name: str) -> str:
    return name.split("-", 1)[0].lower().replace("_", "-")


def _move_into_place(staging: Path, target: Path) -> None:
    """Moves each installed entry into ``target``, replacing an entry of the same name and the
    metadata of other versions of the same distribution."""
    target.mkdir(parents=True, exist_ok=True)
    installed = {_distribution(e.name) for e in staging.iterdir() if e.name.endswith(".dist-info")}
    for old in target.iterdir():
        if old.name.endswith(".dist-info") and _distribution(old.name) in installed:
            shutil.rmtree(old, ignore_errors=True)
    for entry in staging.iterdir():
        destination = target / entry.name
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        elif destination.exists() or destination.is_symlink():
            destination.unlink()
        os.replace(entry, destination)


def install_progress(line: str, done: float) -> float:
    """A rough share done from pip's output: collecting, then installing, then done."""
    if line.startswith("Collecting") or line.startswith("Processing"):
        return min(80.0, done + 8.0)
    if line.startswith("Installing collected packages"):
        return 90.0
    if line.startswith("Successfully installed"):
        return 100.0
    return done
