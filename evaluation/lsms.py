"""The real evaluation set: Yeh et al. 2020 LSMS clusters with Landsat histograms.

Band order, scaling and bin edges follow the data release (../shared/data/README.md).
"""
from __future__ import annotations

import csv
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.extractors.histogram import YEH_BIN_EDGES, HistogramExtractor
from ..core.models.feature_domain import FeatureDomain
from ..core.models.metadata import Target, TrainingDomain
from ..core.models.model_file import PovertyModel

BANDS = ("BLUE", "GREEN", "RED", "SWIR1", "SWIR2", "TEMP1", "NIR", "NIGHTLIGHTS")
# Per-band standardization of the release (reflectance 0..1, TEMP1 in kelvin).
BAND_MEANS = {
    "BLUE": 0.062551, "GREEN": 0.090696, "RED": 0.105640, "SWIR1": 0.242577,
    "SWIR2": 0.165792, "TEMP1": 299.495280, "NIR": 0.256701,
    "DMSP": 5.105815, "VIIRS": 0.557793,
}
BAND_STDS = {
    "BLUE": 0.023979, "GREEN": 0.032121, "RED": 0.051943, "SWIR1": 0.088163,
    "SWIR2": 0.083826, "TEMP1": 4.678959, "NIR": 0.059025,
    "DMSP": 31.688320, "VIIRS": 6.421816,
}
TILE_SIZE_PX = 224
PIXEL_SIZE_M = 30.0
FOLD_NAMES = ("A", "B", "C", "D", "E")

# What the models fitted on this set predict (the bundled RGB and night-lights models).
TARGET = Target(
    name="asset wealth index",
    unit="LSMS asset index",
    description=(
        "Cluster-level asset wealth index of the LSMS surveys (Ethiopia, Malawi, "
        "Nigeria, Tanzania, Uganda, 2005-2016); 0 is about the survey mean, higher is wealthier."
    ),
)


def histogram_model(
    labels: np.ndarray, x: np.ndarray, bands: tuple[str, ...], statistics: tuple[str, ...], regressor, **card
) -> PovertyModel:
    """A model of :data:`TARGET` from per-band histograms of the set's tiles (224 px at 30 m,
    102 bins on values standardized with the release's ``statistics``, one key of
    :data:`BAND_MEANS` per band), fitted as ``regressor`` on features ``x`` of clusters with
    outcomes ``labels``; the outcome's and the features' training domains come from them.
    ``card``: name, input_scaling, scores, provenance and any further model field."""
    extractor = HistogramExtractor([BAND_MEANS[k] for k in statistics], [BAND_STDS[k] for k in statistics], YEH_BIN_EDGES)
    return PovertyModel(
        target=TARGET, bands=bands, pixel_size_m=PIXEL_SIZE_M, tile_size_px=TILE_SIZE_PX, extractor=extractor,
        regressor=regressor, radiometry="reflectance", domain=TrainingDomain.of_outcomes(labels),
        feature_domain=FeatureDomain.of_training(x), **card,
    )


@dataclass(frozen=True)
class LsmsSet:
    hists: np.ndarray  # [n, 8, 102] pixel counts
    labels: np.ndarray  # [n] asset wealth index
    locs: np.ndarray  # [n, 2] lat, lon
    years: np.ndarray  # [n]
    folds: dict  # fold -> {'train','val','test'} -> index array
    # Nightlight value at the tile centre / averaged over the tile, standardized like the
    # NIGHTLIGHTS band (DMSP constants before 2012, VIIRS from 2012 on). None if not loaded.
    nls_center: np.ndarray | None = None  # [n]
    nls_mean: np.ndarray | None = None  # [n]
    # Two-letter country code per cluster (et, mw, ng, tz, ug), from lsms_labels_agg.csv:
    # for scoring within and across countries only, never a feature. None if not loaded.
    countries: np.ndarray | None = None

    def __len__(self) -> int:
        return self.labels.size

    def frequencies(self, bands: tuple[str, ...]) -> np.ndarray:
        """Per-band histograms as frequencies, concatenated in ``bands`` order: [n, len(bands) * 102]."""
        idx = [BANDS.index(b) for b in bands]
        h = self.hists[:, idx, :].astype(np.float64)
        return (h / h.sum(axis=2, keepdims=True)).reshape(len(self), -1)

    def test_fold_of_each(self) -> np.ndarray:
        """For every cluster, the number of the fold whose test split holds it."""
        fold = np.full(len(self), -1, np.int64)
        for i, name in enumerate(FOLD_NAMES):
            fold[self.folds[name]["test"]] = i
        if np.any(fold < 0):
            raise ValueError("the test splits do not cover every cluster")
        return fold


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Reads the folds file, which holds only dicts of numpy arrays; refuses anything else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name} from the folds file")
        return super().find_class(module, name)


def load_lsms(directory: str | Path) -> LsmsSet:
    directory = Path(directory)
    with np.load(directory / "lsms_image_hists.npz", allow_pickle=False) as data:
        hists, labels = data["image_hists"], data["labels"]
        locs, years = data["locs"], data["years"]
        nls_center, nls_mean = data["nls_center"], data["nls_mean"]
    with open(directory / "lsms_incountry_folds.pkl", "rb") as fh:
        raw = _ArrayOnlyUnpickler(fh).load()
    folds = {f: {s: np.asarray(ix, dtype=np.int64) for s, ix in raw[f].items()} for f in FOLD_NAMES}
    return LsmsSet(
        hists=hists, labels=labels.astype(np.float64), locs=locs, years=years, folds=folds,
        nls_center=nls_center.astype(np.float64), nls_mean=nls_mean.astype(np.float64),
        countries=_countries(directory / "lsms_labels_agg.csv", locs, years, labels),
    )


def _countries(path: Path, locs: np.ndarray, years: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The country of each cluster-year of the arrays, matched in the CSV by year and
    nearest location (the arrays hold float32 coordinates), checked by the label."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    lat = np.array([float(r["lat"]) for r in rows])
    lon = np.array([float(r["lon"]) for r in rows])
    year = np.array([int(r["year"]) for r in rows])
    label = np.array([float(r["index"]) for r in rows])
    out = []
    for (la, lo), y, value in zip(locs.astype(np.float64), years, labels):
        distance = np.where(year == int(y), np.hypot(lat - la, lon - lo), np.inf)
        k = int(np.argmin(distance))
        if distance[k] > 1e-3 or abs(label[k] - float(value)) > 1e-4:
            raise ValueError(f"cluster at {la:.5f}, {lo:.5f} ({y}) has no matching row in {path.name}")
        out.append(rows[k]["country"])
    return np.array(out)
