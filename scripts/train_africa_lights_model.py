"""Train the bundled Africa night-lights model on the DHS clusters (deterministic).

    python scripts/train_africa_lights_model.py [--dhs ../shared/data/real/yeh2020_dhs/dhs_clusters.csv]
                                                [--out resources/models/africa_lights.povmodel]

The features are those of the bundled NASA Black Marble 2016 luminance around each of the
18,814 DHS cluster-years of 22 countries (core.extractors.lights_surroundings: boxes of 1 to
101 pixels, 0.6 to 62 km), computed by the model's own extractor, which maps with them
too. The variant (feature set, ridge across clusters or within survey rounds) and the
ridge penalty are chosen by leave-one-country-out over the 22 countries on the r2 within
country-year; the model is then fitted on all clusters.

Scores (evaluation.africa_lights): out of country, each country predicted by the
chosen variant fitted on the 21 others, its penalty chosen by an inner leave-one-country-
out over those 21; in country, 5-fold cross-validation with clusters whose 6.7 km boxes
overlap in one fold. The 80 % interval is the 80 % quantile of the absolute out-of-country
residuals (the model is meant for countries without surveys); each country's coverage,
with its interval calibrated on the other countries only, is written to the provenance.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from _bootstrap import ROOT, import_plugin_package

import_plugin_package()
from poverty_mapper.evaluation import africa_lights as al  # noqa: E402
from poverty_mapper.core.imagery.bundled_lights import LIGHTS_NAME, BundledLights  # noqa: E402
from poverty_mapper.core.models.feature_domain import FeatureDomain  # noqa: E402
from poverty_mapper.core.models.model_file import PovertyModel, Score, Scores, Target, TrainingDomain, save_model  # noqa: E402
from poverty_mapper.core.regression.metrics import (  # noqa: E402
    coefficient_of_determination,
    interval_half_width,
    squared_pearson,
    within_r2,
)
from poverty_mapper.core.regression.within_groups import fit_ridge_within  # noqa: E402

DEFAULT_DHS = ROOT.parent / "shared" / "data" / "real" / al.DHS_CLUSTERS
DEFAULT_OUT = ROOT / "resources" / "models" / "africa_lights.povmodel"
BANDS = ("LUMINANCE",)

TARGET = Target(
    name="asset wealth index",
    unit="DHS asset index (wealthpooled)",
    description=(
        "Cluster-level asset wealth index of the DHS surveys of 22 African countries, 2009-2016 "
        "(Yeh et al. 2020 release, standardized across all surveys); 0 is about the pooled survey mean, "
        "higher is wealthier."
    ),
)


def _round(value: float) -> float:
    return round(float(value), 4)


def _scores(survey: al.DhsSurvey, loco, in_country: np.ndarray) -> Scores:
    y, groups = survey.wealth, survey.groups
    n = len(np.unique(survey.countries))
    return Scores(
        protocol=(
            f"out of country: each of the {n} countries predicted by ridge fitted on the {n - 1} others, penalty "
            f"chosen by an inner leave-one-country-out over those {n - 1} on the r2 within country-year; in country: "
            "5 folds, clusters whose 6.7 km boxes overlap in one fold, penalty by an inner cross-validation; "
            "r2 squared Pearson, R2 coefficient of determination"
        ),
        pooled=Score(_round(squared_pearson(y, in_country)), _round(coefficient_of_determination(y, in_country)),
                     int(y.size)),
        interval_80=round(interval_half_width(y - loco.pred), 6),
        within_groups_r2=_round(within_r2(y, in_country, groups)),
        out_of_country_r2=_round(within_r2(y, loco.pred, groups)),
        interval_held_out=f"out of country: clusters of each country predicted by a model fitted on the {n - 1} others",
    )


def _provenance(survey, choice: al.VariantChoice, scores: Scores, loco, coverage) -> dict:
    variant, n = choice.variant, len(coverage)
    missed = sorted(c for c, v in coverage.items() if not 0.75 <= v.coverage <= 0.85)
    y = survey.wealth
    return {
        "data": (
            f"{len(survey)} DHS cluster-years of {n} African countries, {survey.years.min()}-{survey.years.max()} "
            f"(Yeh et al. 2020 release), with the {LIGHTS_NAME} around each cluster: the lights of 2016, "
            "whatever year the survey or the map is of"
        ),
        "script": "scripts/train_africa_lights_model.py",
        "lights": (
            f"{LIGHTS_NAME}, a NASA colour composite (NASA Earth Observatory; free of copyright restrictions), "
            "read from the plugin's own copy: resources/lights/README.md"
        ),
        "features": f"{variant.name}: {variant.description}",
        "selection": (
            f"variant and penalty (alpha {choice.alpha:g}) chosen by leave-one-country-out over the {n} countries on "
            "the r2 within country-year: " + ", ".join(f"{k} {v:.4f}" for k, v in choice.scores.items())
        ),
        "out_of_country_by_country": {c: {"r2": _round(v.r2), "coverage_80": _round(v.coverage),
                                          "coverage_80_widened": _round(v.coverage_widened), "n": v.n}
                                      for c, v in coverage.items()},
        "use": (
            f"maps the relative wealth of places across Africa from the bundled 2016 lights alone: out of country "
            f"it ranks places with r² {scores.out_of_country_r2:.2f} within country-year ({n} DHS countries, each "
            f"predicted by a model of the {n - 1} others); its levels, pooled over those countries: r² "
            f"{squared_pearson(y, loco.pred):.2f}, R² {coefficient_of_determination(y, loco.pred):.2f}. 80 % "
            f"intervals calibrated on the other countries held 75-85 % of a held-out country's clusters in "
            f"{n - len(missed)} of {n} countries, not in {', '.join(missed) or 'none'}: a country's level, which "
            "the lights do not show, moves its clusters in or out of them together."
        ),
        "license": "survey data MIT (Yeh et al. 2020 release; DHS terms apply), no survey coordinates in this file",
    }


def build_africa_lights_model(dhs_path: Path, countries: tuple[str, ...] | None = None) -> PovertyModel:
    survey = al.load_dhs_survey(dhs_path, countries)
    with BundledLights() as lights:
        features = {v.name: v.features(survey, lights) for v in al.candidates()}
        positions = al.lights_positions_m(survey, lights)
    choice = al.choose_variant(features, survey)
    variant, x = choice.variant, features[choice.variant.name]
    loco = al.out_of_country(x, survey, variant.within)
    in_country = al.in_country_predictions(x, survey.wealth, positions, survey.groups, variant.within)
    scores = _scores(survey, loco, in_country)
    coverage = al.coverage_by_country(x, survey, loco)
    regressor = fit_ridge_within(x, survey.wealth, survey.groups if variant.within else None, choice.alpha)
    return PovertyModel(
        name="Africa night lights 2016 (NASA Black Marble) ridge v1",
        target=TARGET,
        bands=BANDS,
        input_scaling=(
            "no image: the features are read from the bundled NASA Black Marble 2016 night-lights luminance "
            "around each place (resources/lights), given a region and its CRS"
        ),
        pixel_size_m=al.LIGHTS_PIXEL_M,
        tile_size_px=1,
        extractor=variant.extractor(),
        regressor=regressor,
        domain=TrainingDomain.of_outcomes(survey.wealth),
        scores=scores,
        provenance=_provenance(survey, choice, scores, loco, coverage),
        feature_domain=FeatureDomain.of_training(x),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dhs", type=Path, default=DEFAULT_DHS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    model = build_africa_lights_model(args.dhs)
    save_model(model, args.out)
    sys.stdout.write(model.card() + "\n")
    sys.stdout.write(json.dumps(model.scores.to_json()) + f"\nwritten: {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
