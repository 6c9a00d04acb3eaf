"""How the cluster fit scales its features: measured on the VALIDATION splits of the real
LSMS set (deterministic; the test splits are removed before anything is fitted).

    python scripts/choose_feature_scaling.py [--data ../shared/data/real/yeh2020_lsms]
                                             [--out out/eval/feature_scaling.json]

For each FeatureScaling (floor on the scale x share of features left out for varying in
too few training clusters) and each feature variant: ridge fit on each fold's train
split, penalty picked on its val split, pooled val r2 (squared Pearson). Histogram
variants (RGB, all 8 bands, night lights; frequencies and their square roots) are what
the scaling is for; the dense variants (per-band summaries, random Fourier features)
stand in for random and CNN features, which it must leave alone.

Rule: the scaling with the highest mean val r2 over the histogram variants, among those
that move no dense variant by more than 0.001. Then frequencies or square roots for
the daytime histograms: the higher mean val r2 over RGB and all bands, under it.
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
from poverty_mapper.evaluation import lsms_features as lf  # noqa: E402
from poverty_mapper.core.regression.ridge import FeatureScaling  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "real" / "yeh2020_lsms"
DEFAULT_OUT = ROOT / "out" / "eval" / "feature_scaling.json"
FLOORS = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)
SUPPORTS = (0.0, 0.02, 0.05, 0.1, 0.2)
DENSE = ("band_summary", "rff_summary_nl")


def variants(data: lsms.LsmsSet) -> dict[str, np.ndarray]:
    rgb, all_bands, lights = lf.rgb(data), lf.all_bands(data), lf.nightlights(data)
    return {
        "rgb": rgb, "rgb_sqrt": np.sqrt(rgb), "all_bands": all_bands, "all_bands_sqrt": np.sqrt(all_bands),
        "nightlights": lights, "nightlights_sqrt": np.sqrt(lights),
        "band_summary": lf.band_summary(data), "rff_summary_nl": lf.rff_summary_nl(data),
    }


def measure(data_dir: Path) -> dict:
    data = lsms.load_lsms(data_dir)
    no_test = {name: {"train": s["train"], "val": s["val"]} for name, s in data.folds.items()}
    table: dict[str, dict[str, float]] = {}
    for name, x in variants(data).items():
        for floor in FLOORS:
            for support in SUPPORTS:
                key = f"floor={floor:g} min_support={support:g}"
                scores = lf.validation_scores(x, data.labels, no_test, scaling=FeatureScaling(floor, support))
                table.setdefault(key, {})[name] = scores["pooled"]["r2"]
        sys.stderr.write(f"{name} measured\n")
    return table


def choose(table: dict[str, dict[str, float]]) -> dict:
    plain = table["floor=0 min_support=0"]
    histograms = [n for n in plain if n not in DENSE]
    harmless = [k for k, row in table.items() if all(abs(row[d] - plain[d]) <= 0.001 for d in DENSE)]
    best = max(harmless, key=lambda k: np.mean([table[k][n] for n in histograms]))
    row = table[best]
    sqrt_mean = np.mean([row["rgb_sqrt"], row["all_bands_sqrt"]])
    freq_mean = np.mean([row["rgb"], row["all_bands"]])
    return {
        "scaling": best,
        "mean_histogram_val_r2": round(float(np.mean([row[n] for n in histograms])), 4),
        "plain_mean_histogram_val_r2": round(float(np.mean([plain[n] for n in histograms])), 4),
        "daytime_histograms": "sqrt" if sqrt_mean > freq_mean else "frequency",
        "daytime_val_r2": {"sqrt": round(float(sqrt_mean), 4), "frequency": round(float(freq_mean), 4)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    table = measure(args.data)
    names = list(next(iter(table.values())))
    sys.stdout.write("pooled VAL r2 (squared Pearson); test splits not used\n" + "scaling".ljust(28) + " ".join(n[:14].rjust(14) for n in names) + "\n")
    for key, row in table.items():
        sys.stdout.write(key.ljust(28) + " ".join(f"{row[n]:14.4f}" for n in names) + "\n")
    chosen = choose(table)
    sys.stdout.write(json.dumps(chosen) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"val_r2": table, "chosen": chosen}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
