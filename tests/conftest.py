"""Shared test set-up: the repository is imported as the ``poverty_mapper`` package,
and the real data beside the repository (../shared/data) is located."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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
