"""What a survey fit is given, checked before any imagery is read: the options, the
outputs' places, the survey's fields, and each cluster's outcome, location and weight as
numbers. The front ends (Processing, the command line) pass the values they read as they
are: a :class:`Cluster` converts them, and the fit counts and names what it cannot use."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..atomic import check_not_an_input, check_writable_folder
from ..errors import PovertyMapperError

if TYPE_CHECKING:
    from .clusters import ClusterFitConfig

EXTRACTOR_CHOICES = ("histogram", "random")  # extractors fitted to the imagery; else a model file's


def number(value) -> float:
    """A survey value as a float; missing or non-numeric values become NaN."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


@dataclass(frozen=True)
class Cluster:
    """A surveyed cluster: location in the image's CRS, outcome, weight, an id, and an
    optional group (a country or survey round) for scores within groups.

    Built from the values a front end read, as they are (numbers, text, or None where a
    value is missing): the numbers become floats, NaN where missing or not a number (the
    fit leaves those clusters out and counts them), the id and the group text (a missing
    group: none)."""

    x: float
    y: float
    outcome: float
    weight: float = 1.0
    id: str = ""
    group: str = ""

    def __post_init__(self) -> None:
        for name in ("x", "y", "outcome", "weight"):
            object.__setattr__(self, name, number(getattr(self, name)))
        object.__setattr__(self, "id", str(self.id))
        object.__setattr__(self, "group", "" if self.group is None else str(self.group))


def check_survey_fields(source: str, fields: Sequence[str], *wanted: str | None) -> None:
    """Refuse survey fields (outcome, weight, group; None: not asked for) that ``source``
    lacks, naming the fields it has."""
    for field in filter(None, wanted):
        if field not in fields:
            raise PovertyMapperError(f"{source} has no field '{field}'; choose one of: {', '.join(fields)}.")


def extractor_fields(extractor: str) -> dict[str, str]:
    """The config fields for a front end's one extractor value: a kind of
    :data:`EXTRACTOR_CHOICES`, or else the path of a model file."""
    return {"extractor_kind": extractor} if extractor in EXTRACTOR_CHOICES else {"extractor_path": extractor}


# Outcomes beyond this size overflow the fit's sums of squares: a value of 1e300 is a
# typing error or a code for "missing", not a survey measure.
MAX_OUTCOME = 1e12


def check_config(config: ClusterFitConfig) -> None:
    if not config.clusters:
        raise PovertyMapperError("The cluster layer holds no clusters; give a layer or file with a point per surveyed cluster.")
    if not config.extractor_path and config.extractor_kind not in EXTRACTOR_CHOICES:
        raise PovertyMapperError(
            f"The extractor must be {' or '.join(repr(k) for k in EXTRACTOR_CHOICES)}, not {config.extractor_kind!r}; "
            "or give the model file whose extractor to use."
        )
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


def check_outputs(config: ClusterFitConfig) -> None:
    """Refuse, before the fit, outputs that name an input or lie in folders that cannot be written."""
    inputs = {"imagery": config.image_path, "nightlights raster": config.nightlights_path}
    if config.extractor_path:
        inputs["extractor model file"] = config.extractor_path
    outputs = {"model file": config.model_path, "report": config.report_path, "scatter plot": config.scatter_path}
    for what, path in outputs.items():
        if path:
            check_not_an_input(path, inputs)
            check_writable_folder(path, what)


def survey_outcomes(config: ClusterFitConfig, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each cluster's outcome as a number, and whether it can be used (numeric; > 0 for a log)."""
    outcomes = np.array([c.outcome for c in config.clusters], np.float64)
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
            f"{clusters_have(int(huge.sum()))} an outcome beyond ±{MAX_OUTCOME:g} (e.g. {outcomes[huge][0]:g}) in "
            f"'{config.outcome_name}': a typing error or a code for a missing value. Correct or empty those values, "
            "or rescale the outcome."
        )
    if config.log_outcome:
        not_positive = usable & (outcomes <= 0)
        usable &= outcomes > 0
        if not_positive.any():
            notes.append(f"{clusters_have(int(not_positive.sum()))} an outcome of 0 or less, which has no logarithm: "
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
        notes.append(f"{clusters_have(int(np.sum(usable & ~located)))} no valid location (no geometry, coordinates that "
                     "are not numbers or outside their CRS's range): left out.")
    return outcomes, usable & located


def clusters_have(n: int) -> str:
    """'1 cluster has' or 'N clusters have'."""
    return "1 cluster has" if n == 1 else f"{n} clusters have"


def survey_weights(config: ClusterFitConfig, used: np.ndarray) -> np.ndarray | None:
    """The used clusters' weights, when the fit is weighted: numbers of zero or more, not all zero."""
    if not config.use_weights:
        return None
    weights = np.array([c.weight for c in config.clusters], np.float64)[used]
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        raise PovertyMapperError(
            f"{clusters_have(int(bad.sum()))} a weight that is missing, not a number or below 0; give every "
            "cluster a weight of 0 or more (e.g. the households surveyed), or fit without weights."
        )
    if not weights.sum() > 0:
        raise PovertyMapperError("Every cluster's weight is 0; give the clusters weights above 0, or fit without weights.")
    return weights
