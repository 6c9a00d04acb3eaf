"""Installing missing packages for QGIS's Python from the plugin, against a local wheel
folder (pip --no-index --find-links) or local package indexes (file:// URLs), never the
network. The wheels are GENERATED one-module packages built here (a stand-in "torch" too:
1.0.0+cpu on the CPU index, 2.0.0 needing a stand-in NVIDIA library on "PyPI"), so the
tests need nothing but pip; pip's own configuration files are not read."""
from __future__ import annotations

import base64
import hashlib
import importlib
import os
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from qgis.core import Qgis

from poverty_mapper import dependencies
from poverty_mapper.dependencies import DependencyProblem, InstallPlan, install_plan, run_install

PACKAGE = "generated_povmap_dependency"


def _wheel(folder, name: str = PACKAGE, version: str = "0.1", requires: tuple[str, ...] = ()):
    """A minimal pure-Python wheel (the layout pip installs from); returns its path."""
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    files = {
        f"{module}/__init__.py": b"VALUE = 42\n",
        f"{info}/METADATA": metadata.encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for entry, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{entry},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for entry, data in files.items():
            wheel.writestr(entry, data)
    return path


def _index(folder, *wheels: tuple) -> str:
    """A local package index (pip's 'simple' layout, one page per project) of generated wheels; its URL."""
    for name, version, requires in wheels:
        project = folder / name.lower().replace("_", "-")  # the project's normalized name (PEP 503)
        project.mkdir(parents=True, exist_ok=True)
        wheel = _wheel(project, name, version, requires)
        page = project / "index.html"
        links = page.read_text() if page.exists() else ""
        page.write_text(links + f'<a href="{wheel.name}">{wheel.name}</a>\n')
    return folder.as_uri()


@pytest.fixture()
def pip_alone(monkeypatch):
    """pip with neither its configuration files nor find-links from the environment."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)


CUDA_LIKE = [("torch", "2.0.0", ("nvidia-fake-cublas",)), ("nvidia-fake-cublas", "12.0", ())]  # PyPI's kind


def leftovers(folder) -> list[str]:
    return [entry.name for entry in folder.iterdir() if ".installing-" in entry.name] if folder.exists() else []


@pytest.fixture()
def local_plan(tmp_path, monkeypatch) -> InstallPlan:
    """A plan installing the generated package from a local wheel folder into a throwaway target."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels)
    monkeypatch.setitem(dependencies.REQUIREMENTS, PACKAGE, (f"{PACKAGE}==0.1",))
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # and never an index, whatever the plan says
    return install_plan([DependencyProblem(PACKAGE)], tmp_path / "target", find_links=[wheels], no_index=True)


def test_the_plan_installs_for_qgis_python_into_the_plugins_folder(qgis_app):
    plan = install_plan([DependencyProblem("torch"), DependencyProblem("rasterio")])
    # QGIS runs the interpreter it embeds (Debian's: the system one), never a virtual
    # environment the tests may run in; asked, it says so, and its version is QGIS's.
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert Path(plan.python) == Path(sys.base_exec_prefix) / "bin" / f"python{version}"
    asked = subprocess.run([plan.python, "-c", "import sys; print(sys.prefix == sys.base_prefix, sys.version_info[:2])"],
                           capture_output=True, text=True, timeout=60, check=True)
    assert asked.stdout.split() == ["True", f"({sys.version_info.major},", f"{sys.version_info.minor})"]
    assert plan.target == dependencies.dependencies_folder()
    assert plan.requirements == ("torch", "rasterio>=1.4,<1.5", "affine<3", "numpy<2")
    torch_step, others = plan.steps()
    assert torch_step[:4] == [plan.python, "-m", "pip", "install"]
    assert torch_step[torch_step.index("--target") + 1] == str(plan.target)
    # PyTorch from the CPU index alone: pip has no other index to take a CUDA build from.
    assert torch_step[torch_step.index("--index-url") + 1] == dependencies.TORCH_CPU_INDEX
    assert torch_step[-1] == "torch" and "torch" not in others
    assert not any("--extra-index-url" in step for step in (torch_step, others))
    assert "--index-url" not in others and others[-3:] == ["rasterio>=1.4,<1.5", "affine<3", "numpy<2"]
    cuda = plan.with_torch_build("cuda").steps()[0]
    assert cuda[cuda.index("--index-url") + 1] == dependencies.TORCH_CUDA_INDEX


def _pinned_in_requirements_txt() -> dict[str, str]:
    """Each package of requirements.txt -> its line's requirement (comments dropped)."""
    from conftest import ROOT

    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    requirements = [line.split("#", 1)[0].strip() for line in lines]
    return {dependencies._requirement_name(r): r for r in requirements if r and not r.startswith("-")}


def test_the_installer_and_the_install_hints_pin_what_requirements_txt_pins():
    """requirements.txt is not in the plugin zip: the plugin's pins are its own, held to it here."""
    pinned = _pinned_in_requirements_txt()
    assert set(dependencies.REQUIRED) == set(dependencies.REQUIREMENTS) <= set(pinned)
    installed = {r for requirements in dependencies.REQUIREMENTS.values() for r in requirements}
    assert {"numpy<2", "affine<3"} <= installed
    for requirement in installed:
        name = dependencies._requirement_name(requirement)
        # PyTorch alone is left to its index, which has a build for QGIS's Python.
        assert requirement == pinned[name] or requirement == name == "torch", (requirement, pinned.get(name))
    for hint in (dependencies.INSTALL_HINT, dependencies.REPAIR_HINT):
        words = {w.strip("'\";") for w in hint.split()}
        assert installed <= words, installed - words  # every pin, as pip is to take it
    from poverty_mapper.core.imagery import dask_run

    assert f"distributed=={pinned['distributed'].split('==')[1]}" in dask_run.INSTALL_HINT
    assert pinned["dask"].split("==")[1] == pinned["distributed"].split("==")[1]


def test_packages_install_from_a_local_wheel_folder_and_load(local_plan, monkeypatch):
    lines = []
    outcome = run_install(local_plan, lines.append)
    assert outcome.ok, outcome.tail()
    assert any(line.startswith("Successfully installed") for line in lines)
    assert (local_plan.target / PACKAGE / "__init__.py").is_file()
    monkeypatch.setattr(dependencies, "dependencies_folder", lambda: local_plan.target)
    monkeypatch.setattr(sys, "path", list(sys.path))
    dependencies.add_dependencies_folder()  # what classFactory does at start-up
    assert importlib.import_module(PACKAGE).VALUE == 42
    sys.modules.pop(PACKAGE, None)


def test_the_dialog_installs_with_progress_and_says_to_restart(local_plan, qgis_iface, qtbot, monkeypatch):
    from poverty_mapper.dependency_installer import InstallerEntry

    monkeypatch.setattr("poverty_mapper.dependency_installer.install_plan", lambda problems: local_plan)
    entry = InstallerEntry(qgis_iface, [DependencyProblem(PACKAGE)])
    try:
        assert entry.toolbar.actions() == [entry.action]
        entry.action.trigger()  # the toolbar button
        dialog = entry.dialog
        assert dialog.isVisible() and "--no-index" in dialog.log.toPlainText()
        with qtbot.waitSignal(dialog.finished_install, timeout=120_000) as blocker:
            dialog.installButton.click()
        assert blocker.args == [True]
        assert dialog.progress.value() == 100
        assert "Restart QGIS" in dialog.status.text()
        assert "Successfully installed" in dialog.log.toPlainText()
    finally:
        entry.unload()


def test_when_it_cannot_install_it_says_what_to_do(local_plan, qgis_iface, qtbot, tmp_path):
    from dataclasses import replace

    from poverty_mapper.dependency_installer import InstallDialog

    dialog = InstallDialog(replace(local_plan, python=str(tmp_path / "no_python")))
    with qtbot.waitSignal(dialog.finished_install, timeout=10_000) as blocker:
        dialog.installButton.click()
    assert blocker.args == [False]
    assert "Python that QGIS runs was not found" in dialog.status.text() and "pip install" in dialog.status.text()
    failing = InstallDialog(replace(local_plan, requirements=(f"{PACKAGE}==9.9",)))  # not in the wheel folder
    with qtbot.waitSignal(failing.finished_install, timeout=120_000) as blocker:
        failing.installButton.click()
    assert blocker.args == [False]
    assert "Installing failed" in failing.status.text() and "run the commands shown above" in failing.status.text()
    assert "nothing was installed" in failing.status.text()
    assert failing.installButton.isEnabled()  # try again after fixing it


def test_a_missing_package_offers_the_installer(qgis_iface, monkeypatch):
    import poverty_mapper

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(dependencies.importlib.util, "find_spec",
                        lambda name, *a: None if name == "exactextract" else real_find_spec(name, *a))
    qgis_iface.messageBar().clear_messages()
    plugin = poverty_mapper.classFactory(qgis_iface)
    plugin.initGui()
    try:
        assert plugin.installer.plan.requirements == ("exactextract==0.3.0", "numpy<2")
        warnings = qgis_iface.messageBar().get_messages(Qgis.Warning)
        assert any("exactextract" in m and "'Install dependencies' on the Poverty Mapper toolbar" in m for m in warnings)
    finally:
        plugin.unload()


# -- PyTorch's build: the CPU build never swapped for a CUDA one ------------------------------
def test_an_unreachable_cpu_index_installs_nothing_rather_than_pypis_cuda_build(tmp_path, monkeypatch, pip_alone):
    pypi = _index(tmp_path / "pypi", *CUDA_LIKE)
    monkeypatch.setenv("PIP_INDEX_URL", pypi)  # pip's usual index offers a torch with NVIDIA libraries
    monkeypatch.setattr(dependencies, "TORCH_CPU_INDEX", (tmp_path / "cpu-index-unreachable").as_uri())
    target = tmp_path / "profile" / "deps"
    plan = install_plan([DependencyProblem("torch")], target)
    outcome = run_install(plan)
    assert not outcome.ok
    assert "PyTorch's CPU build could not be had from" in outcome.problem and "nothing was installed" in outcome.problem
    assert not target.exists() and leftovers(target.parent) == []


def test_another_index_offering_a_cuda_torch_is_caught_before_anything_is_installed(tmp_path, monkeypatch, pip_alone):
    cpu = _index(tmp_path / "cpu", ("torch", "1.0.0+cpu", ()))
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", _index(tmp_path / "pypi", *CUDA_LIKE))  # e.g. from a pip.conf
    monkeypatch.setattr(dependencies, "TORCH_CPU_INDEX", cpu)
    target = tmp_path / "deps"
    outcome = run_install(install_plan([DependencyProblem("torch")], target))
    assert not outcome.ok and not outcome.canceled
    assert "pip would install torch 2.0.0" in outcome.problem and "PIP_EXTRA_INDEX_URL" in outcome.problem
    assert not target.exists() and leftovers(tmp_path) == []


def test_the_cpu_build_installs_from_its_index_then_the_rest_from_pips_index(tmp_path, monkeypatch, pip_alone):
    monkeypatch.setattr(dependencies, "TORCH_CPU_INDEX", _index(tmp_path / "cpu", ("torch", "1.0.0+cpu", ())))
    monkeypatch.setenv("PIP_INDEX_URL", _index(tmp_path / "pypi", *CUDA_LIKE, (PACKAGE, "0.1", ())))
    monkeypatch.setitem(dependencies.REQUIREMENTS, PACKAGE, (f"{PACKAGE}==0.1",))
    target = tmp_path / "deps"
    plan = install_plan([DependencyProblem("torch"), DependencyProblem(PACKAGE)], target)
    outcome = run_install(plan)
    assert outcome.ok, outcome.tail()
    installed = sorted(entry.name for entry in target.iterdir())
    assert installed == sorted(["torch", "torch-1.0.0+cpu.dist-info", PACKAGE, f"{PACKAGE}-0.1.dist-info"])
    assert leftovers(tmp_path) == []


def test_the_report_check_names_what_is_not_the_cpu_build():
    def report(*items):
        return {"install": [{"metadata": {"name": n, "version": v}, "download_info": {"url": f"https://x/{n}-{v}.whl"}}
                            for n, v in items]}

    assert dependencies.not_the_cpu_build(report(("torch", "2.13.0+cpu"), ("sympy", "1.13"))) is None
    assert dependencies.not_the_cpu_build(report(("torch", "2.13.0"))).startswith("torch 2.13.0 (https://x/")
    assert dependencies.not_the_cpu_build(report(("torch", "2.13.0+cpu"), ("triton", "3.0"))).startswith("triton 3.0")
    assert dependencies.not_the_cpu_build(report(("nvidia_cublas_cu12", "12.4"))).startswith("nvidia-cublas-cu12")


# -- a temporary folder, moved into place; Cancel -----------------------------------------------
def test_the_install_lands_whole_beside_what_was_there(local_plan):
    target = local_plan.target
    (target / "kept_package").mkdir(parents=True)
    (target / f"{PACKAGE}-0.0.dist-info").mkdir()  # an older version's metadata
    outcome = run_install(local_plan)
    assert outcome.ok, outcome.tail()
    assert sorted(e.name for e in target.iterdir()) == sorted(["kept_package", PACKAGE, f"{PACKAGE}-0.1.dist-info"])
    assert leftovers(target.parent) == []


def _hanging_pip(tmp_path):
    """A stand-in for QGIS's Python whose pip says its version, then writes part of a package
    into its --target folder and hangs, printing nothing (a long download)."""
    script = tmp_path / "python3"
    script.write_text(
        "#!/bin/sh\n"
        'case "$*" in *--version*) echo "pip 99 (stand-in)"; exit 0;; esac\n'
        'while [ "$1" != "--target" ]; do shift; done\n'
        'mkdir -p "$2/half_installed" && echo "Collecting generated-package" && sleep 60\n'
    )
    script.chmod(0o755)
    return str(script)


def test_cancel_stops_pip_at_once_and_leaves_nothing(local_plan, tmp_path):
    plan = replace(local_plan, python=_hanging_pip(tmp_path))
    started = time.monotonic()
    lines = []
    outcome = run_install(plan, lines.append, lambda: bool(lines) and time.monotonic() - started > 1)
    assert outcome.canceled and not outcome.ok
    assert time.monotonic() - started < 10  # not the 60 s pip would have hung
    assert lines == ["Collecting generated-package"]
    assert not plan.target.exists() and leftovers(plan.target.parent) == []


def test_the_dialog_says_each_build_and_its_download(qgis_iface, tmp_path, monkeypatch):
    from poverty_mapper import dependency_installer
    from poverty_mapper.dependency_installer import InstallDialog

    plan = install_plan([DependencyProblem("torch"), DependencyProblem("rasterio")], tmp_path / "deps")
    monkeypatch.setattr(dependency_installer, "nvidia_gpu_name", lambda: None)
    dialog = InstallDialog(plan)
    assert dialog.cpuRadio.isChecked() and "about 200 MB to download" in dialog.cpuRadio.text()
    assert not dialog.cudaRadio.isEnabled() and "no NVIDIA GPU" in dialog.cudaRadio.text()
    assert f"--index-url {dependencies.TORCH_CPU_INDEX} torch" in dialog.log.toPlainText()
    monkeypatch.setattr(dependency_installer, "nvidia_gpu_name", lambda: "NVIDIA H100 80GB HBM3")
    dialog = InstallDialog(plan)
    assert dialog.cpuRadio.isChecked() and dialog.cudaRadio.isEnabled()  # the CPU build unless the user chooses
    assert "NVIDIA H100 80GB HBM3" in dialog.cudaRadio.text() and "5.6 GB installed" in dialog.cudaRadio.text()
    dialog.cudaRadio.setChecked(True)
    assert dialog.plan.torch_build == "cuda"
    assert f"--index-url {dependencies.TORCH_CUDA_INDEX} torch" in dialog.log.toPlainText()
    no_torch = InstallDialog(install_plan([DependencyProblem("rasterio")], tmp_path / "deps"))
    assert no_torch.cpuRadio is None and no_torch.cudaRadio is None


def test_the_dialogs_cancel_stops_the_install(local_plan, qgis_iface, qtbot, tmp_path):
    from poverty_mapper.dependency_installer import InstallDialog

    dialog = InstallDialog(replace(local_plan, python=_hanging_pip(tmp_path)))
    dialog.installButton.click()
    qtbot.waitUntil(lambda: "Collecting generated-package" in dialog.log.toPlainText(), timeout=30_000)
    with qtbot.waitSignal(dialog.finished_install, timeout=15_000) as blocker:
        dialog.cancelButton.click()
    assert blocker.args == [False]
    assert dialog.status.text().startswith("Cancelled: nothing was installed")
    assert not local_plan.target.exists() and leftovers(local_plan.target.parent) == []
    assert dialog.installButton.isEnabled()  # can start again


def test_a_pip_too_old_to_report_says_to_upgrade_it(tmp_path, pip_alone):
    old_pip = tmp_path / "python3"  # pip before 22.2 knows neither --dry-run nor --report
    old_pip.write_text('#!/bin/sh\necho "ERROR: no such option: --dry-run" >&2\nexit 2\n')
    old_pip.chmod(0o755)
    target = tmp_path / "deps"
    outcome = run_install(install_plan([DependencyProblem("torch")], target, python=str(old_pip)))
    assert not outcome.ok
    assert "too old" in outcome.problem and f"'{old_pip} -m pip install --user --upgrade pip'" in outcome.problem
    assert not target.exists() and leftovers(tmp_path) == []
