"""The bundled night lights beside an installed plugin: a plugin from the zip has no
resources/lights/ raster; the analyst installs the downloaded file, which is checked
against the checksum the plugin was built with, into the user's data folder."""
from __future__ import annotations

import pytest

from poverty_mapper import cli
from poverty_mapper.core.errors import PovertyMapperError
from poverty_mapper.core.imagery import bundled_lights, lights_file
from poverty_mapper.core.imagery.bundled_lights import BundledLights
from poverty_mapper.core.imagery.lights_file import (
    SHIPPED_LIGHTS,
    expected_sha256,
    install_lights,
    installed_lights_path,
    lights_path,
    sha256_of,
)


@pytest.fixture
def data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("POVERTY_MAPPER_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def zip_install(monkeypatch, tmp_path):
    """As a plugin installed from the zip: no lights in its resources."""
    missing = tmp_path / "plugin" / "resources" / "lights" / SHIPPED_LIGHTS.name
    monkeypatch.setattr(lights_file, "SHIPPED_LIGHTS", missing)
    return missing


def test_the_shipped_file_is_the_one_the_record_names():
    assert sha256_of(SHIPPED_LIGHTS) == expected_sha256()


def test_a_zip_install_says_where_the_lights_go_and_how(data_folder, zip_install):
    assert lights_path() == installed_lights_path() == data_folder / "lights" / SHIPPED_LIGHTS.name
    with pytest.raises(PovertyMapperError) as error:
        BundledLights()
    message = str(error.value)
    for words in (str(zip_install), str(installed_lights_path()), "Install the bundled night lights",
                  "poverty-mapper install-lights"):
        assert words in message


def test_the_downloaded_file_is_checked_and_installed(data_folder, zip_install):
    target = install_lights(SHIPPED_LIGHTS)
    assert target == installed_lights_path() and sha256_of(target) == expected_sha256()
    with BundledLights() as lights:  # the default path now reads the installed copy
        assert lights.path == target and lights.coverage_lonlat()[0] < 0
    assert install_lights(SHIPPED_LIGHTS) == target  # again: nothing to do


def test_another_file_is_refused_and_nothing_is_written(data_folder, zip_install, tmp_path):
    other = tmp_path / "blackmarble2016_africa_luminance.tif"
    other.write_bytes(SHIPPED_LIGHTS.read_bytes()[:1000])
    with pytest.raises(PovertyMapperError, match="not the bundled night lights this plugin was built with"):
        install_lights(other)
    assert not data_folder.exists()
    install_lights(SHIPPED_LIGHTS)
    before = installed_lights_path().stat().st_mtime_ns
    with pytest.raises(PovertyMapperError):
        install_lights(other)
    assert installed_lights_path().stat().st_mtime_ns == before  # an earlier copy stays as it was
    assert sorted(p.name for p in installed_lights_path().parent.iterdir()) == [SHIPPED_LIGHTS.name]


def test_the_command_line_installs_the_lights(data_folder, zip_install, tmp_path, capsys):
    assert cli.main(["install-lights", str(SHIPPED_LIGHTS)]) == 0
    assert str(installed_lights_path()) in capsys.readouterr().out
    wrong = tmp_path / "wrong.tif"
    wrong.write_bytes(b"not a raster")
    assert cli.main(["install-lights", str(wrong)]) == 1
    assert "not the bundled night lights" in capsys.readouterr().err


def test_a_source_checkout_reads_its_own_copy():
    assert lights_path() == SHIPPED_LIGHTS and bundled_lights.BUNDLED_LIGHTS_PATH == SHIPPED_LIGHTS
