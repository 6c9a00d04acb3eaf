"""Processing's 'Install the bundled night lights': the downloaded file checked and set up
in the user's data folder, or refused with the engine's message."""
from __future__ import annotations

import processing
import pytest
from qgis.core import QgsProcessingException

from poverty_mapper.core.imagery import lights_file
from poverty_mapper.core.imagery.lights_file import SHIPPED_LIGHTS, expected_sha256, installed_lights_path, sha256_of


@pytest.fixture
def zip_install(monkeypatch, tmp_path):
    monkeypatch.setenv("POVERTY_MAPPER_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(lights_file, "SHIPPED_LIGHTS", tmp_path / "plugin" / SHIPPED_LIGHTS.name)


def test_the_algorithm_installs_the_lights(poverty_provider, zip_install):
    result = processing.run("povertymapper:installlights", {"INPUT": str(SHIPPED_LIGHTS)})
    assert result["OUTPUT"] == str(installed_lights_path())
    assert sha256_of(installed_lights_path()) == expected_sha256()
    assert lights_file.lights_path() == installed_lights_path()


def test_the_algorithm_refuses_another_file(poverty_provider, zip_install, tmp_path):
    other = tmp_path / "other.tif"
    other.write_bytes(b"0" * 100)
    with pytest.raises(QgsProcessingException, match="not the bundled night lights"):
        processing.run("povertymapper:installlights", {"INPUT": str(other)})
    assert not installed_lights_path().exists()
