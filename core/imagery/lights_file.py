"""Where the bundled night lights live, and setting them up beside an installed plugin.

The lights raster (58 MB) is a separate data file: it is in the source tree
(``resources/lights/``) but not in the plugin zip, which the QGIS plugin repository caps at
25 MB (``resources/lights/README.md``). A plugin installed from the zip finds it in the
user's data folder instead, where :func:`install_lights` copies a downloaded copy after
checking it is the very file this plugin was built with (its SHA-256, recorded in
``resources/lights/blackmarble2016_africa_luminance.json``, which the zip carries).

The data folder: ``$POVERTY_MAPPER_DATA`` where set, else the platform's per-user data
folder (``~/.local/share/poverty_mapper`` on Linux, ``%APPDATA%\\poverty_mapper`` on Windows,
``~/Library/Application Support/poverty_mapper`` on macOS), then ``lights/``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

from ..atomic import atomic_output
from ..errors import PovertyMapperError

PLUGIN_ROOT = Path(__file__).resolve().parents[2]
LIGHTS_FILE = "blackmarble2016_africa_luminance.tif"
SHIPPED_LIGHTS = PLUGIN_ROOT / "resources" / "lights" / LIGHTS_FILE  # in a source checkout
LIGHTS_RECORD = PLUGIN_ROOT / "resources" / "lights" / "blackmarble2016_africa_luminance.json"
_CHUNK = 1 << 22


def data_folder() -> Path:
    """The user's data folder for the plugin (``$POVERTY_MAPPER_DATA`` where set)."""
    given = os.environ.get("POVERTY_MAPPER_DATA")
    if given:
        return Path(given)
    home = Path.home()
    if sys.platform.startswith("win"):
        return Path(os.environ.get("APPDATA", home / "AppData" / "Roaming")) / "poverty_mapper"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "poverty_mapper"
    return Path(os.environ.get("XDG_DATA_HOME", home / ".local" / "share")) / "poverty_mapper"


def installed_lights_path() -> Path:
    """Where :func:`install_lights` puts the lights."""
    return data_folder() / "lights" / LIGHTS_FILE


def lights_path() -> Path:
    """The lights the plugin reads: the source tree's, else the installed copy (which may
    not exist: :func:`missing_lights_message` says what to do then)."""
    return SHIPPED_LIGHTS if SHIPPED_LIGHTS.is_file() else installed_lights_path()


def expected_sha256() -> str:
    """The SHA-256 of the lights file this plugin was built with."""
    return json.loads(LIGHTS_RECORD.read_text(encoding="utf-8"))["sha256"]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def missing_lights_message() -> str:
    return (
        f"The bundled night lights are not set up: neither {SHIPPED_LIGHTS} nor {installed_lights_path()} exists. "
        f"They are a separate data file ({LIGHTS_FILE}, 58 MB, NASA Black Marble 2016): install it with "
        "'Install the bundled night lights' (Processing toolbox > Poverty Mapper) or "
        "`poverty-mapper install-lights FILE`, rebuild it with `python scripts/build_africa_lights.py`, "
        "or give a night-lights layer of your own."
    )


def install_lights(source: str | os.PathLike) -> Path:
    """Copies ``source`` into the data folder after checking it is the lights file this
    plugin was built with; returns where it now is. Nothing is written when the check
    fails, and an earlier copy stays as it was."""
    source = Path(source)
    if not source.is_file():
        raise PovertyMapperError(f"{source} is not a file: give the downloaded {LIGHTS_FILE}.")
    expected, found = expected_sha256(), sha256_of(source)
    if found != expected:
        raise PovertyMapperError(
            f"{source.name} is not the bundled night lights this plugin was built with (SHA-256 {found[:12]}..., "
            f"expected {expected[:12]}...). Give {LIGHTS_FILE} of this plugin's release, or rebuild it with "
            "scripts/build_africa_lights.py."
        )
    target = installed_lights_path()
    if target.is_file() and target.stat().st_size == source.stat().st_size and sha256_of(target) == expected:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(target, verify=lambda written: _check_copy(written, expected)) as partial:
        shutil.copyfile(source, partial)
    return target


def _check_copy(path: Path, expected: str) -> None:
    if sha256_of(path) != expected:
        raise PovertyMapperError(f"The copy of the night lights at {path} came out different from its source; "
                                 "nothing was installed. Check the free space and try again.")
