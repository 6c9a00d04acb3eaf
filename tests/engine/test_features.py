"""Histogram features: checked by hand on a tiny generated tile and against
numpy.histogram on generated random tiles. (Pixel-wise agreement with the real LSMS
histograms cannot be tested: the release has no pixels, only the histograms.)"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from poverty_mapper.core.extractors.histogram import YEH_BIN_EDGES, HistogramExtractor
from poverty_mapper.core.extractors.registry import extractor_from_spec

# Bin k (1..100) of YEH_BIN_EDGES is [-5.0 + 0.1 * (k - 1), -5.0 + 0.1 * k); bin 0 is
# everything below -5.0, bin 101 everything from 5.0 up.


def _bin(z_low):
    """The bin whose lower edge is ``z_low`` (one of -5.0, -4.9, ..., 4.9)."""
    return int(round((z_low + 5.0) * 10)) + 1


def _tile(values, valid=None):
    """[1, bands, H, W] pixels and [1, H, W] validity from a [bands, H, W] list."""
    pixels = torch.tensor(values, dtype=torch.float32).unsqueeze(0)
    if valid is None:
        valid = torch.ones(pixels.shape[0], pixels.shape[2], pixels.shape[3], dtype=torch.bool)
    else:
        valid = torch.tensor(valid, dtype=torch.bool).unsqueeze(0)
    return pixels, valid


def test_yeh_bin_edges():
    assert YEH_BIN_EDGES.size == 103
    assert YEH_BIN_EDGES[0] == -1e5 and YEH_BIN_EDGES[-1] == 1e5
    assert YEH_BIN_EDGES[1] == -5.0 and YEH_BIN_EDGES[51] == 0.0 and YEH_BIN_EDGES[101] == 5.0
    assert np.allclose(np.diff(YEH_BIN_EDGES[1:-1]), 0.1)
    assert _bin(0.0) == 51 and _bin(-5.0) == 1 and _bin(4.9) == 100


def test_hand_computed_histogram_of_a_2x3_tile():
    """Generated tile, mean 0 std 1, so the values are already standardized."""
    ext = HistogramExtractor([0.0], [1.0])
    pixels, valid = _tile([[[-7.0, 0.0, -0.05], [1.0, 4.95, 6.0]]])
    freq = ext.extract(pixels, valid).numpy()[0]
    expected = np.zeros(102)
    expected[0] += 1  # -7.0: below -5, first bin
    expected[_bin(0.0)] += 1  # 0.0 on an edge: [0.0, 0.1)
    expected[_bin(-0.1)] += 1  # -0.05: [-0.1, 0.0)
    expected[_bin(1.0)] += 1  # 1.0 on an edge: [1.0, 1.1)
    expected[_bin(4.9)] += 1  # 4.95: [4.9, 5.0)
    expected[101] += 1  # 6.0: from 5.0 up, last bin
    assert freq.shape == (102,)
    np.testing.assert_array_equal(np.rint(freq * 6), expected)  # exact counts per bin
    np.testing.assert_allclose(freq, expected / 6, rtol=1e-6, atol=0)  # float32 frequencies


def test_edges_at_plus_and_minus_five():
    ext = HistogramExtractor([0.0], [1.0])
    pixels, valid = _tile([[[-5.0, 5.0], [-5.01, 4.99]]])
    freq = ext.extract(pixels, valid).numpy()[0]
    expected = np.zeros(102)
    expected[[_bin(-5.0), 101, 0, _bin(4.9)]] = 0.25
    np.testing.assert_array_equal(freq, expected)


def test_values_are_standardized_per_band():
    """Generated 2-band tile: band 1 mean 0.1 std 0.05, band 2 mean 300 std 5."""
    ext = HistogramExtractor([0.1, 300.0], [0.05, 5.0])
    # z = 0.25 -> [0.2, 0.3); z = -1.25 -> [-1.3, -1.2); z = 2.05 -> [2.0, 2.1)
    band1 = [[0.1 + 0.05 * 0.25, 0.1 - 0.05 * 1.25]]
    band2 = [[300.0 + 5 * 2.05, 300.0 - 5 * 7.0]]
    freq = ext.extract(*_tile([band1, band2])).numpy()[0]
    assert freq.shape == (204,)
    expected = np.zeros(204)
    expected[_bin(0.2)] = 0.5
    expected[_bin(-1.3)] = 0.5
    expected[102 + _bin(2.0)] = 0.5
    expected[102 + 0] = 0.5
    np.testing.assert_array_equal(freq, expected)


def test_invalid_pixels_are_not_counted():
    ext = HistogramExtractor([0.0], [1.0])
    # The invalid pixels hold values that would fill other bins if they were counted.
    pixels, valid = _tile(
        [[[0.05, 0.05, -9.0], [2.55, 0.0, 9.0]]],
        valid=[[True, True, False], [True, False, False]],
    )
    freq = ext.extract(pixels, valid).numpy()[0]
    expected = np.zeros(102)
    expected[_bin(0.0)] = 2 / 3
    expected[_bin(2.5)] = 1 / 3
    np.testing.assert_allclose(freq, expected, rtol=1e-6, atol=0)
    assert freq.sum() == pytest.approx(1.0)


def test_a_tile_without_valid_pixels_gives_zeros():
    ext = HistogramExtractor([0.0], [1.0])
    pixels, valid = _tile([[[1.0, 2.0], [3.0, 4.0]]], valid=[[False, False], [False, False]])
    freq = ext.extract(pixels, valid).numpy()
    assert freq.shape == (1, 102) and np.all(freq == 0) and np.all(np.isfinite(freq))


def _numpy_reference(pixels, valid, means, stds):
    """numpy.histogram of the standardized valid values, as frequencies, per tile and band.

    Standardized in float32 the way the extractor does, so values that land exactly on an
    edge are treated alike."""
    z = (pixels.astype(np.float32) - means.astype(np.float32)[None, :, None, None]) / stds.astype(
        np.float32
    )[None, :, None, None]
    out = np.zeros((pixels.shape[0], pixels.shape[1] * 102))
    for i in range(pixels.shape[0]):
        n_valid = max(int(valid[i].sum()), 1)
        for b in range(pixels.shape[1]):
            counts, _ = np.histogram(z[i, b][valid[i]], bins=YEH_BIN_EDGES)
            out[i, b * 102 : (b + 1) * 102] = counts / n_valid
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_numpy_histogram_on_random_multiband_batches(seed):
    """Generated random tiles: a batch of 5 tiles, 3 bands, 17 x 23 pixels, some invalid,
    values reaching beyond +-5 standard deviations."""
    rng = np.random.default_rng(seed)
    means = np.array([0.062551, 0.090696, 0.105640])
    stds = np.array([0.023979, 0.032121, 0.051943])
    z = rng.normal(0.0, 2.5, size=(5, 3, 17, 23))
    pixels = (means[None, :, None, None] + stds[None, :, None, None] * z).astype(np.float32)
    valid = rng.random((5, 17, 23)) > 0.2
    valid[3] = False  # one tile with no valid pixel at all
    ext = HistogramExtractor(means, stds)
    got = ext.extract(torch.from_numpy(pixels), torch.from_numpy(valid)).numpy()
    ref = _numpy_reference(pixels, valid, means, stds)
    assert got.shape == (5, 306)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)
    # Each band's histogram of a tile with valid pixels sums to one.
    sums = got.reshape(5, 3, 102).sum(axis=2)
    np.testing.assert_allclose(sums[[0, 1, 2, 4]], 1.0, rtol=1e-5)
    assert np.all(sums[3] == 0)
    # The outer bins are in use, so the test exercises them.
    assert ref.reshape(5, 3, 102)[..., 0].sum() > 0 and ref.reshape(5, 3, 102)[..., 101].sum() > 0


def test_wrong_band_count_is_refused():
    ext = HistogramExtractor([0.0, 0.0], [1.0, 1.0])
    pixels, valid = _tile([[[0.0]]])
    with pytest.raises(ValueError, match="bands"):
        ext.extract(pixels, valid)


@pytest.mark.parametrize(
    "means, stds, edges",
    [
        ([0.0], [0.0], YEH_BIN_EDGES),  # zero standard deviation
        ([0.0, 1.0], [1.0], YEH_BIN_EDGES),  # lengths differ
        ([0.0], [1.0], np.array([0.0, 1.0, 1.0])),  # edges not increasing
    ],
)
def test_invalid_construction_is_refused(means, stds, edges):
    with pytest.raises(ValueError):
        HistogramExtractor(means, stds, edges)


def test_spec_round_trip_gives_the_same_features():
    ext = HistogramExtractor([0.1, 0.2], [0.03, 0.04])
    spec, arrays = ext.to_spec()
    assert spec == {"kind": "histogram", "n_features": 204}
    again = extractor_from_spec(spec, arrays)
    rng = np.random.default_rng(5)
    pixels = torch.from_numpy(rng.random((2, 2, 6, 6)).astype(np.float32) * 0.3)
    valid = torch.ones(2, 6, 6, dtype=torch.bool)
    assert torch.equal(ext.extract(pixels, valid), again.extract(pixels, valid))
    with pytest.raises(ValueError, match="unknown feature extractor"):
        extractor_from_spec({"kind": "resnet"}, arrays)


def test_square_rooted_frequencies_are_their_own_kind():
    """The fit on survey clusters uses square-rooted frequencies; a model file names
    them 'histogram_sqrt', so a reader that knows only 'histogram' refuses the file."""
    plain = HistogramExtractor([0.1, 0.2], [0.03, 0.04])
    rooted = HistogramExtractor([0.1, 0.2], [0.03, 0.04], transform="sqrt")
    rng = np.random.default_rng(6)
    pixels = torch.from_numpy(rng.random((3, 2, 8, 8)).astype(np.float32) * 0.3)
    valid = torch.from_numpy(rng.random((3, 8, 8)) > 0.2)
    torch.testing.assert_close(rooted.extract(pixels, valid), plain.extract(pixels, valid).sqrt())
    spec, arrays = rooted.to_spec()
    assert spec == {"kind": "histogram_sqrt", "n_features": 204} and rooted.kind == "histogram_sqrt"
    again = extractor_from_spec(spec, arrays)
    assert again.transform == "sqrt"
    assert torch.equal(again.extract(pixels, valid), rooted.extract(pixels, valid))
    with pytest.raises(ValueError, match="transform"):
        HistogramExtractor([0.1], [0.03], transform="log")
