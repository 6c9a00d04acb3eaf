"""scripts/evaluate_africa_lights.py on three countries of the real DHS clusters: the
lines it prints, and that every held-out country is predicted by the others alone."""
from __future__ import annotations

import csv
import re

import numpy as np

import evaluate_africa_lights as evaluate
from poverty_mapper.evaluation import africa_lights as al

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
    assert evaluate.main(["--dhs", str(subset), "--lsms", "none"]) == 0
    out = capsys.readouterr().out.splitlines()
    pattern = re.compile(r"dataset=dhs variant=(\w+) r2=([\d.]+) R2=(-?[\d.]+) r2_within=([\d.]+) r2_loco=([\d.]+) n=(\d+)")
    pooled = {m.group(1): m for m in map(pattern.fullmatch, out) if m}
    assert set(pooled) == {v.name for v in al.VARIANTS}
    for m in pooled.values():
        assert int(m.group(6)) == len(rows)
        assert 0.3 < float(m.group(2)) <= 1 and 0.3 < float(m.group(5)) <= 1  # lights rank wealth in these three
    selected = next(line for line in out if line.startswith("dataset=dhs variant=selected"))
    chosen = dict(pair.split(":") for pair in re.search(r"chosen=(\S+)", selected).group(1).split(","))
    assert sum(map(int, chosen.values())) == 3 and set(chosen) <= {v.name for v in al.candidates()}
    default = re.search(r"default=(\w+)", "\n".join(out)).group(1)
    countries = [re.search(r"country=(\w+)", line).group(1) for line in out if line.startswith("dataset=dhs_country")]
    assert sorted(countries) == sorted(COUNTRIES)
    assert all(f"variant={default} " in line and "coverage80=" in line for line in out if line.startswith("dataset=dhs_country"))
    intervals = [line for line in out if line.startswith(f"dataset=dhs_interval variant={default} ")]
    assert [re.search(r"interval=(\w+)", line).group(1) for line in intervals] == ["plain", "widened", "by_estimate", "countries_equal", "by_spread"]
    assert all(re.search(r"countries_75_85=\d/3 ", line) for line in intervals)


def test_in_country_folds_keep_overlapping_boxes_together(monkeypatch):
    seen = []
    real_fit = al.fit_ridge_path

    def recording_fit(x, y, alphas, groups=None):
        seen.append(x.shape[0])
        return real_fit(x, y, alphas, groups)

    monkeypatch.setattr(al, "fit_ridge_path", recording_fit)
    rng = np.random.default_rng(0)
    positions = np.repeat(rng.uniform(0, 1e6, (40, 2)), 3, axis=0)  # 40 places, 3 clusters each
    x = rng.normal(size=(120, 2))
    y = x[:, 0] + 0.1 * rng.normal(size=120)
    groups = np.repeat(np.arange(4), 30)
    for within in (False, True):
        pred = al.in_country_predictions(x, y, positions, groups, within)
        assert np.corrcoef(pred, y)[0, 1] > 0.9
    assert len(seen) == 2 * al.N_FOLDS * al.N_FOLDS and all(n % 3 == 0 for n in seen)  # whole places leave together
