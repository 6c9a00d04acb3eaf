"""EfficientNet-Lite0 started from ImageNet weights, as the proxy network (Jean et al.'s
"reuse the lower layers"). Images here are GENERATED (tests/generated_world.py); the
ImageNet weights are the real ones of the installed package."""
from __future__ import annotations

import socket

import numpy as np
import pytest
import rasterio
import torch

from poverty_mapper.core.errors import PovertyMapperError
from poverty_mapper.core.extractors.cnn import CnnExtractor
from poverty_mapper.core.extractors.efficientnet import N_BLOCKS, EfficientNetProxy, adapt_stem, same_padding
from poverty_mapper.core.extractors.imagenet import imagenet_state_dict, imagenet_weights_path
from poverty_mapper.core.models.model_file import PovertyModel, load_model, save_model
from poverty_mapper.core.training.proxy import ProxyTrainingConfig, held_out_scores, train_proxy
from poverty_mapper.core.training.proxy_tiles import class_edges, light_classes, spatial_block_split
from poverty_mapper.core.training.setup import data_bands


@pytest.fixture(scope="module")
def imagenet():
    return imagenet_state_dict()


def test_imagenet_weights_come_from_the_installed_package_without_network(imagenet, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert imagenet_weights_path().is_file()
    again = imagenet_state_dict()
    assert again.keys() == imagenet.keys() and len(again) > 200


def test_imagenet_weights_are_loaded_into_every_lower_layer(imagenet):
    network = EfficientNetProxy(3, 3)
    random_start = {k: v.clone() for k, v in network.backbone.state_dict().items()}
    loaded = network.load_imagenet(imagenet)
    own = network.backbone.state_dict()
    assert len(loaded) == len([k for k in imagenet if not k.startswith("_fc.")])
    for name in loaded:
        assert torch.equal(own[name], imagenet[name]), name
    assert not torch.equal(own["_blocks.5._depthwise_conv.weight"], random_start["_blocks.5._depthwise_conv.weight"])


def test_more_bands_start_from_the_mean_of_the_rgb_filters(imagenet):
    rgb = imagenet["_conv_stem.weight"]
    four = adapt_stem(rgb, 4)
    assert four.shape == (32, 4, 3, 3)
    torch.testing.assert_close(four[:, :3], rgb * 0.75)
    torch.testing.assert_close(four[:, 3], rgb.mean(1) * 0.75)
    # An image whose bands are all equal meets the same stem response as with RGB alone.
    one = adapt_stem(rgb, 1)
    torch.testing.assert_close(one[:, 0], rgb.sum(1))


def test_same_padding_follows_tensorflow():
    for size in (15, 16, 112, 113):
        x = torch.zeros(1, 1, size, size)
        for kernel, stride in ((3, 2), (5, 2), (3, 1), (5, 1)):
            padded = same_padding(x, kernel, stride)
            out = (padded.shape[-1] - kernel) // stride + 1
            assert out == -(-size // stride)
            # The extra row and column go to the bottom and right, as in TensorFlow.
            assert padded.shape[-1] - size in (kernel - 1, max(kernel - stride, 0), kernel - 1 - (size % 2 == 0))


def test_folded_inference_network_gives_the_same_features(imagenet):
    torch.manual_seed(0)
    network = EfficientNetProxy(3, 3)
    network.load_imagenet(imagenet)
    network.eval()
    x = torch.randn(4, 3, 64, 64) * 0.5
    with torch.inference_mode():
        torch.testing.assert_close(network.fused_features()(x), network.features(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size", [64, 57])  # odd sizes pad "same" unevenly at stride 2
def test_the_cpu_path_with_fused_relu6_gives_the_features_of_the_plain_network(imagenet, size):
    torch.manual_seed(0)
    network = EfficientNetProxy(3, 3)
    network.load_imagenet(imagenet)
    network.eval()
    means, stds = np.array([0.3, 0.35, 0.4]), np.array([0.1, 0.12, 0.15])
    fused, plain = CnnExtractor(network, means, stds), CnnExtractor(network, means, stds, fused=False)
    pixels = torch.rand(3, 3, size, size)
    valid = torch.ones(3, size, size, dtype=torch.bool)
    valid[0, :7] = False
    with torch.inference_mode():
        expected = plain.extract(pixels, valid)
        torch.testing.assert_close(fused.extract(pixels, valid), expected, rtol=1e-4, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 where oneDNN runs it, else float32
            in_bf16 = fused.extract(pixels, valid)
            # the path before: the folded network under bf16 autocast
            before = network.fused_features()(fused.standardize(pixels, valid)).float()
    assert [k for k in fused._cpu_networks if k[0] == "cpu_inference"]  # the fused path ran
    scale = expected.abs().max()
    assert (in_bf16 - expected).abs().max() <= 1.5 * (before - expected).abs().max() + 1e-3 * scale


def _train_steps(network: EfficientNetProxy, steps: int = 3) -> None:
    network.train()
    optimiser = torch.optim.Adam([p for p in network.parameters() if p.requires_grad], lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x = torch.randn(8, 3, 32, 32, generator=generator)
        loss = torch.nn.functional.cross_entropy(network(x), torch.randint(0, 3, (8,), generator=generator))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def test_frozen_blocks_keep_weights_and_statistics_through_training(imagenet):
    network = EfficientNetProxy(3, 3, frozen_blocks=4)
    network.load_imagenet(imagenet)
    before = {k: v.clone() for k, v in network.backbone.state_dict().items()}
    _train_steps(network)
    after = network.backbone.state_dict()
    frozen = [k for k in before if k.startswith(("_conv_stem", "_bn0", *(f"_blocks.{i}." for i in range(4))))]
    thawed = [k for k in before if k.startswith("_blocks.4.") and "num_batches" not in k]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in thawed)
    with pytest.raises(ValueError, match="frozen_blocks"):
        EfficientNetProxy(3, 3, frozen_blocks=N_BLOCKS + 1)


def test_model_file_round_trips_bit_exactly_and_needs_no_package(imagenet, tmp_path):
    network = EfficientNetProxy(4, 3, frozen_blocks=2)
    network.load_imagenet(imagenet)
    tiles = torch.rand(2, 4, 32, 32)
    extractor = CnnExtractor(network, np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.5, 0.6, 0.7, 0.8]))
    model = PovertyModel(name="generated", target=None, bands=("RED", "GREEN", "BLUE", "NIR"),
                         input_scaling="reflectance", pixel_size_m=30.0, tile_size_px=32,
                         extractor=extractor, regressor=None)
    save_model(model, tmp_path / "m.povmodel")
    loaded = load_model(tmp_path / "m.povmodel").extractor
    assert loaded.network.config == network.config
    original, restored = network.state_dict(), loaded.network.state_dict()
    assert original.keys() == restored.keys()
    for name, value in original.items():
        assert torch.equal(value, restored[name]), name
    valid = torch.ones(2, 32, 32, dtype=torch.bool)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.extract(tiles, valid), extractor.extract(tiles, valid))
    # The same bytes again: a model file is a pure function of the model.
    save_model(load_model(tmp_path / "m.povmodel"), tmp_path / "again.povmodel")
    assert (tmp_path / "m.povmodel").read_bytes() == (tmp_path / "again.povmodel").read_bytes()


def test_dark_then_quantile_classes_on_mostly_dark_lights():
    rng = np.random.default_rng(0)
    dark = rng.normal(20, 2, 930)  # a renderer's faint terrain, as in Black Marble composites
    lit = rng.uniform(40, 255, 70)
    lights = np.concatenate([dark, lit])
    edges = class_edges(lights, 3)  # auto: dark then quantiles here
    assert np.array_equal(edges, class_edges(lights, 3, "dark_then_quantiles"))
    labels = light_classes(lights, edges)
    assert np.all(labels[:930][dark < 26] == 0) and np.all(labels[930:] >= 1)
    counts = np.bincount(labels[930:])
    assert abs(int(counts[1]) - int(counts[2])) <= 2  # the lit tiles split in halves
    # Plain quantiles on the same lights put dark tiles in every class.
    quantile_labels = light_classes(lights, class_edges(lights, 3, "quantiles"))
    assert np.bincount(quantile_labels[:930]).size == 3
    with pytest.raises(PovertyMapperError, match="lit"):
        class_edges(np.concatenate([dark, [200.0]]), 4, "dark_then_quantiles")
    # Lights spread over their range (no dark majority): auto takes plain quantiles.
    spread = rng.uniform(0, 60, 1000)
    assert np.array_equal(class_edges(spread, 3), class_edges(spread, 3, "quantiles"))


def test_the_same_place_on_two_dates_falls_on_one_side_of_the_split():
    rows, cols = np.divmod(np.arange(30 * 30), 30)
    gx, gy = np.concatenate([cols, cols]) + 0.5, np.concatenate([rows, rows]) + 0.5
    train, val = spatial_block_split(gx, gy, block=4, val_fraction=0.2, seed=3)
    side = np.full(gx.size, -1)
    side[train], side[val] = 0, 1
    both = side[:900] >= 0
    assert np.array_equal(side[:900][both], side[900:][both])
    assert set(train).isdisjoint(val) and val.size > 0


def test_held_out_scores_beside_chance_and_majority():
    confusion = np.array([[80, 5, 5], [4, 3, 3], [0, 2, 8]])
    scores = held_out_scores(confusion, train_counts=np.array([300, 20, 20]))
    assert scores["accuracy"] == round(91 / 110, 4)
    assert scores["balanced_accuracy"] == round((80 / 90 + 3 / 10 + 8 / 10) / 3, 4)
    assert scores["chance"] == round(1 / 3, 4) and scores["majority_class_accuracy"] == round(90 / 110, 4)


def _with_alpha(world, path):
    """The generated image plus an alpha band hiding its left half (255 valid, 0 not)."""
    with rasterio.open(world.image_path) as src:
        profile, data = src.profile, src.read()
    alpha = np.full(data.shape[1:], 255, np.uint8)
    alpha[:, : data.shape[2] // 2] = 0
    profile.update(count=data.shape[0] + 1, dtype="uint16", nodata=None, photometric="RGB", alpha="YES")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.concatenate([data.astype("uint16"), alpha[None].astype("uint16")]))
    return path


def test_an_alpha_band_is_validity_never_a_model_band(small_world, tmp_path):
    path = _with_alpha(small_world, tmp_path / "with_alpha.tif")
    with rasterio.open(path) as ds:
        assert data_bands(ds) == tuple(range(1, ds.count))
    result = train_proxy(ProxyTrainingConfig(str(path), str(small_world.lights_path), str(tmp_path / "m.povmodel"),
                                             tile_size_m=480.0, epochs=1, architecture="small_cnn",
                                             binning="quantiles", block_size_tiles=2, device="cpu",
                                             min_valid_fraction=0.9))
    model = load_model(tmp_path / "m.povmodel")
    assert len(model.bands) == 3 and model.band_indexes == (1, 2, 3)
    # Only the right half (alpha 255) gives tiles: 8 x 16 of the 16 x 16 grid of 480 m tiles.
    assert result.report["tiles"]["total"] == 8 * 16


def test_two_scenes_train_together(small_world, tmp_path):
    one = train_proxy(ProxyTrainingConfig(str(small_world.image_path), str(small_world.lights_path),
                                          str(tmp_path / "one.povmodel"), tile_size_m=480.0, epochs=1,
                                          architecture="small_cnn", binning="quantiles", block_size_tiles=2))
    two = train_proxy(ProxyTrainingConfig(str(small_world.image_path), str(small_world.lights_path),
                                          str(tmp_path / "two.povmodel"), tile_size_m=480.0, epochs=1,
                                          more_image_paths=(str(small_world.image_path),),
                                          architecture="small_cnn", binning="quantiles", block_size_tiles=2))
    assert two.report["tiles"]["total"] == 2 * one.report["tiles"]["total"]
    assert two.report["tiles"]["val"] == 2 * one.report["tiles"]["val"]
    assert len(two.report["scenes"]) == 2


def test_no_epoch_is_a_clear_error(small_world, tmp_path):
    with pytest.raises(PovertyMapperError, match="at least one epoch"):
        train_proxy(ProxyTrainingConfig(str(small_world.image_path), str(small_world.lights_path),
                                        str(tmp_path / "m.povmodel"), epochs=0))
    assert not (tmp_path / "m.povmodel").exists()


def test_training_is_deterministic_for_a_seed(small_world, tmp_path):
    def train(name):
        train_proxy(ProxyTrainingConfig(str(small_world.image_path), str(small_world.lights_path),
                                        str(tmp_path / name), tile_size_m=960.0, epochs=1, batch_size=16,
                                        block_size_tiles=2, frozen_blocks=10, binning="quantiles", device="cpu"))
        return (tmp_path / name).read_bytes()

    assert train("a.povmodel") == train("b.povmodel")
