"""Train the proxy networks on the real Kinshasa imagery, and the bundled CNN model.

    python scripts/train_kinshasa_cnn.py [--real ../shared/data/real] [--out out/kinshasa]
                                         [--variants imagenet_start,random_start,small_cnn]
                                         [--seeds 0,1,2] [--bundle resources/models/kinshasa_cnn.povmodel
                                         [--eval out/eval/kinshasa.json]] [--device cpu|cuda] [--force]

1. Proxy task (evaluation.kinshasa): each network learns three night-light classes
   from the two Landsat dates, same tiles, split, epochs and settings, once per seed
   (``evaluation.kinshasa.PROXY_SEEDS`` unless ``--seeds``); each run's model file and
   report (held-out blocks: accuracy, balanced accuracy, chance, majority class) go to
   ``--out`` as ``proxy_<variant>_seed<S>``. A run whose model and report are there
   already is not trained again (``--force`` retrains): ``make eval`` reads these reports.
2. With ``--bundle``: the ImageNet-started network of the median run (the seed whose
   survey r² is the median of the seeds', from scripts/evaluate_kinshasa.py's JSON,
   ``--eval``) is fitted on the 44 DR Congo 2013 DHS clusters (fit_clusters, 10 km folds)
   and written as the bundled model; its card gives the seeds' spread.

Each run repeats bit for bit on one machine (deterministic algorithms, 2 PyTorch threads);
on another CPU type the last bits may differ.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _bootstrap import ROOT, import_plugin_package

import_plugin_package()
from poverty_mapper.evaluation import kinshasa  # noqa: E402
from poverty_mapper.core.training.proxy import train_proxy  # noqa: E402

DEFAULT_REAL = ROOT.parent / "shared" / "data" / "real"
DEFAULT_OUT = ROOT / "out" / "kinshasa"


def proxy_paths(out: Path, variant: str, seed: int) -> tuple[Path, Path]:
    return out / f"proxy_{variant}_seed{seed}.povmodel", out / f"proxy_{variant}_seed{seed}.json"


def train_variants(real: Path, out: Path, variants: list[str], device: str, force: bool,
                   seeds: tuple[int, ...] | None = None) -> dict[str, dict[int, dict]]:
    """Each variant trained with each of its seeds (``seeds``, else its own list): the
    reports by variant and seed."""
    out.mkdir(parents=True, exist_ok=True)
    reports: dict[str, dict[int, dict]] = {}
    for variant in variants:
        reports[variant] = {}
        for seed in (seeds if seeds is not None else kinshasa.PROXY_SEEDS[variant]):
            model_path, report_path = proxy_paths(out, variant, seed)
            if model_path.exists() and report_path.exists() and not force:
                reports[variant][seed] = json.loads(report_path.read_text())
                continue
            t0 = time.perf_counter()
            sys.stdout.write(f"training {variant}, seed {seed}...\n")
            sys.stdout.flush()
            result = train_proxy(kinshasa.proxy_config(real, variant, model_path, report_path, device, seed),
                                 status=lambda line: (sys.stdout.write(f"  {line}\n"), sys.stdout.flush()))
            reports[variant][seed] = result.report
            sys.stdout.write(f"{variant} seed {seed}: {json.dumps(result.report['held_out'])} "
                             f"in {time.perf_counter() - t0:.0f} s\n")
            sys.stdout.flush()
    return reports


def runs_line(results: dict, seed: int) -> str:
    """What the bundled model's card says of the seeds: the spread, then each run."""
    mean = results["all"]["cnn_mean"]
    runs = results["seeds"]["cnn"]
    each = ", ".join(f"seed {s}: {r['all']['r2']:.2f}" for s, r in sorted(runs.items(), key=lambda kv: int(kv[0])))
    return (f"this network is the median of {mean['n_seeds']} trainings with different seeds (seed {seed}); their "
            f"survey fits scored r² {mean['r2']:.2f} ± {mean['r2_sd']:.2f} (mean ± sd; {each}) and R² "
            f"{mean['R2']:.2f} ± {mean['R2_sd']:.2f}, out of fold on the same 44 clusters")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--variants", default=",".join(kinshasa.PROXY_VARIANTS))
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default: each variant's own list)")
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--eval", type=Path, default=ROOT / "out" / "eval" / "kinshasa.json",
                        help="scripts/evaluate_kinshasa.py's JSON: the median run and the seeds' spread")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(kinshasa.PROXY_VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")
    seeds = tuple(int(s) for s in args.seeds.split(",") if s) if args.seeds else None
    if args.bundle is not None and not args.eval.exists():
        parser.error(f"--bundle needs {args.eval}: run scripts/evaluate_kinshasa.py first (make model-cnn does)")
    train_variants(args.real, args.out, variants, args.device, args.force, seeds)
    if args.bundle is not None:
        from kinshasa_bundle import write_bundled_model

        results = json.loads(args.eval.read_text())
        seed = int(results["median_seed"]["cnn"])
        write_bundled_model(args.real, proxy_paths(args.out, kinshasa.BUNDLED_VARIANT, seed)[0], args.bundle,
                            runs_line(results, seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
