"""Task B of Jean et al. 2016: image features averaged around surveyed clusters,
ridge regression to the cluster outcome, honest nested cross-validation."""
from __future__ import annotations

import dataclasses

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from itertools import islice
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from affine import Affine

from ..atomic import atomic_output, check_not_an_input, check_writable_folder
from ..device import device_name
from ..errors import PovertyMapperError
from ..extractors.base import FeatureExtractor
from ..extractors.histogram import HistogramExtractor
from ..imagery.nightlights import mean_lights_on_grid
from ..imagery.tile_reader import TileReader, read_batch
from ..imagery.tiling import PixelWindow, TileGrid, bounds_window, ground_positions_m, pixel_size_m, tile_grid_for
from ..models.feature_domain import FeatureDomain
from ..models.model_file import PovertyModel, Score, Scores, Target, TrainingDomain
from ..options import TileOptions
from ..regression.folds import group_folds, linked_groups
from ..regression.leave_group_out import leave_one_country_out
from ..regression.metrics import coefficient_of_determination, interval_half_width, squared_pearson, within_r2
from ..regression.ridge import DEFAULT_ALPHAS, FeatureScaling, PenaltySearch, RidgeRegressor, choose_alpha, fit_ridge, fit_ridge_cv
from .outputs import write_training_outputs
from .progress import CancelCheck, Phase, PhasedProgress, ProgressCallback
from .setup import TrainingImagery, open_imagery

log = logging.getLogger("poverty_mapper")

EXTRACTOR_CHOICES = ("histogram", "random")  # or the path of a model file
# Shares of the progress bar: computing the features; the rest takes moments.
CLUSTER_PHASES = {"tiles per cluster": 0.0, "features": 9.0, "cross-validation": 0.5, "baseline": 0.5, "report": 0.0}
# How the ridge penalty is chosen here. Features that vary in fewer than 20% of the
# training clusters are left out, no feature's scale is taken below 0.2 of the median
# scale, and histograms are square-rooted frequencies: chosen on the validation splits
# of the real LSMS set (scripts/choose_feature_scaling.py, docs/fit_clusters.md). A
# penalty at an end of the grid is searched a decade at a time further, up to these
# limits, and reported.
CLUSTER_PENALTY = PenaltySearch(DEFAULT_ALPHAS, limits=(1e-6, 1e9), scaling=FeatureScaling(floor=0.2, min_support=0.2))


@dataclass(frozen=True)
class Cluster:
    """A surveyed cluster: location in the image's CRS, outcome, optional weight, and an
    optional group (a country or survey round) for scores within groups."""

    x: float
    y: float
    outcome: float
    weight: float = 1.0
    id: str = ""
    group: str = ""


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
    fold_distance_m: float | None = None  # clusters closer than this share a fold (None: the box size; 0: same place only)
    min_tiles: int = 1  # a cluster needs at least this many tiles with enough valid pixels
    min_covered_share: float = 0.0  # ... and at least this share of its box's pixels valid
    log_outcome: bool = False
    use_weights: bool = False
    n_folds: int = 5
    nightlights_path: str | None = None
    report_path: str | None = None
    scatter_path: str | None = None
    batch_size: int = 64
    n_random_filters: int = 256
    seed: int = 0
    scheduler: str | None = None  # a Dask scheduler's address: the clusters' features are computed on its workers


@dataclass(frozen=True)
class Coverage:
    """How much of each input cluster's box the fit could see (0 where it has no box on the image)."""

    tiles_used: np.ndarray  # tiles with enough valid pixels, whose features were averaged
    tiles_in_box: np.ndarray  # tiles of the box's grid, inside the image or not
    covered_share: np.ndarray  # valid pixels / all pixels of the box's tiles


@dataclass
class ClusterFitResult:
    model_path: str
    report: dict
    used: np.ndarray  # bool per input cluster: had imagery and a valid outcome
    observed: np.ndarray  # per used cluster (after the log transform, if any)
    predicted: np.ndarray  # out-of-fold prediction per used cluster
    fold: np.ndarray  # outer fold per used cluster
    notes: list[str] = field(default_factory=list)
    coverage: Coverage | None = None  # per input cluster
    baseline_predicted: np.ndarray | None = None  # nightlights alone, out of fold, per used cluster (NaN: no lights)


@dataclass(frozen=True)
class ClusterFeatures:
    """The extractor and each cluster's features."""

    extractor: FeatureExtractor
    features: np.ndarray  # mean feature vector per input cluster (NaN where it has no valid tile)
    coverage: Coverage


@dataclass(frozen=True)
class SurveyTable:
    """The clusters the fit uses: features, outcome, weight, and the folds that keep neighbours together."""

    used: np.ndarray  # bool per input cluster
    x: np.ndarray
    y: np.ndarray  # the outcome, or its log with ``log_outcome``
    weights: np.ndarray | None
    groups: np.ndarray  # neighbours closer than the fold distance, and chains of them: never split
    folds: np.ndarray  # outer fold per used cluster
    fold_distance_m: float


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
    search: PenaltySearch | None = None,
    folds: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Out-of-fold predictions with the penalty chosen inside each outer fold.

    Clusters of one group (``groups``: a location, or neighbours) never straddle a
    split, outer or inner. ``folds`` (outer fold per sample) are made from the groups
    unless given; ``search`` (else the grid ``alphas``) says how the penalty is chosen.
    """
    search = search or PenaltySearch(tuple(float(a) for a in alphas))
    folds = group_folds(groups, n_folds, seed) if folds is None else np.asarray(folds)
    pred = np.full(y.size, np.nan)
    per_fold = []
    for f in range(n_folds):
        test = folds == f
        train = ~test
        w_train = None if sample_weight is None else sample_weight[train]
        n_inner = min(n_folds, len(np.unique(groups[train], axis=0)))
        if n_inner < 2:
            raise PovertyMapperError(
                f"Fold {f} leaves fewer than two groups of clusters to train on; lower the fold distance."
            )
        inner = group_folds(groups[train], n_inner, seed + 1)
        choice = choose_alpha(x[train], y[train], inner, search, w_train)
        model = fit_ridge(x[train], y[train], choice.alpha, w_train, search.scaling)
        pred[test] = model.predict(x[test])
        per_fold.append({
            "fold": f,
            "n": int(test.sum()),
            **choice.summary(),
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


@dataclass(frozen=True)
class BoxTiles:
    """The tiles of one cluster's box that touch the raster, never listed: a tile's
    columns do not depend on its row, so they are the on-raster rows x the on-raster
    columns, in row-major order (a 100 km box of 240 m tiles holds 174,000)."""

    cluster: int
    grid: TileGrid
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    def window(self, k: int) -> PixelWindow:
        """The ``k``-th tile (row-major) that touches the raster."""
        return self.grid.tile_window(self.rows[k // len(self.cols)], self.cols[k % len(self.cols)])

    def __iter__(self) -> Iterator[PixelWindow]:
        return (self.grid.tile_window(r, c) for r in self.rows for c in self.cols)


@dataclass(frozen=True)
class ClusterTiles:
    """The tiles of every cluster's box that touch the raster, one at a time, as
    (cluster index, window): memory stays flat whatever the box size."""

    boxes: tuple[BoxTiles, ...]

    def __len__(self) -> int:
        return sum(len(b) for b in self.boxes)

    def __iter__(self) -> Iterator[tuple[int, PixelWindow]]:
        return ((b.cluster, w) for b in self.boxes for w in b)

    def picked(self, indices: Sequence[int]) -> list[tuple[int, PixelWindow]]:
        """The tiles at ``indices`` (sorted) of the row-major sequence of all boxes."""
        starts = np.cumsum([0] + [len(b) for b in self.boxes])
        out = []
        for k in indices:
            box = int(np.searchsorted(starts, k, side="right")) - 1
            out.append((self.boxes[box].cluster, self.boxes[box].window(int(k - starts[box]))))
        return out


def _batches(items: Iterable, size: int) -> Iterator[list]:
    """``items`` in lists of ``size`` (the last shorter), taken one at a time."""
    items = iter(items)
    while chunk := list(islice(items, size)):
        yield chunk


def _box_tiles(ds, i: int, x: float, y: float, box_size_m: float, tile_m: float) -> tuple[BoxTiles, int] | None:
    """The tiles of the ``box_size_m`` square centred on (x, y) that touch the raster, and
    how many tiles the box has in all; None when the box misses the raster."""
    try:
        box = bounds_window(ds.transform, _box_bounds(ds, x, y, box_size_m))
    except PovertyMapperError:
        return None
    if box.intersection(ds.width, ds.height) is None:
        return None
    grid = tile_grid_for(ds.transform, ds.crs, box, tile_m)
    cols = tuple(c for c in range(grid.width) if _overlaps(grid.tile_window(0, c), ds.width, ds.height, "x"))
    rows = tuple(r for r in range(grid.height) if _overlaps(grid.tile_window(r, 0), ds.width, ds.height, "y"))
    return BoxTiles(i, grid, rows, cols), len(grid)


def _overlaps(window: PixelWindow, width: int, height: int, axis: str) -> bool:
    if axis == "x":
        return window.col_off < width and window.col_off + window.width > 0
    return window.row_off < height and window.row_off + window.height > 0


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
    _check_config(config)
    _check_outputs(config)
    phases = PhasedProgress(CLUSTER_PHASES, progress, is_canceled)
    notes: list[str] = []
    outcomes, usable = _outcomes(config, notes)
    base_model_path = None if config.extractor in EXTRACTOR_CHOICES else config.extractor
    with open_imagery(config.image_path, config, config.tile_size_m, model_path=base_model_path) as imagery:
        windows, tiles_in_box = _tiles_per_cluster(config, imagery, usable, notes)
        features = _features(config, imagery, windows, tiles_in_box, phases["features"])
        table = _survey_table(config, imagery, outcomes, usable, features, notes)
        cv = _cross_validation(config, table)
        notes.extend(_penalty_notes(cv.per_fold))
        baseline = _nightlights_baseline(config, imagery, table, notes)
    within = _within_groups(config, table, cv)
    report = _cluster_report(config, imagery, features, table, cv, baseline, notes, within)
    write_training_outputs(
        _cluster_model(config, imagery, features.extractor, table, cv, baseline, within), config.model_path,
        report, config.report_path, config.scatter_path, lambda path: plot_scatter(table.y, cv.predicted, report, path),
    )
    phases.done()
    return ClusterFitResult(
        config.model_path, report, table.used, table.y, cv.predicted, cv.folds, notes,
        features.coverage, None if baseline is None else baseline["predicted"],
    )


# Outcomes beyond this size overflow the fit's sums of squares: a value of 1e300 is a
# typing error or a code for "missing", not a survey measure.
MAX_OUTCOME = 1e12


def _check_config(config: ClusterFitConfig) -> None:
    if not config.clusters:
        raise PovertyMapperError("The cluster layer holds no clusters; give a layer or file with a point per surveyed cluster.")
    if not 2 <= config.n_folds:
        raise PovertyMapperError(f"The cross-validation needs at least 2 folds, not {config.n_folds}; 5 is usual.")
    for name, value in (("box size", config.box_size_m), ("tile size", config.tile_size_m)):
        if not (math.isfinite(value) and value > 0):
            raise PovertyMapperError(f"The {name} must be more than 0 m, not {value:g}; e.g. 10000 m boxes of 1920 m tiles.")
    if config.seed < 0:
        raise PovertyMapperError(f"The seed must be 0 or more, not {config.seed}.")
    if config.batch_size < 1:
        raise PovertyMapperError(f"The batch size must be 1 or more tiles, not {config.batch_size}; e.g. 64.")
    if config.fold_distance_m is not None and not config.fold_distance_m >= 0:
        raise PovertyMapperError("The fold distance must be 0 m or more (0: only clusters at the same place share a fold).")
    if config.min_tiles < 1 or not 0.0 <= config.min_covered_share <= 1.0:
        raise PovertyMapperError(
            "The coverage minimum must be at least one tile and a share of the box between 0 and 1."
        )


def _check_outputs(config: ClusterFitConfig) -> None:
    """Refuse, before the fit, outputs that name an input or lie in folders that cannot be written."""
    inputs = {"imagery": config.image_path, "nightlights raster": config.nightlights_path}
    if config.extractor not in EXTRACTOR_CHOICES:
        inputs["extractor model file"] = config.extractor
    outputs = {"model file": config.model_path, "report": config.report_path, "scatter plot": config.scatter_path}
    for what, path in outputs.items():
        if path:
            check_not_an_input(path, inputs)
            check_writable_folder(path, what)


def _outcomes(config: ClusterFitConfig, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each cluster's outcome as a number, and whether it can be used (numeric; > 0 for a log)."""
    outcomes = np.array([_number(c.outcome) for c in config.clusters], np.float64)
    usable = np.isfinite(outcomes)
    if not usable.any():
        raise PovertyMapperError(
            f"No cluster has a numeric outcome in '{config.outcome_name}' (all are missing, NaN or text); "
            "choose the field that holds the survey outcome as numbers."
        )
    if not usable.all():
        notes.append(f"{int(np.sum(~usable))} clusters without a numeric outcome (missing, NaN or text) left out.")
    huge = usable & (np.abs(np.where(usable, outcomes, 0.0)) > MAX_OUTCOME)
    if huge.any():
        raise PovertyMapperError(
            f"{_clusters(int(huge.sum()))} an outcome beyond ±{MAX_OUTCOME:g} (e.g. {outcomes[huge][0]:g}) in "
            f"'{config.outcome_name}': a typing error or a code for a missing value. Correct or empty those values, "
            "or rescale the outcome."
        )
    if config.log_outcome:
        not_positive = usable & (outcomes <= 0)
        usable &= outcomes > 0
        if not_positive.any():
            notes.append(f"{_clusters(int(not_positive.sum()))} an outcome of 0 or less, which has no logarithm: "
                         "left out (log transform).")
    located = np.array([math.isfinite(c.x) and math.isfinite(c.y) for c in config.clusters])
    if not np.any(usable & located):
        n = int(usable.sum())
        raise PovertyMapperError(
            ("The one cluster with an outcome has" if n == 1 else f"None of the {n} clusters with an outcome has")
            + " a valid location (no geometry, or coordinates that are not numbers or outside their CRS's range); "
            "check the clusters' coordinates."
        )
    if np.any(usable & ~located):
        notes.append(f"{_clusters(int(np.sum(usable & ~located)))} no valid location (no geometry, coordinates that "
                     "are not numbers or outside their CRS's range): left out.")
    return outcomes, usable & located


def _clusters(n: int) -> str:
    """'1 cluster has' or 'N clusters have'."""
    return "1 cluster has" if n == 1 else f"{n} clusters have"


def _tiles_per_cluster(
    config: ClusterFitConfig, imagery: TrainingImagery, usable: np.ndarray, notes: list[str]
) -> tuple[ClusterTiles, np.ndarray]:
    """The tiles of each usable cluster's box that touch the image, and the number of
    tiles in each box (0: not on the image)."""
    ds = imagery.dataset
    boxes: list[BoxTiles] = []
    tiles_in_box = np.zeros(len(config.clusters), np.int64)
    for i, c in enumerate(config.clusters):
        if not usable[i]:
            continue
        box = _box_tiles(ds, i, c.x, c.y, config.box_size_m, imagery.tile_m)
        if box is None or len(box[0]) == 0:
            continue
        tiles, tiles_in_box[i] = box
        boxes.append(tiles)
    n_outside = int(usable.sum()) - int(np.count_nonzero(tiles_in_box))
    if n_outside == usable.sum():
        raise PovertyMapperError(
            f"None of the {n_outside} clusters with an outcome and a location lies on the image; check that the "
            "clusters and the image overlap and that the clusters' CRS is the right one."
        )
    if n_outside:
        notes.append(f"{n_outside} cluster{'s' if n_outside != 1 else ''} outside the image left out.")
    return ClusterTiles(tuple(boxes)), tiles_in_box


def _features(
    config: ClusterFitConfig, imagery: TrainingImagery, windows: ClusterTiles,
    tiles_in_box: np.ndarray, phase: Phase,
) -> ClusterFeatures:
    """The extractor (the model file's, or one fitted to this imagery) and each cluster's mean features."""
    reader = imagery.tile_reader()
    extractor = imagery.model.extractor if imagery.model else _fresh_extractor(config, reader, windows)
    features, tiles_used, valid_pixels = _cluster_features(
        extractor, reader, windows, len(config.clusters), imagery.device, config, phase
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        covered = np.where(tiles_in_box > 0, valid_pixels / (tiles_in_box * float(reader.size) ** 2), 0.0)
    return ClusterFeatures(extractor, features, Coverage(tiles_used, tiles_in_box, covered))


def _survey_table(
    config: ClusterFitConfig, imagery: TrainingImagery, outcomes: np.ndarray, usable: np.ndarray,
    features: ClusterFeatures, notes: list[str],
) -> SurveyTable:
    """The clusters with imagery enough and a usable outcome, in folds that keep neighbours together."""
    used = _covered_enough(config, usable, features.coverage, notes)
    if used.sum() < max(config.n_folds * 2, 10):
        n = int(used.sum())
        raise PovertyMapperError(
            f"Only {n} cluster{'s' if n != 1 else ''} {'have' if n != 1 else 'has'} imagery and a valid outcome; "
            f"at least {max(config.n_folds * 2, 10)} are needed for {config.n_folds}-fold cross-validation."
            + (f" Left out: {' '.join(notes)}" if notes else "")
        )
    y = np.log(outcomes[used]) if config.log_outcome else outcomes[used]
    if np.ptp(y) == 0:
        raise PovertyMapperError(
            f"The outcome is {outcomes[used][0]:g} at every cluster used: there is nothing to fit. "
            f"Check that '{config.outcome_name}' is the survey outcome."
        )
    weights = _weights(config, used)
    distance = config.box_size_m if config.fold_distance_m is None else config.fold_distance_m
    groups, folds = _spatial_folds(config, imagery, used, distance)
    return SurveyTable(used, features.features[used], y, weights, groups, folds, distance)


def _weights(config: ClusterFitConfig, used: np.ndarray) -> np.ndarray | None:
    """The used clusters' weights, when the fit is weighted: numbers of zero or more, not all zero."""
    if not config.use_weights:
        return None
    weights = np.array([_number(c.weight) for c in config.clusters], np.float64)[used]
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        raise PovertyMapperError(
            f"{_clusters(int(bad.sum()))} a weight that is missing, not a number or below 0; give every "
            "cluster a weight of 0 or more (e.g. the households surveyed), or fit without weights."
        )
    if not weights.sum() > 0:
        raise PovertyMapperError("Every cluster's weight is 0; give the clusters weights above 0, or fit without weights.")
    return weights


def _covered_enough(config: ClusterFitConfig, usable: np.ndarray, coverage: Coverage, notes: list[str]) -> np.ndarray:
    """The usable clusters whose box has tiles with enough valid pixels, at least the minimum."""
    on_image = usable & (coverage.tiles_in_box > 0)
    seen = on_image & (coverage.tiles_used > 0)
    if int(on_image.sum() - seen.sum()) > 0:
        notes.append(f"{int(on_image.sum() - seen.sum())} clusters whose box has no tile with enough valid pixels left out.")
    enough = seen & (coverage.tiles_used >= config.min_tiles) & (coverage.covered_share >= config.min_covered_share)
    if int(seen.sum() - enough.sum()) > 0:
        notes.append(
            f"{int(seen.sum() - enough.sum())} clusters under the coverage minimum ({config.min_tiles} tiles, "
            f"{config.min_covered_share:.0%} of the box valid) left out."
        )
    return enough


def _spatial_folds(
    config: ClusterFitConfig, imagery: TrainingImagery, used: np.ndarray, distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Groups of clusters closer than ``distance`` (metres on the ground, chains of
    neighbours included), and the outer fold of each used cluster; whole groups per fold."""
    xs = np.array([c.x for c in config.clusters])[used]
    ys = np.array([c.y for c in config.clusters])[used]
    groups = linked_groups(ground_positions_m(imagery.dataset.crs, xs, ys), distance)
    n_groups = int(groups.max()) + 1
    if n_groups < config.n_folds:
        raise PovertyMapperError(
            f"The {int(used.sum())} clusters form only {n_groups} groups of neighbours closer than "
            f"{distance:g} m (each group stays in one fold), too few for {config.n_folds} folds; lower the "
            "number of folds or the fold distance."
        )
    return groups, group_folds(groups, config.n_folds, config.seed)


def _cross_validation(config: ClusterFitConfig, table: SurveyTable) -> CrossValidation:
    """Out-of-fold scores by nested cross-validation, and the ridge fitted on every cluster."""
    pred, folds, per_fold = nested_cv(
        table.x, table.y, table.groups, config.n_folds, config.seed, table.weights,
        search=CLUSTER_PENALTY, folds=table.folds,
    )
    regressor = fit_ridge_cv(table.x, table.y, table.folds, sample_weight=table.weights, search=CLUSTER_PENALTY)
    return CrossValidation(pred, folds, per_fold, _scores(table.y, pred), regressor)


def _nightlights_baseline(
    config: ClusterFitConfig, imagery: TrainingImagery, table: SurveyTable, notes: list[str]
) -> dict | None:
    """The same cross-validation (same folds) on the mean nightlights of each cluster's box alone, if given."""
    if not config.nightlights_path:
        return None
    lights = np.array([
        _box_lights(config.nightlights_path, imagery.dataset, c.x, c.y, config.box_size_m)
        for c, u in zip(config.clusters, table.used) if u
    ])
    has = np.isfinite(lights)
    if has.sum() < max(config.n_folds * 2, 10) or len(np.unique(table.folds[has])) < config.n_folds:
        notes.append("Too few clusters are covered by the nightlights raster for a baseline.")
        return None
    if np.ptp(lights[has]) == 0:
        notes.append(
            f"The nightlights are {lights[has][0]:g} over every cluster's box: they do not vary, so they cannot "
            "predict anything and no nightlights baseline is scored. Check the nightlights raster (its values, "
            "nodata and extent)."
        )
        return None
    xl = np.column_stack([lights[has], np.log1p(np.clip(lights[has], 0, None))])
    bpred, _, bfolds = nested_cv(
        xl, table.y[has], table.groups[has], config.n_folds, config.seed, search=CLUSTER_PENALTY,
        folds=table.folds[has],
    )
    predicted = np.full(table.y.size, np.nan)
    predicted[has] = bpred
    return {
        "features": "mean nightlights over each cluster's box, and its log1p",
        "pooled": _scores(table.y[has], bpred),
        "folds": bfolds,
        "predicted": predicted,
    }


def _cv_protocol(config: ClusterFitConfig, table: SurveyTable) -> str:
    return (
        f"{config.n_folds}-fold nested cross-validation; folds by location: clusters closer than "
        f"{table.fold_distance_m:g} m (and chains of such neighbours) share a fold; ridge penalty chosen by "
        "inner cross-validation inside each outer training set (grid extended where its best lay at an end)"
    )


def _extractor_name(config: ClusterFitConfig, imagery: TrainingImagery, extractor: FeatureExtractor) -> str:
    return extractor.kind if imagery.model is None else f"{extractor.kind} from {Path(config.extractor).name}"


def _outcome_unit(config: ClusterFitConfig) -> str:
    return f"log of {config.outcome_unit}" if config.log_outcome else config.outcome_unit


def _cluster_report(
    config: ClusterFitConfig, imagery: TrainingImagery, features: ClusterFeatures, table: SurveyTable,
    cv: CrossValidation, baseline: dict | None, notes: list[str], within: dict | None,
) -> dict:
    return {
        "outcome": config.outcome_name,
        "unit": _outcome_unit(config),
        "extractor": _extractor_name(config, imagery, features.extractor),
        "box_size_m": config.box_size_m,
        "tile_size_m": imagery.tile_m,
        "clusters": {"given": len(config.clusters), "used": int(table.used.sum()), "groups": int(table.groups.max()) + 1},
        "folds": _fold_report(config, table),
        "coverage": _coverage_report(config, features.coverage, table.used),
        "cv": {"protocol": _cv_protocol(config, table), "pooled": cv.pooled, "folds": cv.per_fold,
               **({} if within is None else {"within_groups": within})},
        "scores_named": "r2 = squared Pearson correlation with its sign (negative: predictions run against the "
                        "outcome, no skill); R2 = coefficient of determination",
        "nightlights_baseline": None if baseline is None else {k: v for k, v in baseline.items() if k != "predicted"},
        "device": device_name(imagery.device),
        "notes": notes,
    }


def _within_groups(config: ClusterFitConfig, table: SurveyTable, cv: CrossValidation) -> dict | None:
    """Out-of-fold r2 within the clusters' groups (country, survey round), where given:
    predictions and survey values both demeaned per group, and r2 in each group."""
    groups = np.array([c.group for c in config.clusters])[table.used]
    if not any(groups) or np.unique(groups).size < 2:
        return None
    per_group = {
        str(g): {"r2": round(squared_pearson(table.y[groups == g], cv.predicted[groups == g]), 4),
                 "n": int(np.sum(groups == g))}
        for g in np.unique(groups)
    }
    out = {"r2": round(within_r2(table.y, cv.predicted, groups), 4), "n": int(groups.size),
           "groups": len(per_group), "per_group": per_group}
    if len(per_group) >= 3:
        # Each group predicted by a model fitted on the others (penalty by an inner
        # leave-one-group-out): what the features bring to a country without surveys.
        loco = leave_one_country_out(table.x, table.y, groups)
        out["out_of_group_r2"] = round(within_r2(table.y, loco.pred, groups), 4)
    return out


def _fold_report(config: ClusterFitConfig, table: SurveyTable) -> dict:
    """How the clusters were dealt to folds: the distance, the groups and the fold sizes."""
    group_sizes = np.bincount(table.groups)
    return {
        "distance_m": table.fold_distance_m,
        "groups": int(group_sizes.size),
        "largest_group": int(group_sizes.max()),
        "sizes": np.bincount(table.folds, minlength=config.n_folds).tolist(),
    }


def _coverage_report(config: ClusterFitConfig, coverage: Coverage, used: np.ndarray) -> dict:
    """The tiles and the covered share of every cluster's box (ids only, no coordinates)."""
    on_image = coverage.tiles_in_box > 0
    return {
        "minimum": {"tiles": config.min_tiles, "covered_share": config.min_covered_share},
        "median_tiles_used": float(np.median(coverage.tiles_used[used])),
        "median_covered_share": round(float(np.median(coverage.covered_share[used])), 4),
        "clusters": [
            {"id": c.id, "tiles_used": int(coverage.tiles_used[i]), "tiles_in_box": int(coverage.tiles_in_box[i]),
             "covered_share": round(float(coverage.covered_share[i]), 4), "used": bool(used[i])}
            for i, c in enumerate(config.clusters) if on_image[i]
        ],
    }


def _penalty_notes(per_fold: list[dict]) -> list[str]:
    """A line for each fold whose penalty lay at an end of the grid."""
    lines = []
    for f in per_fold:
        if f["alpha_edge"]:
            where = "still at the end of the extended grid" if f["alpha_at_limit"] else "inside the extended grid"
            lines.append(
                f"Fold {f['fold']}: the best penalty lay at the {f['alpha_edge']} end of the grid; searched "
                f"further, alpha {f['alpha']:g} was chosen, {where}."
            )
    return lines


def _cluster_model(
    config: ClusterFitConfig, imagery: TrainingImagery, extractor: FeatureExtractor, table: SurveyTable,
    cv: CrossValidation, baseline: dict | None, within: dict | None,
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
        domain=dataclasses.replace(TrainingDomain.of_outcomes(table.y), box_size_m=float(config.box_size_m)),
        feature_domain=FeatureDomain.of_training(table.x),
        scores=Scores(
            protocol=_cv_protocol(config, table),
            pooled=Score.from_json(cv.pooled),
            folds={str(f["fold"]): Score.from_json(f) for f in cv.per_fold},
            baselines={} if baseline is None else {"nightlights": Score.from_json(baseline["pooled"])},
            interval_80=round(interval_half_width(table.y - cv.predicted), 6),
            within_groups_r2=None if within is None else within["r2"],
            out_of_country_r2=None if within is None else within.get("out_of_group_r2"),
        ),
        provenance={
            "data": f"{n_used} clusters on {Path(config.image_path).name}",
            "box_size_m": config.box_size_m,
            "fold_distance_m": table.fold_distance_m,
            "coverage_minimum": {"tiles": config.min_tiles, "covered_share": config.min_covered_share},
            "ridge_scaling": {"floor": CLUSTER_PENALTY.scaling.floor, "min_support": CLUSTER_PENALTY.scaling.min_support},
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
    config: ClusterFitConfig, reader: TileReader, windows: ClusterTiles
) -> FeatureExtractor:
    """A histogram or random-convolution extractor fitted to this imagery: band
    statistics (and random patches) from a seeded sample of the clusters' tiles."""
    rng = np.random.default_rng(config.seed)
    n_tiles = len(windows)
    pick = rng.choice(n_tiles, size=min(n_tiles, 256), replace=False) if n_tiles else []
    if len(pick) == 0:
        raise PovertyMapperError("No cluster lies on the image; check that the clusters and the image overlap.")
    pixels, valid = read_batch(reader, [w for _, w in windows.picked(sorted(pick))], torch.device("cpu"))
    values = pixels.transpose(0, 1)[:, valid].double()
    if values.shape[1] == 0:
        raise PovertyMapperError("The tiles around the clusters hold no valid pixels; check the image's nodata.")
    means = values.mean(1).numpy()
    stds = values.std(1).clamp(min=1e-6).numpy()
    if config.extractor == "histogram":
        return HistogramExtractor(means, stds, transform="sqrt")
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
    extractor: FeatureExtractor, reader: TileReader, windows: ClusterTiles | Sequence[tuple[int, PixelWindow]], n_clusters: int,
    device: torch.device, config: ClusterFitConfig, phase: Phase,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean feature vector of each cluster's tiles with enough valid pixels, the number
    of such tiles, and the valid pixels of all its tiles. Tiles with too few valid
    pixels are read (for the coverage) but not run through the extractor. The chunks of
    tiles run here, or on the workers of ``config.scheduler``'s Dask cluster."""
    sums = np.zeros((n_clusters, extractor.n_features))
    counts = np.zeros(n_clusters, np.int64)
    valid_pixels = np.zeros(n_clusters, np.float64)
    min_valid = config.min_valid_fraction * reader.size**2
    n_tiles, done = len(windows), 0
    chunks = _batches(windows, config.batch_size)  # taken one at a time, never listed
    for chunk, (n_valid, enough, feats) in _chunk_results(extractor, reader, chunks, min_valid, device, config, phase):
        owners = np.array([i for i, _ in chunk])
        np.add.at(valid_pixels, owners, n_valid)
        if enough.any():
            np.add.at(sums, owners[enough], feats)
            np.add.at(counts, owners[enough], 1)
        done += len(chunk)
        phase.report(done / max(1, n_tiles))
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None], counts, valid_pixels


def chunk_features(
    payload: tuple[FeatureExtractor, float, torch.device], reader: TileReader, chunk: list[tuple[int, PixelWindow]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One chunk of cluster tiles: each tile's valid pixels, whether it has enough, and
    the features of those that do (float64)."""
    extractor, min_valid, device = payload
    pixels, valid = read_batch(reader, [w for _, w in chunk], device)
    n_valid = valid.flatten(1).sum(1).cpu().numpy()
    enough = n_valid >= min_valid
    feats = np.zeros((0, extractor.n_features))
    if enough.any():
        keep = torch.from_numpy(enough).to(pixels.device)
        with torch.inference_mode():
            feats = extractor.extract(pixels[keep], valid[keep]).double().cpu().numpy()
    return n_valid, enough, feats


def _chunk_results(extractor, reader: TileReader, chunks, min_valid: float, device, config: ClusterFitConfig, phase: Phase):
    """(chunk, :func:`chunk_features`) for every chunk: here in order, or on a Dask cluster as they complete."""
    payload = (extractor, min_valid, device)
    if not config.scheduler:
        for chunk in chunks:
            phase.check_canceled()
            yield chunk, chunk_features(payload, reader, chunk)
        return
    from ..imagery.dask_cluster import ClusterRun, WorkerImagery, scheduler_client

    imagery = WorkerImagery(config.image_path, tuple(reader.bands), reader.size, reader.radiometry)
    with scheduler_client(config.scheduler) as client, ClusterRun(client, imagery, payload) as run:
        yield from run.results(chunk_features, chunks, phase.is_canceled)


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
