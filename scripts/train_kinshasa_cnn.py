"""Train the proxy networks on the real Kinshasa imagery, and the bundled CNN model.

    python scripts/train_kinshasa_cnn.py [--real ../shared/data/real] [--out out/kinshasa]
                                         [--variants imagenet_start,random_start,small_cnn]
                                         [--bundle resources/models/kinshasa_cnn.povmodel]
                                         [--device cpu|cuda] [--force]

1. Proxy task (evaluation.kinshasa): each network learns three night-light classes
   from the two Landsat dates, same tiles, split, epochs and settings; its model file and
   report (held-out blocks: accuracy, balanced accuracy, chance, majority class) go to
   ``--out``. A variant whose model and report are there already is not trained again
   (``--force`` retrains): ``make eval`` reads these reports.
2. With ``--bundle``: the ImageNet-started network is fitted on the 44 DR Congo 2013 DHS
   clusters (fit_clusters, 10 km folds) and written as the bundled model, with its card.

Deterministic for the fixed seed on one machine (training on another CPU type may differ
in the last bits).
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


def proxy_paths(out: Path, variant: str) -> tuple[Path, Path]:
    return out / f"proxy_{variant}.povmodel", out / f"proxy_{variant}.json"


def train_variants(real: Path, out: Path, variants: list[str], device: str, force: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    reports = {}
    for variant in variants:
        model_path, report_path = proxy_paths(out, variant)
        if model_path.exists() and report_path.exists() and not force:
            reports[variant] = json.loads(report_path.read_text())
            continue
        t0 = time.perf_counter()
        sys.stdout.write(f"training {variant}...\n")
        sys.stdout.flush()
        result = train_proxy(kinshasa.proxy_config(real, variant, model_path, report_path, device),
                             status=lambda line: (sys.stdout.write(f"  {line}\n"), sys.stdout.flush()))
        reports[variant] = result.report
        sys.stdout.write(f"{variant}: {json.dumps(result.report['held_out'])} in {time.perf_counter() - t0:.0f} s\n")
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--variants", default=",".join(kinshasa.PROXY_VARIANTS))
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(kinshasa.PROXY_VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")
    train_variants(args.real, args.out, variants, args.device, args.force)
    if args.bundle is not None:
        from kinshasa_bundle import write_bundled_model

        write_bundled_model(args.real, proxy_paths(args.out, kinshasa.BUNDLED_VARIANT)[0], args.bundle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
