"""Train the bundled night-lights model on the real LSMS set (deterministic).

    python scripts/train_nightlights_model.py [--data ../shared/data/real/yeh2020_lsms]
                                              [--out resources/models/africa_nightlights_viirs.povmodel]

The NIGHTLIGHTS histogram of each cluster's tile (102 bins of the night lights
standardized with the release's VIIRS mean and standard deviation), as frequencies ->
ridge regression to the cluster asset-wealth index. The plain frequencies score a little
better out of country than their square roots (leave-one-country-out within
country-year r2 0.387 against 0.386; on the val splits 0.342 against 0.331), so they are
used. The penalty is chosen by leave-one-country-out over all five countries (pooled R2
of the held-out countries' predictions), then the model is fitted on all clusters.

Scores: in country, the release's fixed folds (as the RGB model); out of country, each
country predicted by a model fitted on the four others (penalty by an inner
leave-one-country-out). The 80 % interval is the 80 % quantile of the absolute
out-of-country residuals: the model is meant for countries without surveys.
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
from poverty_mapper.evaluation.across_countries import country_scores, country_years  # noqa: E402
from poverty_mapper.core.regression.leave_group_out import leave_one_country_out, out_of_country_alpha  # noqa: E402
from poverty_mapper.evaluation.fixed_folds import fold_summary, fold_test_predictions  # noqa: E402
from poverty_mapper.core.imagery.lights_layer import NIGHTLIGHTS_BAND  # noqa: E402
from poverty_mapper.core.models.model_file import (  # noqa: E402
    NightLightsInput,
    PovertyModel,
    Scores,
    save_model,
)
from poverty_mapper.core.regression.metrics import interval_half_width, within_r2  # noqa: E402
from poverty_mapper.core.regression.ridge import fit_ridge  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "real" / "yeh2020_lsms"
DEFAULT_OUT = ROOT / "resources" / "models" / "africa_nightlights_viirs.povmodel"
BANDS = (NIGHTLIGHTS_BAND,)

VIIRS_INPUT = NightLightsInput(
    product=(
        "VIIRS annual or monthly composite of average radiance (e.g. NASA Black Marble VNP46A4, "
        "or the Earth Observation Group's annual VNL)"
    ),
    units="nW/cm²/sr",
    note=(
        "Give radiance, not a colour rendering; a file's own scale factor is applied. Trained on "
        "night-light tiles standardized with mean 0.557793 and standard deviation 6.421816 (VIIRS); "
        "the clusters of survey years before 2012 had DMSP lights, standardized with DMSP's own "
        "constants, so the fit mixes the two sensors in standardized units: its levels are less "
        "reliable than its rankings."
    ),
)


def nightlight_features(data: lsms.LsmsSet) -> np.ndarray:
    return data.frequencies(BANDS)


def out_of_country_figures(data: lsms.LsmsSet, x: np.ndarray) -> tuple[dict, np.ndarray]:
    """Scores of the leave-one-country-out predictions, and their residuals."""
    loco = leave_one_country_out(x, data.labels, data.countries)
    return country_scores(data.labels, loco.pred, data.countries, data.years), data.labels - loco.pred


def build_nightlights_model(data_dir: Path) -> PovertyModel:
    data = lsms.load_lsms(data_dir)
    x = nightlight_features(data)
    pred, per_fold = fold_test_predictions(x, data.labels, data.folds)
    loco, loco_residuals = out_of_country_figures(data, x)
    in_country = fold_summary(data.labels, pred, per_fold)
    scores = {
        **in_country,
        "protocol": in_country["protocol"] + (
            "; out of country: each country predicted by ridge fitted on the four others (penalty by an "
            "inner leave-one-country-out), r2 within country-year"
        ),
        "interval_80": round(interval_half_width(loco_residuals), 6),
        "interval_held_out": "out of country: clusters of each country predicted by a model fitted on the four others",
        "within_groups_r2": round(within_r2(data.labels, pred, country_years(data.countries, data.years)), 4),
        "out_of_country_r2": loco["r2_within_country_year"],
    }
    alpha, _ = out_of_country_alpha(x, data.labels, data.countries)
    regressor = fit_ridge(x, data.labels, alpha)
    return lsms.histogram_model(
        data.labels, x, BANDS, ("VIIRS",), regressor,
        name="Africa night lights (VIIRS) histogram ridge v1",
        input_scaling="night-light radiance from a separate night-lights layer (the imagery gives the grid and region)",
        provenance={
            "data": (
                f"{len(data)} LSMS cluster-years (Yeh et al. 2020 release), night lights of 224x224 px "
                "tiles at 30 m centred on each cluster (DMSP before 2012, VIIRS from 2012)"
            ),
            "script": "scripts/train_nightlights_model.py",
            "features": "histogram (102 bins on standardized night lights) of NIGHTLIGHTS, as frequencies",
            "penalty": f"alpha {alpha:g}, chosen by leave-one-country-out over the five countries",
            "use": (
                "the default for places without survey data: it ranks places within a country "
                f"(out-of-country r² {loco['r2_within_country_year']:.2f} within country-year); "
                f"levels across countries are weak (pooled out-of-country r² {loco['r2']:.2f}, "
                f"R² {loco['R2']:.2f}). Read the map as relative wealth within the country. "
                "Needs a night-lights layer (VIIRS radiance in nW/cm²/sr) and any image of the area "
                "(it gives the grid; its pixels are read only for where they are valid)."
            ),
            "license": "data MIT (Yeh et al. 2020 release)",
        },
        scores=Scores.from_json(scores),
        nightlights=VIIRS_INPUT,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    model = build_nightlights_model(args.data)
    save_model(model, args.out)
    sys.stdout.write(model.card() + "\n")
    sys.stdout.write(json.dumps(model.scores.to_json()) + f"\nwritten: {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
