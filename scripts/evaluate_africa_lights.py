"""Score the bundled Africa night lights on the DHS clusters (a measurement, no model is written).

    python scripts/evaluate_africa_lights.py [--dhs ../shared/data/real/yeh2020_dhs/dhs_clusters.csv]

For each of the 18,814 DHS cluster-years of 22 countries (Yeh et al. 2020), the features
of :func:`core.imagery.bundled_lights.luminance_features` on the 11 x 11-pixel box
(6.72 km at the equator) of the bundled NASA Black Marble 2016 luminance centred on the
cluster; ridge regression of the asset wealth index on them.

- ``r2``, ``R2``, ``r2_within``: 5-fold cross-validated predictions inside the survey
  countries, folds keeping clusters whose boxes overlap together, the penalty chosen by
  an inner 5-fold cross-validation of each training part. r2 is the squared Pearson
  correlation, R2 the coefficient of determination, r2_within the squared Pearson
  correlation after predictions and labels are demeaned per country-year.
- ``r2_loco``: leave one country out; each country predicted by ridge fitted on the 21
  others, the penalty chosen by an inner leave-one-country-out over those 21 (never by
  the held-out country); within country-year r2 of those predictions. Per country
  lines follow for the reference feature set.

Variants: ``reference`` (the 35 features) and ``log_mean`` (log(1 + mean) alone).
DHS coordinates are displaced by up to 2 km (urban) and 5-10 km (rural).
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bootstrap import import_plugin_package  # noqa: E402

import_plugin_package()

from poverty_mapper.evaluation.across_countries import country_years  # noqa: E402
from poverty_mapper.core.imagery.bundled_lights import (  # noqa: E402
    BOX_PIXELS,
    HISTOGRAM_BINS,
    BundledLights,
    luminance_features,
)
from poverty_mapper.core.regression.folds import group_folds, linked_groups  # noqa: E402
from poverty_mapper.core.regression.leave_group_out import leave_one_country_out  # noqa: E402
from poverty_mapper.core.regression.metrics import (  # noqa: E402
    coefficient_of_determination,
    squared_pearson,
    within_r2,
)
from poverty_mapper.core.regression.ridge import fit_ridge_cv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DHS = ROOT.parent / "shared" / "data" / "real" / "yeh2020_dhs" / "dhs_clusters.csv"
N_FOLDS = 5
BOX_M = BOX_PIXELS * 611.4962262814100


def load(path: Path):
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    lon = np.array([float(r["lon"]) for r in rows])
    lat = np.array([float(r["lat"]) for r in rows])
    wealth = np.array([float(r["wealthpooled"]) for r in rows])
    countries = np.array([r["country"] for r in rows])
    years = np.array([int(r["year"]) for r in rows])
    return lon, lat, wealth, countries, years


def in_country_predictions(x, y, positions_m) -> np.ndarray:
    """5-fold predictions; clusters whose boxes overlap share a fold; inner 5-fold penalty."""
    folds = group_folds(linked_groups(positions_m, BOX_M), N_FOLDS, seed=0)
    pred = np.empty(y.size)
    for fold in range(N_FOLDS):
        test = folds == fold
        inner = group_folds(linked_groups(positions_m[~test], BOX_M), N_FOLDS, seed=1)
        pred[test] = fit_ridge_cv(x[~test], y[~test], inner).predict(x[test])
    return pred


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dhs", type=Path, default=DHS)
    args = parser.parse_args(argv)
    lon, lat, wealth, countries, years = load(args.dhs)
    with BundledLights() as lights:
        boxes = lights.boxes_around(lon, lat, "EPSG:4326")
        rows, cols = lights.pixel_of(lon, lat, "EPSG:4326")
    features = luminance_features(boxes)
    # Metres on the lights' grid (pixels x 611.5 m): what the boxes overlap in.
    positions = np.column_stack([cols, rows]).astype(np.float64) * 611.4962262814100
    groups = country_years(countries, years)
    variants = {"reference": features, "log_mean": features[:, [HISTOGRAM_BINS]]}
    for name, x in variants.items():
        pred = in_country_predictions(x, wealth, positions)
        loco = leave_one_country_out(x, wealth, countries)
        sys.stdout.write(
            f"dataset=dhs variant={name} r2={squared_pearson(wealth, pred):.4f} "
            f"R2={coefficient_of_determination(wealth, pred):.4f} r2_within={within_r2(wealth, pred, groups):.4f} "
            f"r2_loco={within_r2(wealth, loco.pred, groups):.4f} n={wealth.size}\n"
        )
        sys.stdout.flush()
        if name == "reference":
            for c in np.unique(countries):
                held = countries == c
                r2c = within_r2(wealth[held], loco.pred[held], years[held])
                sys.stdout.write(f"dataset=dhs_country variant={name} country={c} r2_loco={r2c:.4f} "
                                 f"alpha={loco.alphas[str(c)]:.4g} n={int(held.sum())}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
