"""The README's word on where the command line lives, and how to install it elsewhere,
tried: a fresh virtual environment gets `poverty-mapper` from the checkout as README says."""
from __future__ import annotations

import os
import subprocess
import sysconfig
import tomllib

import pytest

from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
INSTALL_ELSEWHERE = "python -m pip install --no-deps -e /path/to/poverty-mapper"


def test_readme_says_where_make_setup_puts_the_command():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "poverty-mapper" in scripts
    assert "`.venv/bin/poverty-mapper`" in README  # a fresh shell has no such command on PATH
    assert "source .venv/bin/activate" in README
    assert "python -m pip install -r requirements.txt" in README and INSTALL_ELSEWHERE in README


@pytest.mark.slow
def test_the_readme_install_gives_another_environment_the_command(tmp_path):
    """pip's own editable install of this checkout (without dependencies, offline) into a
    new environment; the engine's packages come from the test's environment (a .pth file
    after the new environment's own packages), as they would from
    `pip install -r requirements.txt`."""
    venv = tmp_path / "analyst-env"
    subprocess.run(["/usr/bin/python3.11", "-m", "venv", "--system-site-packages", str(venv)], check=True)
    command = INSTALL_ELSEWHERE.replace("python", str(venv / "bin" / "python"), 1).replace("/path/to/poverty-mapper", str(ROOT))
    subprocess.run(command.split() + ["--no-build-isolation", "-q"], check=True)
    script = venv / "bin" / "poverty-mapper"
    assert script.is_file()
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "zz_engine_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    shown = subprocess.run([str(script), "info", "resources/models/default.povmodel"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "LSMS Africa RGB histogram ridge v1" in shown.stdout
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import poverty_mapper; print(poverty_mapper.__file__)"],
                           env=env, capture_output=True, text=True, check=True)
    assert where.stdout.strip() == str(ROOT / "__init__.py")  # this checkout, not another installed one
