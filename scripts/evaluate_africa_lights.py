"""Score the bundled Africa night lights on the DHS clusters, and the bundled lights model
on the LSMS clusters (part of make eval; alone: make eval-lights).

    python scripts/evaluate_africa_lights.py [--dhs ../shared/data/real/yeh2020_dhs/dhs_clusters.csv]
                                             [--lsms ../shared/data/real/yeh2020_lsms]
                                             [--model resources/models/africa_lights.povmodel]

Every variant of evaluation.africa_lights.VARIANTS, on the 18,814 DHS cluster-years of
22 countries, features of the bundled NASA Black Marble 2016 luminance around each cluster:

- ``r2``, ``R2``, ``r2_within``: 5-fold cross-validated predictions inside the survey
  countries, clusters whose 6.7 km boxes overlap in one fold, the penalty chosen by an
  inner cross-validation of each training part. r2 is the squared Pearson correlation, R2
  the coefficient of determination, r2_within the r2 after predictions and wealth are
  demeaned per country-year.
- ``r2_loco``: leave one country out; each country predicted by ridge fitted on the 21
  others, the penalty chosen by an inner leave-one-country-out over those 21 on the r2
  within country-year (never by the held-out country); r2 within country-year of these
  predictions.

Then ``variant=selected``: for each held-out country the candidate (a variant a model file
can carry) whose inner leave-one-country-out score over the 21 others is best, and the
r2_loco of those choices; ``dataset=dhs_country`` lines for the default, the candidate the
bundled model is (chosen by leave-one-country-out over all 22 countries): r2_loco, ``bias``
(the mean of wealth minus the out-of-country estimate: the level missed), and
``coverage80``, the share of the country's clusters within the 80 % interval calibrated
on the 21 other countries only (``coverage80_widened``: as a map widens it for features
far from the training clusters'; ``coverage80_by_estimate``: a spread model, the
half-width by thirds of the estimate, tried and not used); ``dataset=dhs_interval``: for
each kind of interval, the share of all clusters inside, how many countries it held 75-85 %
of, and which it did not.

``dataset=lsms variant=africa_lights``: the bundled model (fitted on the DHS clusters of all
22 countries, the five LSMS countries among them) on the 3,020 LSMS cluster-years (Yeh et
al. 2020, another survey and another asset index): ``r2_within``, r2 within country-year
(pooled r2 too; no R2, the indices differ in scale); ``r2_loco``: for each LSMS country
the default variant fitted on the DHS clusters of the 21 other countries (that country's
penalty from the inner leave-one-country-out above).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bootstrap import ROOT, import_plugin_package  # noqa: E402

import_plugin_package()

from poverty_mapper.evaluation import africa_lights as al  # noqa: E402
from poverty_mapper.evaluation import lsms  # noqa: E402
from poverty_mapper.evaluation.across_countries import country_years  # noqa: E402
from poverty_mapper.core.imagery.bundled_lights import BundledLights  # noqa: E402
from poverty_mapper.core.models.model_file import load_model  # noqa: E402
from poverty_mapper.core.regression.leave_group_out import select_by_inner_scores  # noqa: E402
from poverty_mapper.core.regression.metrics import (  # noqa: E402
    coefficient_of_determination,
    squared_pearson,
    within_r2,
)
from poverty_mapper.core.regression.within_groups import fit_ridge_within  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "real"
DHS = REAL / al.DHS_CLUSTERS
LSMS = REAL / "yeh2020_lsms"
MODEL = ROOT / "resources" / "models" / "africa_lights.povmodel"
LSMS_COUNTRIES = {"et": "ethiopia", "mw": "malawi", "ng": "nigeria", "tz": "tanzania", "ug": "uganda"}


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def score_variants(survey: al.DhsSurvey, features: dict, positions: np.ndarray) -> dict:
    """Per variant: its out-of-country result (printed as it comes)."""
    y, groups = survey.wealth, survey.groups
    results = {}
    for variant in al.VARIANTS:
        x = features[variant.name]
        pred = al.in_country_predictions(x, y, positions, groups, variant.within)
        results[variant.name] = loco = al.out_of_country(x, survey, variant.within)
        _write(f"dataset=dhs variant={variant.name} r2={squared_pearson(y, pred):.4f} "
               f"R2={coefficient_of_determination(y, pred):.4f} r2_within={within_r2(y, pred, groups):.4f} "
               f"r2_loco={within_r2(y, loco.pred, groups):.4f} n={y.size}")
    return results


def selection_line(survey: al.DhsSurvey, results: dict) -> str:
    pred, chosen = select_by_inner_scores({v.name: results[v.name] for v in al.candidates()}, survey.countries)
    counts = {name: list(chosen.values()).count(name) for name in dict.fromkeys(chosen.values())}
    return (f"dataset=dhs variant=selected r2_loco={within_r2(survey.wealth, pred, survey.groups):.4f} "
            f"n={survey.wealth.size} chosen={','.join(f'{k}:{v}' for k, v in counts.items())}")


def country_lines(survey: al.DhsSurvey, x: np.ndarray, name: str, loco) -> list[str]:
    coverage = al.coverage_by_country(x, survey, loco)
    lines = [
        f"dataset=dhs_country variant={name} country={c} r2_loco={v.r2:.4f} bias={v.bias:+.3f} coverage80={v.coverage:.4f} "
        f"coverage80_widened={v.coverage_widened:.4f} coverage80_by_estimate={v.coverage_by_estimate:.4f} "
        f"alpha={loco.alphas[c]:.4g} n={v.n}"
        for c, v in coverage.items()
    ]
    for interval, attr in (("plain", "coverage"), ("widened", "coverage_widened"), ("by_estimate", "coverage_by_estimate"),
                           ("countries_equal", "coverage_countries_equal"), ("by_spread", "coverage_by_spread")):
        values = {c: getattr(v, attr) for c, v in coverage.items()}
        missed = [c for c, v in values.items() if not 0.75 <= v <= 0.85]
        inside = sum(v * coverage[c].n for c, v in values.items()) / sum(v.n for v in coverage.values())
        lines.append(f"dataset=dhs_interval variant={name} interval={interval} coverage80={inside:.4f} "
                     f"countries_75_85={len(values) - len(missed)}/{len(values)} "
                     f"missed={','.join(f'{c}:{values[c]:.3f}' for c in missed) or 'none'}")
    return lines


def lsms_line(lsms_dir: Path, model_path: Path, survey: al.DhsSurvey, x: np.ndarray, variant: al.LightsVariant,
              choice_alpha: float, loco) -> str:
    data = lsms.load_lsms(lsms_dir)
    lat, lon = data.locs[:, 0].astype(np.float64), data.locs[:, 1].astype(np.float64)
    model = load_model(model_path)
    with BundledLights() as lights:
        shipped = model.regressor.predict(model.extractor.features_at(lights, lon, lat, "EPSG:4326"))
        own = variant.features(None, lights, lon, lat)
    groups = country_years(data.countries, data.years)
    away = np.empty(data.labels.size)
    for code in np.unique(data.countries):
        name, rows = LSMS_COUNTRIES[str(code)], data.countries == code
        train = survey.countries != name
        alpha = loco.alphas.get(name, choice_alpha)
        fit = fit_ridge_within(x[train], survey.wealth[train], survey.groups[train] if variant.within else None, alpha)
        away[rows] = fit.predict(own[rows])
    return (f"dataset=lsms variant=africa_lights r2={squared_pearson(data.labels, shipped):.4f} "
            f"r2_within={within_r2(data.labels, shipped, groups):.4f} "
            f"r2_loco={within_r2(data.labels, away, groups):.4f} n={data.labels.size}")


def run(dhs: Path, lsms_dir: Path | None, model_path: Path) -> None:
    survey = al.load_dhs_survey(dhs)
    with BundledLights() as lights:
        features = {v.name: v.features(survey, lights) for v in al.VARIANTS}
        positions = al.lights_positions_m(survey, lights)
    results = score_variants(survey, features, positions)
    _write(selection_line(survey, results))
    choice = al.choose_variant(features, survey)
    name = choice.variant.name
    _write(f"default={name} chosen by leave-one-country-out over all countries (r2 within country-year: "
           + ", ".join(f"{k} {v:.4f}" for k, v in choice.scores.items()) + ")")
    for line in country_lines(survey, features[name], name, results[name]):
        _write(line)
    if lsms_dir is not None and model_path.is_file():
        _write(lsms_line(lsms_dir, model_path, survey, features[name], choice.variant, choice.alpha, results[name]))
    elif lsms_dir is not None:
        _write(f"dataset=lsms variant=africa_lights: no model file at {model_path} (make model-lights)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dhs", type=Path, default=DHS)
    parser.add_argument("--lsms", type=Path, default=LSMS, help="LSMS data folder; 'none' to skip")
    parser.add_argument("--model", type=Path, default=MODEL)
    args = parser.parse_args(argv)
    run(args.dhs, None if str(args.lsms) == "none" else args.lsms, args.model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
