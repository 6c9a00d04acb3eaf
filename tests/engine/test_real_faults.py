"""Real faults, not simulated ones: a full disk is a tmpfs of a few kilobytes, an
output that cannot be replaced is an immutable file, a killed run is a SIGKILL.

Whatever fails, nothing half-written stands under the output's name and an earlier
output of that name is kept whole."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling

from faults import small_disk
from test_robustness import EARLIER, _assert_untouched, _earlier, _raster, _reflectance, _run, small_model  # noqa: F401
from poverty_mapper.core.errors import PovertyMapperError


@pytest.fixture
def disk(tmp_path) -> Path:
    with small_disk(tmp_path / "small_disk", "8k") as folder:
        yield folder


def test_a_full_disk_while_mapping_keeps_the_earlier_map(tmp_path, disk, small_model):
    # 400 x 400 px: 50 x 50 cells, two float32 bands of noise, about 12 kB, more than the 8 kB disk holds.
    scene = _raster(tmp_path / "generated_scene.tif", _reflectance(400, 400))
    out = _earlier(disk / "map.tif")
    with pytest.raises(PovertyMapperError, match=r"The disk is full: .*map\.tif could not be written\. Free some space"):
        _run(scene, out, small_model)
    _assert_untouched(out)


def test_a_replaced_map_loses_the_statistics_and_overviews_of_the_earlier_one(tmp_path, small_model):
    scene = _raster(tmp_path / "generated_scene.tif", _reflectance())
    out = tmp_path / "map.tif"
    _run(scene, out, small_model)
    with rasterio.open(out, "r+") as ds:  # as QGIS leaves them: statistics and pyramids
        ds.update_tags(1, STATISTICS_MEAN="1234")
    with rasterio.Env(TIFF_USE_OVR=True), rasterio.open(out, "r+") as ds:
        ds.build_overviews([2], Resampling.nearest)
    Path(f"{out}.aux.xml").write_text("<PAMDataset/>")
    assert Path(f"{out}.ovr").exists()
    _run(scene, out, small_model)
    assert not Path(f"{out}.aux.xml").exists() and not Path(f"{out}.ovr").exists()
    with rasterio.open(out) as ds:
        assert ds.overviews(1) == []


_KILLED_WRITER = """
import sys, time
sys.path.insert(0, {scripts!r})
from _bootstrap import import_plugin_package
import_plugin_package()
from poverty_mapper.core.atomic import atomic_output
with atomic_output({out!r}, ".tif") as tmp:
    tmp.write_bytes(b"half a map")
    print("written", flush=True)
    time.sleep(60)
"""


def test_the_partial_file_of_a_killed_run_is_removed_by_the_next_run(tmp_path, small_model):
    import signal
    import subprocess
    import sys

    from conftest import ROOT

    scene = _raster(tmp_path / "generated_scene.tif", _reflectance())
    out = _earlier(tmp_path / "map.tif")
    code = _KILLED_WRITER.format(scripts=str(ROOT / "scripts"), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partials = list(tmp_path.glob(".map.tif.*.partial.tif"))
    assert len(partials) == 1 and out.read_bytes() == EARLIER  # what a killed run leaves
    _run(scene, out, small_model)
    assert list(tmp_path.glob("*.partial*")) == []
    with rasterio.open(out) as ds:
        assert ds.count >= 1


# --- an output that is an input -----------------------------------------------------------


@pytest.mark.parametrize("spelling", ["same", "dots", "symlink", "hardlink"])
def test_an_output_naming_the_input_raster_is_refused_and_the_image_kept(tmp_path, small_model, spelling):
    import os

    scene = _raster(tmp_path / "generated_scene.tif", _reflectance())
    image = scene.read_bytes()
    (tmp_path / "sub").mkdir()
    out = {
        "same": scene,
        "dots": tmp_path / "sub" / ".." / scene.name,
        "symlink": tmp_path / "link.tif",
        "hardlink": tmp_path / "hard.tif",
    }[spelling]
    if spelling == "symlink":
        out.symlink_to(scene)
    if spelling == "hardlink":
        os.link(scene, out)
    with pytest.raises(PovertyMapperError, match=r"is the input raster .*would destroy the input raster\. Choose another output"):
        _run(scene, out, small_model)
    assert scene.read_bytes() == image


def test_fitclusters_refuses_a_model_file_over_its_imagery_before_the_fit(tmp_path, small_world):
    from poverty_mapper.core.training.clusters import Cluster, ClusterFitConfig, fit_clusters

    image = tmp_path / "generated_image.tif"
    image.write_bytes(Path(small_world.image_path).read_bytes())
    config = ClusterFitConfig(
        image_path=str(image), model_path=str(image), outcome_name="wealth",
        clusters=tuple(Cluster(x, y, o, 1.0, str(i)) for i, (x, y, o, *_) in enumerate(small_world.clusters)),
    )
    with pytest.raises(PovertyMapperError, match=r"is the imagery"):
        fit_clusters(config)
    assert image.read_bytes() == Path(small_world.image_path).read_bytes()


# --- a folder that cannot be written ------------------------------------------------------


@pytest.fixture
def read_only_folder(tmp_path) -> Path:
    """A real read-only folder: a read-only bind mount, as root; unmounted afterwards."""
    import subprocess

    folder = tmp_path / "read_only"
    folder.mkdir()
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_fitclusters_refuses_a_read_only_folder_before_the_fit(tmp_path, small_world, read_only_folder, monkeypatch):
    from poverty_mapper.core.training import clusters as clusters_module
    from poverty_mapper.core.training.clusters import Cluster, ClusterFitConfig, fit_clusters

    opened = []
    monkeypatch.setattr(clusters_module, "open_imagery", lambda *a, **k: opened.append(a))  # records, never opens
    config = ClusterFitConfig(
        image_path=str(small_world.image_path), model_path=str(read_only_folder / "m.povmodel"), outcome_name="wealth",
        clusters=tuple(Cluster(x, y, o, 1.0, str(i)) for i, (x, y, o, *_) in enumerate(small_world.clusters)),
    )
    with pytest.raises(PovertyMapperError, match=r"Cannot write in the folder .*read_only of the model file \(Read-only file system\)"):
        fit_clusters(config)
    assert opened == []  # refused before any imagery was read
    assert list(read_only_folder.iterdir()) == []
