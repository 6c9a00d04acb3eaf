"""What a survey fit reports, typed: read by the front ends and the plots by attribute,
written as JSON once (:meth:`ClusterReport.to_json`)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..models.model_file import Score
from ..regression.cross_validation import FoldScore
from ..regression.metrics import coefficient_of_determination, squared_pearson

SCORES_NAMED = ("r2 = squared Pearson correlation with its sign (negative: predictions run against the "
                "outcome, no skill); R2 = coefficient of determination")


def pooled_score(y: np.ndarray, pred: np.ndarray) -> Score:
    """The scores of all out-of-fold predictions together."""
    return Score(round(squared_pearson(y, pred), 4), round(coefficient_of_determination(y, pred), 4), int(y.size))


def penalty_notes(per_fold: list[FoldScore], fold: str = "Fold") -> list[str]:
    """A line for each fold whose penalty lay at an end of the grid (``fold``: how the line names the fold)."""
    lines = []
    for f in per_fold:
        if f.alpha_edge:
            where = "still at the end of the extended grid" if f.alpha_at_limit else "inside the extended grid"
            lines.append(
                f"{fold} {f.fold}: the best penalty lay at the {f.alpha_edge} end of the grid; searched "
                f"further, alpha {f.alpha:g} was chosen, {where}."
            )
    return lines


def fold_score(fold: FoldScore) -> Score:
    """A fold's scores as the model file keeps them."""
    return Score(float(fold.r2), float(fold.R2), int(fold.n), float(fold.alpha))


@dataclass(frozen=True)
class ClusterCounts:
    given: int
    used: int
    groups: int  # groups of neighbours that never straddle a fold

    def to_json(self) -> dict:
        return {"given": self.given, "used": self.used, "groups": self.groups}


@dataclass(frozen=True)
class FoldReport:
    """How the clusters were dealt to folds: the distance, the groups and the fold sizes."""

    distance_m: float
    groups: int
    largest_group: int
    sizes: list[int]

    def to_json(self) -> dict:
        return {"distance_m": self.distance_m, "groups": self.groups, "largest_group": self.largest_group,
                "sizes": self.sizes}


@dataclass(frozen=True)
class ClusterCoverage:
    """One cluster's box: tiles used and in the box, the share of it covered (id only, no coordinates)."""

    id: str
    tiles_used: int
    tiles_in_box: int
    covered_share: float
    used: bool

    def to_json(self) -> dict:
        return {"id": self.id, "tiles_used": self.tiles_used, "tiles_in_box": self.tiles_in_box,
                "covered_share": self.covered_share, "used": self.used}


@dataclass(frozen=True)
class CoverageReport:
    min_tiles: int
    min_covered_share: float
    median_tiles_used: float
    median_covered_share: float
    clusters: list[ClusterCoverage]  # those with a box on the image

    def to_json(self) -> dict:
        return {
            "minimum": {"tiles": self.min_tiles, "covered_share": self.min_covered_share},
            "median_tiles_used": self.median_tiles_used,
            "median_covered_share": self.median_covered_share,
            "clusters": [c.to_json() for c in self.clusters],
        }


@dataclass(frozen=True)
class GroupScore:
    r2: float
    n: int

    def to_json(self) -> dict:
        return {"r2": self.r2, "n": self.n}


@dataclass(frozen=True)
class WithinGroups:
    """Out-of-fold r2 within the clusters' groups (countries, survey rounds), and per group."""

    r2: float
    n: int
    per_group: dict[str, GroupScore]
    out_of_group_r2: float | None = None  # each group predicted by a fit on the others (3 groups or more)

    def to_json(self) -> dict:
        out = {"r2": self.r2, "n": self.n, "groups": len(self.per_group),
               "per_group": {g: s.to_json() for g, s in self.per_group.items()}}
        if self.out_of_group_r2 is not None:
            out["out_of_group_r2"] = self.out_of_group_r2
        return out


@dataclass(frozen=True)
class CrossValidationReport:
    protocol: str
    pooled: Score
    folds: list[FoldScore]
    within_groups: WithinGroups | None = None

    def to_json(self) -> dict:
        out = {"protocol": self.protocol, "pooled": self.pooled.to_json(), "folds": [f.to_json() for f in self.folds]}
        if self.within_groups is not None:
            out["within_groups"] = self.within_groups.to_json()
        return out


@dataclass(frozen=True)
class BaselineReport:
    """The same cross-validation (same folds) on night lights alone."""

    features: str
    pooled: Score
    folds: list[FoldScore]

    def to_json(self) -> dict:
        return {"features": self.features, "pooled": self.pooled.to_json(), "folds": [f.to_json() for f in self.folds]}


@dataclass(frozen=True)
class ClusterReport:
    outcome: str
    unit: str
    extractor: str
    box_size_m: float
    tile_size_m: float
    clusters: ClusterCounts
    folds: FoldReport
    coverage: CoverageReport
    cv: CrossValidationReport
    nightlights_baseline: BaselineReport | None
    device: str
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "outcome": self.outcome,
            "unit": self.unit,
            "extractor": self.extractor,
            "box_size_m": self.box_size_m,
            "tile_size_m": self.tile_size_m,
            "clusters": self.clusters.to_json(),
            "folds": self.folds.to_json(),
            "coverage": self.coverage.to_json(),
            "cv": self.cv.to_json(),
            "scores_named": SCORES_NAMED,
            "nightlights_baseline": None if self.nightlights_baseline is None else self.nightlights_baseline.to_json(),
            "device": self.device,
            "notes": self.notes,
        }
