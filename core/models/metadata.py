"""What a model file says about its model, typed: what it predicts, the imagery it
expects, the domain it was fitted on, and how well it scored.

These are the facts the code relies on (mapping follows ``radiometry`` and
``band_indexes``; the domain checks read ``domain``). Free-form notes for people
(data sources, scripts, licences, hyper-parameters) stay apart in ``provenance``.
Nothing here needs torch, so a model card is read without it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from ..errors import ModelFileError
from ..extractors.registry import KINDS_READING_NO_IMAGERY
from ..imagery.radiometry import PRESETS
from ..regression.metrics import describe_r2


@dataclass(frozen=True)
class Target:
    """What a model predicts."""

    name: str  # e.g. "asset wealth index"
    unit: str  # e.g. "index (survey standard deviations)"
    description: str = ""


@dataclass(frozen=True)
class Score:
    """One honest score: r2 = squared Pearson correlation, R2 = coefficient of determination."""

    r2: float
    R2: float  # noqa: N815 (the literature's name)
    n: int | None = None
    alpha: float | None = None  # the ridge penalty chosen for this fold, where there is one

    def to_json(self) -> dict:
        out = {"r2": self.r2, "R2": self.R2}
        if self.n is not None:
            out["n"] = self.n
        if self.alpha is not None:
            out["alpha"] = self.alpha
        return out

    @classmethod
    def from_json(cls, data: dict) -> "Score":
        n, alpha = data.get("n"), data.get("alpha")
        return cls(float(data["r2"]), float(data["R2"]), None if n is None else int(n),
                   None if alpha is None else float(alpha))


def _scores_by_name(data) -> dict[str, Score]:
    """Fold scores as written by format 1 (a dict by fold name, or a list with "fold")."""
    if isinstance(data, dict):
        return {str(k): Score.from_json(v) for k, v in data.items()}
    if isinstance(data, list):
        return {str(item.get("fold", i)): Score.from_json(item) for i, item in enumerate(data)}
    return {}


@dataclass(frozen=True)
class Scores:
    """How well the model did where it was scored, and how it was scored."""

    protocol: str = ""  # in words: folds, what was chosen where, what was pooled
    pooled: Score | None = None
    folds: dict[str, Score] = field(default_factory=dict)
    baselines: dict[str, Score] = field(default_factory=dict)  # e.g. "nightlights": the same folds, lights alone
    proxy_val_accuracy: float | None = None  # a proxy CNN's accuracy on held-out blocks
    # Half-width of an 80 % interval: the 80 % quantile of the absolute out-of-fold
    # residuals (80 % of held-out clusters lay within +- this of their estimate).
    interval_80: float | None = None
    # Out-of-fold r2 within the clusters' groups (countries, survey rounds), where given:
    # predictions and survey values demeaned per group.
    within_groups_r2: float | None = None
    # The same r2 for predictions of each country by a model fitted on the others (leave
    # one country out): what the model brings to a country without surveys.
    out_of_country_r2: float | None = None
    # Which held-out clusters interval_80 comes from, in words, where it is not the
    # in-country folds (e.g. "clusters of countries left out of the fit").
    interval_held_out: str = ""

    def to_json(self) -> dict:
        out: dict = {}
        if self.protocol:
            out["protocol"] = self.protocol
        if self.pooled is not None:
            out["pooled"] = self.pooled.to_json()
        if self.folds:
            out["folds"] = {k: v.to_json() for k, v in self.folds.items()}
        if self.baselines:
            out["baselines"] = {k: v.to_json() for k, v in self.baselines.items()}
        if self.proxy_val_accuracy is not None:
            out["proxy_val_accuracy"] = self.proxy_val_accuracy
        if self.interval_80 is not None:
            out["interval_80"] = self.interval_80
        if self.within_groups_r2 is not None:
            out["within_groups_r2"] = self.within_groups_r2
        if self.out_of_country_r2 is not None:
            out["out_of_country_r2"] = self.out_of_country_r2
        if self.interval_held_out:
            out["interval_held_out"] = self.interval_held_out
        return out

    @classmethod
    def from_json(cls, data: dict | None) -> "Scores":
        """Format 2's ``scores``; format 1's free-form dict is read the same way where it can be."""
        data = data or {}
        baselines = {k: Score.from_json(v) for k, v in (data.get("baselines") or {}).items()}
        old_baseline = data.get("nightlights_baseline")  # format 1
        if isinstance(old_baseline, dict) and old_baseline.get("pooled"):
            baselines["nightlights"] = Score.from_json(old_baseline["pooled"])
        accuracy = data.get("proxy_val_accuracy")
        interval = data.get("interval_80")
        within = data.get("within_groups_r2")
        loco = data.get("out_of_country_r2")
        return cls(
            protocol=str(data.get("protocol", "")),
            pooled=Score.from_json(data["pooled"]) if data.get("pooled") else None,
            folds=_scores_by_name(data.get("folds")),
            baselines=baselines,
            proxy_val_accuracy=None if accuracy is None else float(accuracy),
            interval_80=None if interval is None else float(interval),
            within_groups_r2=None if within is None else float(within),
            out_of_country_r2=None if loco is None else float(loco),
            interval_held_out=str(data.get("interval_held_out", "")),
        )


@dataclass(frozen=True)
class NightLightsInput:
    """The night-lights layer a model reads as its NIGHTLIGHTS band: which product, in which units."""

    product: str  # e.g. "VIIRS annual composite of average radiance (NASA Black Marble VNP46A4)"
    units: str  # e.g. "nW/cm²/sr"
    note: str = ""  # how it was standardized in training, what to watch for

    def describe(self) -> str:
        return f"{self.product}, in {self.units}"

    def to_json(self) -> dict:
        out = {"product": self.product, "units": self.units}
        return {**out, "note": self.note} if self.note else out

    @classmethod
    def from_json(cls, data: dict | None) -> "NightLightsInput | None":
        if not data:
            return None
        return cls(str(data["product"]), str(data["units"]), str(data.get("note", "")))


@dataclass(frozen=True)
class LightsFeatures:
    """Features of the night lights bundled with the plugin that a model's ridge reads
    after its extractor's: which lights, the box around each place, how many features."""

    source: str  # e.g. "NASA Black Marble 2016 night lights (luminance)"
    year: int
    box_pixels: int  # the side of the box of lights pixels around each place
    n_features: int

    def describe(self) -> str:
        return (f"{self.n_features} features of the bundled {self.source} in the {self.box_pixels} x "
                f"{self.box_pixels}-pixel box around each place")

    def to_json(self) -> dict:
        return {"source": self.source, "year": self.year, "box_pixels": self.box_pixels, "n_features": self.n_features}

    @classmethod
    def from_json(cls, data: dict | None) -> "LightsFeatures | None":
        if not data:
            return None
        return cls(str(data["source"]), int(data["year"]), int(data["box_pixels"]), int(data["n_features"]))


LEGEND_TAGS = ("LEGEND_MIN", "LEGEND_MAX", "SURVEY_MEAN")  # a map's fixed colour scale, in its tags


def legend_from_tags(tags: dict) -> tuple[float, float, float] | None:
    """(low, high, survey mean) of a map's colour scale, or None for a map without one."""
    try:
        lo, hi, mean = (float(tags[key]) for key in LEGEND_TAGS)
    except (KeyError, ValueError):
        return None
    return (lo, hi, mean) if hi > lo else None


def lights_from_tags(tags: dict) -> str | None:
    """The night lights a map was made from, for its card and quicklook ("NASA Black Marble
    night lights of 2016"), or None for a map of an image alone."""
    year = tags.get("LIGHTS_YEAR", "").strip()
    return f"NASA Black Marble night lights of {year}" if year else None


@dataclass(frozen=True)
class TrainingDomain:
    """Where the model was fitted: the spread of its outcome and of its features over the
    training clusters. Estimates far outside it are extrapolations."""

    n_clusters: int
    outcome_min: float
    outcome_max: float
    outcome_mean: float
    outcome_std: float
    # The side of the box around each cluster whose tiles' features were averaged (None:
    # one tile per cluster). A map averages over the same neighbourhood.
    box_size_m: float | None = None

    def to_json(self) -> dict:
        out = {
            "n_clusters": self.n_clusters, "outcome_min": self.outcome_min, "outcome_max": self.outcome_max,
            "outcome_mean": self.outcome_mean, "outcome_std": self.outcome_std,
        }
        return out if self.box_size_m is None else {**out, "box_size_m": self.box_size_m}

    @classmethod
    def from_json(cls, data: dict | None) -> "TrainingDomain | None":
        if not data:
            return None
        box = data.get("box_size_m")
        return cls(int(data["n_clusters"]), float(data["outcome_min"]), float(data["outcome_max"]),
                   float(data["outcome_mean"]), float(data["outcome_std"]), None if box is None else float(box))

    def legend_range(self) -> tuple[float, float]:
        """The colour scale of every map of the model, in its outcome's units: the survey
        mean +- 2 standard deviations (about the 2nd-98th percentile of a normal outcome),
        within the outcomes' range. The same for every map, so maps can be compared."""
        lo = max(self.outcome_min, self.outcome_mean - 2.0 * self.outcome_std)
        hi = min(self.outcome_max, self.outcome_mean + 2.0 * self.outcome_std)
        return (lo, hi) if hi > lo else (self.outcome_mean - 1.0, self.outcome_mean + 1.0)

    def legend_tags(self) -> dict[str, str]:
        """The colour scale as a map's tags (read back by :func:`legend_from_tags`)."""
        lo, hi = self.legend_range()
        return dict(zip(LEGEND_TAGS, (f"{lo:.6g}", f"{hi:.6g}", f"{self.outcome_mean:.6g}")))

    @classmethod
    def of_outcomes(cls, y) -> "TrainingDomain":
        values = [float(v) for v in y]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        return cls(len(values), min(values), max(values), round(mean, 6), round(std, 6))


@dataclass(frozen=True)
class TrainingScenes:
    """What a model file says of the imagery it was trained on, beside the numbers of its
    scene check (:mod:`.scene_domain`): which scenes, how many tiles, and how the check's
    thresholds were set."""

    scenes: tuple[str, ...]  # the training rasters' file names
    tiles: int  # their tiles summarized
    regions: int  # random regions of them drawn to calibrate the check
    quantile: float  # regions of the training scenes lie within the threshold this often
    sample_tiles: int  # tiles a run reads to summarize its region
    largest_region_cells: int  # the largest training scene, in cells: larger regions use its threshold

    def to_json(self) -> dict:
        return {"scenes": list(self.scenes), "tiles": self.tiles, "regions": self.regions, "quantile": self.quantile,
                "sample_tiles": self.sample_tiles, "largest_region_cells": self.largest_region_cells}

    @classmethod
    def from_json(cls, data: dict | None) -> "TrainingScenes | None":
        if not data:
            return None
        return cls(tuple(str(s) for s in data["scenes"]), int(data["tiles"]), int(data["regions"]),
                   float(data["quantile"]), int(data["sample_tiles"]), int(data["largest_region_cells"]))

    def describe(self) -> str:
        return (f"{self.tiles:,} tiles of {', '.join(self.scenes)}; a run reads {self.sample_tiles} tiles of its region "
                f"and is compared with {self.regions:,} random regions of these scenes")


@dataclass(frozen=True)
class ModelDescription:
    """What a model is, as its file's ``model.json`` says beside the extractor's, the
    regressor's and the feature domain's own specs. Declared, written and read here
    only: the model in memory, its card and the file share it."""

    name: str
    target: Target | None  # None for a feature extractor alone (a trained proxy CNN)
    bands: tuple[str, ...]  # band names, in the order the extractor expects them
    input_scaling: str  # what pixel values the extractor expects, in words
    pixel_size_m: float
    tile_size_px: int
    radiometry: str | None = None  # preset key of the imagery it was trained on; None: not known
    band_indexes: tuple[int, ...] = ()  # the bands' numbers in that imagery
    domain: TrainingDomain | None = None
    scores: Scores = field(default_factory=Scores)
    provenance: dict = field(default_factory=dict)  # free-form, for people
    nightlights: NightLightsInput | None = None  # the lights layer a NIGHTLIGHTS band is read from
    lights_features: LightsFeatures | None = None  # the bundled lights' features, read after the extractor's

    @classmethod
    def fields_of(cls, source) -> dict:
        """The description's fields as keywords, taken from anything that has them (a model, a card)."""
        return {f.name: getattr(source, f.name) for f in fields(ModelDescription)}

    def to_json(self) -> dict:
        target = self.target
        out = {
            "name": self.name,
            "target": None if target is None else {"name": target.name, "unit": target.unit, "description": target.description},
            "bands": list(self.bands),
            "input_scaling": self.input_scaling,
            "pixel_size_m": self.pixel_size_m,
            "tile_size_px": self.tile_size_px,
            "radiometry": self.radiometry,
            "band_indexes": list(self.band_indexes),
            "domain": None if self.domain is None else self.domain.to_json(),
            "scores": self.scores.to_json(),
            "provenance": self.provenance,
        }
        if self.nightlights is not None:  # only where there is one: other files keep their bytes
            out["nightlights"] = self.nightlights.to_json()
        if self.lights_features is not None:
            out["lights_features"] = self.lights_features.to_json()
        return out

    @classmethod
    def from_json(cls, meta: dict) -> "ModelDescription":
        """The description in ``model.json``; format 1 kept some facts in its free-form ``training``."""
        target = meta.get("target")
        provenance = dict(meta.get("provenance") or meta.get("training") or {})
        if meta["format_version"] >= 2:
            radiometry, band_indexes = meta.get("radiometry"), meta.get("band_indexes") or ()
        else:
            radiometry, band_indexes = provenance.pop("radiometry", None), provenance.pop("band_indexes", ())
        if radiometry is not None and radiometry not in PRESETS:
            raise ModelFileError(
                f"The model file names an unknown radiometry {radiometry!r} (known: {', '.join(PRESETS)}); "
                "the model's imagery would be read with the wrong scaling. Rewrite the model with a known one."
            )
        return ModelDescription(
            name=str(meta["name"]),
            target=None if target is None else Target(str(target["name"]), str(target["unit"]), str(target.get("description", ""))),
            bands=tuple(str(b) for b in meta["bands"]),
            input_scaling=str(meta["input_scaling"]),
            pixel_size_m=float(meta["pixel_size_m"]),
            tile_size_px=int(meta["tile_size_px"]),
            radiometry=None if radiometry is None else str(radiometry),
            band_indexes=tuple(int(b) for b in band_indexes),
            domain=TrainingDomain.from_json(meta.get("domain")),
            scores=Scores.from_json(meta.get("scores")),
            provenance=provenance,
            nightlights=NightLightsInput.from_json(meta.get("nightlights")),
            lights_features=LightsFeatures.from_json(meta.get("lights_features")),
        )


@dataclass(frozen=True)
class ModelInfo(ModelDescription):
    """Everything a model file says but its arrays: enough for a card, read without torch."""

    extractor_kind: str = ""
    n_features: int | None = None
    alpha: float | None = None
    # Main directions of the training features kept for the domain check (None: no check).
    feature_domain_dimensions: int | None = None
    # The training imagery as the scene check knows it (None: a file without it, no check).
    training_scenes: TrainingScenes | None = None

    @property
    def tile_size_m(self) -> float:
        return self.pixel_size_m * self.tile_size_px

    @property
    def can_predict(self) -> bool:
        return self.target is not None and self.alpha is not None

    @property
    def reads_imagery(self) -> bool:
        """Whether maps of the model read an image's bands (not night lights alone)."""
        lights_only = self.nightlights is not None and len(self.bands) == 1
        return self.extractor_kind not in KINDS_READING_NO_IMAGERY and not lights_only

    def summary(self) -> str:
        """Two lines for a first look: what it predicts from what, and how well it scored."""
        if not self.can_predict:
            return f"{self.name}: a feature extractor only (fit it on survey clusters before mapping)."
        if self.nightlights is not None:
            reads = f"night lights ({self.nightlights.units}) beside any image of the area"
        elif not self.reads_imagery:
            reads = f"the bundled night lights around each place (cells of {self.pixel_size_m:.3g} m; no image)"
        else:
            reads = f"{', '.join(self.bands)} imagery at {self.pixel_size_m:.3g} m"
        scores = []
        if self.scores.out_of_country_r2 is not None:
            scores.append(f"r² {self.scores.out_of_country_r2:.2f} within countries without surveys")
        elif self.scores.pooled is not None:
            scores.append(f"r² {self.scores.pooled.r2:.2f} cross-validated")
        if self.scores.interval_80 is not None:
            scores.append(f"80 % of held-out clusters within ±{self.scores.interval_80:.2f}")
        lines = [f"Predicts {self.target.name} from {reads}."]
        if scores:
            lines.append("Scored " + "; ".join(scores) + ".")
        return "\n".join(lines)

    def _input_line(self) -> str:
        if not self.reads_imagery and self.nightlights is None:
            return f"Reads no image ({self.input_scaling.removeprefix('no image: ')}); map cells of {self.tile_size_m:.4g} m."
        return (f"Expects bands {', '.join(self.bands)} as {self.input_scaling}, "
                f"tiles of {self.tile_size_px} px at {self.pixel_size_m:g} m ({self.tile_size_m / 1000:g} km).")

    def card(self) -> str:
        """A short human-readable summary (what, from what, how good)."""
        per_tile = f" ({self.n_features} per tile)" if self.n_features else ""
        if self.can_predict:
            what = f"predicts {self.target.name} ({self.target.unit})"
            how = f"Features: {self.extractor_kind}; regressor: ridge (alpha {self.alpha:.4g})."
        else:
            what = "a feature extractor only (fit it on survey clusters before mapping)"
            how = f"Features: {self.extractor_kind}{per_tile}."
        lines = [
            f"{self.name}: {what}.",
            self._input_line(),
            how,
        ]
        if self.nightlights is not None:
            lines.append(
                f"Night lights (band NIGHTLIGHTS) from a separate night-lights layer: {self.nightlights.describe()}."
                + (f" {self.nightlights.note}" if self.nightlights.note else "")
            )
        if self.lights_features is not None:
            lines.append(f"Beside the image features: {self.lights_features.describe()} (fitted together in one "
                         "ridge; maps cannot be made with such a model yet).")
        if self.provenance.get("network"):
            lines.append(f"Network: {self.provenance['network']}.")
        if self.provenance.get("data"):
            lines.append(f"Trained on: {self.provenance['data']}.")
        if self.provenance.get("runs"):
            lines.append(f"Repeat trainings: {self.provenance['runs']}.")
        pooled = self.scores.pooled
        if pooled is not None:
            lines.append(
                f"Cross-validated on {pooled.n if pooled.n is not None else '?'} clusters: {describe_r2(pooled.r2, 2)} "
                f"(squared Pearson, signed), R² {pooled.R2:.2f} (coefficient of determination)."
            )
        if self.scores.within_groups_r2 is not None:
            lines.append(
                f"Within groups (countries or survey rounds): {describe_r2(self.scores.within_groups_r2, 2)} "
                "(predictions and survey values demeaned per group: how well it ranks places inside one)."
            )
        if self.scores.out_of_country_r2 is not None:
            lines.append(
                f"Out of country (fitted on the other countries): {describe_r2(self.scores.out_of_country_r2, 2)} within "
                "countries, what it brings to a country without surveys."
            )
        if self.scores.interval_80 is not None:
            where = self.scores.interval_held_out or "where the model was fitted; more elsewhere"
            lines.append(
                f"80 % of held-out clusters lay within ±{self.scores.interval_80:.2f} of their estimate ({where})."
            )
        if self.feature_domain_dimensions:
            lines.append(
                "Map cells whose imagery features lie farther out than every training cluster's (in the "
                f"{self.feature_domain_dimensions} main directions of the training features) are flagged as out "
                "of the model's domain, and their intervals widened."
            )
        if self.can_predict and self.reads_imagery:
            lines.append(self._scene_check_line())
        if self.provenance.get("use"):
            lines.append(f"Use: {self.provenance['use']}")
        return "\n".join(lines)

    def _scene_check_line(self) -> str:
        if self.training_scenes is None:
            return ("Scene check: not available (this model file does not describe its training imagery), so a run "
                    "cannot say when a scene is unlike it; fit the model again to add it.")
        scenes = self.training_scenes
        return (
            f"Scene check: each run compares the scene's brightness, contrast and colour balance with the training "
            f"imagery ({scenes.describe()}); a scene farther from it than {scenes.quantile * 100:.0f} % of those regions is "
            "said, its cells are coded out of domain and their intervals widened."
        )
