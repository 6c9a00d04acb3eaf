"""Shared test set-up: the repository is imported as the ``poverty_mapper`` package,
the real data beside the repository (../shared/data) is located, and the generated
world that several modules train on is built once per session.

``engine/`` holds the tests of ``core/`` (plain pytest, no QGIS); ``qgis/`` the tests of
the plugin in QGIS (Processing, the dock, packaging, the desktop). What several test
modules share (generated inputs, comparisons) lives in ``helpers.py`` beside this file,
never in a test module."""
from __future__ import annotations

import sys
from pathlib import Path

import subprocess

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path.insert(0, str(ROOT / "scripts"))
from _bootstrap import import_plugin_package  # noqa: E402

import_plugin_package()

SHARED_DATA = ROOT.parent / "shared" / "data" / "real"
LSMS_DIR = SHARED_DATA / "yeh2020_lsms"
SCENES_DIR = SHARED_DATA / "scenes"
PARANA_SCENE = SCENES_DIR / "landsat8_l1_parana_rgb_30m.tif"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real data set; its absence is an error, not a skip (CI has it beside the clone)."""
    if not SHARED_DATA.is_dir():
        raise FileNotFoundError(f"the real data is expected at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def package_path(tmp_path_factory) -> Path:
    """A folder where ``poverty_mapper`` is this checkout, put first on the import path:
    processes started from the tests (Dask workers, which copy the import path when
    spawned; commands run with it as PYTHONPATH) import the code under test, whatever
    checkout the environment has installed."""
    folder = tmp_path_factory.mktemp("package")
    (folder / "poverty_mapper").symlink_to(ROOT, target_is_directory=True)
    sys.path.insert(0, str(folder))
    return folder


@pytest.fixture(scope="session")
def default_model():
    from poverty_mapper.core.models.defaults import DEFAULT_MODEL_PATH
    from poverty_mapper.core.models.model_file import load_model

    return load_model(DEFAULT_MODEL_PATH)


@pytest.fixture(scope="session")
def poverty_provider(qgis_processing):
    """The plugin's Processing provider, registered once; the registry does not own
    it, so this fixture keeps the Python object alive for the whole session."""
    from qgis.core import QgsApplication

    from poverty_mapper.provider.provider import PovertyMapperProvider

    provider = PovertyMapperProvider()
    registry = QgsApplication.processingRegistry()
    assert registry.addProvider(provider)
    yield provider
    registry.removeProvider(provider)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory):
    """A GENERATED world of 256 x 256 px with 15 settlements and 40 surveyed clusters,
    shared by the training, robustness and Processing tests (read-only: copy before changing)."""
    from generated_world import make_world

    return make_world(tmp_path_factory.mktemp("small_world"), size=256, n_settlements=15, n_clusters=40)


@pytest.fixture()
def clean_settings():
    """The plugin's QGIS settings removed before and after a test (dock and panel tests)."""
    from qgis.core import QgsSettings

    QgsSettings().remove("poverty_mapper")
    yield
    QgsSettings().remove("poverty_mapper")


@pytest.fixture(scope="session")
def xyz_layer_url(tmp_path_factory):
    """XYZ tiles (zoom 12, file:// URLs) rendered from the bundled real scene, 8-bit red, green, blue:
    a layer that is no file, as an analyst's XYZ or WMS imagery."""
    folder = tmp_path_factory.mktemp("xyz")
    sample = ROOT / "resources" / "sample" / "parana_landsat8_l1_rgb_30m.tif"  # bands blue, green, red
    subprocess.run(["gdal_translate", "-q", "-ot", "Byte", "-scale", "6000", "14000", "1", "255", "-a_nodata", "0",
                    "-b", "3", "-b", "2", "-b", "1", str(sample), str(folder / "rgb8.tif")], check=True)
    subprocess.run(["gdal2tiles.py", "-q", "--xyz", "-z", "12", "-w", "none", str(folder / "rgb8.tif"),
                    str(folder / "tiles")], check=True)
    return f"type=xyz&url=file://{folder}/tiles/{{z}}/{{x}}/{{y}}.png&zmin=12&zmax=12"


@pytest.fixture(scope="session", autouse=True)
def layers_outlive_qgis_safely():
    """QGIS layers still alive when the session ends are never destroyed by Python.

    pytest-qgis closes QGIS when pytest ends. A layer that a test's Processing run left
    referenced (seen: the traceback of an exception raised in an algorithm's prepareAlgorithm,
    held from outside Python, and with it the frames and their layers) was destroyed at
    interpreter exit, after its data providers were gone, and crashed the process (exit
    code 139 after every test had passed). Such layers are handed to C++, which never
    frees them: the process ends without running their destructors.
    """
    yield
    import gc
    import warnings

    from qgis.core import QgsMapLayer
    from qgis.PyQt import sip

    gc.collect()
    with warnings.catch_warnings():  # isinstance() on every live object wakes deprecated module attributes
        warnings.simplefilter("ignore")
        layers = [obj for obj in gc.get_objects() if isinstance(obj, QgsMapLayer)]
    for layer in layers:
        if not sip.isdeleted(layer) and sip.ispyowned(layer):
            sip.transferto(layer, None)
