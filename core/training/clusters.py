"""Task B of Jean et al. 2016: image features averaged around surveyed clusters,
ridge regression to the cluster outcome, honest nested cross-validation."""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..device import device_name
from ..errors import PovertyMapperError
from ..extractors.base import FeatureExtractor
from ..imagery.box_tiles import BoxTiles, ClusterTiles, box_tiles
from ..imagery.tiling import ground_positions_m
from ..models.feature_domain import FeatureDomain
from ..models.model_file import PovertyModel, Score, Scores, Target, TrainingDomain
from ..models.scene_reference import TrainingRaster, scene_domain_of
from ..options import TileOptions
from ..regression.columns import Columns, fit_columns_cv, network_candidates
from ..regression.cross_validation import FoldScore, nested_cv
from ..regression.folds import group_folds, linked_groups
from ..regression.leave_group_out import leave_one_country_out
from ..regression.metrics import interval_half_width, squared_pearson, within_r2
from ..regression.ridge import DEFAULT_ALPHAS, FeatureScaling, PenaltySearch, RidgeRegressor, fit_ridge_cv
from .cluster_features import ClusterFeatures, Coverage, features_of
from .cluster_report import (
    BaselineReport, ClusterCounts, ClusterCoverage, ClusterReport, CoverageReport, CrossValidationReport, FoldReport,
    GroupScore, WithinGroups, fold_score, penalty_notes, pooled_score,
)
from .cluster_lights import (
    BUNDLED_FEATURES, NightlightsBaseline, cluster_lights, lights_block_search, nightlights_baseline,
    with_lights_features,
)
from .outputs import write_training_outputs
from .plots import plot_scatter
from .progress import CancelCheck, Phase, PhasedProgress, ProgressCallback
from .setup import TrainingImagery, open_imagery
from .survey_inputs import EXTRACTOR_CHOICES, Cluster, check_config, check_outputs, survey_outcomes, survey_weights

log = logging.getLogger("poverty_mapper")

# Shares of the progress bar: computing the features; the rest takes moments.
CLUSTER_PHASES = {
    "tiles per cluster": 0.0, "features": 9.0, "cross-validation": 0.5, "baseline": 0.25, "training imagery": 0.25,
    "report": 0.0,
}
# How the ridge penalty is chosen here. Features that vary in fewer than 20% of the
# training clusters are left out, no feature's scale is taken below 0.2 of the median
# scale, and histograms are square-rooted frequencies: chosen on the validation splits
# of the real LSMS set (scripts/choose_feature_scaling.py, docs/fit_clusters.md). A
# penalty at an end of the grid is searched a decade at a time further, up to these
# limits, and reported.
CLUSTER_PENALTY = PenaltySearch(DEFAULT_ALPHAS, limits=(1e-6, 1e9), scaling=FeatureScaling(floor=0.2, min_support=0.2))


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
    extractor_kind: str = EXTRACTOR_CHOICES[0]  # one of EXTRACTOR_CHOICES, fitted to the imagery
    extractor_path: str | None = None  # a .povmodel whose extractor to use instead (e.g. a proxy CNN)
    box_size_m: float = 10_000.0
    tile_size_m: float = 1_920.0  # for 'histogram' and 'random'; a model file brings its own
    fold_distance_m: float | None = None  # clusters closer than this share a fold (None: the box size; 0: same place only)
    min_tiles: int = 1  # a cluster needs at least this many tiles with enough valid pixels
    min_covered_share: float = 0.0  # ... and at least this share of its box's pixels valid
    log_outcome: bool = False
    use_weights: bool = False
    n_folds: int = 5
    nightlights_path: str | None = None  # for the baseline; None: the bundled lights, where they cover the clusters
    with_lights: bool = False  # fit the bundled lights' features beside the image features, in one ridge
    # A network's features: the regression's columns chosen on inner folds among the features,
    # their principal components and the network's class scores (core.regression.columns).
    choose_columns: bool = True
    report_path: str | None = None
    scatter_path: str | None = None
    batch_size: int = 64
    n_random_filters: int = 256
    seed: int = 0
    scheduler: str | None = None  # a Dask scheduler's address: the clusters' features are computed on its workers


@dataclass
class ClusterFitResult:
    model_path: str
    report: ClusterReport
    used: np.ndarray  # bool per input cluster: had imagery and a valid outcome
    observed: np.ndarray  # per used cluster (after the log transform, if any)
    predicted: np.ndarray  # out-of-fold prediction per used cluster
    fold: np.ndarray  # outer fold per used cluster
    notes: list[str] = field(default_factory=list)
    coverage: Coverage | None = None  # per input cluster
    baseline_predicted: np.ndarray | None = None  # nightlights alone, out of fold, per used cluster (NaN: no lights)
    features: np.ndarray | None = None  # per used cluster, as the regression saw them
    groups: np.ndarray | None = None  # per used cluster: neighbours that never straddle a fold


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
    columns_chosen: bool = False  # the regression's columns are chosen on inner folds (a network's features)


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold predictions and scores, and the regressor fitted on all clusters."""

    predicted: np.ndarray  # out of fold, per used cluster
    folds: np.ndarray  # outer fold per used cluster
    per_fold: list[FoldScore]
    pooled: Score  # scores of all out-of-fold predictions
    regressor: RidgeRegressor  # fitted on all clusters, penalty by cross-validation


def fit_clusters(
    config: ClusterFitConfig,
    progress: ProgressCallback | None = None,
    is_canceled: CancelCheck | None = None,
) -> ClusterFitResult:
    """Fits the survey outcome in five phases: the tiles of each cluster's box, their
    features, the cross-validation, the nightlights baseline and the report (with the model file)."""
    check_config(config)
    check_outputs(config)
    phases = PhasedProgress(CLUSTER_PHASES, progress, is_canceled)
    notes: list[str] = []
    outcomes, usable = survey_outcomes(config, notes)
    with open_imagery(config.image_path, config, config.tile_size_m, model_path=config.extractor_path) as imagery:
        notes.extend(imagery.notes)
        windows, tiles_in_box = _tiles_per_cluster(config, imagery, usable, notes)
        features = features_of(config, imagery, windows, tiles_in_box, phases["features"])
        lights = cluster_lights(config, imagery.dataset.crs, usable & (tiles_in_box > 0), notes)
        if config.with_lights:
            features, usable = with_lights_features(features, lights, usable, notes)
        table = _survey_table(config, imagery, outcomes, usable, features, notes)
        search = lights_block_search(CLUSTER_PENALTY, features.extractor.n_features) if config.with_lights \
            else CLUSTER_PENALTY
        candidates = _column_candidates(config, features.extractor)
        table = dataclasses.replace(table, columns_chosen=candidates is not None)
        cv = _cross_validation(config, table, search, candidates)
        notes.extend(penalty_notes(cv.per_fold))
        baseline = nightlights_baseline(config, imagery.dataset, table, lights, CLUSTER_PENALTY, notes)
        within = _within_groups(config, table, cv)
        baseline_report = None if baseline is None else baseline.report
        model = _cluster_model(config, imagery, features.extractor, table, cv, baseline, within)
        model = _with_scene_domain(config, imagery, model, phases["training imagery"])
    report = _cluster_report(config, imagery, features, table, cv, baseline_report, notes, within)
    write_training_outputs(
        model, config.model_path, report.to_json(), config.report_path, config.scatter_path,
        lambda path: plot_scatter(table.y, cv.predicted, report, path),
    )
    phases.done()
    return ClusterFitResult(
        config.model_path, report, table.used, table.y, cv.predicted, cv.folds, notes,
        features.coverage, None if baseline is None else baseline.predicted, table.x, table.groups,
    )


def _with_scene_domain(config: ClusterFitConfig, imagery: TrainingImagery, model: PovertyModel, phase: Phase) -> PovertyModel:
    """``model`` with what its training image looked like, for the scene check of its maps
    (:mod:`..models.scene_domain`)."""
    phase.check_canceled()
    raster = TrainingRaster(imagery.dataset, imagery.bands, imagery.radiometry)
    domain = scene_domain_of(model, [raster], config.min_valid_fraction, config.seed)
    phase.report(1.0)
    return dataclasses.replace(model, scene_domain=domain)


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
        box = box_tiles(ds, i, c.x, c.y, config.box_size_m, imagery.tile_m)
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
    weights = survey_weights(config, used)
    distance = config.box_size_m if config.fold_distance_m is None else config.fold_distance_m
    groups, folds = _spatial_folds(config, imagery, used, distance)
    return SurveyTable(used, features.features[used], y, weights, groups, folds, distance)


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


def _column_candidates(config: ClusterFitConfig, extractor: FeatureExtractor) -> tuple[Columns, ...] | None:
    """The regression's candidate columns for a network's features (None: the features)."""
    if not (config.choose_columns and extractor.is_network) or config.with_lights:
        return None
    return network_candidates(extractor.class_layer())


def _cross_validation(
    config: ClusterFitConfig, table: SurveyTable, search: PenaltySearch, candidates: tuple[Columns, ...] | None,
) -> CrossValidation:
    """Out-of-fold scores by nested cross-validation, and the ridge fitted on every cluster
    (its columns chosen among ``candidates`` where given)."""
    pred, folds, per_fold = nested_cv(
        table.x, table.y, table.groups, config.n_folds, config.seed, table.weights, search=search, folds=table.folds,
        candidates=candidates,
    )
    regressor = (fit_columns_cv(table.x, table.y, table.folds, candidates, search, table.weights) if candidates
                 else fit_ridge_cv(table.x, table.y, table.folds, sample_weight=table.weights, search=search))
    return CrossValidation(pred, folds, per_fold, pooled_score(table.y, pred), regressor)


def _cv_protocol(config: ClusterFitConfig, table: SurveyTable) -> str:
    return (
        f"{config.n_folds}-fold nested cross-validation; folds by location: clusters closer than "
        f"{table.fold_distance_m:g} m (and chains of such neighbours) share a fold; ridge penalty chosen by "
        "inner cross-validation inside each outer training set (grid extended where its best lay at an end)"
        + ("; with it, the weight of the bundled lights' features against the image features (0.01 to 100, "
           "half decades)" if config.with_lights else "")
        + ("; with it, the regression's columns: the network's features, their first 2, 4, 8 or 16 principal "
           "components, or the network's night-light class scores" if table.columns_chosen else "")
    )


def _extractor_name(config: ClusterFitConfig, imagery: TrainingImagery, extractor: FeatureExtractor) -> str:
    name = extractor.kind if imagery.model is None else f"{extractor.kind} from {Path(config.extractor_path).name}"
    return f"{name} and the bundled night lights" if config.with_lights else name


def _outcome_unit(config: ClusterFitConfig) -> str:
    return f"log of {config.outcome_unit}" if config.log_outcome else config.outcome_unit


def _cluster_report(
    config: ClusterFitConfig, imagery: TrainingImagery, features: ClusterFeatures, table: SurveyTable,
    cv: CrossValidation, baseline: BaselineReport | None, notes: list[str], within: WithinGroups | None,
) -> ClusterReport:
    return ClusterReport(
        outcome=config.outcome_name,
        unit=_outcome_unit(config),
        extractor=_extractor_name(config, imagery, features.extractor),
        box_size_m=config.box_size_m,
        tile_size_m=imagery.tile_m,
        clusters=ClusterCounts(len(config.clusters), int(table.used.sum()), int(table.groups.max()) + 1),
        folds=_fold_report(config, table),
        coverage=_coverage_report(config, features.coverage, table.used),
        cv=CrossValidationReport(_cv_protocol(config, table), cv.pooled, cv.per_fold, within),
        nightlights_baseline=baseline,
        device=device_name(imagery.device),
        notes=notes,
    )


def _within_groups(config: ClusterFitConfig, table: SurveyTable, cv: CrossValidation) -> WithinGroups | None:
    """Out-of-fold r2 within the clusters' groups (country, survey round), where given:
    predictions and survey values both demeaned per group, and r2 in each group."""
    groups = np.array([c.group for c in config.clusters])[table.used]
    if not any(groups) or np.unique(groups).size < 2:
        return None
    per_group = {
        str(g): GroupScore(round(squared_pearson(table.y[groups == g], cv.predicted[groups == g]), 4), int(np.sum(groups == g)))
        for g in np.unique(groups)
    }
    out_of_group = None
    if len(per_group) >= 3:
        # Each group predicted by a model fitted on the others (penalty by an inner
        # leave-one-group-out): what the features bring to a country without surveys.
        loco = leave_one_country_out(table.x, table.y, groups)
        out_of_group = round(within_r2(table.y, loco.pred, groups), 4)
    return WithinGroups(round(within_r2(table.y, cv.predicted, groups), 4), int(groups.size), per_group, out_of_group)


def _fold_report(config: ClusterFitConfig, table: SurveyTable) -> FoldReport:
    """How the clusters were dealt to folds: the distance, the groups and the fold sizes."""
    group_sizes = np.bincount(table.groups)
    return FoldReport(table.fold_distance_m, int(group_sizes.size), int(group_sizes.max()),
                      np.bincount(table.folds, minlength=config.n_folds).tolist())


def _coverage_report(config: ClusterFitConfig, coverage: Coverage, used: np.ndarray) -> CoverageReport:
    """The tiles and the covered share of every cluster's box (ids only, no coordinates)."""
    on_image = coverage.tiles_in_box > 0
    return CoverageReport(
        config.min_tiles, config.min_covered_share,
        median_tiles_used=float(np.median(coverage.tiles_used[used])),
        median_covered_share=round(float(np.median(coverage.covered_share[used])), 4),
        clusters=[
            ClusterCoverage(c.id, int(coverage.tiles_used[i]), int(coverage.tiles_in_box[i]),
                            round(float(coverage.covered_share[i]), 4), bool(used[i]))
            for i, c in enumerate(config.clusters) if on_image[i]
        ],
    )


def _cluster_model(
    config: ClusterFitConfig, imagery: TrainingImagery, extractor: FeatureExtractor, table: SurveyTable,
    cv: CrossValidation, baseline: NightlightsBaseline | None, within: WithinGroups | None,
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
        lights_features=BUNDLED_FEATURES if config.with_lights else None,
        scores=Scores(
            protocol=_cv_protocol(config, table),
            pooled=cv.pooled,
            folds={str(f.fold): fold_score(f) for f in cv.per_fold},
            baselines={} if baseline is None else {"bundled_lights" if baseline.bundled else "nightlights": baseline.report.pooled},
            interval_80=round(interval_half_width(table.y - cv.predicted), 6),
            within_groups_r2=None if within is None else within.r2,
            out_of_country_r2=None if within is None else within.out_of_group_r2,
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
