"""The method on the real Kinshasa data, as distributions over proxy networks trained with
several seeds (called by ``make eval``; alone: ``make eval-kinshasa``).

    python scripts/evaluate_kinshasa.py [--real ../shared/data/real] [--out out/eval/kinshasa.json]

1. Proxy task (evaluation.kinshasa): each network learns night-light classes from the two
   Landsat dates, once per seed of ``evaluation.kinshasa.PROXY_SEEDS`` (trained first by
   scripts/train_kinshasa_cnn.py where out/kinshasa/ lacks a run). Lines
   ``dataset=kinshasa_proxy variant=<network> seed=<s> accuracy= balanced_accuracy= chance=
   majority= n=<held-out tiles>`` and ``variant=<network>_mean balanced_accuracy= sd= n_seeds=``.
2. The survey fit on the 44 DR Congo 2013 DHS clusters (fit_clusters as an analyst runs it:
   10 km box, five folds, clusters within 10 km in one fold, seed 0) with each seed's
   network: ``dataset=kinshasa_dhs variant=cnn seed=<s> proxy_balanced_accuracy= r2= R2= n=``
   (``cnn``: EfficientNet-Lite0 from ImageNet, ``small_cnn``: the small CNN), then
   ``variant=cnn_mean r2= sd= R2= R2_sd= n_seeds=`` and the correlation over seeds of the
   proxy's held-out balanced accuracy with the survey r² (``dataset=kinshasa_proxy_vs_survey``).
3. The survey stage studied on the same features (evaluation.survey_stage): each way of
   turning features into wealth, every seed, ``dataset=kinshasa_dhs_stage variant=<network>
   way=<features|pca|head|chosen> seed=<s> r2= R2=`` and ``seed=mean r2= sd= R2= R2_sd=``;
   settings chosen on inner folds only (``chosen`` is what fitclusters does).
4. Single fits (no network trained): ``imagenet`` (the median run's network back at its
   ImageNet weights), ``histogram``, ``random``, ``nightlights`` (the fit's baseline),
   ``cnn_lights``/``lights`` (the median run's features with the bundled lights' and the
   bundled lights alone); and every figure again over the 7 rural clusters
   (``kinshasa_dhs_rural``: wealth spanning 0.24 index units, indicative at most).

"Median run": the seed of ``cnn`` whose survey r² is the median of the seeds' (the bundled
model is that run: ``make model-cnn``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from _bootstrap import ROOT, import_plugin_package

import_plugin_package()
from poverty_mapper.core.models.model_file import load_model, save_model  # noqa: E402
from poverty_mapper.core.regression.metrics import coefficient_of_determination, squared_pearson  # noqa: E402
from poverty_mapper.core.training.clusters import ClusterFitResult, fit_clusters  # noqa: E402
from poverty_mapper.evaluation import dhs, kinshasa, survey_stage  # noqa: E402
from train_kinshasa_cnn import DEFAULT_OUT as PROXY_DIR  # noqa: E402
from train_kinshasa_cnn import proxy_paths, train_variants  # noqa: E402

DEFAULT_REAL = ROOT.parent / "shared" / "data" / "real"
DEFAULT_OUT = ROOT / "out" / "eval" / "kinshasa.json"
# survey-fit variant -> proxy network
SURVEY_NETWORKS = {"cnn": kinshasa.BUNDLED_VARIANT, "small_cnn": "small_cnn"}


def _scores(observed: np.ndarray, predicted: np.ndarray) -> dict:
    return {
        "r2": round(squared_pearson(observed, predicted), 4),
        "R2": round(coefficient_of_determination(observed, predicted), 4),
        "n": int(observed.size),
    }


def _line(dataset: str, name: str, pooled: dict) -> str:
    return f"dataset={dataset} variant={name} r2={pooled['r2']:.4f} R2={pooled['R2']:.4f} n={pooled['n']}\n"


def _say(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


def proxy_runs(real_dir: Path) -> dict[str, dict[int, dict]]:
    """Every network's runs (trained first where missing), their lines printed."""
    reports = train_variants(real_dir, PROXY_DIR, list(kinshasa.PROXY_VARIANTS), "cpu", force=False)
    for variant, runs in reports.items():
        for seed, report in runs.items():
            h = report["held_out"]
            _say(f"dataset=kinshasa_proxy variant={variant} seed={seed} accuracy={h['accuracy']:.4f} "
                 f"balanced_accuracy={h['balanced_accuracy']:.4f} chance={h['chance']:.4f} "
                 f"majority={h['majority_class_accuracy']:.4f} n={h['n']}\n")
        mean, sd = survey_stage.spread([r["held_out"]["balanced_accuracy"] for r in runs.values()])
        _say(f"dataset=kinshasa_proxy variant={variant}_mean balanced_accuracy={mean:.4f} sd={sd:.4f} "
             f"n_seeds={len(runs)}\n")
    return reports


def _fit(real_dir: Path, extractor: str, out: Path) -> ClusterFitResult:
    return fit_clusters(kinshasa.cluster_config(real_dir, extractor, out))


def survey_runs(real_dir: Path, work_dir: Path, reports: dict, rural_of: np.ndarray, results: dict) -> dict[str, int]:
    """The survey fit with each seed's network, and the survey stage studied on its
    features; returns the median run's seed per survey variant."""
    medians = {}
    for name, network in SURVEY_NETWORKS.items():
        runs = {}
        for seed, report in reports[network].items():
            model_path = proxy_paths(PROXY_DIR, network, seed)[0]
            fit = _fit(real_dir, str(model_path), work_dir / f"kinshasa_{name}_seed{seed}.povmodel")
            scores = _scores(fit.observed, fit.predicted)
            balanced = report["held_out"]["balanced_accuracy"]
            _say(f"dataset=kinshasa_dhs variant={name} seed={seed} proxy_balanced_accuracy={balanced:.4f} "
                 f"r2={scores['r2']:.4f} R2={scores['R2']:.4f} n={scores['n']}\n")
            stage = survey_stage.survey_stage(fit.features, fit.observed, fit.groups, fit.fold,
                                              load_model(model_path).extractor.class_layer())
            runs[seed] = {"all": scores, "rural": _scores(fit.observed[rural_of[fit.used]],
                                                          fit.predicted[rural_of[fit.used]]),
                          "proxy_balanced_accuracy": balanced, "stage": stage,
                          "columns": [f.columns for f in fit.report.cv.folds]}
        r2s = [r["all"]["r2"] for r in runs.values()]
        big_r2s = [r["all"]["R2"] for r in runs.values()]
        (mean, sd), (big_mean, big_sd) = survey_stage.spread(r2s), survey_stage.spread(big_r2s)
        _say(f"dataset=kinshasa_dhs variant={name}_mean r2={mean:.4f} sd={sd:.4f} R2={big_mean:.4f} "
             f"R2_sd={big_sd:.4f} n_seeds={len(runs)}\n")
        accuracy = [r["proxy_balanced_accuracy"] for r in runs.values()]
        if len(runs) > 2:
            _say(f"dataset=kinshasa_proxy_vs_survey variant={name} r={np.corrcoef(accuracy, r2s)[0, 1]:.3f} "
                 f"n_seeds={len(runs)}\n")
        _stage_lines(name, runs)
        order = sorted(runs, key=lambda s: (runs[s]["all"]["r2"], s))
        medians[name] = order[(len(order) - 1) // 2]
        _say(f"dataset=kinshasa_dhs variant={name}_median seed={medians[name]} r2={runs[medians[name]]['all']['r2']:.4f}\n")
        results["seeds"][name] = {str(s): r for s, r in runs.items()}
        results["all"][f"{name}_mean"] = {"r2": round(mean, 4), "r2_sd": round(sd, 4), "R2": round(big_mean, 4),
                                          "R2_sd": round(big_sd, 4), "n_seeds": len(runs)}
        results["all"][name] = runs[medians[name]]["all"]
        results["rural"][name] = runs[medians[name]]["rural"]
    return medians


def _stage_lines(name: str, runs: dict) -> None:
    ways = list(next(iter(runs.values()))["stage"])
    for way in ways:
        for seed, run in runs.items():
            s = run["stage"][way]
            _say(f"dataset=kinshasa_dhs_stage variant={name} way={way} seed={seed} r2={s['r2']:.4f} R2={s['R2']:.4f}\n")
        (mean, sd), (big_mean, big_sd) = (survey_stage.spread([r["stage"][way][k] for r in runs.values()])
                                          for k in ("r2", "R2"))
        _say(f"dataset=kinshasa_dhs_stage variant={name} way={way} seed=mean r2={mean:.4f} sd={sd:.4f} "
             f"R2={big_mean:.4f} R2_sd={big_sd:.4f} n_seeds={len(runs)}\n")


def single_fits(real_dir: Path, work_dir: Path, median: Path, rural_of: np.ndarray, results: dict) -> None:
    """The fits that need no network trained here, and the median run with the bundled lights."""
    untuned = save_model(kinshasa.untuned_imagenet_model(load_model(median)), work_dir / "kinshasa_imagenet_untuned.povmodel")
    fit = None
    for name, extractor in (("imagenet", str(untuned)), ("histogram", "histogram"), ("random", "random")):
        fit = _fit(real_dir, extractor, work_dir / f"kinshasa_{name}.povmodel")
        rural = rural_of[fit.used]
        results["all"][name] = _scores(fit.observed, fit.predicted)
        results["rural"][name] = _scores(fit.observed[rural], fit.predicted[rural])
    results["all"]["nightlights"] = _scores(fit.observed, fit.baseline_predicted)
    results["rural"]["nightlights"] = _scores(fit.observed[rural], fit.baseline_predicted[rural])
    fit = fit_clusters(kinshasa.lights_config(real_dir, str(median), work_dir / "kinshasa_cnn_lights.povmodel"))
    rural = rural_of[fit.used]
    for name, predicted in (("cnn_lights", fit.predicted), ("lights", fit.baseline_predicted)):
        results["all"][name] = _scores(fit.observed, predicted)
        results["rural"][name] = _scores(fit.observed[rural], predicted[rural])


def run(real_dir: Path, out: Path) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    rural_of = ~dhs.load_dhs_clusters(real_dir / dhs.KINSHASA_CLUSTERS).urban
    results: dict = {"all": {}, "rural": {}, "seeds": {}}
    reports = proxy_runs(real_dir)
    medians = survey_runs(real_dir, out.parent, reports, rural_of, results)
    results["median_seed"] = medians
    single_fits(real_dir, out.parent, proxy_paths(PROXY_DIR, kinshasa.BUNDLED_VARIANT, medians["cnn"])[0], rural_of,
                results)
    for subset, dataset in (("all", "kinshasa_dhs"), ("rural", "kinshasa_dhs_rural")):
        for name, pooled in results[subset].items():
            if "n" in pooled:
                _say(_line(dataset, name, pooled))
    _say("kinshasa_dhs: cnn and small_cnn are the median runs (their distributions above); "
         "kinshasa_dhs_rural: 7 clusters, wealth spanning 0.24 index units; indicative at most\n")
    out.write_text(json.dumps(results, indent=1) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    run(args.real, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
