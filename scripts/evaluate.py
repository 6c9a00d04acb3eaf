"""Score the engine on the real data sets (deterministic).

    python scripts/evaluate.py [--data ../shared/data/real/yeh2020_lsms] [--out out/eval/lsms.json]
                               [--real ../shared/data/real] [--kinshasa-out out/eval/kinshasa.json]

LSMS (Yeh et al. 2020 release): every feature variant of evaluation.lsms_features,
with the plugin's ridge, on the release's fixed folds (evaluation.fixed_folds.
evaluate_on_folds: alpha chosen on each fold's val split, refit on train+val, scored on
the fold's test split, the five test splits pooled). The variant reported as ``best`` is
chosen by its pooled score on the VAL splits only (fit on train, scored on val); the
test splits are never used to choose anything, their scores are only reported.

Kinshasa proxy task (evaluation.kinshasa): three networks learn night-light classes
from the two Landsat dates with the same tiles, split, epochs and settings; their scores
on the held-out spatial blocks come from the training reports in out/kinshasa/ (trained
by scripts/train_kinshasa_cnn.py, which this script runs first when they are missing:
about half an hour on 2 CPU cores). Lines ``dataset=kinshasa_proxy variant=<network>
accuracy= balanced_accuracy= chance= majority= n=<held-out tiles>``.

Kinshasa DHS (the 44 DR Congo 2013 clusters on the 2013 Landsat 8 scene, night lights
from Black Marble 2016): the plugin's own survey fit, fit_clusters, as an analyst would
run it, with its defaults (10 km box, five folds, seed 0; nothing was tuned on these
clusters) and clusters within 10 km of each other in one fold. One line per feature
extractor: ``cnn`` (the ImageNet-started network fine-tuned on night lights),
``imagenet`` (the same network at its ImageNet weights, same tiles and standardization),
``small_cnn`` (the small network of the proxy comparison), ``histogram``, ``random`` (1920 m tiles), and ``nightlights`` alone (the fit's own
baseline, on the same folds); ``cnn_lights``, the CNN's features and the bundled NASA Black Marble 2016
lights' 35 features in one ridge (``with_lights``: the lights' weight chosen with the penalty on inner
folds), and ``lights``, the bundled lights alone (that fit's baseline, same folds); then the same out-of-fold predictions scored over the 7
rural clusters only: 7 clusters whose wealth spans 0.24 index units, so those figures
are indicative at most.

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
from poverty_mapper.evaluation import dhs, kinshasa, lsms  # noqa: E402
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
from poverty_mapper.core.regression.metrics import coefficient_of_determination, squared_pearson  # noqa: E402
from poverty_mapper.core.models.defaults import DEFAULT_MODEL_PATH, NIGHTLIGHTS_MODEL_PATH  # noqa: E402
from poverty_mapper.core.models.model_file import load_model, read_model_info, save_model  # noqa: E402
from poverty_mapper.core.training.clusters import fit_clusters  # noqa: E402
import evaluate_africa_lights  # noqa: E402
from poverty_mapper.evaluation.africa_lights import DHS_CLUSTERS  # noqa: E402
from train_kinshasa_cnn import DEFAULT_OUT as PROXY_DIR  # noqa: E402
from train_kinshasa_cnn import proxy_paths, train_variants  # noqa: E402

DEFAULT_REAL = ROOT.parent / "shared" / "data" / "real"
DEFAULT_DATA = DEFAULT_REAL / "yeh2020_lsms"
DEFAULT_OUT = ROOT / "out" / "eval" / "lsms.json"
DEFAULT_KINSHASA_OUT = ROOT / "out" / "eval" / "kinshasa.json"


def _line(dataset: str, name: str, pooled: dict) -> str:
    return f"dataset={dataset} variant={name} r2={pooled['r2']:.4f} R2={pooled['R2']:.4f} n={pooled['n']}\n"


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


def _scores(observed: np.ndarray, predicted: np.ndarray) -> dict:
    return {
        "r2": round(squared_pearson(observed, predicted), 4),
        "R2": round(coefficient_of_determination(observed, predicted), 4),
        "n": int(observed.size),
    }


def kinshasa_extractors(work_dir: Path) -> dict[str, str]:
    """variant -> fit_clusters extractor: the CNN variants as model files."""
    tuned = proxy_paths(PROXY_DIR, kinshasa.BUNDLED_VARIANT)[0]
    untuned = save_model(kinshasa.untuned_imagenet_model(load_model(tuned)), work_dir / "kinshasa_imagenet_untuned.povmodel")
    small = proxy_paths(PROXY_DIR, "small_cnn")[0]
    return {"cnn": str(tuned), "imagenet": str(untuned), "small_cnn": str(small), "histogram": "histogram",
            "random": "random"}


def run_kinshasa(real_dir: Path, work_dir: Path) -> dict:
    """Out-of-fold scores of each extractor and of night lights, over all and the rural clusters."""
    rural_of = ~dhs.load_dhs_clusters(real_dir / dhs.KINSHASA_CLUSTERS).urban
    results: dict = {"all": {}, "rural": {}, "reports": {}}
    for name, extractor in kinshasa_extractors(work_dir).items():
        fit = fit_clusters(kinshasa.cluster_config(real_dir, extractor, work_dir / f"kinshasa_{name}.povmodel"))
        rural = rural_of[fit.used]
        results["all"][name] = _scores(fit.observed, fit.predicted)
        results["rural"][name] = _scores(fit.observed[rural], fit.predicted[rural])
        results["reports"][name] = fit.report.to_json()
        lights = fit.baseline_predicted
    results["all"]["nightlights"] = _scores(fit.observed, lights)
    results["rural"]["nightlights"] = _scores(fit.observed[rural], lights[rural])
    _run_kinshasa_lights(real_dir, work_dir, results, rural_of)
    return results


def _run_kinshasa_lights(real_dir: Path, work_dir: Path, results: dict, rural_of: np.ndarray) -> None:
    """The CNN's features with the bundled lights' (``cnn_lights``), and the bundled lights
    alone on the same folds (``lights``)."""
    cnn = str(proxy_paths(PROXY_DIR, kinshasa.BUNDLED_VARIANT)[0])  # the extractor of variant cnn
    fit = fit_clusters(kinshasa.lights_config(real_dir, cnn, work_dir / "kinshasa_cnn_lights.povmodel"))
    rural = rural_of[fit.used]
    for name, predicted in (("cnn_lights", fit.predicted), ("lights", fit.baseline_predicted)):
        results["all"][name] = _scores(fit.observed, predicted)
        results["rural"][name] = _scores(fit.observed[rural], predicted[rural])
    results["reports"]["cnn_lights"] = fit.report.to_json()


def proxy_lines(real_dir: Path) -> list[str]:
    """One line per network of the proxy comparison (trained first where missing)."""
    reports = train_variants(real_dir, PROXY_DIR, list(kinshasa.PROXY_VARIANTS), "cpu", force=False)
    lines = []
    for variant, report in reports.items():
        h = report["held_out"]
        lines.append(
            f"dataset=kinshasa_proxy variant={variant} accuracy={h['accuracy']:.4f} "
            f"balanced_accuracy={h['balanced_accuracy']:.4f} chance={h['chance']:.4f} "
            f"majority={h['majority_class_accuracy']:.4f} n={h['n']}\n"
        )
    return lines


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
    args.kinshasa_out.parent.mkdir(parents=True, exist_ok=True)
    for line in proxy_lines(args.real):
        sys.stdout.write(line)
    results = run_kinshasa(args.real, args.kinshasa_out.parent)
    for subset, dataset in (("all", "kinshasa_dhs"), ("rural", "kinshasa_dhs_rural")):
        for name, pooled in results[subset].items():
            sys.stdout.write(_line(dataset, name, pooled))
    sys.stdout.write("kinshasa_dhs_rural: 7 clusters, wealth spanning 0.24 index units; indicative at most\n")
    args.kinshasa_out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
