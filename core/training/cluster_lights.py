"""The night lights of a survey fit: the baseline on night lights alone (the same folds
as the image model), from the night-lights layer given or else from the lights bundled
with the plugin (NASA Black Marble 2016 over Africa), and the bundled lights' features
of each cluster, which ``with_lights`` fits beside the image features in one ridge.

The bundled lights' features of a cluster are :func:`luminance_features` of the 11 x 11
lights pixels (6.7 km at the equator) around it: the features every use of these lights
shares. They are an ordinal luminance, not radiance, so the features are a histogram and
logarithms, never a mean read as radiance.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Sequence

import numpy as np
from rasterio.io import DatasetReader

from ..errors import PovertyMapperError
from ..imagery.box_tiles import box_lights
from ..imagery.bundled_lights import (
    BOX_PIXELS, FEATURE_NAMES, LIGHTS_NAME, LIGHTS_YEAR, BundledLights, OutsideCoverage, luminance_features,
)
from ..models.metadata import LightsFeatures
from ..regression.cross_validation import nested_cv
from ..regression.ridge import PenaltySearch
from .cluster_features import ClusterFeatures
from .cluster_report import BaselineReport, penalty_notes, pooled_score
from .survey_inputs import Cluster

if TYPE_CHECKING:
    from .clusters import ClusterFitConfig, SurveyTable

LAYER_BASELINE = "mean nightlights over each cluster's box, and its log1p"
BUNDLED_BASELINE = (
    f"the bundled {LIGHTS_NAME}: the square-rooted shares of a 32-bin luminance histogram, log1p of the mean, "
    f"maximum and centre of the {BOX_PIXELS} x {BOX_PIXELS} lights pixels (6.7 km at the equator) around each cluster"
)
BUNDLED_BASELINE_NOTE = ("Night-lights baseline: the bundled NASA Black Marble 2016 lights (no night-lights raster "
                         f"given), {len(FEATURE_NAMES)} luminance features of the 6.7 km box around each cluster.")
BUNDLED_FEATURES = LightsFeatures(LIGHTS_NAME, LIGHTS_YEAR, BOX_PIXELS, len(FEATURE_NAMES))
# The lights' block weight beside the image features (``with_lights``), chosen with the
# penalty on the inner folds: half decades from 0.01 to 100, as many below 1 (the image
# features count more) as above (the 35 lights features count more than their number
# among hundreds of image features would give them).
LIGHTS_BLOCK_WEIGHTS = tuple(float(w) for w in np.round(10.0 ** np.arange(-2.0, 2.01, 0.5), 6))


@dataclass(frozen=True)
class ClusterLights:
    """The bundled lights' features around each input cluster (NaN rows: not read, or
    outside the area the lights cover)."""

    features: np.ndarray  # [n_clusters, 35]

    @property
    def covered(self) -> np.ndarray:
        return np.isfinite(self.features).all(axis=1)


@dataclass(frozen=True)
class NightlightsBaseline:
    """The night-lights-alone cross-validation: its report, and its out-of-fold
    prediction per used cluster (NaN where the lights do not reach)."""

    report: BaselineReport
    predicted: np.ndarray
    bundled: bool = False  # from the bundled lights (no layer was given)


def bundled_cluster_lights(clusters: Sequence[Cluster], wanted: np.ndarray, crs) -> ClusterLights:
    """The bundled lights' features of the ``wanted`` clusters (coordinates in ``crs``);
    NaN rows for the others and for those outside the covered area. Refuses, with a
    message, where the bundled lights are missing."""
    xs = np.array([c.x for c in clusters], np.float64)
    ys = np.array([c.y for c in clusters], np.float64)
    features = np.full((len(clusters), len(FEATURE_NAMES)), np.nan)
    index = np.flatnonzero(wanted)
    if not index.size:
        return ClusterLights(features)
    with BundledLights() as lights:
        try:
            features[index] = luminance_features(lights.boxes_around(xs[index], ys[index], crs))
        except OutsideCoverage:  # some lie outside: each cluster on its own
            for i in index:
                try:
                    features[i] = luminance_features(lights.boxes_around(xs[i : i + 1], ys[i : i + 1], crs))[0]
                except OutsideCoverage:
                    pass
    return ClusterLights(features)


def cluster_lights(config: ClusterFitConfig, crs, wanted: np.ndarray, notes: list[str]) -> ClusterLights | None:
    """The bundled lights' features of the clusters where the fit reads them: for
    ``with_lights``, or for the baseline when no night-lights layer is given. Without
    ``with_lights`` a baseline that cannot be scored (the lights missing, or no cluster
    inside them) is only noted."""
    if config.nightlights_path and not config.with_lights:
        return None
    try:
        lights = bundled_cluster_lights(config.clusters, wanted, crs)
    except PovertyMapperError as exc:
        if config.with_lights:
            raise
        notes.append(f"No night-lights baseline: {exc}")
        return None
    if not lights.covered[wanted].any():
        with BundledLights() as bundled:
            west, south, east, north = bundled.coverage_lonlat()
        message = (f"None of the clusters lies inside the area the bundled night lights cover ({LIGHTS_NAME}: Africa, "
                   f"longitude {west} to {east}, latitude {south} to {north})")
        if config.with_lights:
            raise OutsideCoverage(f"{message}: the fit cannot add their features. Fit without 'with lights'.")
        notes.append(f"No night-lights baseline: {message}; give a night-lights raster that covers them.")
        return None
    return lights


def with_lights_features(
    features: ClusterFeatures, lights: ClusterLights, usable: np.ndarray, notes: list[str],
) -> tuple[ClusterFeatures, np.ndarray]:
    """Each cluster's image features followed by its bundled lights' features, and the
    usable clusters less those the lights do not cover (counted in a note)."""
    outside = usable & (features.coverage.tiles_in_box > 0) & ~lights.covered
    if outside.any():
        n = int(outside.sum())
        notes.append(f"{n} cluster{'s' if n != 1 else ''} outside the area of the bundled night lights left out "
                     "(the fit reads their features beside the image's).")
    combined = replace(features, features=np.hstack([features.features, lights.features]))
    return combined, usable & lights.covered


def lights_block_search(search: PenaltySearch, n_image_features: int) -> PenaltySearch:
    """``search`` with the bundled lights' features (after the ``n_image_features`` image
    features) as a second block, its weight chosen with the penalty."""
    scaling = dataclasses.replace(search.scaling, block_start=n_image_features)
    return dataclasses.replace(search, scaling=scaling, block_weights=LIGHTS_BLOCK_WEIGHTS)


def nightlights_baseline(
    config: ClusterFitConfig, ds: DatasetReader, table: SurveyTable, lights: ClusterLights | None,
    search: PenaltySearch, notes: list[str],
) -> NightlightsBaseline | None:
    """The same cross-validation (same folds) on night lights alone: the mean of the layer
    given over each cluster's box, else the bundled lights' features around each cluster."""
    if config.nightlights_path:
        values = np.array([
            box_lights(config.nightlights_path, ds, c.x, c.y, config.box_size_m)
            for c, u in zip(config.clusters, table.used) if u
        ])
        has = np.isfinite(values)
        x = np.column_stack([values, np.log1p(np.clip(values, 0, None))])
        what, bundled = LAYER_BASELINE, False
    elif lights is not None:
        x = lights.features[table.used]
        has = np.isfinite(x).all(axis=1)
        what, bundled = BUNDLED_BASELINE, True
        notes.append(BUNDLED_BASELINE_NOTE)
    else:
        return None
    if has.sum() < max(config.n_folds * 2, 10) or len(np.unique(table.folds[has])) < config.n_folds:
        notes.append("Too few clusters are covered by the bundled night lights for a baseline." if bundled
                     else "Too few clusters are covered by the nightlights raster for a baseline.")
        return None
    if np.ptp(x[has], axis=0).max() == 0:
        shown = f"{x[has][0, 0]:g}" if not bundled else "the same"
        notes.append(
            f"The nightlights are {shown} over every cluster's box: they do not vary, so they cannot "
            "predict anything and no nightlights baseline is scored. Check the nightlights raster (its values, "
            "nodata and extent)."
        )
        return None
    bpred, _, bfolds = nested_cv(
        x[has], table.y[has], table.groups[has], config.n_folds, config.seed, search=search, folds=table.folds[has],
    )
    notes.extend(penalty_notes(bfolds, "Nightlights baseline, fold"))
    predicted = np.full(table.y.size, np.nan)
    predicted[has] = bpred
    return NightlightsBaseline(BaselineReport(what, pooled_score(table.y[has], bpred), bfolds), predicted, bundled)
