"""The bundled night lights' models on the DHS clusters: the survey, the feature variants
and their scores in country and out of country (scripts/evaluate_africa_lights.py, part
of make eval; scripts/train_africa_lights_model.py, make model-lights).

The DHS clusters of the Yeh et al. 2020 release: 18,814 cluster-years of 22 countries,
2009-2016, with their asset wealth (``wealthpooled``, standardized across all surveys).
DHS displaces published coordinates by up to 2 km (urban) and 5-10 km (rural).

Every score of ranking is the r2 within country-year (predictions and wealth both
demeaned per survey round). Out of country, each country is predicted by a ridge fitted
on the 21 others; the penalty, and the choice among candidate variants, are made by an
inner leave-one-country-out over those 21 on the same score, never by the held-out
country (:func:`~..regression.leave_group_out.leave_one_country_out_ranked`).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.extractors.bundled_lights import BundledLightsExtractor
from ..core.imagery.bundled_lights import HISTOGRAM_BINS, BundledLights, luminance_features
from ..core.extractors.lights_surroundings import LIT_THRESHOLDS, SURROUNDING_SIDES
from ..core.models.feature_domain import FeatureDomain
from ..core.regression.folds import group_folds, linked_groups
from ..core.regression.leave_group_out import OutOfCountry, leave_one_country_out_ranked, out_of_country_penalty
from ..core.regression.metrics import interval_half_width, within_r2
from ..core.regression.ridge import DEFAULT_ALPHAS
from ..core.regression.within_groups import fit_ridge_path
from .across_countries import country_years

DHS_CLUSTERS = Path("yeh2020_dhs") / "dhs_clusters.csv"
LIGHTS_PIXEL_M = 611.4962262814100  # at the equator, on the lights' grid
N_FOLDS = 5
# In country, clusters whose reference boxes (11 lights pixels, 6.7 km) overlap share a
# fold: the same place surveyed in several years, or neighbours, never straddle folds.
FOLD_BOX_PIXELS = 11
FINE_THRESHOLDS = (24, 32, 48, 64, 96, 128, 192, 255)
INTERVAL_LEVEL = 0.8


@dataclass(frozen=True)
class DhsSurvey:
    """Survey clusters: where (WGS 84), their wealth, and the survey round (for scoring only)."""

    lon: np.ndarray
    lat: np.ndarray
    wealth: np.ndarray
    countries: np.ndarray
    years: np.ndarray

    def __len__(self) -> int:
        return self.wealth.size

    @property
    def groups(self) -> np.ndarray:
        """Country-year of each cluster: the survey rounds scores are demeaned in."""
        return country_years(self.countries, self.years)


def load_dhs_survey(path: str | Path, countries: tuple[str, ...] | None = None) -> DhsSurvey:
    """The clusters of the release's CSV (country, year, lat, lon, wealthpooled), of
    ``countries`` only where given."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if countries is None or r["country"] in countries]
    return DhsSurvey(
        lon=np.array([float(r["lon"]) for r in rows]),
        lat=np.array([float(r["lat"]) for r in rows]),
        wealth=np.array([float(r["wealthpooled"]) for r in rows]),
        countries=np.array([r["country"] for r in rows]),
        years=np.array([int(r["year"]) for r in rows]),
    )


@dataclass(frozen=True)
class LightsVariant:
    """A feature set of the bundled lights and how the ridge is fitted on it: across all
    clusters, or ``within`` survey rounds (:mod:`~..regression.within_groups`)."""

    name: str
    description: str
    within: bool = False
    sides: tuple[int, ...] = SURROUNDING_SIDES
    thresholds: tuple[int, ...] = LIT_THRESHOLDS
    reference: str = ""  # "box" or "log_mean": the 11-pixel reference box's features (no extractor)

    @property
    def can_ship(self) -> bool:
        """Whether a model file can carry it (its features have an extractor)."""
        return not self.reference

    def extractor(self) -> BundledLightsExtractor:
        return BundledLightsExtractor(self.sides, self.thresholds)

    def features(self, survey: DhsSurvey | None, lights: BundledLights, lon=None, lat=None) -> np.ndarray:
        """Features of the survey's clusters (or of points ``lon``, ``lat``)."""
        lon, lat = (survey.lon, survey.lat) if survey is not None else (lon, lat)
        if self.reference:
            box = luminance_features(lights.boxes_around(lon, lat, "EPSG:4326"))
            return box if self.reference == "box" else box[:, [HISTOGRAM_BINS]]
        return self.extractor().features_at(lights, lon, lat, "EPSG:4326")


VARIANTS = (
    LightsVariant("reference", "the 11-pixel (6.7 km) box: square-rooted 32-bin histogram, log(1 + mean, max, "
                  "centre) (35)", reference="box"),
    LightsVariant("log_mean", "log(1 + mean) of the 11-pixel box alone", reference="log_mean"),
    LightsVariant("surroundings", "boxes of 1-101 pixels (0.6-62 km): log(1 + mean), mean log(1 + luminance), "
                  "share and presence of pixels of luminance 32, 64, 128, 255 or more (80); ridge across clusters"),
    LightsVariant("surroundings_within", "the same 80 features; ridge within survey rounds", within=True),
    LightsVariant("surroundings_fine_within", "boxes of 1-101 pixels with 8 lit thresholds, 24-255 (144); ridge "
                  "within survey rounds", within=True, thresholds=FINE_THRESHOLDS),
)


def candidates() -> tuple[LightsVariant, ...]:
    """The variants a shipped model may be: those with an extractor."""
    return tuple(v for v in VARIANTS if v.can_ship)


def lights_positions_m(survey: DhsSurvey, lights: BundledLights) -> np.ndarray:
    """Where the clusters lie in metres on the lights' grid (pixel centres): what boxes overlap in."""
    rows, cols = lights.pixel_of(survey.lon, survey.lat, "EPSG:4326")
    return np.column_stack([cols, rows]).astype(np.float64) * LIGHTS_PIXEL_M


def in_country_predictions(x, y, positions_m, groups, within: bool = False) -> np.ndarray:
    """5-fold cross-validated predictions inside the survey countries: clusters whose
    reference boxes overlap share a fold; the penalty by an inner cross-validation of the
    training folds (their own clusters regrouped into 4 folds), on the within-group r2."""
    folds = group_folds(linked_groups(positions_m, FOLD_BOX_PIXELS * LIGHTS_PIXEL_M), N_FOLDS, seed=0)
    x, y, groups = np.asarray(x, np.float64), np.asarray(y, np.float64), np.asarray(groups)
    pred = np.empty(y.size)
    for fold in range(N_FOLDS):
        test = folds == fold
        inner_folds = group_folds(linked_groups(positions_m[~test], FOLD_BOX_PIXELS * LIGHTS_PIXEL_M), N_FOLDS - 1, seed=1)
        pred[test] = _fold_fit(x, y, groups, ~test, inner_folds, within).predict(x[test])[:, 0]
    return pred


def _fold_fit(x, y, groups, train, inner_folds, within, alphas=DEFAULT_ALPHAS):
    """The ridge of one outer fold: penalty by the inner folds' within-group r2, fitted on all its training rows."""
    xt, yt, gt = x[train], y[train], groups[train]
    inner = np.empty((yt.size, len(alphas)))
    for k in np.unique(inner_folds):
        held = inner_folds == k
        inner[held] = fit_ridge_path(xt[~held], yt[~held], alphas, gt[~held] if within else None).predict(xt[held])
    scores = [within_r2(yt, inner[:, a], gt) for a in range(len(alphas))]
    return fit_ridge_path(xt, yt, [alphas[int(np.argmax(scores))]], gt if within else None)


def out_of_country(x: np.ndarray, survey: DhsSurvey, within: bool) -> OutOfCountry:
    """Leave-one-country-out predictions, penalty by an inner leave-one-country-out (ranking score)."""
    return leave_one_country_out_ranked(x, survey.wealth, survey.countries, survey.groups, within)


@dataclass(frozen=True)
class CountryCoverage:
    """A held-out country's ranking score and the share of its clusters inside the 80 %
    interval calibrated on the other countries: plain (``estimate +- q``) and widened by
    the feature domain of the other countries' clusters, as a map widens it."""

    r2: float
    bias: float  # the mean of wealth minus estimate: the country's level the model missed
    coverage: float
    coverage_widened: float
    n: int
    # The interval's half-width made to depend on the estimate: q of each third of the
    # calibration estimates (low, middle, high), applied by the third an estimate falls in.
    coverage_by_estimate: float = float("nan")
    # q with each calibration country weighing the same, whatever its number of clusters.
    coverage_countries_equal: float = float("nan")
    # q of |residual| / the spread of its country's estimates, times the held-out country's
    # spread of estimates (known without its survey): a country-level scale.
    coverage_by_spread: float = float("nan")


def coverage_by_country(x: np.ndarray, survey: DhsSurvey, loco: OutOfCountry,
                        level: float = INTERVAL_LEVEL) -> dict[str, CountryCoverage]:
    """Per held-out country: q, the ``level`` quantile of the absolute residuals of the
    inner leave-one-country-out predictions over the other countries (never its own);
    the share of its clusters within ``estimate +- q``, within ``+- q x`` the widening of
    :meth:`FeatureDomain.interval_scale` (domain of the other countries' clusters), and
    within half-widths that depend on the estimate (a spread model: q by thirds of it)."""
    out = {}
    for country in np.unique(survey.countries):
        held = survey.countries == country
        q = interval_half_width(loco.calibration_residuals[str(country)], level)
        miss = np.abs(survey.wealth[held] - loco.pred[held])
        domain = FeatureDomain.of_training(x[~held])
        scale = domain.interval_scale(domain.distance(domain.coordinates(x[held]))) if domain is not None else 1.0
        out[str(country)] = CountryCoverage(
            r2=within_r2(survey.wealth[held], loco.pred[held], survey.years[held]),
            bias=float(np.mean(survey.wealth[held] - loco.pred[held])),
            coverage=float(np.mean(miss <= q)), coverage_widened=float(np.mean(miss <= q * scale)),
            n=int(held.sum()), coverage_by_estimate=float(np.mean(miss <= _by_estimate(
                survey.wealth[~held], loco.calibration_residuals[str(country)], loco.pred[held], level))),
            **_by_country_weights(survey, held, loco, miss, level),
        )
    return out


def _by_country_weights(survey: DhsSurvey, held: np.ndarray, loco: OutOfCountry, miss: np.ndarray, level: float) -> dict:
    """The held-out country's coverage with the calibration countries weighing the same,
    and with residuals scaled by their country's spread of estimates (see :class:`CountryCoverage`)."""
    residuals = loco.calibration_residuals[str(survey.countries[held][0])]
    countries = np.asarray(survey.countries)[~held].astype(str)
    estimates = survey.wealth[~held] - residuals
    weight, spread = np.empty(residuals.size), np.empty(residuals.size)
    for other in np.unique(countries):
        rows = countries == other
        weight[rows], spread[rows] = 1.0 / rows.sum(), np.std(estimates[rows])
    equal = _weighted_quantile(np.abs(residuals), weight, level)
    scaled = _weighted_quantile(np.abs(residuals) / spread, weight, level) * np.std(loco.pred[held])
    return {"coverage_countries_equal": float(np.mean(miss <= equal)), "coverage_by_spread": float(np.mean(miss <= scaled))}


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, level: float) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order]) / weights.sum()
    return float(values[order][min(np.searchsorted(cumulative, level), values.size - 1)])


def _by_estimate(y_calibration: np.ndarray, residuals: np.ndarray, estimates: np.ndarray, level: float) -> np.ndarray:
    """Half-widths by thirds of the estimate: the calibration rows' estimates (``y - residuals``)
    split at their terciles, the ``level`` quantile of the absolute residuals in each third."""
    calibration = y_calibration - residuals
    edges = np.quantile(calibration, [1 / 3, 2 / 3])
    third = np.searchsorted(edges, calibration)
    q = np.array([interval_half_width(residuals[third == k], level) for k in range(3)])
    return q[np.searchsorted(edges, estimates)]


@dataclass(frozen=True)
class VariantChoice:
    """The candidate and penalty whose leave-one-country-out predictions over all the
    survey's countries rank wealth best (the choice for a model fitted on all of them)."""

    variant: LightsVariant
    alpha: float
    score: float  # r2 within country-year of those predictions
    scores: dict[str, float]  # each candidate's, at its own best penalty


def choose_variant(features: dict[str, np.ndarray], survey: DhsSurvey) -> VariantChoice:
    """Among :func:`candidates` (features by name), by leave-one-country-out over all the
    survey's countries; the first listed wins a tie."""
    best, scores = None, {}
    for variant in candidates():
        alpha, score = out_of_country_penalty(features[variant.name], survey.wealth, survey.countries,
                                              survey.groups, variant.within)
        scores[variant.name] = score
        if best is None or score > best.score:
            best = VariantChoice(variant, alpha, score, scores)
    return VariantChoice(best.variant, best.alpha, best.score, scores)
