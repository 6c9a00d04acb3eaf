"""Task B of Jean et al. 2016: image features averaged around surveyed clusters,
ridge regression to the cluster outcome, honest nested cross-validation."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from affine import Affine

from ..atomic import atomic_output
from ..device import device_name
from ..errors import PovertyMapperError
from ..extractors.base import FeatureExtractor
from ..extractors.histogram import HistogramExtractor
from ..imagery.nightlights import mean_lights_on_grid
from ..imagery.tile_reader import TileReader, read_batch
from ..imagery.tiling import PixelWindow, pixel_size_m, region_window, tile_grid_for
from ..models.model_file import PovertyModel, Score, Scores, Target, TrainingDomain
from ..options import TileOptions
from ..regression.metrics import coefficient_of_determination, squared_pearson
from ..regression.ridge import DEFAULT_ALPHAS, RidgeRegressor, cv_alpha_scores, fit_ridge, fit_ridge_cv, group_folds
from .outputs import write_training_outputs
from .progress import CancelCheck, Phase, PhasedProgress, ProgressCallback
from .setup import TrainingImagery, open_imagery

log = logging.getLogger("poverty_mapper")

EXTRACTOR_CHOICES = ("histogram", "random")  # or the path of a model file
# Shares of the progress bar: computing the features; the rest takes moments.
CLUSTER_PHASES = {"tiles per cluster": 0.0, "features": 9.0, "cross-validation": 0.5, "baseline": 0.5, "report": 0.0}


@dataclass(frozen=True)
class Cluster:
    """A surveyed cluster: location in the image's CRS, outcome, optional weight."""

    x: float
    y: float
    outcome: float
    weight: float = 1.0
    id: str = ""


@dataclass(frozen=True)
class _ClusterFitConfigInputs:
    """What a cluster fit cannot do without."""

    image_path: str
    clusters: tuple[Cluster, ...]
    model_path: str  # output .povmodel (extractor + regressor)


@dataclass(frozen=True)
class ClusterFitConfig(TileOptions, _ClusterFitConfigInputs):
    outcome_name: str = "outcome"
    outcome_unit: str = "survey units"
    extractor: str = "histogram"  # 'histogram', 'random' or a .povmodel path (e.g. a proxy CNN)
    box_size_m: float = 10_000.0
    tile_size_m: float = 1_920.0  # for 'histogram' and 'random'; a model file brings its own
    log_outcome: bool = False
    use_weights: bool = False
    n_folds: int = 5
    nightlights_path: str | None = None
    report_path: str | None = None
    scatter_path: str | None = None
    batch_size: int = 64
    n_random_filters: int = 256
    seed: int = 0


@dataclass
class ClusterFitResult:
    model_path: str
    report: dict
    used: np.ndarray  # bool per input cluster: had imagery and a valid outcome
    observed: np.ndarray  # per used cluster (after the log transform, if any)
    predicted: np.ndarray  # out-of-fold prediction per used cluster
    fold: np.ndarray  # outer fold per used cluster
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ClusterFeatures:
    """The extractor and each cluster's features."""

    extractor: FeatureExtractor
    features: np.ndarray  # mean feature vector per input cluster (NaN where it has no valid tile)
    n_tiles: np.ndarray  # valid tiles per input cluster


@dataclass(frozen=True)
class SurveyTable:
    """The clusters the fit uses: features, outcome, weight and location of each."""

    used: np.ndarray  # bool per input cluster
    x: np.ndarray
    y: np.ndarray  # the outcome, or its log with ``log_outcome``
    weights: np.ndarray | None
    groups: np.ndarray  # rounded locations: a fold never splits one
    n_locations: int


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold predictions and scores, and the regressor fitted on all clusters."""

    predicted: np.ndarray  # out of fold, per used cluster
    folds: np.ndarray  # outer fold per used cluster
    per_fold: list[dict]
    pooled: dict  # scores of all out-of-fold predictions
    regressor: RidgeRegressor  # fitted on all clusters, penalty by cross-validation


def nested_cv(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    n_folds: int,
    seed: int = 0,
    sample_weight: np.ndarray | None = None,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Out-of-fold predictions with the penalty chosen inside each outer fold.

    Clusters at the same location (``groups``) never straddle a split, outer or inner.
    """
    folds = group_folds(groups, n_folds, seed)
    pred = np.full(y.size, np.nan)
    per_fold = []
    for f in range(n_folds):
        test = folds == f
        train = ~test
        w_train = None if sample_weight is None else sample_weight[train]
        n_inner = min(n_folds, len(np.unique(groups[train], axis=0)))
        inner = group_folds(groups[train], n_inner, seed + 1)
        scores = cv_alpha_scores(x[train], y[train], inner, alphas, w_train)
        alpha = alphas[int(np.argmax(scores))]
        model = fit_ridge(x[train], y[train], alpha, w_train)
        pred[test] = model.predict(x[test])
        per_fold.append({
            "fold": f,
            "n": int(test.sum()),
            "alpha": float(alpha),
            "r2": round(squared_pearson(y[test], pred[test]), 4),
            "R2": round(coefficient_of_determination(y[test], pred[test]), 4),
        })
    return pred, folds, per_fold


def _number(value) -> float:
    """A survey value as a float; missing or non-numeric values become NaN."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _box_window(ds, x: float, y: float, box_size_m: float) -> PixelWindow | None:
    """Raster pixels of the ``box_size_m`` square centred on (x, y), or None if outside."""
    try:
        return region_window(ds.transform, ds.width, ds.height, _box_bounds(ds, x, y, box_size_m))
    except PovertyMapperError:
        return None


def _box_bounds(ds, x: float, y: float, box_size_m: float) -> tuple[float, float, float, float]:
    """The ``box_size_m`` square centred on (x, y), in the raster's CRS units."""
    mx, my = pixel_size_m(ds.transform, ds.crs, (x, y))
    half_x = box_size_m / 2 * abs(ds.transform.a) / mx
    half_y = box_size_m / 2 * abs(ds.transform.e) / my
    return x - half_x, y - half_y, x + half_x, y + half_y


def fit_clusters(
    config: ClusterFitConfig,
    progress: ProgressCallback | None = None,
    is_canceled: CancelCheck | None = None,
) -> ClusterFitResult:
    """Fits the survey outcome in five phases: the tiles of each cluster's box, their
    features, the cross-validation, the nightlights baseline and the report (with the model file)."""
    phases = PhasedProgress(CLUSTER_PHASES, progress, is_canceled)
    notes: list[str] = []
    outcomes, usable = _outcomes(config, notes)
    base_model_path = None if config.extractor in EXTRACTOR_CHOICES else config.extractor
    with open_imagery(config.image_path, config, config.tile_size_m, model_path=base_model_path) as imagery:
        windows = _tiles_per_cluster(config, imagery, usable, notes)
        features = _features(config, imagery, windows, phases["features"])
        table = _survey_table(config, outcomes, usable, features, windows, notes)
        cv = _cross_validation(config, table)
        baseline = _nightlights_baseline(config, imagery, table, notes)
    report = _cluster_report(config, imagery, features.extractor, table, cv, baseline, notes)
    write_training_outputs(
        _cluster_model(config, imagery, features.extractor, table, cv, baseline), config.model_path,
        report, config.report_path, config.scatter_path, lambda path: plot_scatter(table.y, cv.predicted, report, path),
    )
    phases.done()
    return ClusterFitResult(config.model_path, report, table.used, table.y, cv.predicted, cv.folds, notes)


def _outcomes(config: ClusterFitConfig, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each cluster's outcome as a number, and whether it can be used (numeric; > 0 for a log)."""
    outcomes = np.array([_number(c.outcome) for c in config.clusters], np.float64)
    usable = np.isfinite(outcomes)
    if not usable.all():
        notes.append(f"{int(np.sum(~usable))} clusters without a numeric outcome (missing, NaN or text) left out.")
    if config.log_outcome:
        usable &= outcomes > 0
        if np.any(np.isfinite(outcomes) & (outcomes <= 0)):
            notes.append(f"{int(np.sum(np.isfinite(outcomes) & (outcomes <= 0)))} clusters with outcome <= 0 left out (log transform).")
    return outcomes, usable


def _tiles_per_cluster(
    config: ClusterFitConfig, imagery: TrainingImagery, usable: np.ndarray, notes: list[str]
) -> list[tuple[int, PixelWindow]]:
    """(cluster index, tile window) for every tile of each usable cluster's box on the image."""
    ds = imagery.dataset
    windows: list[tuple[int, PixelWindow]] = []
    for i, c in enumerate(config.clusters):
        if not usable[i]:
            continue
        region = _box_window(ds, c.x, c.y, config.box_size_m)
        if region is None:
            continue
        grid = tile_grid_for(ds.transform, ds.crs, region, imagery.tile_m)
        windows.extend((i, grid.tile_window(r, col)) for r, col in grid.cells())
    n_outside = int(usable.sum()) - len({i for i, _ in windows})
    if n_outside:
        notes.append(f"{n_outside} clusters outside the image left out.")
    return windows


def _features(
    config: ClusterFitConfig, imagery: TrainingImagery, windows: list[tuple[int, PixelWindow]], phase: Phase
) -> ClusterFeatures:
    """The extractor (the model file's, or one fitted to this imagery) and each cluster's mean features."""
    reader = imagery.tile_reader()
    extractor = imagery.model.extractor if imagery.model else _fresh_extractor(config, reader, windows)
    features, n_tiles = _cluster_features(extractor, reader, windows, len(config.clusters), imagery.device, config, phase)
    return ClusterFeatures(extractor, features, n_tiles)


def _survey_table(
    config: ClusterFitConfig, outcomes: np.ndarray, usable: np.ndarray, features: ClusterFeatures,
    windows: list[tuple[int, PixelWindow]], notes: list[str],
) -> SurveyTable:
    """The clusters with imagery and a usable outcome, checked to be enough for the folds."""
    used = usable & (features.n_tiles > 0)
    n_no_imagery = int(len({i for i, _ in windows}) - np.sum(used))
    if n_no_imagery > 0:
        notes.append(f"{n_no_imagery} clusters whose box has no tile with enough valid pixels left out.")
    if used.sum() < max(config.n_folds * 2, 10):
        raise PovertyMapperError(
            f"Only {int(used.sum())} clusters have imagery and a valid outcome; at least "
            f"{max(config.n_folds * 2, 10)} are needed for {config.n_folds}-fold cross-validation."
        )
    y = np.log(outcomes[used]) if config.log_outcome else outcomes[used]
    weights = np.array([_number(c.weight) for c in config.clusters], np.float64)[used] if config.use_weights else None
    if weights is not None and (not np.all(np.isfinite(weights)) or np.any(weights < 0)):
        raise PovertyMapperError("Cluster weights must be numbers of zero or more; check the weight field.")
    groups = np.round(np.array([[c.x, c.y] for c in config.clusters])[used], 3)
    n_locations = len(np.unique(groups, axis=0))
    if n_locations < config.n_folds:
        raise PovertyMapperError(
            f"{n_locations} distinct cluster locations are too few for {config.n_folds} folds; lower the number of folds."
        )
    return SurveyTable(used, features.features[used], y, weights, groups, n_locations)


def _cross_validation(config: ClusterFitConfig, table: SurveyTable) -> CrossValidation:
    """Out-of-fold scores by nested cross-validation, and the ridge fitted on every cluster."""
    pred, folds, per_fold = nested_cv(table.x, table.y, table.groups, config.n_folds, config.seed, table.weights)
    regressor = fit_ridge_cv(
        table.x, table.y, group_folds(table.groups, config.n_folds, config.seed), sample_weight=table.weights
    )
    return CrossValidation(pred, folds, per_fold, _scores(table.y, pred), regressor)


def _nightlights_baseline(
    config: ClusterFitConfig, imagery: TrainingImagery, table: SurveyTable, notes: list[str]
) -> dict | None:
    """The same cross-validation on the mean nightlights of each cluster's box alone, if given."""
    if not config.nightlights_path:
        return None
    lights = np.array([
        _box_lights(config.nightlights_path, imagery.dataset, c.x, c.y, config.box_size_m)
        for c, u in zip(config.clusters, table.used) if u
    ])
    has = np.isfinite(lights)
    if has.sum() < max(config.n_folds * 2, 10):
        notes.append("Too few clusters are covered by the nightlights raster for a baseline.")
        return None
    xl = np.column_stack([lights[has], np.log1p(np.clip(lights[has], 0, None))])
    bpred, _, bfolds = nested_cv(xl, table.y[has], table.groups[has], config.n_folds, config.seed)
    return {
        "features": "mean nightlights over each cluster's box, and its log1p",
        "pooled": _scores(table.y[has], bpred),
        "folds": bfolds,
    }


def _cv_protocol(config: ClusterFitConfig) -> str:
    return (
        f"{config.n_folds}-fold nested cross-validation; folds by location; "
        "ridge penalty chosen by inner cross-validation inside each outer training set"
    )


def _extractor_name(config: ClusterFitConfig, imagery: TrainingImagery, extractor: FeatureExtractor) -> str:
    return extractor.kind if imagery.model is None else f"{extractor.kind} from {Path(config.extractor).name}"


def _outcome_unit(config: ClusterFitConfig) -> str:
    return f"log of {config.outcome_unit}" if config.log_outcome else config.outcome_unit


def _cluster_report(
    config: ClusterFitConfig, imagery: TrainingImagery, extractor: FeatureExtractor, table: SurveyTable,
    cv: CrossValidation, baseline: dict | None, notes: list[str],
) -> dict:
    return {
        "outcome": config.outcome_name,
        "unit": _outcome_unit(config),
        "extractor": _extractor_name(config, imagery, extractor),
        "box_size_m": config.box_size_m,
        "tile_size_m": imagery.tile_m,
        "clusters": {"given": len(config.clusters), "used": int(table.used.sum()), "locations": int(table.n_locations)},
        "cv": {"protocol": _cv_protocol(config), "pooled": cv.pooled, "folds": cv.per_fold},
        "scores_named": "r2 = squared Pearson correlation; R2 = coefficient of determination",
        "nightlights_baseline": baseline,
        "device": device_name(imagery.device),
        "notes": notes,
    }


def _cluster_model(
    config: ClusterFitConfig, imagery: TrainingImagery, extractor: FeatureExtractor, table: SurveyTable,
    cv: CrossValidation, baseline: dict | None,
) -> PovertyModel:
    n_used = int(table.used.sum())
    return PovertyModel(
        name=f"{config.outcome_name} from {_extractor_name(config, imagery, extractor)} features ({Path(config.image_path).stem})",
        target=Target(config.outcome_name, _outcome_unit(config), f"fitted on {n_used} survey clusters"),
        bands=imagery.band_names if imagery.model is None else imagery.model.bands,
        input_scaling=f"reflectance 0-1 ({imagery.radiometry.label})",
        pixel_size_m=imagery.tile_m / imagery.tile_px,
        tile_size_px=imagery.tile_px,
        extractor=extractor,
        regressor=cv.regressor,
        radiometry=imagery.radiometry.key,
        band_indexes=imagery.bands,
        domain=TrainingDomain.of_outcomes(table.y),
        scores=Scores(
            protocol=_cv_protocol(config),
            pooled=Score.from_json(cv.pooled),
            folds={str(f["fold"]): Score.from_json(f) for f in cv.per_fold},
            baselines={} if baseline is None else {"nightlights": Score.from_json(baseline["pooled"])},
        ),
        provenance={
            "data": f"{n_used} clusters on {Path(config.image_path).name}",
            "box_size_m": config.box_size_m,
            "log_outcome": config.log_outcome,
            "weighted": config.use_weights,
        },
    )


def _scores(y: np.ndarray, pred: np.ndarray) -> dict:
    return {
        "r2": round(squared_pearson(y, pred), 4),
        "R2": round(coefficient_of_determination(y, pred), 4),
        "n": int(y.size),
    }


def _fresh_extractor(
    config: ClusterFitConfig, reader: TileReader, windows: list[tuple[int, PixelWindow]]
) -> FeatureExtractor:
    """A histogram or random-convolution extractor fitted to this imagery: band
    statistics (and random patches) from a seeded sample of the clusters' tiles."""
    rng = np.random.default_rng(config.seed)
    pick = rng.choice(len(windows), size=min(len(windows), 256), replace=False) if windows else []
    if len(pick) == 0:
        raise PovertyMapperError("No cluster lies on the image; check that the clusters and the image overlap.")
    pixels, valid = read_batch(reader, [windows[i][1] for i in sorted(pick)], torch.device("cpu"))
    values = pixels.transpose(0, 1)[:, valid].double()
    if values.shape[1] == 0:
        raise PovertyMapperError("The tiles around the clusters hold no valid pixels; check the image's nodata.")
    means = values.mean(1).numpy()
    stds = values.std(1).clamp(min=1e-6).numpy()
    if config.extractor == "histogram":
        return HistogramExtractor(means, stds)
    from ..extractors.random_conv import RandomConvExtractor

    try:
        return RandomConvExtractor.sample(
            pixels.numpy(), valid.numpy(), n_filters=config.n_random_filters, seed=config.seed,
            band_means=means, band_stds=stds,
        )
    except ValueError as exc:  # fewer valid patch locations than filters
        raise PovertyMapperError(
            f"The tiles around the clusters hold too few valid pixels to draw {config.n_random_filters} "
            f"random filters ({exc}); use the 'histogram' extractor or imagery with fewer gaps."
        ) from exc


def _cluster_features(
    extractor: FeatureExtractor, reader: TileReader, windows: list[tuple[int, PixelWindow]], n_clusters: int,
    device: torch.device, config: ClusterFitConfig, phase: Phase,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean feature vector of each cluster's valid tiles, and the number of such tiles."""
    sums = np.zeros((n_clusters, extractor.n_features))
    counts = np.zeros(n_clusters, np.int64)
    min_valid = config.min_valid_fraction * reader.size**2
    for start in range(0, len(windows), config.batch_size):
        phase.check_canceled()
        chunk = windows[start : start + config.batch_size]
        pixels, valid = read_batch(reader, [w for _, w in chunk], device)
        with torch.inference_mode():
            feats = extractor.extract(pixels, valid).double().cpu().numpy()
        enough = (valid.flatten(1).sum(1) >= min_valid).cpu().numpy()
        for (i, _), f, ok in zip(chunk, feats, enough):
            if ok:
                sums[i] += f
                counts[i] += 1
        phase.report((start + len(chunk)) / max(1, len(windows)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None], counts


def _box_lights(path: str, ds, x: float, y: float, box_size_m: float) -> float:
    minx, miny, maxx, maxy = _box_bounds(ds, x, y, box_size_m)
    transform = Affine(maxx - minx, 0, minx, 0, -(maxy - miny), maxy)
    return float(mean_lights_on_grid(path, transform, (1, 1), ds.crs)[0, 0])


def plot_scatter(observed: np.ndarray, predicted: np.ndarray, report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5.2), constrained_layout=True)
    ax.scatter(observed, predicted, s=12, alpha=0.6)
    lo = float(min(observed.min(), predicted.min()))
    hi = float(max(observed.max(), predicted.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, label="predicted = observed")
    pooled = report["cv"]["pooled"]
    ax.set(
        xlabel=f"observed {report['outcome']} ({report['unit']})",
        ylabel="out-of-fold prediction",
        title=f"{report['extractor']} features: r² {pooled['r2']:.2f}, R² {pooled['R2']:.2f} (n={pooled['n']})",
    )
    if report.get("nightlights_baseline"):
        b = report["nightlights_baseline"]["pooled"]
        ax.text(0.02, 0.97, f"nightlights only: r² {b['r2']:.2f}, R² {b['R2']:.2f}", transform=ax.transAxes, va="top")
    ax.legend(loc="lower right")
    with atomic_output(path, ".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
