"""Mapping a raster: georeferencing, nodata, tags, stride, extent, mask, and what a
failed run leaves behind. The rasters are generated GeoTIFFs written into tmp_path,
except for one test on the real Landsat 8 scene."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from conftest import PARANA_SCENE
from helpers import extractor_of
from poverty_mapper.core.extractors.cnn import CnnExtractor, ProxyCNN
from poverty_mapper.core.errors import Canceled, PovertyMapperError
from poverty_mapper.core.extractors.histogram import HistogramExtractor
from poverty_mapper.core.models.model_file import PovertyModel, Target
from poverty_mapper.core.inference.plan import CpuCapabilities, cpu_capabilities, fast_bf16, thread_plan, torch_threads
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.inference.writer import NODATA
from poverty_mapper.core.imagery.radiometry import REFLECTANCE
from poverty_mapper.core.regression.ridge import fit_ridge
from poverty_mapper.core.imagery.tile_reader import TileReader
from poverty_mapper.core.imagery.tiling import region_window, tile_grid_for

X0, Y0 = 480_000.0, 7_200_000.0  # multiples of every cell size used here: grids start on them
PIXEL = 30.0
WIDTH, HEIGHT = 40, 32  # generated raster size: 5 x 4 tiles of 8 px
FILL = -1.0  # declared nodata of the generated raster


@pytest.fixture(scope="module")
def small_model():
    """Histogram features of generated 8 x 8 px tiles (30 m) + ridge to a generated target."""
    rng = np.random.default_rng(0)
    means, stds = np.array([0.062551, 0.090696, 0.105640]), np.array([0.023979, 0.032121, 0.051943])
    extractor = HistogramExtractor(means, stds)
    brightness = rng.uniform(0.3, 1.2, size=(80, 1, 1, 1))
    pixels = (rng.uniform(0.02, 0.2, size=(80, 3, 8, 8)) * brightness).astype(np.float32)
    x = extractor.extract(torch.from_numpy(pixels), torch.ones(80, 8, 8, dtype=torch.bool)).numpy()
    y = brightness.ravel() * 2 - 1.0
    return PovertyModel(
        name="generated small model",
        target=Target("generated index", "generated units"),
        bands=("BLUE", "GREEN", "RED"),
        input_scaling="reflectance 0-1",
        pixel_size_m=PIXEL,
        tile_size_px=8,
        extractor=extractor,
        regressor=fit_ridge(x, y, alpha=1.0),
    )


def _write_generated_raster(path, fill_block=None, seed=1):
    """Generated 3-band float32 reflectance GeoTIFF (EPSG:32621, 30 m) with nodata -1;
    ``fill_block`` (rows, cols slices) is set to nodata."""
    rng = np.random.default_rng(seed)
    data = rng.uniform(0.02, 0.2, size=(3, HEIGHT, WIDTH)).astype(np.float32)
    if fill_block is not None:
        data[(slice(None), *fill_block)] = FILL
    profile = dict(
        driver="GTiff", width=WIDTH, height=HEIGHT, count=3, dtype="float32",
        crs="EPSG:32621", transform=from_origin(X0, Y0, PIXEL, PIXEL), nodata=FILL,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(("blue", "green", "red"), start=1):
            dst.set_band_description(i, name)
    return path


@pytest.fixture
def generated_raster(tmp_path):
    return _write_generated_raster(tmp_path / "generated_scene.tif")


def _run(raster, out, model, **kw):
    return predict_poverty_map(PredictRequest(str(raster), str(out), model, device="cpu", **kw))


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.profile, ds.tags(), ds.descriptions


def test_output_georeferencing_type_nodata_and_tags(generated_raster, tmp_path, small_model):
    out = tmp_path / "map.tif"
    result = _run(generated_raster, out, small_model)
    values, profile, tags, descriptions = _read(out)
    assert profile["crs"].to_epsg() == 32621
    t = profile["transform"]
    assert (t.c, t.f) == (X0, Y0)  # origin of the region (the whole raster)
    assert (t.a, t.e) == pytest.approx((240.0, -240.0))  # pixel size == stride == tile
    assert (t.b, t.d) == (0.0, 0.0)
    assert profile["dtype"] == "float32" and values.dtype == np.float32
    assert profile["nodata"] == NODATA == -9999.0
    assert values.shape == (HEIGHT // 8, WIDTH // 8) == (4, 5)
    assert np.all(np.isfinite(values)) and np.all(values != NODATA)
    assert tags["QUANTITY"] == "generated index" and tags["MODEL"] == "generated small model"
    assert tags["UNIT"] == "generated units" and tags["CELL_SIZE_M"] == "240"
    assert descriptions[0] == "generated index (generated units)"
    assert result.n_cells == 20 and result.n_estimated == 20
    assert result.band_indexes == (1, 2, 3)  # found by band description
    assert result.radiometry.key == "reflectance"
    assert result.value_min == pytest.approx(float(values.min()))
    assert result.value_max == pytest.approx(float(values.max()))


def test_values_equal_the_model_applied_to_each_tile(generated_raster, tmp_path, small_model):
    out = tmp_path / "map.tif"
    _run(generated_raster, out, small_model)
    values = _read(out)[0]
    with rasterio.open(generated_raster) as ds:
        tile = ds.read(window=rasterio.windows.Window(8 * 2, 8 * 1, 8, 8))  # cell (row 1, col 2)
    feats = small_model.extractor.extract(torch.from_numpy(tile[None]), torch.ones(1, 8, 8, dtype=torch.bool))
    expected = small_model.regressor.predict(feats.numpy())[0]
    assert values[1, 2] == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_fill_pixels_give_nodata(tmp_path, small_model):
    raster = _write_generated_raster(
        tmp_path / "generated_with_fill.tif", fill_block=(slice(0, 16), slice(0, 16))
    )
    out = tmp_path / "map.tif"
    result = _run(raster, out, small_model)
    values = _read(out)[0]
    assert np.all(values[:2, :2] == NODATA)  # tiles made only of fill
    rest = values.copy()
    rest[:2, :2] = 0
    assert np.all(np.isfinite(rest)) and np.all(rest != NODATA)
    assert result.n_estimated == 20 - 4


def test_a_smaller_stride_gives_a_finer_output(generated_raster, tmp_path, small_model):
    out = tmp_path / "fine.tif"
    _run(generated_raster, out, small_model, stride_m=120.0)
    values, profile, tags, _ = _read(out)
    assert values.shape == (8, 10)
    t = profile["transform"]
    assert (t.c, t.f) == (X0, Y0) and (t.a, t.e) == pytest.approx((120.0, -120.0))
    assert tags["CELL_SIZE_M"] == "120"
    # Inner cells have tiles fully inside the raster and get estimates.
    assert np.all(values[1:-1, 1:-1] != NODATA)


def test_an_extent_gives_the_expected_aligned_output(generated_raster, tmp_path, small_model):
    bounds = (X0 + 4 * PIXEL, Y0 - 20 * PIXEL, X0 + 25 * PIXEL, Y0 - 4 * PIXEL)  # 21 x 16 px from pixel (4, 4)
    out = tmp_path / "extent.tif"
    result = _run(generated_raster, out, small_model, bounds=bounds)
    values, profile, _, _ = _read(out)
    # Cells of 8 px start on whole cells from the raster's first pixel: the extent is
    # widened to pixel (0, 0), 25 x 20 px: ceil(20 / 8) rows, ceil(25 / 8) columns.
    assert values.shape == (3, 4)
    t = profile["transform"]
    assert (t.c, t.f) == (X0, Y0)
    assert result.n_cells == 12


def test_cells_outside_the_mask_are_nodata(generated_raster, tmp_path, small_model):
    # Generated polygon in the raster's CRS over the western 2 of 5 columns of cells,
    # and only the top 3 of 4 rows.
    x1, y1 = X0 + 2 * 240.0 - 10, Y0 - 3 * 240.0 + 10
    mask = {"type": "Polygon", "coordinates": [[(X0, Y0), (x1, Y0), (x1, y1), (X0, y1), (X0, Y0)]]}
    out = tmp_path / "masked.tif"
    result = _run(generated_raster, out, small_model, mask_geometries=(mask,))
    values = _read(out)[0]
    inside = np.zeros(values.shape, bool)
    inside[:3, :2] = True
    assert np.all(values[inside] != NODATA)
    assert np.all(values[~inside] == NODATA)
    assert result.n_estimated == 6


def test_an_empty_mask_is_refused(generated_raster, tmp_path, small_model):
    with pytest.raises(PovertyMapperError, match="no polygons"):
        _run(generated_raster, tmp_path / "m.tif", small_model, mask_geometries=())
    assert list(tmp_path.glob("*.partial*")) == [] and not (tmp_path / "m.tif").exists()


def test_a_canceled_run_leaves_no_output(generated_raster, tmp_path, small_model):
    out = tmp_path / "map.tif"
    with pytest.raises(Canceled):
        predict_poverty_map(
            PredictRequest(str(generated_raster), str(out), small_model, device="cpu"),
            is_canceled=lambda: True,
        )
    assert not out.exists()
    assert list(tmp_path.glob("*.partial*")) == []


def test_a_failed_run_keeps_an_earlier_file_of_that_name(generated_raster, tmp_path, small_model):
    out = tmp_path / "map.tif"
    out.write_bytes(b"an earlier result")
    with pytest.raises(Canceled):
        predict_poverty_map(
            PredictRequest(str(generated_raster), str(out), small_model, device="cpu", batch_size=4),
            is_canceled=iter([False, False, True]).__next__,  # canceled after two batches
        )
    assert out.read_bytes() == b"an earlier result"
    assert list(tmp_path.glob("*.partial*")) == []

    seen_partial = []

    def broken_progress(fraction):
        if fraction > 0:
            # Mid-run a temporary file is being written beside the output...
            seen_partial.extend(tmp_path.glob("*.partial*"))
            raise RuntimeError("generated failure in the middle of the run")

    with pytest.raises(RuntimeError, match="generated failure"):
        predict_poverty_map(
            PredictRequest(str(generated_raster), str(out), small_model, device="cpu", batch_size=4),
            progress=broken_progress,
        )
    assert len(seen_partial) == 1
    # ...and after the failure it is gone and the earlier file is intact.
    assert out.read_bytes() == b"an earlier result"
    assert list(tmp_path.glob("*.partial*")) == []


def test_a_model_without_regressor_is_refused(generated_raster, tmp_path, small_model):
    features_only = dataclasses.replace(small_model, regressor=None, target=None)
    with pytest.raises(PovertyMapperError, match="feature extractor"):
        _run(generated_raster, tmp_path / "map.tif", features_only)
    assert list(tmp_path.iterdir()) == [generated_raster]


def test_bad_requests_are_refused_with_a_message(generated_raster, tmp_path, small_model):
    with pytest.raises(PovertyMapperError, match="does not exist"):
        _run(generated_raster, tmp_path / "no" / "map.tif", small_model)
    with pytest.raises(PovertyMapperError, match="Cannot open"):
        _run(tmp_path / "missing.tif", tmp_path / "map.tif", small_model)
    with pytest.raises(PovertyMapperError, match="do not exist"):
        _run(generated_raster, tmp_path / "map.tif", small_model, band_indexes=(1, 2, 4))
    with pytest.raises(PovertyMapperError, match="does not overlap"):
        _run(generated_raster, tmp_path / "map.tif", small_model, bounds=(0.0, 0.0, 10.0, 10.0))
    assert list(tmp_path.iterdir()) == [generated_raster]


def test_real_parana_scene_with_the_default_model(real_data, default_model, tmp_path):
    """The real Landsat 8 L1 scene, a 13.4 km square across the edge of its fill corner
    (0 DN, top right), default model, cells of half a tile."""
    with rasterio.open(PARANA_SCENE) as ds:
        transform, width, height, crs = ds.transform, ds.width, ds.height, ds.crs
        x0, y0 = transform * (1100, 150)
        bounds = (x0, y0 - 448 * 30, x0 + 448 * 30, y0)
        region = region_window(transform, width, height, bounds)
        grid = tile_grid_for(transform, crs, region, default_model.tile_size_m, 3360.0, aligned=True)
        # What each cell's tile holds, read straight from the scene.
        valid_fraction = np.zeros(grid.shape)
        for row, col in grid.cells():
            win = grid.tile_window(row, col)
            dn = ds.read(window=win.to_rasterio(), boundless=True, fill_value=0)
            valid_fraction[row, col] = np.mean(~np.all(dn == 0, axis=0))
    out = tmp_path / "parana_map.tif"
    result = _run(PARANA_SCENE, out, default_model, bounds=bounds, stride_m=3360.0)
    values, profile, tags, _ = _read(out)
    assert values.shape == grid.shape == (5, 5)  # widened to whole cells of 112 px from the scene's corner
    assert profile["transform"].c == pytest.approx(grid.transform.c) and profile["transform"].f == pytest.approx(grid.transform.f)
    assert grid.transform.c <= x0 and grid.transform.f >= y0
    assert result.radiometry.key == "landsat_c1_l1"
    assert tags["RADIOMETRY"] == "landsat_c1_l1"
    # The extent crosses the fill edge: some tiles are all fill, some all imagery.
    all_fill, all_image = valid_fraction == 0, valid_fraction == 1
    assert all_fill.any() and all_image.any()
    assert np.all(values[all_fill] == NODATA)
    with rasterio.open(out) as ds:  # band 2: the fill cells are 'no estimate' (2), not just empty
        quality = ds.read(2)
    assert np.all(quality[all_fill] == 2.0) and np.all(quality[values != NODATA] <= 1.0)
    estimates = values[all_image]
    assert np.all(estimates != NODATA) and np.all(np.isfinite(estimates))
    assert np.all(np.abs(estimates) < 10)  # on the scale of the asset index
    # Cells are estimated exactly where at least half the tile is imagery.
    np.testing.assert_array_equal(values != NODATA, valid_fraction >= 0.5)


# The three CPUs of this project's machine kind, and a larger one (capabilities faked).
INTEL_AMX = CpuCapabilities(cores=2, vector="avx512", amx=True, bf16=True)
ZEN4 = CpuCapabilities(cores=2, vector="avx512", amx=False, bf16=True)  # AVX512-BF16, no AMX
ZEN3 = CpuCapabilities(cores=2, vector="avx2", amx=False, bf16=False)  # AVX2 only: float32 kernels


@pytest.mark.parametrize(
    "device,kind,cpu,workers,expected",
    [
        ("cpu", "small cnn", INTEL_AMX, None, (1, 1)),  # a fast network: a core for reading, one for it
        ("cpu", "small cnn", ZEN4, None, (0, 2)),  # 5 x a read: both cores to the network
        ("cpu", "small cnn", ZEN3, None, (0, 2)),  # float32, 11 x a read
        ("cpu", "efficientnet", INTEL_AMX, None, (0, 2)),  # 6 x the small CNN's cost
        ("cpu", "small cnn", dataclasses.replace(INTEL_AMX, cores=16), None, (5, 11)),
        ("cpu", "small cnn", dataclasses.replace(ZEN4, cores=16), None, (3, 13)),
        ("cpu", "small cnn", dataclasses.replace(ZEN3, cores=16), None, (2, 14)),
        ("cpu", "efficientnet", dataclasses.replace(ZEN3, cores=16), None, (0, 16)),
        ("cpu", "small cnn", dataclasses.replace(INTEL_AMX, cores=16), 2, (2, 14)),
        ("cpu", "small cnn", INTEL_AMX, 0, (0, None)),  # reading in the calling thread asked for: PyTorch's setting kept
        ("cpu", "small cnn", dataclasses.replace(ZEN4, cores=1), None, (1, None)),
        ("cpu", "histogram", ZEN3, None, (1, 1)),  # counting needs one thread beside the reader
        ("cpu", "histogram", ZEN3, 3, (3, 1)),
        ("cpu", "random", ZEN3, None, (1, None)),
        ("cuda", "small cnn", None, None, (2, None)),
    ],
)
def test_thread_plan_shares_the_cores_by_what_the_cpu_can_do(device, kind, cpu, workers, expected):
    plan = thread_plan(torch.device(device), extractor_of(kind), workers, cpu)
    assert (plan.read_workers, plan.torch_threads) == expected


def test_the_cpu_capabilities_follow_the_kernels_pytorch_runs():
    """The suite's second pass runs as an AVX2-only CPU (ATEN_CPU_CAPABILITY=avx2,
    ONEDNN_MAX_CPU_ISA=AVX2): the plan then sees float32 kernels, as on AMD Zen 3."""
    cpu = cpu_capabilities()
    assert cpu.vector == ("avx512" if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else
                          torch.backends.cpu.get_cpu_capability().lower())
    assert cpu.bf16 == fast_bf16(torch.device("cpu"))
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() == "AVX2":
        assert not cpu.bf16 and not cpu.amx
    if cpu.amx:
        assert cpu.vector == "avx512"


def test_efficientnet_tells_the_plan_it_costs_more_than_the_small_cnn():
    small = extractor_of("small cnn").network_cost
    assert small == 1.0 and extractor_of("efficientnet").network_cost > 5 * small


@pytest.mark.parametrize("kind, network, digital_numbers, scenes, bf16", [
    ("small cnn", True, True, True, ("cpu", "cuda")),
    ("histogram", False, True, False, ()),
    ("random", False, False, False, ("cuda",)),
])
def test_each_kind_declares_what_it_can_do(kind, network, digital_numbers, scenes, bf16):
    """Callers ask the extractor, never its kind's name: what it says must be what it does."""
    extractor = extractor_of(kind)
    assert (extractor.is_network, extractor.reads_digital_numbers, extractor.standardizes_scenes,
            extractor.bf16_devices) == (network, digital_numbers, scenes, bf16)
    assert extractor.knows_band_statistics and extractor.band_means.shape == extractor.band_stds.shape == (3,)
    dn, valid = torch.full((2, 3, 8, 8), 40, dtype=torch.uint8), torch.ones(2, 8, 8, dtype=torch.bool)
    if digital_numbers:
        assert extractor.extract_dn(dn, valid, REFLECTANCE).shape == (2, extractor.n_features)
    else:
        with pytest.raises(NotImplementedError):
            extractor.extract_dn(dn, valid, REFLECTANCE)
    if scenes:
        restandardized = extractor.standardized_by(np.full(3, 0.2), np.full(3, 0.1))
        np.testing.assert_allclose(restandardized.band_means, 0.2)
        np.testing.assert_allclose(restandardized.band_stds, 0.1 / extractor.input_std)
    else:
        with pytest.raises(NotImplementedError):
            extractor.standardized_by(np.zeros(3), np.ones(3))


def test_torch_threads_are_restored_even_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


@pytest.fixture(scope="module")
def small_cnn_model():
    """An untrained CNN (generated weights, non-trivial batch norm) + ridge on its features."""
    torch.manual_seed(0)
    network = ProxyCNN(3, 3, width=8, feature_dim=16)
    network.train()
    with torch.no_grad():
        network(torch.randn(16, 3, 16, 16) * 0.05 + 0.1)
    network.eval()
    extractor = CnnExtractor(network, np.array([0.1, 0.1, 0.1]), np.array([0.05, 0.05, 0.05]))
    rng = np.random.default_rng(1)
    pixels = torch.from_numpy(rng.uniform(0.02, 0.2, (40, 3, 8, 8)).astype(np.float32))
    with torch.inference_mode():
        x = extractor.extract(pixels, torch.ones(40, 8, 8, dtype=torch.bool)).numpy()
    return PovertyModel("generated cnn model", Target("generated index", "generated units"), ("BLUE", "GREEN", "RED"),
                        "reflectance 0-1", PIXEL, 8, extractor, fit_ridge(x, rng.normal(size=40), alpha=1.0))


@pytest.mark.parametrize("read_workers", [None, 0, 2])
def test_a_cnn_map_equals_the_plain_network_on_each_tile(generated_raster, tmp_path, small_cnn_model, read_workers):
    """Whatever the reading threads, every cell (also those touching nodata) equals the
    plain eager network applied to its tile; PyTorch's thread setting is left as it was."""
    raster = _write_generated_raster(tmp_path / "with_fill.tif", fill_block=(slice(0, 3), slice(0, 5)))
    threads = torch.get_num_threads()
    out = tmp_path / "map.tif"
    _run(raster, out, small_cnn_model, read_workers=read_workers, batch_size=3, mixed_precision=False)
    values = _read(out)[0]
    assert torch.get_num_threads() == threads
    network = small_cnn_model.extractor.network
    with rasterio.open(raster) as ds, torch.inference_mode():
        grid = tile_grid_for(ds.transform, ds.crs, region_window(ds.transform, ds.width, ds.height, None), 240.0)
        reader = TileReader(ds, (1, 2, 3), 8, REFLECTANCE)
        for r, c in grid.cells():
            tile, valid = reader.read(grid.tile_window(r, c))
            plain = network.features(small_cnn_model.extractor.standardize(torch.from_numpy(tile[None]), torch.from_numpy(valid[None])))
            expected = small_cnn_model.regressor.predict(plain.double().numpy())[0]
            assert values[r, c] == pytest.approx(expected, rel=1e-4, abs=1e-4), (r, c)


def test_maps_of_overlapping_regions_share_their_cells(real_data, default_model, tmp_path):
    """Two extents of the real Parana scene that overlap: their grids line up cell for
    cell (whole cells apart), and the shared cells hold the same estimates."""
    from conftest import PARANA_SCENE

    with rasterio.open(PARANA_SCENE) as src:
        b = src.bounds
    maps = {}
    for name, shift in (("a", 1_000.0), ("b", 9_500.0)):
        bounds = (b.left + shift, b.bottom + shift, b.left + shift + 30_000.0, b.bottom + shift + 30_000.0)
        out = tmp_path / f"{name}.tif"
        predict_poverty_map(PredictRequest(str(PARANA_SCENE), str(out), default_model, bounds=bounds, device="cpu"))
        with rasterio.open(out) as ds:
            maps[name] = (ds.transform, ds.read(1, masked=True))
    (ta, a), (tb, b_values) = maps["a"], maps["b"]
    cell = ta.a
    col, row = (tb.c - ta.c) / cell, (ta.f - tb.f) / cell  # b's first cell in a's cells
    assert abs(col - round(col)) < 1e-6 and abs(row - round(row)) < 1e-6 and round(col) > 0
    col, row = round(col), round(row)
    shared = [(r, c) for r in range(a.shape[0]) for c in range(a.shape[1])
              if 0 <= r - row < b_values.shape[0] and 0 <= c - col < b_values.shape[1]
              and not a.mask[r, c] and not b_values.mask[r - row, c - col]]
    assert len(shared) > 4
    np.testing.assert_allclose([a[r, c] for r, c in shared], [b_values[r - row, c - col] for r, c in shared], rtol=1e-5)


def test_maps_of_different_rasters_in_one_crs_line_up_cell_for_cell(tmp_path, small_model):
    """Two GENERATED rasters of the same place in one projected CRS, with other origins
    and pixel sizes (30 m from an odd corner, 10 m): their maps' cells start on multiples
    of the cell size in the CRS, so the cells of the overlap coincide."""
    rng = np.random.default_rng(3)
    rasters = {}
    for name, (x0, y0, pixel, size) in {
        "odd_30m": (480_013.0, 7_200_007.0, 30.0, 60), "fine_10m": (480_555.5, 7_199_500.25, 10.0, 150),
    }.items():
        path = tmp_path / f"{name}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3, dtype="float32",
                           crs="EPSG:32621", transform=from_origin(x0, y0, pixel, pixel)) as dst:
            dst.write(rng.uniform(0.02, 0.2, size=(3, size, size)).astype(np.float32))
            dst.descriptions = ("blue", "green", "red")
        _run(path, tmp_path / f"{name}_map.tif", small_model)
        with rasterio.open(tmp_path / f"{name}_map.tif") as ds:
            rasters[name] = ds.transform, ds.width, ds.height
    cell = small_model.tile_size_m
    edges = {}
    for name, (t, width, height) in rasters.items():
        assert (t.a, -t.e) == pytest.approx((cell, cell))
        assert t.c / cell == pytest.approx(round(t.c / cell), abs=1e-6)
        assert t.f / cell == pytest.approx(round(t.f / cell), abs=1e-6)
        edges[name] = ({round(t.c + i * cell, 3) for i in range(width + 1)},
                       {round(t.f - j * cell, 3) for j in range(height + 1)})
    (xs_a, ys_a), (xs_b, ys_b) = edges.values()
    overlap_x = {x for x in xs_a if min(xs_b) <= x <= max(xs_b)}
    overlap_y = {y for y in ys_a if min(ys_b) <= y <= max(ys_b)}
    assert len(overlap_x) >= 3 and len(overlap_y) >= 3
    assert overlap_x <= xs_b and overlap_y <= ys_b
