"""scripts/evaluate_africa_lights.py on three countries of the real DHS clusters: the
lines it prints, and that every held-out country is predicted by the others alone."""
from __future__ import annotations

import csv
import re

import numpy as np

import evaluate_africa_lights as evaluate

COUNTRIES = ("guinea", "togo", "sierra_leone")


def test_the_lines_name_each_variant_and_country(real_data, tmp_path, capsys):
    src = real_data / "yeh2020_dhs" / "dhs_clusters.csv"
    with open(src, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = [r for r in reader if r["country"] in COUNTRIES]
        fields = reader.fieldnames
    subset = tmp_path / "dhs_subset.csv"
    with open(subset, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fields)
        writer.writeheader()
        writer.writerows(rows)
    assert evaluate.main(["--dhs", str(subset)]) == 0
    out = capsys.readouterr().out.splitlines()
    pattern = re.compile(r"dataset=dhs variant=(\w+) r2=([\d.]+) R2=(-?[\d.]+) r2_within=([\d.]+) r2_loco=([\d.]+) n=(\d+)")
    pooled = {m.group(1): m for m in map(pattern.fullmatch, out) if m}
    assert set(pooled) == {"reference", "log_mean"}
    for m in pooled.values():
        assert int(m.group(6)) == len(rows)
        assert 0.3 < float(m.group(2)) <= 1 and 0.3 < float(m.group(5)) <= 1  # lights rank wealth in these three
    countries = [re.search(r"country=(\w+)", line).group(1) for line in out if line.startswith("dataset=dhs_country")]
    assert sorted(countries) == sorted(COUNTRIES)


def test_in_country_folds_keep_overlapping_boxes_together(monkeypatch):
    seen = []
    real_fit = evaluate.fit_ridge_cv

    def recording_fit(x, y, folds):
        seen.append(x.shape[0])
        return real_fit(x, y, folds)

    monkeypatch.setattr(evaluate, "fit_ridge_cv", recording_fit)
    rng = np.random.default_rng(0)
    positions = np.repeat(rng.uniform(0, 1e6, (40, 2)), 3, axis=0)  # 40 places, 3 clusters each
    x = rng.normal(size=(120, 2))
    y = x[:, 0] + 0.1 * rng.normal(size=120)
    pred = evaluate.in_country_predictions(x, y, positions)
    assert len(seen) == evaluate.N_FOLDS and all(n % 3 == 0 for n in seen)  # whole places leave together
    assert np.corrcoef(pred, y)[0, 1] > 0.9
