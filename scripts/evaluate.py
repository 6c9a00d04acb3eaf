"""Score the engine on the real data sets (deterministic).

    python scripts/evaluate.py [--data ../shared/data/real/yeh2020_lsms] [--out out/eval/lsms.json]
                               [--real ../shared/data/real] [--kinshasa-out out/eval/kinshasa.json]

LSMS (Yeh et al. 2020 release): every feature variant of evaluation.lsms_features,
with the plugin's ridge, on the release's fixed folds (evaluation.fixed_folds.
evaluate_on_folds: alpha chosen on each fold's val split, refit on train+val, scored on
the fold's test split, the five test splits pooled). The variant reported as ``best`` is
chosen by its pooled score on the VAL splits only (fit on train, scored on val); the
test splits are never used to choose anything, their scores are only reported.

Kinshasa (the proxy networks with several seeds each, the survey fit on the 44 DR Congo
2013 DHS clusters with each, the survey stage studied on their features, and the single
fits): scripts/evaluate_kinshasa.py, its lines ``dataset=kinshasa_proxy``,
``kinshasa_dhs``, ``kinshasa_dhs_stage``, ``kinshasa_proxy_vs_survey`` and
``kinshasa_dhs_rural``.

The bundled Africa night lights on the DHS clusters of 22 countries, and the bundled
lights model on the LSMS clusters: scripts/evaluate_africa_lights.py (its lines
``dataset=dhs``, ``dhs_country``, ``dhs_interval`` and ``lsms variant=africa_lights``).

Prints lines ``dataset=<set> variant=<name> r2=<squared Pearson> R2=<coefficient of
determination> n=<clusters>``, then one line naming the best LSMS variant and its val
score, and one line per bundled LSMS model (``dataset=lsms_bundled``): its variant's
figures measured here beside the figures its card states; writes the details as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from _bootstrap import ROOT, import_plugin_package

import_plugin_package()
from poverty_mapper.evaluation import lsms  # noqa: E402
from poverty_mapper.evaluation.across_countries import (  # noqa: E402
    country_scores,
    domain_check,
    interval_coverage,
    loco_domain_check,
    loco_interval_coverage,
)
from poverty_mapper.core.regression.leave_group_out import leave_one_country_out  # noqa: E402
from poverty_mapper.evaluation.fixed_folds import fold_summary, fold_test_predictions  # noqa: E402
from poverty_mapper.evaluation.lsms_features import (  # noqa: E402
    VARIANTS,
    select_by_validation,
    validation_predictions,
    validation_scores,
)
from poverty_mapper.core.models.defaults import DEFAULT_MODEL_PATH, NIGHTLIGHTS_MODEL_PATH  # noqa: E402
from poverty_mapper.core.models.model_file import read_model_info  # noqa: E402
import evaluate_africa_lights  # noqa: E402
from poverty_mapper.evaluation.africa_lights import DHS_CLUSTERS  # noqa: E402
import evaluate_kinshasa  # noqa: E402

DEFAULT_REAL = ROOT.parent / "shared" / "data" / "real"
DEFAULT_DATA = DEFAULT_REAL / "yeh2020_lsms"
DEFAULT_OUT = ROOT / "out" / "eval" / "lsms.json"
DEFAULT_KINSHASA_OUT = ROOT / "out" / "eval" / "kinshasa.json"


def _lsms_line(name: str, result: dict) -> str:
    test, loco = result["test"]["pooled"], result["loco"]
    return (
        f"dataset=lsms variant={name} r2={test['r2']:.4f} R2={test['R2']:.4f} "
        f"r2_within={result['in_country']['r2_within_country_year']:.4f} "
        f"r2_loco={loco['r2_within_country_year']:.4f} n={test['n']}\n"
    )


INTERVAL_LEVEL = 0.8


def _interval_line(name: str, result: dict) -> str:
    cov = result["interval"]
    return (f"dataset=lsms_interval variant={name} nominal={cov['nominal']:.2f} coverage={cov['in_country']:.4f} "
            f"coverage_loco={cov['out_of_country']:.4f} n={result['test']['pooled']['n']}\n")


def _domain_line(name: str, result: dict) -> str:
    dom = result["domain"]
    return (f"dataset=lsms_domain variant={name} flagged={dom['in_country']['flagged']:.4f} "
            f"flagged_loco={dom['out_of_country']['flagged']:.4f} "
            f"coverage_widened={dom['in_country']['coverage_widened']:.4f} "
            f"coverage_loco_widened={dom['out_of_country']['coverage_widened']:.4f} n={result['test']['pooled']['n']}\n")


# The bundled LSMS models and the variant that computes their features.
BUNDLED_LSMS_MODELS = {NIGHTLIGHTS_MODEL_PATH: "nightlights", DEFAULT_MODEL_PATH: "rgb"}


def bundled_lines(report: dict) -> list[str]:
    """Per bundled LSMS model: the figures of its variant measured here, and its card's."""
    lines = []
    for path, variant in BUNDLED_LSMS_MODELS.items():
        r, scores = report["variants"][variant], read_model_info(path).scores
        lines.append(
            f"dataset=lsms_bundled model={path.name} variant={variant} r2={r['test']['pooled']['r2']:.4f} "
            f"R2={r['test']['pooled']['R2']:.4f} r2_within={r['in_country']['r2_within_country_year']:.4f} "
            f"r2_loco={r['loco']['r2_within_country_year']:.4f} r2_loco_pooled={r['loco']['r2']:.4f} "
            f"R2_loco_pooled={r['loco']['R2']:.4f} coverage_loco={r['interval']['out_of_country']:.4f} "
            f"card_r2={scores.pooled.r2:.4f} card_r2_within={scores.within_groups_r2:.4f} "
            f"card_r2_loco={scores.out_of_country_r2:.4f} card_interval_80={scores.interval_80:.4f}\n"
        )
    return lines


def _in_country_intervals(x, data, pred) -> tuple[float, dict]:
    """Coverage of pred +- (the 80 % quantile of the fold's validation residuals) on each
    test split; and the domain check of each test split against its train + val rows."""
    residuals, held, training = {}, {}, {}
    for fold, split in data.folds.items():
        val_pred, _ = validation_predictions(x, data.labels, split["train"], split["val"])
        residuals[fold], held[fold] = data.labels[split["val"]] - val_pred, split["test"]
        training[fold] = np.concatenate([split["train"], split["val"]])
    coverage = interval_coverage(data.labels, pred, residuals, held, INTERVAL_LEVEL)
    return coverage, domain_check(x, data.labels, pred, residuals, held, training, INTERVAL_LEVEL)


def run(data_dir: Path) -> dict:
    data = lsms.load_lsms(data_dir)
    results = {}
    for name, make_features in VARIANTS.items():
        x = make_features(data)
        pred, per_fold = fold_test_predictions(x, data.labels, data.folds)
        loco = leave_one_country_out(x, data.labels, data.countries)
        coverage, in_country_domain = _in_country_intervals(x, data, pred)
        results[name] = {
            "doc": (make_features.__doc__ or "").strip().splitlines()[0],
            "n_features": int(x.shape[1]),
            "val": validation_scores(x, data.labels, data.folds),
            "test": fold_summary(data.labels, pred, per_fold),
            "in_country": country_scores(data.labels, pred, data.countries, data.years),
            "loco": {**country_scores(data.labels, loco.pred, data.countries, data.years), "alphas": loco.alphas},
            "interval": {
                "nominal": INTERVAL_LEVEL,
                "in_country": round(coverage, 4),
                "out_of_country": round(loco_interval_coverage(data.labels, data.countries, loco, INTERVAL_LEVEL), 4),
            },
            "domain": {
                "in_country": in_country_domain,
                "out_of_country": loco_domain_check(x, data.labels, data.countries, loco, INTERVAL_LEVEL),
            },
        }
    best = select_by_validation({name: r["val"] for name, r in results.items()})
    return {
        "data": str(data_dir),
        "metrics": {
            "r2": "squared Pearson correlation", "R2": "coefficient of determination",
            "r2_within": "r2 of the in-country fold predictions and labels, both demeaned per country-year",
            "r2_loco": "r2 within country-year of leave-one-country-out predictions (penalty by inner LOCO)",
        },
        "protocol": {
            "test": results[best]["test"]["protocol"],
            "selection": (
                "best = highest pooled r2 over the five VAL splits (ridge fit on train, alpha "
                "picked on val); test splits never used for any choice"
            ),
        },
        "best": {"variant": best, "val": results[best]["val"]["pooled"], "test": results[best]["test"]["pooled"]},
        "variants": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    parser.add_argument("--kinshasa-out", type=Path, default=DEFAULT_KINSHASA_OUT)
    args = parser.parse_args(argv)
    report = run(args.data)
    for name, r in report["variants"].items():
        sys.stdout.write(_lsms_line(name, r))
    for name, r in report["variants"].items():
        sys.stdout.write(_interval_line(name, r))
        sys.stdout.write(_domain_line(name, r))
    best = report["best"]
    sys.stdout.write(_lsms_line("best", report["variants"][best["variant"]]))
    sys.stdout.write(
        f"best={best['variant']} chosen by pooled VAL r2={best['val']['r2']:.4f} "
        f"(R2={best['val']['R2']:.4f}; val splits only, test splits not used for selection)\n"
    )
    for line in bundled_lines(report):
        sys.stdout.write(line)
    sys.stdout.flush()
    evaluate_africa_lights.run(args.real / DHS_CLUSTERS, args.data, evaluate_africa_lights.MODEL)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    evaluate_kinshasa.run(args.real, args.kinshasa_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
