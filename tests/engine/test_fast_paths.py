"""The fast paths of the extractors give the same features as the plain ones, on
GENERATED digital numbers (invalid pixels hold DN 0, as the tile reader writes them)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from poverty_mapper.core.extractors.cnn import CnnExtractor, ProxyCNN, cpu_runs_bf16_convolutions
from poverty_mapper.core.extractors.histogram import HistogramExtractor
from poverty_mapper.core.imagery.radiometry import EIGHT_BIT, LANDSAT_C1_L1, Radiometry

SIGNED = Radiometry("signed_test", "generated signed DN", 1e-4, 0.1)
CASES = [(np.uint8, EIGHT_BIT, 0, 256), (np.uint16, LANDSAT_C1_L1, 0, 30_000), (np.int16, SIGNED, -3000, 8000)]


def _generated_dn(dtype, low, high, seed=0, n=4, size=48):
    rng = np.random.default_rng(seed)
    dn = rng.integers(low, high, (n, 3, size, size)).astype(dtype)
    valid = rng.random((n, size, size)) > 0.25
    valid[-1] = False  # a tile with nothing valid
    for i in range(n):
        dn[i][:, ~valid[i]] = 0
    return torch.from_numpy(dn), torch.from_numpy(valid)


def _reflectance(dn, valid, radiometry):
    refl = radiometry.apply_torch(dn)
    return torch.where(valid.unsqueeze(1), refl, torch.zeros(()))


@pytest.mark.parametrize("dtype,radiometry,low,high", CASES)
@pytest.mark.parametrize("transform", ["frequency", "sqrt"])
def test_histogram_from_dn_equals_float_path(dtype, radiometry, low, high, transform):
    extractor = HistogramExtractor(np.array([0.06, 0.09, 0.1]), np.array([0.024, 0.032, 0.052]), transform=transform)
    dn, valid = _generated_dn(dtype, low, high)
    fast = extractor.extract_dn(dn, valid, radiometry)
    plain = extractor.extract(_reflectance(dn, valid, radiometry), valid)
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-6)
    sums = (fast**2 if transform == "sqrt" else fast).view(len(dn), 3, -1).sum(2)
    torch.testing.assert_close(sums[:-1], torch.ones_like(sums[:-1]), rtol=1e-5, atol=1e-5)  # frequencies per band
    assert torch.all(fast[-1] == 0)  # nothing valid, nothing counted


@pytest.fixture(scope="module")
def trained_looking_cnn():
    torch.manual_seed(0)
    network = ProxyCNN(3, 3, width=8, feature_dim=16)
    network.train()
    with torch.no_grad():  # give batch norm non-trivial running statistics
        network(torch.randn(16, 3, 48, 48) * 2 + 1)
    return network.eval()


@pytest.mark.parametrize("dtype,radiometry,low,high", CASES)
@pytest.mark.parametrize("fused", [True, False])
def test_cnn_from_dn_equals_plain_network(trained_looking_cnn, dtype, radiometry, low, high, fused):
    extractor = CnnExtractor(trained_looking_cnn, np.array([0.3, 0.4, 0.35]), np.array([0.1, 0.12, 0.09]), fused=fused)
    dn, valid = _generated_dn(dtype, low, high, seed=1)
    refl = _reflectance(dn, valid, radiometry)
    with torch.inference_mode():
        fast = extractor.extract_dn(dn, valid, radiometry)
        reference = trained_looking_cnn.features(extractor.standardize(refl, valid))
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-6)


def test_fused_network_is_a_copy(trained_looking_cnn):
    fused = trained_looking_cnn.fused_features()
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), trained_looking_cnn.features(x), rtol=1e-5, atol=1e-6)
    assert not any(p is q for p in fused.parameters() for q in trained_looking_cnn.parameters())


@pytest.mark.parametrize("dtype,radiometry,low,high", CASES)
def test_cnn_bf16_on_cpu_is_close_to_float32(trained_looking_cnn, dtype, radiometry, low, high):
    """Under bf16 autocast the CPU path runs a bf16 copy where the CPU runs bf16
    convolutions (8-bit DN go in as they are, others are standardized in float32 first),
    and stays in float32 elsewhere; any batch size works, in any order. Each machine
    checks the path it takes."""
    extractor = CnnExtractor(trained_looking_cnn, np.array([0.3, 0.4, 0.35]), np.array([0.1, 0.12, 0.09]))
    dn, valid = _generated_dn(dtype, low, high, seed=2, n=5)
    with torch.inference_mode():
        reference = extractor.extract_dn(dn, valid, radiometry)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            five = extractor.extract_dn(dn, valid, radiometry).float()
            two = extractor.extract_dn(dn[:2], valid[:2], radiometry).float()
            five_again = extractor.extract_dn(dn, valid, radiometry).float()
    scale = reference.abs().max()
    tolerance = 0.02 if cpu_runs_bf16_convolutions() else 1e-5  # bf16 keeps 8 bits of mantissa
    assert float((five - reference).abs().max() / scale) < tolerance
    assert float((two - reference[:2]).abs().max() / scale) < tolerance
    torch.testing.assert_close(five_again, five, rtol=0, atol=0)


def test_cpu_path_ignores_whatever_invalid_pixels_hold(trained_looking_cnn):
    """The fold into the first convolution relies on invalid pixels counting as 0; NaN,
    huge values or garbage DN there must not reach the features."""
    extractor = CnnExtractor(trained_looking_cnn, np.array([0.3, 0.4, 0.35]), np.array([0.1, 0.12, 0.09]))
    dn, valid = _generated_dn(np.float32, 0, 30_000, seed=3)
    garbage = dn.clone()
    garbage[~valid.unsqueeze(1).expand_as(garbage)] = float("nan")
    garbage[0, :, ~valid[0]] = 1e30
    with torch.inference_mode():
        clean = extractor.extract_dn(dn, valid, LANDSAT_C1_L1)
        dirty = extractor.extract_dn(garbage, valid, LANDSAT_C1_L1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            dirty_bf16 = extractor.extract_dn(garbage, valid, LANDSAT_C1_L1).float()
    assert torch.isfinite(dirty).all() and torch.isfinite(dirty_bf16).all()
    torch.testing.assert_close(dirty, clean, rtol=1e-5, atol=1e-6)


def test_cpu_path_without_the_fused_kernel_gives_the_same_features(trained_looking_cnn, monkeypatch):
    """Without oneDNN's fused convolution + ReLU (a build without it) conv2d + ReLU run instead."""
    from poverty_mapper.core.extractors import cnn

    dn, valid = _generated_dn(np.uint8, 0, 256, seed=4)
    means, stds = np.array([0.3, 0.4, 0.35]), np.array([0.1, 0.12, 0.09])
    with torch.inference_mode():
        fused = CnnExtractor(trained_looking_cnn, means, stds).extract_dn(dn, valid, EIGHT_BIT)
        monkeypatch.setattr(cnn, "_CONV_RELU", None)
        plain = CnnExtractor(trained_looking_cnn, means, stds).extract_dn(dn, valid, EIGHT_BIT)
    torch.testing.assert_close(plain, fused, rtol=1e-5, atol=1e-6)


def test_reflectance_tiles_take_the_same_cpu_path(trained_looking_cnn):
    extractor = CnnExtractor(trained_looking_cnn, np.array([0.3, 0.4, 0.35]), np.array([0.1, 0.12, 0.09]))
    dn, valid = _generated_dn(np.uint16, 0, 30_000, seed=5)
    refl = _reflectance(dn, valid, LANDSAT_C1_L1)
    with torch.inference_mode():
        fast = extractor.extract(refl, valid)
        reference = trained_looking_cnn.features(extractor.standardize(refl, valid))
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-6)
