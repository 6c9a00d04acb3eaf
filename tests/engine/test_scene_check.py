"""A scene unlike the model's training imagery is said, not mapped silently: the model
file keeps what its training scenes looked like, a run compares its region with it by a
test calibrated on regions of the training scenes, and beyond the threshold the map's
cells are coded out of domain and their intervals widened. Landscapes, rasters and
models here are GENERATED, except the tests on the real Kinshasa scenes and the bundled
model."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import rasterio
import torch

from poverty_mapper.core.errors import ModelFileError
from poverty_mapper.core.extractors.cnn import CnnExtractor
from poverty_mapper.core.extractors.histogram import HistogramExtractor
from poverty_mapper.core.imagery.radiometry import EIGHT_BIT, REFLECTANCE
from poverty_mapper.core.inference.writer import QUALITY_OUT_OF_DOMAIN, has_estimate
from poverty_mapper.core.models.defaults import BUNDLED_MODELS
from poverty_mapper.core.models.model_file import (
    PovertyModel, Scores, Target, TrainingDomain, load_model, read_model_info, save_model,
)
from poverty_mapper.core.models.scene_check import Z80, check_scene, scene_widening
from poverty_mapper.core.models.scene_domain import (
    SIZE_CLASSES, SceneDomain, TrainingTiles, sample_positions, scene_summary, tile_histograms,
)
from poverty_mapper.core.models.scene_reference import TrainingRaster, scene_domain_of, whole_grid
from poverty_mapper.core.regression.ridge import fit_ridge
from poverty_mapper.core.models.scene_statistics import scene_band_statistics, scene_standardized
from helpers import cnn_model, predict_to, rewrite_model_zip, write_geotiff

TILE = 8
# Three kinds of generated land, each with its colour (reflectance of blue, green, red).
LAND = np.array([[0.05, 0.09, 0.06], [0.07, 0.10, 0.13], [0.12, 0.13, 0.15]])


def landscape(seed: int, size: int = 256) -> np.ndarray:
    """A GENERATED 3-band reflectance landscape: patches of the three kinds of land
    (smooth noise, cut at its terciles) with pixel noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(size // 16 + 2, size // 16 + 2))
    smooth = np.kron(coarse, np.ones((16, 16)))[:size, :size]
    kind = np.digitize(smooth, np.quantile(smooth, [1 / 3, 2 / 3]))
    image = LAND[kind].transpose(2, 0, 1) * rng.uniform(0.85, 1.15, size=(3, size, size))
    return image.astype(np.float32)


def tiles_of(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping TILE-pixel tiles [n, 3, TILE, TILE] and their cells (row, col)."""
    bands, h, w = image.shape
    cells = np.argwhere(np.ones((h // TILE, w // TILE), bool))
    tiles = np.stack([image[:, r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE] for r, c in cells])
    return tiles, cells


LO, HI = np.zeros(3), np.full(3, 0.25)


def training_tiles(image: np.ndarray) -> TrainingTiles:
    tiles, cells = tiles_of(image)
    valid = np.ones((len(tiles), TILE, TILE), bool)
    return TrainingTiles((image.shape[1] // TILE, image.shape[2] // TILE), cells, tile_histograms(tiles, valid, LO, HI))


def region_statistic(domain: SceneDomain, image: np.ndarray) -> float:
    """The statistic of the whole ``image`` as a run samples it."""
    tiles, _ = tiles_of(image)
    picked = tiles[sample_positions(len(tiles))]
    return domain.statistic(scene_summary(tile_histograms(picked, np.ones((len(picked), TILE, TILE), bool), LO, HI)))


def gains(image: np.ndarray, factors=(1.25, 1.0, 0.8)) -> np.ndarray:
    return (image * np.array(factors, np.float32)[:, None, None]).astype(np.float32)


@pytest.fixture(scope="module")
def domain() -> SceneDomain:
    return SceneDomain.of_training([training_tiles(landscape(1)), training_tiles(landscape(2))], LO, HI,
                                   ["generated 1", "generated 2"], estimates=np.linspace(-1, 1, 50))


def test_a_new_scene_of_the_training_kind_passes_and_other_renders_do_not(domain):
    assert domain.facts.tiles == 2 * 32 * 32 and domain.facts.regions > 1000
    threshold = domain.threshold(32 * 32)
    statistics = [region_statistic(domain, landscape(seed)) for seed in (3, 4, 5)]
    assert max(statistics) < threshold
    assert region_statistic(domain, gains(landscape(3))) > threshold  # another colour balance
    assert region_statistic(domain, landscape(3) ** 0.8 * 0.25 ** 0.2) > threshold  # a gamma
    assert domain.threshold(SIZE_CLASSES[0] - 1) is None


def test_the_threshold_holds_the_training_scenes_own_regions(domain):
    """Regions of the training landscapes, drawn afresh: about 1 in 100 lies beyond."""
    rng = np.random.default_rng(7)
    alarms = []
    for seed in (1, 2):
        image = landscape(seed)
        tiles, cells = tiles_of(image)
        for _ in range(150):
            top, left = rng.integers(0, 24, size=2)
            height, width = rng.integers(4, 32 - top + 1), rng.integers(4, 32 - left + 1)
            inside = (cells[:, 0] >= top) & (cells[:, 0] < top + height) & (cells[:, 1] >= left) & (cells[:, 1] < left + width)
            region = tiles[inside][sample_positions(int(inside.sum()))]
            summary = scene_summary(tile_histograms(region, np.ones((len(region), TILE, TILE), bool), LO, HI))
            alarms.append(domain.statistic(summary) > domain.threshold(int(inside.sum())))
    assert np.mean(alarms) <= 0.05


def _model(domain: SceneDomain | None = None) -> PovertyModel:
    rng = np.random.default_rng(0)
    extractor = HistogramExtractor(LAND.mean(0), np.full(3, 0.03))
    pixels = torch.from_numpy(tiles_of(landscape(9, 64))[0])
    x = extractor.extract(pixels, torch.ones(len(pixels), TILE, TILE, dtype=torch.bool)).numpy()
    return PovertyModel(
        "generated model", Target("generated index", "generated units"), ("BLUE", "GREEN", "RED"), "reflectance 0-1",
        30.0, TILE, extractor, fit_ridge(x, rng.normal(size=len(x)), alpha=1.0), radiometry="reflectance",
        domain=TrainingDomain(40, -1.0, 1.0, 0.0, 0.4), scores=Scores(interval_80=0.5), scene_domain=domain,
    )


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> tuple[PovertyModel, object]:
    """A generated model with the scene domain of a generated training raster, and a folder."""
    folder = tmp_path_factory.mktemp("scene_check")
    train = write_geotiff(folder / "train.tif", landscape(1))
    with rasterio.open(train) as ds:
        domain = scene_domain_of(_model(), [TrainingRaster(ds, (1, 2, 3), REFLECTANCE)])
    return _model(domain), folder


def test_a_model_file_keeps_its_training_imagery_and_an_older_one_says_it_has_none(fitted, tmp_path):
    model, _ = fitted
    domain = model.scene_domain
    assert domain.facts.scenes == ("train.tif",) and domain.estimates is not None
    save_model(model, tmp_path / "m.povmodel")
    loaded = load_model(tmp_path / "m.povmodel")
    np.testing.assert_array_equal(loaded.scene_domain.precision, domain.precision)
    np.testing.assert_array_equal(loaded.scene_domain.thresholds, domain.thresholds)
    info = read_model_info(tmp_path / "m.povmodel")
    assert info.training_scenes == domain.facts
    assert "Scene check: each run compares" in info.card() and "train.tif" in info.card()
    save_model(dataclasses.replace(model, scene_domain=None), tmp_path / "old.povmodel")
    assert load_model(tmp_path / "old.povmodel").scene_domain is None
    assert "Scene check: not available" in read_model_info(tmp_path / "old.povmodel").card()
    rewrite_model_zip(tmp_path / "m.povmodel", tmp_path / "bad.povmodel",
                      change_meta=lambda meta: meta.update(bands=["BLUE", "GREEN"], band_indexes=[1, 2]))
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "bad.povmodel")


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.tags()


def test_a_scene_like_the_training_imagery_maps_as_before(fitted):
    model, folder = fitted
    scene = write_geotiff(folder / "like.tif", landscape(4))
    checked = predict_to(scene, folder / "checked.tif", model)
    plain = predict_to(scene, folder / "plain.tif", dataclasses.replace(model, scene_domain=None))
    assert (folder / "checked.tif").read_bytes() == (folder / "plain.tif").read_bytes()
    assert not any("does not look like" in n for n in checked.notes)
    assert any("scene check is not available" in n for n in plain.notes)


def test_a_scene_rendered_otherwise_is_said_coded_out_of_domain_and_widened(fitted):
    model, folder = fitted
    shifted = write_geotiff(folder / "shifted.tif", gains(landscape(4)))
    result = predict_to(shifted, folder / "shifted_map.tif", model)
    bands, tags = _read(folder / "shifted_map.tif")
    estimated = has_estimate(bands[1])
    assert estimated.sum() == result.n_estimated > 0
    assert np.all(bands[1][estimated] == QUALITY_OUT_OF_DOMAIN) and result.n_out_of_domain == result.n_estimated
    widening = scene_widening(model)
    assert widening == pytest.approx(Z80 * 0.4)
    np.testing.assert_allclose(bands[2][estimated], np.hypot(0.5, widening), rtol=1e-6)
    assert "unlike the training imagery" in tags["SCENE_CHECK"]
    assert sum("does not look like the imagery the model was trained on" in n for n in result.notes) == 1


def test_the_command_line_prints_the_scene_note(fitted, capsys):
    from poverty_mapper import cli

    model, folder = fitted
    save_model(model, folder / "cli.povmodel")
    shifted = write_geotiff(folder / "cli_shifted.tif", gains(landscape(5)))
    assert cli.main(["predict", str(shifted), str(folder / "cli_map.tif"), "--model", str(folder / "cli.povmodel"),
                     "--device", "cpu"]) == 0
    assert "Note: This scene does not look like the imagery the model was trained on" in capsys.readouterr().err


def test_a_region_too_small_is_not_compared_and_says_so(fitted):
    model, folder = fitted
    small = write_geotiff(folder / "small.tif", gains(landscape(4, 24)))
    result = predict_to(small, folder / "small_map.tif", model)
    bands, tags = _read(folder / "small_map.tif")
    assert "SCENE_CHECK" not in tags and not np.any(bands[1] == QUALITY_OUT_OF_DOMAIN)
    assert any("too few (under 16) to compare the scene" in n for n in result.notes)


def test_the_bundled_model_knows_its_training_renders(real_data):
    """On the real 2013 render: its middle region passes; the same region with the red
    and blue gains of another colour balance does not."""
    model = load_model(BUNDLED_MODELS["kinshasa_cnn"])
    assert model.scene_domain is not None and len(model.scene_domain.facts.scenes) == 2
    with rasterio.open(real_data / "kinshasa" / "kinshasa_landsat8_20130728_rgba_38m.tif") as ds:
        raster = TrainingRaster(ds, (1, 2, 3), EIGHT_BIT)
        grid = whole_grid(raster, model)
        mask = np.zeros(grid.shape, bool)
        mask[15:40, 15:40] = True
        plain = check_scene(ds, (1, 2, 3), EIGHT_BIT, model, model, grid, mask, 0.5)
        tables = [np.clip(np.rint(np.arange(256) * g), 0, 255).astype(np.uint8) for g in (0.8, 1.0, 1.25)]
        shifted = check_scene(ds, (1, 2, 3), EIGHT_BIT, model, model, grid, mask, 0.5,
                              lambda dn: np.stack([tables[b][dn[b]] for b in range(3)]))
    assert not plain.alarm and shifted.alarm
    assert plain.statistic < plain.threshold < shifted.statistic


def test_a_scene_standardized_for_a_cnn_is_compared_as_the_network_sees_it(tmp_path):
    """A CNN model of 8-bit renders maps reflectance standardized by the scene's own
    statistics; the check compares what the network then sees (the standardized values in
    the training imagery's units), not the reflectance as it is."""
    render = np.clip(np.rint(landscape(1, 384) / 0.25 * 255), 0, 255).astype(np.uint8)
    values = render[::-1].reshape(3, -1) / 255.0  # red, green, blue, as the model reads them
    network = cnn_model().extractor.network  # its input standardized by the render's own statistics
    trained = dataclasses.replace(cnn_model(), band_indexes=(3, 2, 1),
                                  extractor=CnnExtractor(network, values.mean(1), values.std(1)))
    with rasterio.open(write_geotiff(tmp_path / "render.tif", render)) as ds:
        trained = dataclasses.replace(trained, scene_domain=scene_domain_of(trained, [TrainingRaster(ds, (3, 2, 1), EIGHT_BIT)]))
    gain, offset = np.array([0.9, 1.1, 1.0]), np.array([0.01, 0.0, 0.02])
    reflectance = (landscape(4, 384) * gain[:, None, None] + offset[:, None, None]).astype(np.float32)
    with rasterio.open(write_geotiff(tmp_path / "reflectance.tif", reflectance)) as ds:
        grid = whole_grid(TrainingRaster(ds, (3, 2, 1), REFLECTANCE), trained)
        cells = np.ones(grid.shape, bool)
        mean, std, _ = scene_band_statistics(ds, (3, 2, 1), REFLECTANCE, trained, grid, cells)
        used = scene_standardized(trained, mean, std)
        seen = check_scene(ds, (3, 2, 1), REFLECTANCE, trained, used, grid, cells, 0.5)
        as_is = check_scene(ds, (3, 2, 1), REFLECTANCE, trained, trained, grid, cells, 0.5)
    assert as_is.alarm and seen.statistic < as_is.statistic / 5


def test_a_card_speaks_of_the_scene_check_only_for_models_that_read_imagery():
    from poverty_mapper.core.extractors.registry import EXTRACTOR_KINDS, KINDS_READING_NO_IMAGERY, extractor_class

    for kind in EXTRACTOR_KINDS:
        assert getattr(extractor_class(kind), "reads_imagery", True) == (kind not in KINDS_READING_NO_IMAGERY), kind
    cards = {key: read_model_info(path).card() for key, path in BUNDLED_MODELS.items() if path.is_file()}
    assert "Scene check: each run compares" in cards["kinshasa_cnn"]
    assert "Scene check: not available" in cards["rgb_histogram"]
    assert all("Scene check" not in card for key, card in cards.items() if key.startswith("africa_"))
