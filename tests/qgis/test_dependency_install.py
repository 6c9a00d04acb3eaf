"""Installing missing packages for QGIS's Python from the plugin, against a local wheel
folder (pip --no-index --find-links), never the network. The wheel is a GENERATED
one-module package built here, so the test needs nothing but pip."""
from __future__ import annotations

import base64
import hashlib
import importlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from qgis.core import Qgis

from poverty_mapper import dependencies
from poverty_mapper.dependencies import DependencyProblem, InstallPlan, install_plan, run_install

PACKAGE = "generated_povmap_dependency"


def _wheel(folder) -> None:
    """A minimal pure-Python wheel of PACKAGE 0.1 (the layout pip installs from)."""
    files = {
        f"{PACKAGE}/__init__.py": b"VALUE = 42\n",
        f"{PACKAGE}-0.1.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 0.1\n".encode(),
        f"{PACKAGE}-0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{PACKAGE}-0.1.dist-info/RECORD,,")
    files[f"{PACKAGE}-0.1.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(folder / f"{PACKAGE}-0.1-py3-none-any.whl", "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)


@pytest.fixture()
def local_plan(tmp_path, monkeypatch) -> InstallPlan:
    """A plan installing the generated package from a local wheel folder into a throwaway target."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels)
    monkeypatch.setitem(dependencies.REQUIREMENTS, PACKAGE, (f"{PACKAGE}==0.1",))
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
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
    command = plan.command()
    assert command[:4] == [plan.python, "-m", "pip", "install"]
    assert command[command.index("--target") + 1] == str(plan.target)
    assert command[command.index("--extra-index-url") + 1] == dependencies.TORCH_CPU_INDEX  # no CUDA gigabytes


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
    assert "Installing failed" in failing.status.text() and "run the command shown above" in failing.status.text()
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
