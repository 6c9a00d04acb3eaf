"""Score every feature variant of core.evaluation.lsms_features on the real LSMS set (deterministic).

    python scripts/evaluate.py [--data ../shared/data/real/yeh2020_lsms] [--out out/eval/lsms.json]

Regressor: the plugin's ridge. Test scores follow core.evaluation.fixed_folds.evaluate_on_folds
(alpha chosen on each fold's val split, refit on train+val, scored on the fold's test
split, the five test splits pooled). The variant reported as ``best`` is chosen by its
pooled score on the VAL splits only (fit on train, scored on val); the test splits are
never used to choose anything, their scores are only reported.

Prints one line per variant, ``variant=<name> r2=<squared Pearson> R2=<coefficient of
determination> n=<clusters>`` (pooled test splits), then ``variant=best ...`` and one
line naming the best variant and its val score; writes per-fold scores as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _bootstrap import ROOT, import_plugin_package

import_plugin_package()
from poverty_mapper.core.evaluation import lsms  # noqa: E402
from poverty_mapper.core.evaluation.fixed_folds import evaluate_on_folds  # noqa: E402
from poverty_mapper.core.evaluation.lsms_features import VARIANTS, select_by_validation, validation_scores  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "real" / "yeh2020_lsms"
DEFAULT_OUT = ROOT / "out" / "eval" / "lsms.json"


def _line(name: str, pooled: dict) -> str:
    return f"variant={name} r2={pooled['r2']:.4f} R2={pooled['R2']:.4f} n={pooled['n']}\n"


def run(data_dir: Path) -> dict:
    data = lsms.load_lsms(data_dir)
    results = {}
    for name, make_features in VARIANTS.items():
        x = make_features(data)
        results[name] = {
            "doc": (make_features.__doc__ or "").strip().splitlines()[0],
            "n_features": int(x.shape[1]),
            "val": validation_scores(x, data.labels, data.folds),
            "test": evaluate_on_folds(x, data.labels, data.folds),
        }
    best = select_by_validation({name: r["val"] for name, r in results.items()})
    return {
        "data": str(data_dir),
        "metrics": {"r2": "squared Pearson correlation", "R2": "coefficient of determination"},
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
    args = parser.parse_args(argv)
    report = run(args.data)
    for name, r in report["variants"].items():
        sys.stdout.write(_line(name, r["test"]["pooled"]))
    best = report["best"]
    sys.stdout.write(_line("best", best["test"]))
    sys.stdout.write(
        f"best={best['variant']} chosen by pooled VAL r2={best['val']['r2']:.4f} "
        f"(R2={best['val']['R2']:.4f}; val splits only, test splits not used for selection)\n"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
