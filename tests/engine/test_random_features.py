"""Random convolutional (MOSAIKS) features, on generated tiles only: agreement with a
plain conv2d reference, determinism, the model-file round trip, the handling of
invalid pixels, where the filters come from, and that the features tell two
generated textures apart. None of this says anything about accuracy on real data."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from poverty_mapper.core.extractors.registry import extractor_class, extractor_from_spec
from poverty_mapper.core.models.model_file import PovertyModel, Target, load_model, save_model
from poverty_mapper.core.extractors.random_conv import RandomConvExtractor
from poverty_mapper.core.regression.ridge import fit_ridge

BANDS = ("BLUE", "GREEN", "RED")


def generated_tiles(n=6, size=24, seed=0, invalid_fraction=0.1):
    """Generated reflectance tiles [n, 3, size, size] in 0..0.4 and a random validity mask."""
    rng = np.random.default_rng(seed)
    tiles = rng.uniform(0.0, 0.4, (n, 3, size, size)).astype(np.float32)
    valid = rng.random((n, size, size)) >= invalid_fraction
    return tiles, valid


def clean_positions(valid: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[N, H, W]: positions whose receptive field holds no invalid pixel of the tile
    (counted by a convolution with ones; zero padding, so the border is not invalid)."""
    invalid = (~valid)[:, None].double()
    ones = torch.ones(1, 1, patch_size, patch_size, dtype=torch.float64)
    return F.conv2d(invalid, ones, padding=patch_size // 2)[:, 0] == 0


def reference_features(
    ex: RandomConvExtractor, pixels: torch.Tensor, valid: torch.Tensor, positions: torch.Tensor | None = None
) -> torch.Tensor:
    """The definition, written the slow way: full conv2d, both signs, mean over the
    ``positions`` (by default those whose receptive field is wholly valid)."""
    mean = torch.tensor(ex.band_means, dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(ex.band_stds, dtype=torch.float64).view(1, -1, 1, 1)
    z = torch.where(valid[:, None], (pixels.double() - mean) / std, torch.zeros(()).double())
    c = F.conv2d(z, torch.from_numpy(ex.filters).double(), padding=ex.patch_size // 2, stride=ex.stride)
    act = torch.cat([(c - ex.bias).relu(), (-c - ex.bias).relu()], dim=1)
    positions = clean_positions(valid, ex.patch_size) if positions is None else positions
    m = positions[:, None, :: ex.stride, :: ex.stride].double()
    return ((act * m).sum((2, 3)) / m.sum((2, 3)).clamp(min=1)).float()


def test_registered_and_n_features():
    assert extractor_class("random") is RandomConvExtractor
    tiles, valid = generated_tiles()
    ex = RandomConvExtractor.sample(tiles, valid, n_filters=10, seed=0)
    assert ex.kind == "random"
    assert ex.filters.shape == (10, 3, 3, 3)
    assert ex.n_features == 20
    feats = ex.extract(torch.from_numpy(tiles), torch.from_numpy(valid))
    assert feats.shape == (len(tiles), 20) and feats.dtype == torch.float32
    assert torch.all(feats >= 0)


@pytest.mark.parametrize("stride,patch_size", [(1, 3), (2, 3), (1, 5), (3, 1)])
def test_matches_conv2d_reference(stride, patch_size):
    tiles, valid = generated_tiles(n=3, size=21, seed=1, invalid_fraction=0.3)
    ex = RandomConvExtractor.sample(
        tiles, np.ones_like(valid), n_filters=7, patch_size=patch_size, seed=2, stride=stride
    )
    pixels, mask = torch.from_numpy(tiles), torch.from_numpy(valid)
    with torch.inference_mode():
        got = ex.extract(pixels, mask)
    torch.testing.assert_close(got, reference_features(ex, pixels, mask), rtol=1e-4, atol=1e-5)


def test_cpu_row_blocks_agree(monkeypatch):
    """Tiles larger than one block of rows give the same features as one block."""
    import poverty_mapper.core.extractors.random_conv as rf

    tiles, valid = generated_tiles(n=2, size=40, seed=3, invalid_fraction=0.2)
    ex = RandomConvExtractor.sample(tiles, valid, n_filters=6, seed=0)
    pixels, mask = torch.from_numpy(tiles), torch.from_numpy(valid)
    whole = ex.extract(pixels, mask)
    monkeypatch.setattr(rf, "_CPU_BLOCK_ROWS", 97)  # 1600 positions: 17 blocks, the last partial
    torch.testing.assert_close(ex.extract(pixels, mask), whole, rtol=1e-5, atol=1e-6)


def test_batched_steps_agree(monkeypatch):
    """The GPU way of stepping (several whole tiles per product) gives the same features."""
    tiles, valid = generated_tiles(n=5, size=20, seed=13, invalid_fraction=0.2)
    ex = RandomConvExtractor.sample(tiles, valid, n_filters=6, seed=0)
    pixels, mask = torch.from_numpy(tiles), torch.from_numpy(valid)
    one_by_one = ex.extract(pixels, mask)
    monkeypatch.setattr(ex, "_steps", lambda device, positions: (2, positions))
    torch.testing.assert_close(ex.extract(pixels, mask), one_by_one, rtol=1e-5, atol=1e-6)


def test_deterministic_for_a_seed():
    tiles, valid = generated_tiles()
    a = RandomConvExtractor.sample(tiles, valid, n_filters=12, seed=7)
    b = RandomConvExtractor.sample(tiles, valid, n_filters=12, seed=7)
    c = RandomConvExtractor.sample(tiles, valid, n_filters=12, seed=8)
    assert np.array_equal(a.filters, b.filters)
    assert not np.array_equal(a.filters, c.filters)
    pixels, mask = torch.from_numpy(tiles), torch.from_numpy(valid)
    assert torch.equal(a.extract(pixels, mask), b.extract(pixels, mask))
    assert torch.equal(a.extract(pixels, mask), a.extract(pixels, mask))


def test_band_statistics_estimated_from_valid_pixels_only():
    tiles, valid = generated_tiles(seed=4, invalid_fraction=0.1)
    tiles = np.where(valid[:, None], tiles, np.float32(50.0))  # a generated fill value
    ex = RandomConvExtractor.sample(tiles, valid, n_filters=4, seed=0)
    values = np.moveaxis(tiles, 1, 0)[:, valid].astype(np.float64)
    np.testing.assert_allclose(ex.band_means, values.mean(1))
    np.testing.assert_allclose(ex.band_stds, values.std(1))


def test_filters_come_from_fully_valid_patches_only():
    tiles, valid = generated_tiles(n=4, size=20, seed=5, invalid_fraction=0.15)
    tiles = np.where(valid[:, None], tiles, np.float32(99.0))  # generated fill value
    means, stds = np.array([0.2, 0.2, 0.2]), np.array([0.1, 0.1, 0.1])
    ex = RandomConvExtractor.sample(tiles, valid, n_filters=8, seed=0, band_means=means, band_stds=stds)
    reflectance = ex.filters * stds[None, :, None, None] + means[None, :, None, None]
    assert reflectance.max() < 0.4 + 1e-5 and reflectance.min() > -1e-5

    # One tile, valid only in a 4x4 block: exactly four 3x3 locations exist.
    tiles, _ = generated_tiles(n=1, size=12, seed=6)
    valid = np.zeros((1, 12, 12), bool)
    valid[0, 5:9, 2:6] = True
    ex = RandomConvExtractor.sample(tiles, valid, n_filters=4, seed=3, band_means=means, band_stds=stds)
    expected = {
        ((tiles[0, :, i : i + 3, j : j + 3] - 0.2) / 0.1).astype(np.float32).tobytes()
        for i in (5, 6)
        for j in (2, 3)
    }
    got = {f.tobytes() for f in ex.filters}
    assert len(got) == 4
    for f in ex.filters:
        assert any(np.allclose(f, np.frombuffer(e, np.float32).reshape(3, 3, 3), atol=1e-6) for e in expected)
    with pytest.raises(ValueError, match="only 4 fully valid"):
        RandomConvExtractor.sample(tiles, valid, n_filters=5, seed=3, band_means=means, band_stds=stds)


def test_non_finite_pixels_are_never_sampled():
    tiles, valid = generated_tiles(n=1, size=10, seed=7, invalid_fraction=0.0)
    tiles[0, 1, 4, 4] = np.nan  # marked valid, but not a number
    ex = RandomConvExtractor.sample(tiles, valid, n_filters=55, seed=0)  # 8x8=64 locations, 9 touch it
    assert np.all(np.isfinite(ex.filters))
    with pytest.raises(ValueError):
        RandomConvExtractor.sample(tiles, valid, n_filters=56, seed=0)


@pytest.mark.parametrize("stride", [1, 2])
def test_invalid_pixels_never_feed_a_feature(stride):
    """A tile whose left half is invalid (holding generated garbage) gives the mean
    response of the clean tile over the positions whose 3x3 field lies wholly in the
    right half: the invalid pixels enter neither as values nor as zero neighbours."""
    tiles, _ = generated_tiles(n=3, size=32, seed=8)
    all_valid = np.ones((3, 32, 32), bool)
    ex = RandomConvExtractor.sample(tiles, all_valid, n_filters=16, seed=1, stride=stride)
    garbage = tiles.copy()
    garbage[:, :, :, :16] = np.random.default_rng(9).choice([np.nan, np.inf, -5.0, 1e6], size=(3, 3, 32, 16))
    valid = all_valid.copy()
    valid[:, :, :16] = False
    away = torch.zeros(3, 32, 32, dtype=torch.bool)
    away[:, :, 17:] = True  # column 16 sees column 15 (invalid)
    with torch.inference_mode():
        f_masked = ex.extract(torch.from_numpy(garbage), torch.from_numpy(valid))
        expected = reference_features(ex, torch.from_numpy(tiles), torch.ones(3, 32, 32, dtype=torch.bool), away)
        zero_neighbours = reference_features(ex, torch.from_numpy(tiles), torch.from_numpy(valid), torch.from_numpy(valid))
    assert torch.all(torch.isfinite(f_masked))
    torch.testing.assert_close(f_masked, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(f_masked, zero_neighbours, rtol=1e-3, atol=1e-4)  # the old way differs


def test_scattered_invalid_pixels_drop_their_neighbourhoods():
    tiles, _ = generated_tiles(n=1, size=12, seed=12)
    ex = RandomConvExtractor.sample(tiles, np.ones((1, 12, 12), bool), n_filters=4, seed=0)
    valid = torch.ones(1, 12, 12, dtype=torch.bool)
    valid[0, 5, 5] = False
    kept = ex._clean_positions(valid)[0]
    assert int((~kept).sum()) == 9 and not kept[4:7, 4:7].any()
    valid[0, 0, 0] = False  # a corner: its field reaches outside the tile, which is no gap
    assert int((~ex._clean_positions(valid)[0]).sum()) == 9 + 4


def test_tile_without_valid_pixels_gives_zeros():
    tiles, valid = generated_tiles(n=2, size=16)
    ex = RandomConvExtractor.sample(tiles, valid, n_filters=5, seed=0)
    mask = torch.from_numpy(valid).clone()
    mask[1] = False
    feats = ex.extract(torch.from_numpy(tiles), mask)
    assert torch.all(feats[1] == 0) and torch.any(feats[0] > 0)
    assert ex.extract(torch.zeros(0, 3, 16, 16), torch.zeros(0, 16, 16, dtype=torch.bool)).shape == (0, 10)


def test_wrong_inputs_are_refused():
    tiles, valid = generated_tiles(n=2, size=16)
    ex = RandomConvExtractor.sample(tiles, valid, n_filters=5, seed=0)
    with pytest.raises(ValueError, match="bands"):
        ex.extract(torch.zeros(1, 4, 16, 16), torch.ones(1, 16, 16, dtype=torch.bool))
    with pytest.raises(ValueError):
        RandomConvExtractor(np.zeros((4, 3, 2, 2)), [0, 0, 0], [1, 1, 1])  # even patch
    with pytest.raises(ValueError):
        RandomConvExtractor(np.zeros((4, 2, 3, 3)), [0, 0, 0], [1, 1, 1])  # band count
    with pytest.raises(ValueError):
        RandomConvExtractor(np.zeros((4, 3, 3, 3)), [0, 0, 0], [1, 0, 1])  # std 0
    with pytest.raises(ValueError):
        RandomConvExtractor.sample(tiles, valid, n_filters=5, patch_size=4)


def _generated_model(extractor: RandomConvExtractor, x: np.ndarray, y: np.ndarray) -> PovertyModel:
    return PovertyModel(
        name="generated random-features test model",
        target=Target(name="generated outcome", unit="generated units"),
        bands=BANDS,
        input_scaling="reflectance 0-1",
        pixel_size_m=30.0,
        tile_size_px=24,
        extractor=extractor,
        regressor=fit_ridge(x, y, alpha=1.0),
        provenance={"data": "generated tiles (test only)"},
    )


def test_model_file_round_trip(tmp_path):
    tiles, valid = generated_tiles(n=20, size=24, seed=10, invalid_fraction=0.2)
    ex = RandomConvExtractor.sample(tiles, valid, n_filters=16, seed=3, bias=0.5, stride=2)
    pixels, mask = torch.from_numpy(tiles), torch.from_numpy(valid)
    with torch.inference_mode():
        x = ex.extract(pixels, mask).double().numpy()
    y = np.random.default_rng(0).normal(size=len(x))  # generated outcome
    path = save_model(_generated_model(ex, x, y), tmp_path / "generated.povmodel")
    loaded = load_model(path)

    assert isinstance(loaded.extractor, RandomConvExtractor)
    assert np.array_equal(loaded.extractor.filters, ex.filters)
    assert loaded.extractor.bias == 0.5 and loaded.extractor.stride == 2
    assert loaded.extractor.info == ex.info and loaded.extractor.info["seed"] == 3
    with torch.inference_mode():
        again = loaded.extractor.extract(pixels, mask)
    assert torch.equal(again, ex.extract(pixels, mask))
    np.testing.assert_array_equal(loaded.regressor.predict(again.double().numpy()), loaded.regressor.predict(x))

    spec, arrays = ex.to_spec()
    assert spec["kind"] == "random" and spec["n_features"] == 32
    assert torch.equal(extractor_from_spec(spec, arrays).extract(pixels, mask), again)
    with pytest.raises(ValueError, match="features"):
        extractor_from_spec(dict(spec, n_features=31), arrays)


def generated_textures(n, size, rng):
    """Generated tiles of two textures with the same per-band value distribution:
    label 1 = stripes (a random period and direction), label 0 = the same values shuffled
    (noise)."""
    tiles = np.empty((n, 3, size, size), np.float32)
    labels = np.arange(n) % 2
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        period = rng.uniform(4.0, 8.0)
        angle = rng.uniform(0, np.pi)
        wave = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period + rng.uniform(0, 2 * np.pi))
        img = 0.2 + 0.08 * wave[None] * np.array([1.0, 0.8, 0.6])[:, None, None]
        img = img + rng.normal(0, 0.01, img.shape)
        if labels[i] == 0:
            img = img.reshape(3, -1)[:, rng.permutation(size * size)].reshape(3, size, size)
        tiles[i] = img
    return tiles, labels


def test_features_separate_generated_textures():
    rng = np.random.default_rng(11)
    tiles, labels = generated_textures(80, 24, rng)
    valid = rng.random((80, 24, 24)) >= 0.1
    train, test = np.arange(80) < 50, np.arange(80) >= 50
    ex = RandomConvExtractor.sample(tiles[train], valid[train], n_filters=32, seed=0)
    with torch.inference_mode():
        x = ex.extract(torch.from_numpy(tiles), torch.from_numpy(valid)).double().numpy()
    ridge = fit_ridge(x[train], labels[train], alpha=1.0)
    accuracy = np.mean((ridge.predict(x[test]) > 0.5) == labels[test])
    assert accuracy >= 0.95
