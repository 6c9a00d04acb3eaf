"""Named feature variants of the real LSMS set, and choosing among them on the val splits.

Every variant is a small function ``LsmsSet -> [n, F]`` feature matrix (plain numpy,
deterministic); the regressor is always the plugin's ridge (core.regression.ridge), scored with
the protocol of evaluation.fixed_folds.evaluate_on_folds. ``VARIANTS`` maps names to them.

The histograms are per-band counts over 102 bins of *standardized* band values
(z = (value - band mean) / band std, constants in evaluation.lsms): bins of width 0.1 on
[-5, 5] plus two open tail bins. Besides the raw frequencies (the Yeh et al. 2020
baseline) the variants use:

- Hellinger / log transforms of the frequencies. Ridge standardizes every column, so a
  bin that is almost always empty (TEMP1 and NIGHTLIGHTS tails) gets a huge scale-up
  and one unusual tile can dominate a prediction; ``sqrt`` damps that.
- Per-band summaries read off the histogram: mean and standard deviation of z from the
  bin centres, and quantiles of z interpolated in the cumulative histogram.
- Normalized-difference indices (NDVI-like) from the per-band *mean reflectance*
  (band mean of the release + mean z * band std). Only histograms are stored, so these
  are indices of tile means, not tile means of per-pixel indices.
- The nightlight scalars ``nls_center`` / ``nls_mean`` as the release gives them
  (standardized), compressed with asinh. No feature uses survey metadata: an earlier
  version brought the lights back to sensor units and added a VIIRS indicator, both
  derived from the survey year, which lets a model tell survey rounds apart.
- A fixed, seeded random Fourier feature expansion of the compact summary, so that the
  linear ridge can fit a smooth nonlinear function of it (an approximation of kernel
  ridge with a Gaussian kernel, Rahimi & Recht 2007).

All scalings are fixed constants (no statistics of the data set are fitted outside the
ridge itself), so no information flows between splits through the features.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .lsms import BAND_MEANS, BAND_STDS, BANDS, LsmsSet
from ..core.regression.metrics import coefficient_of_determination, squared_pearson
from ..core.regression.ridge import DEFAULT_ALPHAS, PLAIN_SCALING, FeatureScaling, ridge_path

REFLECTANCE_BANDS = ("BLUE", "GREEN", "RED", "SWIR1", "SWIR2", "TEMP1", "NIR")

# Bin edges in z units, with the open tail bins (-1e5, -5) and (5, 1e5) closed half a bin
# beyond +-5: a pixel in a tail bin counts as z = -5.05 or 5.05 in means and quantiles.
_EDGES = np.concatenate([[-5.1], np.round(np.linspace(-5.0, 5.0, 101), 10), [5.1]])
_CENTRES = 0.5 * (_EDGES[:-1] + _EDGES[1:])
QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)


# ---------------------------------------------------------------- building blocks

def band_frequencies(data: LsmsSet) -> np.ndarray:
    """All bands' histograms as frequencies: [n, 8, 102]."""
    h = data.hists.astype(np.float64)
    return h / h.sum(axis=2, keepdims=True)


def band_moments(data: LsmsSet) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of z per band from the bin centres: two [n, 8]."""
    f = band_frequencies(data)
    mean = f @ _CENTRES
    var = f @ _CENTRES**2 - mean**2
    return mean, np.sqrt(np.maximum(var, 0.0))


def band_quantiles(data: LsmsSet, quantiles: Sequence[float] = QUANTILES) -> np.ndarray:
    """Quantiles of z per band, linear within a bin of the cumulative histogram: [n, 8, len(quantiles)]."""
    f = band_frequencies(data)
    cdf = np.cumsum(f, axis=2)  # cdf[..., k] = share of pixels below _EDGES[k + 1]
    out = np.empty(f.shape[:2] + (len(quantiles),))
    for j, q in enumerate(quantiles):
        k = np.minimum((cdf < q).sum(axis=2), f.shape[2] - 1)  # first bin reaching q
        below = np.take_along_axis(cdf, k[..., None], 2)[..., 0] - np.take_along_axis(f, k[..., None], 2)[..., 0]
        share = np.take_along_axis(f, k[..., None], 2)[..., 0]
        frac = np.clip((q - below) / np.where(share > 0, share, 1.0), 0.0, 1.0)
        out[..., j] = _EDGES[k] + frac * (_EDGES[k + 1] - _EDGES[k])
    return out


def mean_reflectance(data: LsmsSet) -> dict[str, np.ndarray]:
    """Tile-mean value of each Landsat band in its own units (reflectance 0..1, TEMP1 kelvin)."""
    mean_z, _ = band_moments(data)
    return {b: BAND_MEANS[b] + mean_z[:, BANDS.index(b)] * BAND_STDS[b] for b in REFLECTANCE_BANDS}


def _normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    total = a + b
    return (a - b) / np.where(np.abs(total) > 1e-6, total, 1e-6)


def spectral_indices(data: LsmsSet) -> np.ndarray:
    """NDVI (vegetation), NDBI (built-up), NDWI (water, McFeeters), MNDWI and a SWIR ratio,
    from tile-mean reflectances: [n, 5], each in [-1, 1]."""
    r = mean_reflectance(data)
    return np.column_stack([
        _normalized_difference(r["NIR"], r["RED"]),
        _normalized_difference(r["SWIR1"], r["NIR"]),
        _normalized_difference(r["GREEN"], r["NIR"]),
        _normalized_difference(r["GREEN"], r["SWIR1"]),
        _normalized_difference(r["SWIR1"], r["SWIR2"]),
    ])


def nightlight_scalars(data: LsmsSet) -> np.ndarray:
    """Tile-centre and tile-mean nightlights, asinh of the release's standardized values: [n, 2]."""
    if data.nls_center is None or data.nls_mean is None:
        raise ValueError("this LsmsSet has no nls_center / nls_mean (load it with load_lsms)")
    return np.column_stack([np.arcsinh(data.nls_center), np.arcsinh(data.nls_mean)])


def compact_summary(data: LsmsSet) -> np.ndarray:
    """The low-dimensional description fed to the random Fourier features: [n, 23].

    Per-band mean and std of z (already in standardized units), 5 * spectral indices and
    nightlight scalars halved: fixed factors that put every column
    on roughly unit scale, so one length scale suits them all.
    """
    mean_z, std_z = band_moments(data)
    nl = nightlight_scalars(data) * 0.5
    return np.column_stack([mean_z, std_z, 5.0 * spectral_indices(data), nl])


def random_fourier_features(z: np.ndarray, n_features: int, length_scale: float, seed: int) -> np.ndarray:
    """``sqrt(2/D) cos(z W + b)``, W ~ N(0, 1/length_scale²), b ~ U(0, 2π), from a fixed seed.

    Linear ridge on these approximates kernel ridge with the Gaussian kernel
    exp(-|z - z'|² / (2 length_scale²)) on ``z``.
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.0 / length_scale, size=(z.shape[1], n_features))
    b = rng.uniform(0.0, 2.0 * np.pi, size=n_features)
    return np.sqrt(2.0 / n_features) * np.cos(z @ w + b)


# ---------------------------------------------------------------- the variants

def rgb(data: LsmsSet) -> np.ndarray:
    """BLUE, GREEN, RED histograms as frequencies (Yeh et al. 2020 baseline; the default model)."""
    return data.frequencies(("BLUE", "GREEN", "RED"))


def nightlights(data: LsmsSet) -> np.ndarray:
    """The NIGHTLIGHTS histogram as frequencies (the baseline the method should beat)."""
    return data.frequencies(("NIGHTLIGHTS",))


def all_bands(data: LsmsSet) -> np.ndarray:
    """All 8 band histograms as frequencies."""
    return data.frequencies(BANDS)


def all_bands_sqrt(data: LsmsSet) -> np.ndarray:
    """All 8 band histograms, square root of the frequencies (Hellinger embedding)."""
    return np.sqrt(data.frequencies(BANDS))


def all_bands_log(data: LsmsSet) -> np.ndarray:
    """All 8 band histograms, log(frequency + 1e-4) (1e-4 is about 5 of the 50,176 pixels)."""
    return np.log(data.frequencies(BANDS) + 1e-4)


def band_summary(data: LsmsSet) -> np.ndarray:
    """Per band: mean, std and 7 quantiles of z: [n, 72]."""
    mean_z, std_z = band_moments(data)
    return np.column_stack([mean_z, std_z, band_quantiles(data).reshape(len(data), -1)])


def summary_indices_nl(data: LsmsSet) -> np.ndarray:
    """band_summary + spectral indices + nightlight scalars: [n, 79]."""
    return np.column_stack([band_summary(data), spectral_indices(data), nightlight_scalars(data)])


def sqrt_summary_nl(data: LsmsSet) -> np.ndarray:
    """all_bands_sqrt + summary_indices_nl, one linear model: [n, 898]."""
    return np.column_stack([all_bands_sqrt(data), summary_indices_nl(data)])


def rff_summary_nl(data: LsmsSet) -> np.ndarray:
    """1000 seeded random Fourier features (length scale 4) of compact_summary."""
    return random_fourier_features(compact_summary(data), 1000, 4.0, seed=0)


VARIANTS: dict[str, Callable[[LsmsSet], np.ndarray]] = {
    "rgb": rgb,
    "nightlights": nightlights,
    "all_bands": all_bands,
    "all_bands_sqrt": all_bands_sqrt,
    "all_bands_log": all_bands_log,
    "band_summary": band_summary,
    "summary_indices_nl": summary_indices_nl,
    "sqrt_summary_nl": sqrt_summary_nl,
    "rff_summary_nl": rff_summary_nl,
}


# ---------------------------------------------------------------- choosing on val only

def validation_predictions(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, val: np.ndarray, alphas: Sequence[float] = DEFAULT_ALPHAS,
    scaling: FeatureScaling = PLAIN_SCALING,
) -> tuple[np.ndarray, float]:
    """Ridge fit on ``train``, alpha picked by R² on ``val``: predictions for ``val`` and that alpha.

    Reads ``y`` only at ``train`` and ``val``.
    """
    x = np.asarray(x, np.float64)
    y_train, y_val = np.asarray(y, np.float64)[train], np.asarray(y, np.float64)[val]
    coefs, mean, scale, y_mean = ridge_path(x[train], y_train, alphas, scaling=scaling)
    pred = ((x[val] - mean) / scale) @ coefs.T + y_mean
    scores = [coefficient_of_determination(y_val, pred[:, k]) for k in range(len(alphas))]
    best = int(np.argmax(scores))
    return pred[:, best], float(alphas[best])


def validation_scores(
    x: np.ndarray, y: np.ndarray, folds: dict, alphas: Sequence[float] = DEFAULT_ALPHAS,
    scaling: FeatureScaling = PLAIN_SCALING,
) -> dict:
    """Per fold: fit on 'train', pick alpha on and predict 'val'; r²/R² per fold and pooled
    over the val splits. Never looks at a fold's 'test' split.

    The alpha is picked on the same val split it is scored on, so these scores are a
    little optimistic, alike for every variant; they are for ranking variants only.
    """
    y = np.asarray(y, np.float64)
    idx, preds, per_fold = [], [], {}
    for name in sorted(folds):
        train, val = folds[name]["train"], folds[name]["val"]
        pred, alpha = validation_predictions(x, y, train, val, alphas, scaling)
        idx.append(val)
        preds.append(pred)
        per_fold[name] = {
            "alpha": alpha,
            "r2": round(squared_pearson(y[val], pred), 4),
            "R2": round(coefficient_of_determination(y[val], pred), 4),
            "n": int(val.size),
        }
    idx, preds = np.concatenate(idx), np.concatenate(preds)
    return {
        "pooled": {
            "r2": round(squared_pearson(y[idx], preds), 4),
            "R2": round(coefficient_of_determination(y[idx], preds), 4),
            "n": int(idx.size),
        },
        "folds": per_fold,
    }


def select_by_validation(val_scores: dict[str, dict]) -> str:
    """The variant with the highest pooled val r² (ties: the first in the given order)."""
    names = list(val_scores)
    return names[int(np.argmax([val_scores[n]["pooled"]["r2"] for n in names]))]
