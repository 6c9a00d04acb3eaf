"""Helpers shared by test modules of both folders (tests/engine, tests/qgis).

A test module imports what it needs from here (or from ``generated_world`` and
``faults``), never from another test module. QGIS is imported only inside the helpers of
the QGIS tests, so the engine's tests run without it.

Numbers stored from another machine (a shipped model's scores and coefficients) are
compared with tolerances: numpy's SIMD loops, OpenBLAS, MKL, oneDNN and PyTorch pick other
kernels on other CPUs, so the last bits of sums differ, and a penalty chosen on a near tie
can flip to its neighbour on the grid. A choice is judged by what it gives (its score).
"""
from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import re
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.transform import from_origin

from poverty_mapper.core.extractors.cnn import CnnExtractor, ProxyCNN
from poverty_mapper.core.extractors.histogram import HistogramExtractor
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.models.model_file import PovertyModel, Target
from poverty_mapper.core.regression.ridge import RidgeRegressor, fit_ridge

# A score (r2, R2) or an interval half-width: stored to 4 or 6 decimals; another CPU's
# sums, or a near-tied penalty that flipped, move it by far less than this.
SCORE_ABS = 1e-3
# A coefficient fitted with the same penalty on another CPU, relative to the largest one.
COEF_REL = 1e-6
# Keys of a scores dict that hold a choice (a penalty), not a figure.
CHOICES = frozenset({"alpha"})


def assert_scores_close(rebuilt, shipped, path: str = "scores") -> None:
    """Nested dicts of scores: the same keys, texts and counts; floats within SCORE_ABS.
    The penalties chosen are not compared: the scores beside them say what they give."""
    if isinstance(shipped, dict):
        assert isinstance(rebuilt, dict) and set(rebuilt) == set(shipped), f"{path}: {sorted(rebuilt)} != {sorted(shipped)}"
        for key in shipped:
            if key not in CHOICES:
                assert_scores_close(rebuilt[key], shipped[key], f"{path}.{key}")
    elif isinstance(shipped, float) or isinstance(rebuilt, float):
        assert rebuilt == pytest.approx(shipped, abs=SCORE_ABS), path
    else:
        assert rebuilt == shipped, path


def assert_same_fit(rebuilt, shipped, score_of: Callable[[float], float]) -> None:
    """Two ridge regressors fitted on the same data (one shipped from another machine).

    The penalty each chose scores the same (``score_of(alpha)``: the selection score of a
    penalty, higher is better) within SCORE_ABS. When both chose the same penalty, the
    coefficients agree within COEF_REL of the largest, and the intercepts likewise.
    """
    assert score_of(rebuilt.alpha) == pytest.approx(score_of(shipped.alpha), abs=SCORE_ABS), (
        f"penalty {rebuilt.alpha:g} scores otherwise than the shipped {shipped.alpha:g}"
    )
    for attr in ("x_mean", "x_scale"):
        np.testing.assert_allclose(getattr(rebuilt, attr), getattr(shipped, attr), rtol=COEF_REL, err_msg=attr)
    if rebuilt.alpha == pytest.approx(shipped.alpha, rel=1e-9):
        size = float(np.abs(shipped.coef).max())
        np.testing.assert_allclose(rebuilt.coef, shipped.coef, rtol=0, atol=COEF_REL * size, err_msg="coef")
        assert rebuilt.intercept == pytest.approx(shipped.intercept, rel=COEF_REL, abs=COEF_REL * size)


def assert_same_domain(rebuilt, shipped) -> None:
    """Training domains: the same counts and extremes; means and spreads (stored to 6
    decimals, from sums) within 1e-5."""
    assert dataclasses.asdict(rebuilt) == pytest.approx(dataclasses.asdict(shipped), abs=1e-5)


def without_figures(text: str) -> str:
    """A text with its decimal figures and penalties blanked: a card's or provenance's
    wording, compared apart from its numbers (which are compared with tolerances)."""
    return re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "#", text)


# --- Maps made through QGIS compared with the engine's own -----------------------------------


def engine_map(image, out, model_path, **request) -> Path:
    """The map the engine itself makes of ``image`` with the model file ``model_path``
    (on the CPU, every other choice the engine's default)."""
    from poverty_mapper.core.models.model_file import load_model

    request.setdefault("device", "cpu")
    result = predict_poverty_map(PredictRequest(str(image), str(out), load_model(model_path), **request))
    return Path(result.output_path)


def assert_same_map(path, engine_path) -> None:
    """Cell for cell the engine's map: the same grid (CRS, transform, size), the same cells
    without estimate, and the same values in every band (estimate, quality, interval), to
    float32 rounding (batches of other sizes may sum in another order)."""
    with rasterio.open(path) as got, rasterio.open(engine_path) as want:
        assert (got.crs, got.count, got.shape) == (want.crs, want.count, want.shape)
        np.testing.assert_allclose(tuple(got.transform), tuple(want.transform), rtol=1e-12, atol=1e-9)
        assert got.nodata == want.nodata
        a, b = got.read(masked=True), want.read(masked=True)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert b.count() > 0  # not two empty maps
    np.testing.assert_allclose(a.filled(0), b.filled(0), rtol=1e-5, atol=1e-6)


# --- Tiling grids --------------------------------------------------------------------------


def assert_cells_cover_region(grid):
    """The union of output cells contains the region and exceeds it by less than one cell."""
    r = grid.region
    assert grid.width * grid.step_x >= r.width - 1e-6
    assert grid.height * grid.step_y >= r.height - 1e-6
    assert grid.width * grid.step_x - r.width < grid.step_x
    assert grid.height * grid.step_y - r.height < grid.step_y
    # The same in world coordinates, through the output transform.
    ox, oy = grid.transform * (0, 0)
    ex, ey = grid.transform * (grid.width, grid.height)
    rx0, ry0 = grid.raster_transform * (r.col_off, r.row_off)
    rx1, ry1 = grid.raster_transform * (r.col_off + r.width, r.row_off + r.height)
    assert (ox, oy) == pytest.approx((rx0, ry0))
    cell_x, cell_y = abs(grid.transform.a), abs(grid.transform.e)
    assert 0 <= (ex - rx1) * math.copysign(1, grid.transform.a) + 1e-6 * cell_x < cell_x
    assert 0 <= (ey - ry1) * math.copysign(1, grid.transform.e) + 1e-6 * cell_y < cell_y


def assert_centres_match(grid, tolerance_px=0.5):
    """Each output cell centre is the centre of its tile window (in raster pixels)."""
    inv = ~grid.raster_transform
    for row, col in grid.cells():
        win = grid.tile_window(row, col)
        cc, cr = inv * (grid.transform * (col + 0.5, row + 0.5))
        assert abs(cc - (win.col_off + win.width / 2)) <= tolerance_px + 1e-9, (row, col, win)
        assert abs(cr - (win.row_off + win.height / 2)) <= tolerance_px + 1e-9, (row, col, win)


# --- Folds ---------------------------------------------------------------------------------


def neighbour_groups(positions_m: np.ndarray, distance_m: float) -> list[frozenset[int]]:
    """The groups of points linked by steps shorter than ``distance_m`` (chains too), found
    apart from the engine's linkage: connected components of the distance graph."""
    from scipy.sparse.csgraph import connected_components

    positions_m = np.asarray(positions_m, dtype=np.float64)
    near = np.linalg.norm(positions_m[:, None] - positions_m[None], axis=2) < distance_m
    _, labels = connected_components(near, directed=False)
    return [frozenset(np.flatnonzero(labels == label).tolist()) for label in np.unique(labels)]


def fold_members(fold: np.ndarray) -> list[frozenset[int]]:
    """The rows of each fold."""
    return [frozenset(np.flatnonzero(fold == f).tolist()) for f in np.unique(fold)]


def assert_folds_keep_groups_whole(fold: np.ndarray, groups: list[frozenset[int]]) -> None:
    """Every group lies in one fold, and every fold is a union of whole groups."""
    for group in groups:
        assert len({int(fold[i]) for i in group}) == 1, f"rows {sorted(group)} are split between folds"
    for members in fold_members(fold):
        assert members == frozenset().union(*(g for g in groups if g <= members)), sorted(members)


# --- One extractor of each kind, for what the run plan asks of it (plan, executors) -----------


def extractor_of(name: str):
    """A small extractor of each kind: 'small cnn', 'efficientnet', 'histogram', 'random'."""
    from poverty_mapper.core.extractors.random_conv import RandomConvExtractor

    means, stds = np.zeros(3), np.ones(3)
    if name == "efficientnet":
        from poverty_mapper.core.extractors.efficientnet import EfficientNetProxy

        return CnnExtractor(EfficientNetProxy(3, 3), means, stds)
    return {
        "small cnn": lambda: CnnExtractor(ProxyCNN(3, 3, width=8, feature_dim=16), means, stds),
        "histogram": lambda: HistogramExtractor(means, stds),
        "random": lambda: RandomConvExtractor(np.zeros((4, 3, 3, 3)), means, stds),
    }[name]()


# --- A generated scene of 9 x 7 cells of 8 px and a model for it (executors, command line, Dask) ---


SCENE_PIXEL = 30.0
SCENE_TILE_PX = 8
SCENE_WIDTH, SCENE_HEIGHT = 72, 56  # 9 x 7 cells of 8 px
SCENE_FILL = -1.0


def scene_model(extractor) -> PovertyModel:
    rng = np.random.default_rng(2)
    pixels = torch.from_numpy(rng.uniform(0.02, 0.2, (60, 3, SCENE_TILE_PX, SCENE_TILE_PX)).astype(np.float32))
    with torch.inference_mode():
        x = extractor.extract(pixels, torch.ones(60, SCENE_TILE_PX, SCENE_TILE_PX, dtype=torch.bool)).numpy()
    return PovertyModel("generated model", Target("generated index", "generated units"), ("BLUE", "GREEN", "RED"),
                        "reflectance 0-1", SCENE_PIXEL, SCENE_TILE_PX, extractor, fit_ridge(x, rng.normal(size=60), alpha=1.0))


@pytest.fixture
def raster(tmp_path):
    """Generated 3-band float32 reflectance with a nodata block (some cells too empty to estimate)."""
    data = np.random.default_rng(3).uniform(0.02, 0.2, (3, SCENE_HEIGHT, SCENE_WIDTH)).astype(np.float32)
    data[:, :20, :28] = SCENE_FILL
    path = tmp_path / "generated_scene.tif"
    with rasterio.open(path, "w", driver="GTiff", width=SCENE_WIDTH, height=SCENE_HEIGHT, count=3, dtype="float32",
                       crs="EPSG:32621", transform=from_origin(480_000.0, 7_200_000.0, SCENE_PIXEL, SCENE_PIXEL), nodata=SCENE_FILL) as dst:
        dst.write(data)
        dst.descriptions = ("blue", "green", "red")
    return path


# --- A generated CNN model of 8-bit renders and its scenes (scene standardization, domains) ---


CNN_SCENE_SIZE = 192
CNN_TILE_PX = 32


def cnn_model() -> PovertyModel:
    torch.manual_seed(0)
    network = ProxyCNN(3, 3).eval()
    extractor = CnnExtractor(network, np.array([0.4, 0.35, 0.3]), np.array([0.2, 0.15, 0.1]))
    coef = np.random.default_rng(0).normal(size=extractor.n_features)
    regressor = RidgeRegressor(coef, 0.0, np.zeros(coef.size), np.ones(coef.size), 1.0)
    return PovertyModel(name="generated CNN", target=Target("generated wealth", "index"), bands=("red", "green", "blue"),
                        input_scaling="8-bit render", pixel_size_m=30.0, tile_size_px=CNN_TILE_PX,
                        extractor=extractor, regressor=regressor, radiometry="eight_bit", band_indexes=(1, 2, 3))


def cnn_scene(path, data) -> str:
    profile = dict(driver="GTiff", width=CNN_SCENE_SIZE, height=CNN_SCENE_SIZE, count=3, dtype=data.dtype.name, crs="EPSG:32636",
                   transform=Affine(30.0, 0, 480_000.0, 0, -30.0, 998_400.0))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return str(path)


# --- Bad input and faults in the engine: a small model, generated rasters, earlier outputs ---


UTM = "EPSG:32621"
X0, Y0, PIXEL = 480_000.0, 7_200_000.0, 30.0  # multiples of the cell sizes used: grids start on them
WIDTH, HEIGHT = 40, 32  # 5 x 4 cells of the 8-pixel (240 m) tiles of the small model
EARLIER = b"an earlier output of the same name, to be kept byte for byte"


@pytest.fixture(scope="module")
def small_model() -> PovertyModel:
    """Histogram features of generated 8 x 8 px tiles at 30 m, ridge to a generated target."""
    rng = np.random.default_rng(0)
    extractor = HistogramExtractor(np.array([0.0626, 0.0907, 0.1056]), np.array([0.024, 0.0321, 0.0519]))
    brightness = rng.uniform(0.3, 1.2, size=(80, 1, 1, 1))
    pixels = (rng.uniform(0.02, 0.2, size=(80, 3, 8, 8)) * brightness).astype(np.float32)
    x = extractor.extract(torch.from_numpy(pixels), torch.ones(80, 8, 8, dtype=torch.bool)).numpy()
    return PovertyModel(
        name="generated small model", target=Target("generated index", "generated units"),
        bands=("BLUE", "GREEN", "RED"), input_scaling="reflectance 0-1", pixel_size_m=PIXEL,
        tile_size_px=8, extractor=extractor, regressor=fit_ridge(x, brightness.ravel() * 2 - 1, alpha=1.0),
    )


def make_reflectance(height=HEIGHT, width=WIDTH, bands=3, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.02, 0.2, size=(bands, height, width)).astype(np.float32)


def write_geotiff(path, data, crs=UTM, transform=None, nodata=None, descriptions=("blue", "green", "red"), **creation):
    """A generated GeoTIFF of ``data`` [bands, rows, cols]."""
    transform = transform if transform is not None else from_origin(X0, Y0, PIXEL, PIXEL)
    with rasterio.open(
        path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
        dtype=data.dtype, crs=crs, transform=transform, nodata=nodata, **creation,
    ) as dst:
        dst.write(data)
        for i, name in enumerate(descriptions[: data.shape[0]], start=1):
            dst.set_band_description(i, name)
    return Path(path)


def write_earlier(path) -> Path:
    path = Path(path)
    path.write_bytes(EARLIER)
    return path


def assert_untouched(out: Path) -> None:
    """The earlier file is byte-identical and no temporary file is left beside it."""
    assert out.read_bytes() == EARLIER
    assert list(out.parent.glob("*.partial*")) == []


def predict_to(raster, out, model, **kw):
    kw.setdefault("device", "cpu")
    return predict_poverty_map(PredictRequest(str(raster), str(out), model, **kw))


# --- Model files taken apart ---------------------------------------------------------------


def rewrite_model_zip(src, dst, change_meta=None, extra=None):
    """Copy the zip ``src`` to ``dst``, optionally editing model.json or adding entries."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "model.json" and change_meta:
                meta = json.loads(data)
                change_meta(meta)
                data = json.dumps(meta).encode()
            if extra and info.filename in extra:
                data = extra.pop(info.filename)
            zout.writestr(info, data)
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    return dst


class PicklePayload:
    """Unpickling this creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def object_npy(marker):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array([PicklePayload(marker)], dtype=object), allow_pickle=True)
    return buf.getvalue()


# --- A generated poverty map and districts (QGIS: export, robustness, faults) --------------


MAP_UTM = "EPSG:32636"
MAP_X0, MAP_Y0, MAP_CELL = 500_000.0, 1_000_000.0, 1000.0
MAP_NODATA = -9999.0


# The generated poverty map: 4 x 4 cells of 1 km, one without an estimate.
MAP_ESTIMATES = np.array(
    [[1, 2, 3, 4],
     [5, 6, 7, 8],
     [9, 10, 11, 12],
     [13, 14, 15, MAP_NODATA]], dtype=np.float32,
)


# Districts as (name, code, west, north, east, south) in cells from the map's top-left
# corner, with their hand-computed numbers: cells overlapped, coverage share, mean,
# population-weighted mean, people. Each cell counts with the share of it inside.
DISTRICTS = (
    ("north-west", 1, 0, 0, 2, 2),  # estimates 1 2 5 6 whole, people 10 30 0 60
    ("south-east", 2, 2, 2, 4, 4),  # estimates 11 12 15 whole (and nodata: a quarter uncovered), people 5 5 10
    ("south-west", 3, 0, 2, 1.4, 3.6),  # 9 whole, 10 at 0.4, 13 at 0.6, 14 at 0.24; people 1 1 3 1
    ("outside", 4, 6, 0, 8, 2),  # east of the map
)


def write_poverty_map(path, values: np.ndarray, cell: float = MAP_CELL) -> str:
    with rasterio.open(
        path, "w", driver="GTiff", width=values.shape[1], height=values.shape[0], count=1, dtype="float32",
        crs=MAP_UTM, transform=Affine(cell, 0, MAP_X0, 0, -cell, MAP_Y0), nodata=MAP_NODATA,
    ) as dst:
        dst.write(values.astype(np.float32), 1)
        dst.set_band_description(1, "generated index (generated units)")
        dst.update_tags(QUANTITY="generated index", UNIT="generated units", MODEL="generated")
    return str(path)


def districts_layer(crs: str):
    """DISTRICTS as a memory polygon layer in ``crs`` (built in MAP_UTM, then transformed)."""
    from qgis.core import (
        QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsFeature, QgsField, QgsGeometry, QgsProject,
        QgsRectangle, QgsVectorLayer,
    )
    from qgis.PyQt.QtCore import QVariant

    layer = QgsVectorLayer(f"Polygon?crs={crs}", "districts", "memory")
    layer.dataProvider().addAttributes([QgsField("name", QVariant.String), QgsField("code", QVariant.Int)])
    layer.updateFields()
    transform = QgsCoordinateTransform(
        QgsCoordinateReferenceSystem(MAP_UTM), QgsCoordinateReferenceSystem(crs), QgsProject.instance()
    )
    features = []
    for name, code, west, north, east, south in DISTRICTS:
        geometry = QgsGeometry.fromRect(
            QgsRectangle(MAP_X0 + west * MAP_CELL, MAP_Y0 - south * MAP_CELL, MAP_X0 + east * MAP_CELL, MAP_Y0 - north * MAP_CELL)
        )
        geometry.transform(transform)
        feature = QgsFeature(layer.fields())
        feature.setGeometry(geometry)
        feature.setAttributes([name, code])
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


# --- Processing runs that fail or are canceled (QGIS) --------------------------------------


@functools.cache
def _recording_feedback_class():
    from qgis.core import QgsProcessingFeedback

    class RecordingFeedback(QgsProcessingFeedback):
        """Keeps errors and warnings; cancels itself after ``cancel_after`` progress reports."""

        def __init__(self, cancel_after: int | None = None):
            super().__init__()
            self.errors: list[str] = []
            self.warnings: list[str] = []
            self._reports = 0
            self._cancel_after = cancel_after
            self.progressChanged.connect(self._count)

        def _count(self, _progress: float) -> None:
            self._reports += 1
            if self._cancel_after is not None and self._reports > self._cancel_after:
                self.cancel()

        def reportError(self, error, fatalError=False):  # noqa: N802,N803 (QGIS API)
            self.errors.append(error)
            super().reportError(error, fatalError)

        def pushWarning(self, warning):  # noqa: N802 (QGIS API)
            self.warnings.append(warning)
            super().pushWarning(warning)

    return RecordingFeedback


def recording_feedback(cancel_after: int | None = None):
    """A Processing feedback that keeps errors and warnings, and cancels itself after
    ``cancel_after`` progress reports."""
    return _recording_feedback_class()(cancel_after)


def partial_leftovers(folder: Path) -> list[Path]:
    """Temporary files or folders of an unfinished output."""
    return sorted(folder.glob("*.partial*"))


def layer_files(folder: Path, stem: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob(f"{stem}.*"))}


def write_earlier_layer(path: Path) -> dict[str, bytes]:
    """An earlier output of the same name: a real layer (all its files), recorded byte for byte."""
    import processing

    other = write_poverty_map(path.parent / "generated_other_map.tif", MAP_ESTIMATES[:2, :2])
    processing.run("povertymapper:topolygons", {"INPUT": other, "OUTPUT": str(path)})
    files = layer_files(path.parent, path.stem)
    assert path.name in files
    return files


def wgs84_clusters(rows):
    """A WGS 84 point layer from (x, y in the image's CRS, outcome) rows; the outcome
    field 'wealth' is text, as a spreadsheet import may give it."""
    from qgis.core import (
        QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsFeature, QgsField, QgsGeometry, QgsPointXY,
        QgsProject, QgsVectorLayer,
    )
    from qgis.PyQt.QtCore import QVariant

    from generated_world import IMAGE_CRS

    layer = QgsVectorLayer("Point?crs=EPSG:4326", "clusters", "memory")
    layer.dataProvider().addAttributes([QgsField("wealth", QVariant.String), QgsField("hh", QVariant.Int)])
    layer.updateFields()
    to_wgs = QgsCoordinateTransform(
        QgsCoordinateReferenceSystem(IMAGE_CRS.to_wkt()), QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance()
    )
    features = []
    for x, y, outcome in rows:
        feature = QgsFeature(layer.fields())
        feature.setGeometry(QgsGeometry.fromPointXY(to_wgs.transform(QgsPointXY(x, y))))
        feature.setAttributes([outcome, 10])
        features.append(feature)
    layer.dataProvider().addFeatures(features)
    return layer


@pytest.fixture
def model_file(tmp_path):
    """A GENERATED histogram model of three bands, saved as a model file."""
    from poverty_mapper.core.models.model_file import save_model

    path = tmp_path / "generated.povmodel"
    save_model(scene_model(HistogramExtractor(np.array([0.1] * 3), np.array([0.05] * 3))), path)
    return path


def write_screening_scene(path, dtype="uint8", nodata=None, alpha=False, width=1530, height=1370, x0=500_017.0, y0=1_000_011.0):
    """A GENERATED scene of blue, green, red, NIR (and an alpha band): land, a lake and a cloud bank whose
    edges cut through cells, a strip of fill at the left (nodata or alpha 0), NaN in a
    float raster."""
    rng = np.random.default_rng(11)
    scale = {"uint8": 1.0, "uint16": 200.0, "float32": 1 / 255}[dtype]
    data = (np.array([45, 75, 55, 130])[:, None, None] + rng.integers(0, 30, (4, height, width))) * scale
    data[:, 200:700, 150:900] = (np.array([55, 62, 30, 12])[:, None, None] + rng.integers(0, 6, (4, 500, 750))) * scale
    data[:, 800:1250, 700:1400] = np.array([232, 228, 224, 230])[:, None, None] * scale
    data[:, 900:905, :] = np.array([229, 229, 229, 229])[:, None, None] * scale
    if dtype == "uint16":
        data += 5000  # Landsat Level-1 DN: reflectance = DN x 2e-5 - 0.1
    data = data.astype(dtype)
    if dtype == "float32":
        data[:, 1000:1010, 100:1200] = np.nan
    fill = np.zeros((height, width), bool)
    fill[:, :120] = True
    fill[1300:, 600:] = True
    if nodata is not None:
        data[:, fill] = nodata
    bands = list(data) + ([np.where(fill, 0, 255).astype(dtype)] if alpha else [])
    profile = dict(driver="GTiff", width=width, height=height, count=len(bands), dtype=dtype, crs="EPSG:32636",
                   transform=Affine(30.0, 0, x0, 0, -30.0, y0), tiled=True, blockxsize=256, blockysize=256)
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.stack(bands))
        dst.descriptions = ("blue", "green", "red", "nir") + (("alpha",) if alpha else ())
        if alpha:
            dst.colorinterp = [rasterio.enums.ColorInterp.blue, rasterio.enums.ColorInterp.green,
                               rasterio.enums.ColorInterp.red, rasterio.enums.ColorInterp.undefined,
                               rasterio.enums.ColorInterp.alpha]
    return str(path)
