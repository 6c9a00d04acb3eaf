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
from poverty_mapper.core.errors import PovertyMapperError
from helpers import (  # noqa: F401 (small_model: fixtures)
    EARLIER, HEIGHT, WIDTH, X0, Y0, assert_untouched, make_reflectance, predict_to, write_earlier, write_geotiff,
    small_model,
)


@pytest.fixture
def disk(tmp_path) -> Path:
    with small_disk(tmp_path / "small_disk", "8k") as folder:
        yield folder


def test_a_full_disk_while_mapping_keeps_the_earlier_map(tmp_path, disk, small_model):
    # 400 x 400 px: 50 x 50 cells, two float32 bands of noise, about 12 kB, more than the 8 kB disk holds.
    scene = write_geotiff(tmp_path / "generated_scene.tif", make_reflectance(400, 400))
    out = write_earlier(disk / "map.tif")
    with pytest.raises(PovertyMapperError, match=r"The disk is full: .*map\.tif could not be written\. Free some space"):
        predict_to(scene, out, small_model)
    assert_untouched(out)


def test_a_replaced_map_loses_the_statistics_and_overviews_of_the_earlier_one(tmp_path, small_model):
    scene = write_geotiff(tmp_path / "generated_scene.tif", make_reflectance())
    out = tmp_path / "map.tif"
    predict_to(scene, out, small_model)
    with rasterio.open(out, "r+") as ds:  # as QGIS leaves them: statistics and pyramids
        ds.update_tags(1, STATISTICS_MEAN="1234")
    with rasterio.Env(TIFF_USE_OVR=True), rasterio.open(out, "r+") as ds:
        ds.build_overviews([2], Resampling.nearest)
    Path(f"{out}.aux.xml").write_text("<PAMDataset/>")
    assert Path(f"{out}.ovr").exists()
    predict_to(scene, out, small_model)
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

    scene = write_geotiff(tmp_path / "generated_scene.tif", make_reflectance())
    out = write_earlier(tmp_path / "map.tif")
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
    predict_to(scene, out, small_model)
    assert list(tmp_path.glob("*.partial*")) == []
    with rasterio.open(out) as ds:
        assert ds.count >= 1


# --- an output that is an input -----------------------------------------------------------


@pytest.mark.parametrize("spelling", ["same", "dots", "symlink", "hardlink"])
def test_an_output_naming_the_input_raster_is_refused_and_the_image_kept(tmp_path, small_model, spelling):
    import os

    scene = write_geotiff(tmp_path / "generated_scene.tif", make_reflectance())
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
        predict_to(scene, out, small_model)
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


# --- model files: every array finite and consistent, only what is used unpacked -------------


def _npy(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


def _array(path: Path, name: str) -> np.ndarray:
    import io
    import zipfile

    with zipfile.ZipFile(path) as zf:
        return np.lib.format.read_array(io.BytesIO(zf.read(name)))


def _with(path: Path, out: Path, entries: dict[str, bytes | None], change_meta=None) -> Path:
    """A copy of the model file ``path`` with ``entries`` replaced (None: removed)."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "model.json" and change_meta:
                meta = json.loads(data)
                change_meta(meta)
                data = json.dumps(meta).encode()
            if info.filename in entries:
                data = entries[info.filename]
            if data is not None:
                zout.writestr(info.filename, data, zipfile.ZIP_DEFLATED)
        for name, data in entries.items():
            if name not in zin.namelist() and data is not None:
                zout.writestr(name, data, zipfile.ZIP_DEFLATED)
    return out


@pytest.fixture
def saved_small_model(small_model, tmp_path) -> Path:
    from poverty_mapper.core.models.model_file import save_model

    return save_model(small_model, tmp_path / "generated.povmodel")


@pytest.mark.parametrize("entry, index", [
    ("extractor/band_stds.npy", 1), ("extractor/band_means.npy", 0), ("extractor/edges.npy", 3),
    ("regressor/coef.npy", 2), ("regressor/x_mean.npy", 0), ("regressor/x_scale.npy", 5),
])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_model_with_nan_or_infinite_numbers_is_refused_at_load(saved_small_model, tmp_path, entry, index, bad):
    from poverty_mapper.core.errors import ModelFileError
    from poverty_mapper.core.models.model_file import load_model

    array = _array(saved_small_model, entry).astype(np.float64)
    array.flat[index] = bad
    damaged = _with(saved_small_model, tmp_path / "damaged.povmodel", {entry: _npy(array)})
    with pytest.raises(ModelFileError, match=rf"damaged\.povmodel: the array {entry} holds NaN or infinite values"):
        load_model(damaged)


@pytest.mark.parametrize("field, value", [("intercept", "NaN"), ("intercept", "Infinity"), ("alpha", "NaN")])
def test_a_model_with_a_nan_intercept_is_refused_at_load(saved_small_model, tmp_path, field, value):
    from poverty_mapper.core.errors import ModelFileError
    from poverty_mapper.core.models.model_file import load_model

    def change(meta):
        meta["regressor"][field] = value

    damaged = _with(saved_small_model, tmp_path / "damaged.povmodel", {}, change)
    with pytest.raises(ModelFileError, match=r"damaged\.povmodel: the model file is incomplete or inconsistent"):
        load_model(damaged)


def test_a_model_whose_band_count_disagrees_with_its_arrays_is_refused(saved_small_model, tmp_path):
    from poverty_mapper.core.errors import ModelFileError
    from poverty_mapper.core.models.model_file import load_model

    def two_bands(meta):
        meta["bands"] = ["BLUE", "GREEN"]

    damaged = _with(saved_small_model, tmp_path / "damaged.povmodel", {}, two_bands)
    with pytest.raises(ModelFileError, match=r"expects 2 bands but its band statistics have 3 and 3 values"):
        load_model(damaged)
    short = _array(saved_small_model, "regressor/x_scale.npy")[:-1]
    damaged = _with(saved_small_model, tmp_path / "damaged2.povmodel", {"regressor/x_scale.npy": _npy(short)})
    with pytest.raises(ModelFileError, match=r"incomplete or inconsistent \(the regressor's coefficients, means and scales differ"):
        load_model(damaged)


@pytest.mark.parametrize("pixel", [1e308, 1e-320, -30.0])
def test_a_model_with_an_absurd_pixel_size_is_refused_at_load(saved_small_model, tmp_path, pixel):
    from poverty_mapper.core.errors import ModelFileError
    from poverty_mapper.core.models.model_file import load_model

    def change(meta):
        meta["pixel_size_m"] = pixel

    damaged = _with(saved_small_model, tmp_path / "damaged.povmodel", {}, change)
    with pytest.raises(ModelFileError, match=r"gives no usable tile size, pixel size or bands"):
        load_model(damaged)


def test_a_model_with_an_unknown_radiometry_is_refused_at_load(saved_small_model, tmp_path):
    """An unknown value was ignored: the imagery was then read with the scaling 'auto' guessed."""
    from poverty_mapper.core.errors import ModelFileError
    from poverty_mapper.core.models.model_file import load_model

    def change(meta):
        meta["radiometry"] = "landsat_c9_l7"

    damaged = _with(saved_small_model, tmp_path / "damaged.povmodel", {}, change)
    with pytest.raises(ModelFileError, match=r"unknown radiometry 'landsat_c9_l7' \(known: reflectance, "):
        load_model(damaged)


@pytest.mark.parametrize("scores", [{"pooled": {"r2": "high", "R2": 0.5}}, {"interval_80": "wide"},
                                    {"folds": {"1": "good"}}, {"pooled": {"r2": [1], "R2": 0.5, "n": "many"}}])
def test_non_numeric_scores_are_a_model_file_error(saved_small_model, tmp_path, scores):
    from poverty_mapper.core.errors import ModelFileError
    from poverty_mapper.core.models.model_file import load_model, read_model_info

    def change(meta):
        meta["scores"] = scores

    damaged = _with(saved_small_model, tmp_path / "damaged.povmodel", {}, change)
    with pytest.raises(ModelFileError, match=r"incomplete or inconsistent"):
        load_model(damaged)
    with pytest.raises(ModelFileError, match=r"incomplete or inconsistent"):
        read_model_info(damaged)


def test_an_unused_array_is_never_unpacked(saved_small_model, tmp_path):
    import tracemalloc

    from poverty_mapper.core.models.model_file import load_model

    unused = np.zeros(100 * 2**20 // 8)  # 100 MiB of zeros, about 100 kB deflated
    padded = _with(saved_small_model, tmp_path / "padded.povmodel", {"extractor/unused.npy": _npy(unused)})
    del unused
    assert padded.stat().st_size < 2**20
    tracemalloc.start()
    try:
        model = load_model(padded)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert model.bands == ("BLUE", "GREEN", "RED")
    assert peak < 10 * 2**20, peak


def test_a_model_that_would_unpack_to_half_a_gigabyte_is_refused_unread(saved_small_model, tmp_path):
    import resource
    import zipfile

    from poverty_mapper.core.errors import ModelFileError
    from poverty_mapper.core.models.model_file import load_model

    bomb = tmp_path / "bomb.povmodel"
    with zipfile.ZipFile(saved_small_model) as zin, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
        with zout.open("extractor/padding.npy", "w", force_zip64=True) as fh:
            fh.write(_npy(np.zeros(0)))  # a header, then 512 MiB of zeros, streamed
            block = bytes(2**24)
            for _ in range(32):
                fh.write(block)
    assert bomb.stat().st_size < 4 * 2**20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ModelFileError, match=r"bomb\.povmodel would unpack to 512 MiB"):
        load_model(bomb)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # kB: nothing unpacked


CNN_MODEL = Path(__file__).resolve().parents[2] / "resources" / "models" / "kinshasa_cnn.povmodel"
STEM = "extractor/weights/backbone._conv_stem.weight.npy"


@pytest.mark.parametrize("damage", ["nan", "shape", "missing"])
def test_cnn_weights_that_are_nan_of_another_shape_or_missing_are_refused(tmp_path, damage):
    from poverty_mapper.core.errors import ModelFileError
    from poverty_mapper.core.models.model_file import load_model

    stem = _array(CNN_MODEL, STEM)
    replacement = {
        "nan": _npy(np.where(np.arange(stem.size).reshape(stem.shape) == 7, np.nan, stem).astype(stem.dtype)),
        "shape": _npy(stem[:, :1]),
        "missing": None,
    }[damage]
    damaged = _with(CNN_MODEL, tmp_path / "damaged.povmodel", {STEM: replacement})
    message = {
        "nan": r"the array extractor/weights/backbone\._conv_stem\.weight\.npy holds NaN or infinite values",
        "shape": r"incomplete or inconsistent \(.*size mismatch for backbone\._conv_stem\.weight",
        "missing": r"incomplete or inconsistent \(.*Missing key\(s\).*backbone\._conv_stem\.weight",
    }[damage]
    with pytest.raises(ModelFileError, match=message):
        load_model(damaged)


# --- imagery finer than the model: read without GDAL's overviews ---------------------------


def test_a_stale_overview_beside_finer_imagery_does_not_change_the_map(tmp_path, small_model):
    import shutil

    from rasterio.transform import from_origin

    # 15 m noise: the 30 m model reads each tile at half resolution, averaging 2 x 2 pixels.
    noise = np.random.default_rng(5).uniform(0.02, 0.2, size=(3, 128, 128)).astype(np.float32)
    image = write_geotiff(tmp_path / "generated_15m.tif", noise, transform=from_origin(500_000.0, 7_200_000.0, 15.0, 15.0))
    clean = predict_to(image, tmp_path / "clean.tif", small_model)
    # A stale overview: built from other imagery of the same size, left beside this one.
    other = write_geotiff(tmp_path / "generated_other.tif", noise[:, ::-1, :] * 0.5 + 0.1,
                    transform=from_origin(500_000.0, 7_200_000.0, 15.0, 15.0))
    with rasterio.Env(TIFF_USE_OVR=True), rasterio.open(other, "r+") as ds:
        ds.build_overviews([2, 4], Resampling.nearest)
    shutil.copy(f"{other}.ovr", f"{image}.ovr")
    with rasterio.open(image) as ds:
        assert ds.overviews(1) == [2, 4]  # GDAL would use it
    stale = predict_to(image, tmp_path / "stale.tif", small_model)
    with rasterio.open(tmp_path / "clean.tif") as a, rasterio.open(tmp_path / "stale.tif") as b:
        assert np.array_equal(a.read(), b.read())
    assert clean.n_estimated == stale.n_estimated > 0


# --- work larger than the machine: refused before it starts, with the estimate ---------------


@pytest.mark.parametrize("stride_m", [0.01, 0.001])
def test_a_stride_too_fine_for_the_memory_is_refused_before_any_read(tmp_path, small_model, stride_m, monkeypatch):
    from poverty_mapper.core.imagery.tile_reader import TileReader

    scene = write_geotiff(tmp_path / "generated_scene.tif", make_reflectance())
    out = write_earlier(tmp_path / "map.tif")
    reads = []
    monkeypatch.setattr(TileReader, "read_dn_into", lambda *a: reads.append(a))  # records, never reads
    with pytest.raises(PovertyMapperError, match=r"Mapping [\d,]+ x [\d,]+ cells would need about [\d.]+ [TG]B of memory; "
                                                 r"this machine has [\d.]+ [GMT]B free.*Nothing was started\. Choose a larger stride"):
        predict_to(scene, out, small_model, stride_m=stride_m)
    assert reads == []
    assert_untouched(out)


def test_a_model_with_a_tiny_pixel_size_is_refused_before_any_read(tmp_path, small_model):
    import dataclasses

    scene = write_geotiff(tmp_path / "generated_scene.tif", make_reflectance())
    tiny = dataclasses.replace(small_model, pixel_size_m=0.01)  # 8 cm tiles over 1.2 x 0.96 km
    with pytest.raises(PovertyMapperError, match=r"Mapping 15,000 x 12,000 cells would need about 23 GB of memory"):
        predict_to(scene, tmp_path / "map.tif", tiny)


def test_a_geotransform_with_pixel_size_zero_is_a_clear_error(tmp_path, small_model):
    # GeoTIFF will not store a pixel size of 0; a VRT (or a world file) does.
    scene = write_geotiff(tmp_path / "generated_scene.tif", make_reflectance())
    bands = "".join(
        f'<VRTRasterBand dataType="Float32" band="{b}"><SimpleSource><SourceFilename relativeToVRT="1">'
        f"generated_scene.tif</SourceFilename><SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>"
        for b in (1, 2, 3)
    )
    vrt = tmp_path / "generated_zero_pixel.vrt"
    vrt.write_text(
        f'<VRTDataset rasterXSize="{WIDTH}" rasterYSize="{HEIGHT}"><SRS>EPSG:32621</SRS>'
        f"<GeoTransform>{X0}, 0.0, 0.0, {Y0}, 0.0, -30.0</GeoTransform>{bands}</VRTDataset>"
    )
    with rasterio.open(vrt) as ds:
        assert ds.transform.a == 0.0
    with pytest.raises(PovertyMapperError, match=r"georeferencing gives a pixel size of 0 x 30; it is damaged"):
        predict_to(vrt, tmp_path / "map.tif", small_model)


def test_an_extent_without_area_is_refused_not_taken_as_the_whole_raster(tmp_path, small_model):
    scene = write_geotiff(tmp_path / "generated_scene.tif", make_reflectance())
    with pytest.raises(PovertyMapperError, match=r"has no area; draw or choose an extent"):
        predict_to(scene, tmp_path / "map.tif", small_model, bounds=(X0 + 300, Y0 - 600, X0 + 300, Y0 - 300))


# --- fitclusters: memory flat in box size ----------------------------------------------------


def _cluster_tiles(world, box_m: float):
    from poverty_mapper.core.training import clusters as cl

    config = cl.ClusterFitConfig(
        image_path=str(world.image_path), model_path="unused.povmodel", outcome_name="wealth",
        clusters=tuple(cl.Cluster(x, y, o, 1.0, str(i)) for i, (x, y, o, *_) in enumerate(world.clusters)),
        box_size_m=box_m, tile_size_m=240.0,
    )
    imagery = cl.open_imagery(config.image_path, config, config.tile_size_m)
    return config, imagery


def test_fitclusters_tiles_are_those_of_each_box_on_the_image_in_order(small_world):
    with_listing = []
    config, imagery = _cluster_tiles(small_world, 3000.0)
    from poverty_mapper.core.imagery.box_tiles import batches, box_bounds
    from poverty_mapper.core.imagery.tiling import bounds_window, tile_grid_for
    from poverty_mapper.core.training import clusters as cl

    with imagery as imagery:
        ds = imagery.dataset
        for i, c in enumerate(config.clusters):  # every tile of the box, listed, as it was done before
            grid = tile_grid_for(ds.transform, ds.crs, bounds_window(ds.transform, box_bounds(ds, c.x, c.y, 3000.0)), 240.0)
            with_listing += [(i, w) for w in (grid.tile_window(r, col) for r, col in grid.cells())
                             if w.intersection(ds.width, ds.height) is not None]
        tiles, _ = cl._tiles_per_cluster(config, imagery, np.ones(len(config.clusters), bool), [])
        assert list(tiles) == with_listing and len(tiles) == len(with_listing)
        picks = sorted(np.random.default_rng(0).choice(len(tiles), 50, replace=False))
        assert tiles.picked(picks) == [with_listing[k] for k in picks]
        assert [t for chunk in batches(tiles, 7) for t in chunk] == with_listing


def test_fitclusters_memory_for_the_tiles_stays_flat_from_10_to_100_km_boxes(small_world):
    import tracemalloc

    from poverty_mapper.core.imagery.box_tiles import batches
    from poverty_mapper.core.training import clusters as cl

    peaks = {}
    for box in (10_000.0, 100_000.0):
        config, imagery = _cluster_tiles(small_world, box)
        with imagery as imagery:
            tracemalloc.start()
            try:
                tiles, in_box = cl._tiles_per_cluster(config, imagery, np.ones(len(config.clusters), bool), [])
                n = sum(1 for _ in batches(tiles, 64))
                peaks[box] = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        assert n > 0
    assert in_box.sum() > 6_000_000  # 40 boxes of 100 km in 240 m tiles
    assert peaks[100_000.0] < 1 * 2**20 and peaks[100_000.0] < 2 * peaks[10_000.0] + 2**16, peaks


# --- rasters of a kind no model reads ------------------------------------------------------


def test_a_complex_raster_is_a_clear_error(tmp_path, small_model):
    values = (make_reflectance() * 1000).astype(np.int16)
    scene = tmp_path / "generated_cint16.tif"
    with rasterio.open(scene, "w", driver="GTiff", width=WIDTH, height=HEIGHT, count=3, dtype="complex_int16",
                       crs="EPSG:32621", transform=rasterio.transform.from_origin(X0, Y0, 30.0, 30.0)) as dst:
        dst.write(values.astype(np.complex64))
    with rasterio.open(scene) as ds:
        assert ds.dtypes[0] == "complex_int16"
    with pytest.raises(PovertyMapperError, match=r"holds complex numbers \(complex_int16\), not image values; convert"):
        predict_to(scene, tmp_path / "map.tif", small_model)


def test_a_mask_outside_the_raster_says_so_not_that_tiles_lacked_valid_pixels(tmp_path, small_model):
    scene = write_geotiff(tmp_path / "generated_scene.tif", make_reflectance())
    out = write_earlier(tmp_path / "map.tif")
    far = {"type": "Polygon", "coordinates": [[(X0 - 9000, Y0 + 9000), (X0 - 8000, Y0 + 9000),
                                               (X0 - 8000, Y0 + 8000), (X0 - 9000, Y0 + 8000), (X0 - 9000, Y0 + 9000)]]}
    with pytest.raises(PovertyMapperError, match=r"The mask polygons of the mask layer cover no cell of the raster "
                                                 r"generated_scene.tif"):
        predict_to(scene, out, small_model, mask_geometries=(far,))
    assert_untouched(out)
    with pytest.raises(PovertyMapperError) as raised:  # named: which of the project's layers to look at
        predict_to(scene, out, small_model, mask_geometries=(far,), mask_name="districts_2019")
    assert "The mask polygons of 'districts_2019' cover no cell of the raster generated_scene.tif" in str(raised.value)
    assert "Check where 'districts_2019' lies and its CRS" in str(raised.value)
    with pytest.raises(PovertyMapperError, match=r"The mask 'districts_2019' has no polygons"):
        predict_to(scene, out, small_model, mask_geometries=(), mask_name="districts_2019")


# --- imagery far outside any plausible range: said, not mapped with confidence ---------------


@pytest.mark.parametrize("kind, values", [
    ("constant", np.full((3, HEIGHT, WIDTH), 0.08, np.float32)),
    ("saturated", np.concatenate([make_reflectance()[:2], np.ones((1, HEIGHT, WIDTH), np.float32)])),  # a white
    # scene is cloud (no estimate); a saturated red band is imagery no model was trained on
    ("negative", -make_reflectance()),
    ("huge", (make_reflectance().astype(np.float64) * 1e300)),
])
def test_imagery_far_outside_the_trained_range_is_said(tmp_path, small_model, kind, values):
    scene = write_geotiff(tmp_path / "generated_scene.tif", values)
    result = predict_to(scene, tmp_path / "map.tif", small_model)
    said = [n for n in result.notes if n.startswith("The imagery is")]
    expected = "constant" if kind == "constant" else "far outside the values the model was trained on"
    assert len(said) == 1 and f"The imagery is {expected} (" in said[0], result.notes
    assert "the estimates are not meaningful" in said[0]


def test_ordinary_imagery_gets_no_such_note(tmp_path, small_model):
    result = predict_to(write_geotiff(tmp_path / "generated_scene.tif", make_reflectance()), tmp_path / "map.tif", small_model)
    assert result.n_estimated > 0
    assert not [n for n in result.notes if n.startswith("The imagery is")]


def test_a_partial_file_of_another_machine_is_left_alone(tmp_path, small_model):
    scene = write_geotiff(tmp_path / "generated_scene.tif", make_reflectance())
    theirs = tmp_path / ".map.tif.another-machine-1-0123456789ab.partial.tif"  # pid 1 of another machine
    theirs.write_bytes(b"a map another machine is writing to this shared folder")
    predict_to(scene, tmp_path / "map.tif", small_model)
    assert theirs.exists()
