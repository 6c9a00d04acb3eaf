"""Build the plugin zip for the QGIS plugin repository, and the night-lights data file beside it.

    python scripts/package.py [--out dist]

Takes the files git tracks (so no build leftovers, caches or local outputs), keeps
only what the plugin needs at run time, and writes dist/poverty_mapper-<version>.zip
with everything under a top folder ``poverty_mapper/``. Entries are sorted and carry a
fixed timestamp, so the same sources give the same zip.

The bundled night lights (58 MB) do not fit the repository's 25 MB: they are copied beside
the zip as dist/blackmarble2016_africa_luminance.tif, the release's second file, which an
analyst installs with "Install the bundled night lights" (Processing) or
``poverty-mapper install-lights`` (core.imagery.lights_file checks it by its SHA-256).
"""
from __future__ import annotations

import argparse
import configparser
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "poverty_mapper"
INCLUDE_DIRS = ("core", "provider", "ui", "resources")
INCLUDE_FILES = ("metadata.txt", "__init__.py", "plugin.py", "dependencies.py", "dependency_installer.py",
                 "stand_in_plugin.py", "README.md", "LICENSE")
# Everything under resources/ ships but the bundled night lights: the sample scene too (the
# dock's "Load sample data" makes a first map from it, its licence beside it). The lights
# (58 MB) would take the zip past the 25 MB the QGIS plugin repository accepts: they are a
# separate data file (resources/lights/README.md).
EXCLUDE_PREFIXES: tuple[str, ...] = ("resources/lights/blackmarble2016_africa_luminance.tif",)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
LIGHTS_FILE = "blackmarble2016_africa_luminance.tif"
LIGHTS_RECORD = "blackmarble2016_africa_luminance.json"


def plugin_files() -> list[str]:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    keep = [
        f for f in tracked
        if (f in INCLUDE_FILES or f.split("/", 1)[0] in INCLUDE_DIRS)
        and not f.startswith(EXCLUDE_PREFIXES)
        and "__pycache__" not in f and not f.endswith((".pyc", ".pyo"))
    ]
    missing = [f for f in INCLUDE_FILES if f not in keep]
    if missing:
        raise SystemExit(f"missing from git: {', '.join(missing)}")
    return sorted(keep)


def version() -> str:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "metadata.txt", encoding="utf-8")
    return parser["general"]["version"]


def build(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{PACKAGE}-{version()}.zip"
    tmp = target.with_suffix(".partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in plugin_files():
            info = zipfile.ZipInfo(f"{PACKAGE}/{name}", ZIP_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, (ROOT / name).read_bytes(), zipfile.ZIP_DEFLATED)
    tmp.replace(target)
    return target


def release_lights(out_dir: Path) -> Path:
    """The night-lights data file beside the zip, checked against its recorded SHA-256."""
    source = ROOT / "resources" / "lights" / LIGHTS_FILE
    record = json.loads((ROOT / "resources" / "lights" / LIGHTS_RECORD).read_text(encoding="utf-8"))
    target = out_dir / LIGHTS_FILE
    tmp = target.with_suffix(".partial")
    shutil.copyfile(source, tmp)
    if hashlib.sha256(tmp.read_bytes()).hexdigest() != record["sha256"]:
        tmp.unlink()
        raise SystemExit(f"{source} is not the file its record names: rebuild it (make lights)")
    tmp.replace(target)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    out = parser.parse_args().out
    for target in (build(out), release_lights(out)):
        sys.stdout.write(f"{target} ({target.stat().st_size / 1e6:.1f} MB)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
