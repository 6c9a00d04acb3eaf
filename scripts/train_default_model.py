"""Train the bundled RGB histogram model on the real LSMS set (deterministic).

    python scripts/train_default_model.py [--data ../shared/data/real/yeh2020_lsms]
                                          [--out resources/models/default.povmodel]

Per-band histograms of Landsat BLUE, GREEN, RED (as in the Yeh et al. 2020 release)
-> ridge regression to the cluster asset-wealth index. Scores come from the
release's fixed folds (alpha chosen on each fold's val split, refit on train+val,
scored on test, pooled); the shipped model is then fit on all clusters with the alpha
that cross-validates best over the five test splits.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _bootstrap import ROOT, import_plugin_package

import_plugin_package()
from poverty_mapper.evaluation import lsms  # noqa: E402
from poverty_mapper.evaluation.across_countries import country_years  # noqa: E402
from poverty_mapper.core.regression.leave_group_out import leave_one_country_out  # noqa: E402
from poverty_mapper.evaluation.fixed_folds import fold_summary, fold_test_predictions  # noqa: E402
from poverty_mapper.core.regression.metrics import interval_half_width, within_r2  # noqa: E402
from poverty_mapper.core.models.model_file import PovertyModel, Scores, save_model  # noqa: E402
from poverty_mapper.core.regression.ridge import fit_ridge_cv  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "real" / "yeh2020_lsms"
DEFAULT_OUT = ROOT / "resources" / "models" / "default.povmodel"
BANDS = ("BLUE", "GREEN", "RED")


def build_default_model(data_dir: Path) -> PovertyModel:
    data = lsms.load_lsms(data_dir)
    x = data.frequencies(BANDS)
    pred, per_fold = fold_test_predictions(x, data.labels, data.folds)
    groups = country_years(data.countries, data.years)
    loco = leave_one_country_out(x, data.labels, data.countries)
    scores = {
        **fold_summary(data.labels, pred, per_fold),
        "interval_80": round(interval_half_width(data.labels - pred), 6),
        "within_groups_r2": round(within_r2(data.labels, pred, groups), 4),  # groups: country-years
        "out_of_country_r2": round(within_r2(data.labels, loco.pred, groups), 4),
    }
    regressor = fit_ridge_cv(x, data.labels, data.test_fold_of_each())
    return lsms.histogram_model(
        data.labels, x, BANDS, BANDS, regressor,
        name="LSMS Africa RGB histogram ridge v1",
        input_scaling="Landsat surface reflectance 0-1",
        provenance={
            "data": (
                f"{len(data)} LSMS cluster-years (Yeh et al. 2020 release), Landsat 224x224 px "
                "tiles at 30 m centred on each cluster"
            ),
            "script": "scripts/train_default_model.py",
            "features": "per-band histograms (102 bins on standardized reflectance) of BLUE, GREEN, RED, as frequencies",
            "license": "data MIT (Yeh et al. 2020 release)",
        },
        scores=Scores.from_json(scores),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    model = build_default_model(args.data)
    save_model(model, args.out)
    sys.stdout.write(model.card() + "\n")
    sys.stdout.write(json.dumps(model.scores.pooled.to_json()) + f"\nwritten: {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
