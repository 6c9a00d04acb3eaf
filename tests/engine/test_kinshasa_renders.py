"""The render evaluation of the bundled Kinshasa CNN (scripts/evaluate_renders.py): the
cell-by-cell comparison on generated maps, and the script's lines on a small window of
the REAL shared scenes."""
from __future__ import annotations

import re

import numpy as np
import pytest
from rasterio.transform import from_origin

from poverty_mapper.evaluation.kinshasa_renders import LEVELS, cells_within, compare_maps, renders


def _generated_map(seed: int = 0, shape=(12, 15)) -> np.ndarray:
    """A generated map: smooth random values with a few cells left without an estimate."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=shape).cumsum(axis=0).cumsum(axis=1) / 10
    values[rng.random(shape) < 0.1] = np.nan
    return values


def test_a_shifted_map_gives_its_shift_and_a_perfect_correlation():
    base = _generated_map()
    c = compare_maps(base + 0.4, base)
    assert c.mean_shift == pytest.approx(0.4) and c.r == pytest.approx(1.0)
    assert c.n == int(np.isfinite(base).sum()) < base.size


def test_only_cells_both_maps_estimated_count():
    base, other = _generated_map(0), _generated_map(1)
    c = compare_maps(other, base)
    both = np.isfinite(base) & np.isfinite(other)
    assert c.n == int(both.sum()) and c.n < np.isfinite(base).sum()
    assert c.mean_shift == pytest.approx(float(np.mean(other[both] - base[both])))
    assert c.r == pytest.approx(float(np.corrcoef(other[both], base[both])[0, 1]))
    assert -1.0 <= c.r <= 1.0


def test_an_inverted_map_correlates_negatively_and_a_mask_restricts_the_cells():
    base = _generated_map()
    assert compare_maps(-base, base).r == pytest.approx(-1.0)
    where = np.zeros(base.shape, bool)
    where[:4] = True
    c = compare_maps(base * 2, base, where)
    assert c.n == int((np.isfinite(base) & where).sum())
    assert c.mean_shift == pytest.approx(float(np.nanmean(base[:4])))


def test_a_constant_map_or_no_common_cell_has_no_correlation():
    base = _generated_map()
    assert np.isnan(compare_maps(np.full(base.shape, 0.3), base).r)
    none = compare_maps(np.full(base.shape, np.nan), base)
    assert none.n == 0 and np.isnan(none.mean_shift) and np.isnan(none.r)
    with pytest.raises(ValueError):
        compare_maps(base[:-1], base)


def test_cells_within_a_radius_of_a_point():
    transform = from_origin(0.0, 40.0, 10.0, 10.0)  # 4 x 4 cells of 10 m, centres at 5, 15, 25, 35
    near = cells_within(transform, (4, 4), 20.0, 20.0, 7.5)
    assert near.sum() == 4 and near[1:3, 1:3].all()
    assert cells_within(transform, (4, 4), 5.0, 35.0, 1.0).sum() == 1


def test_the_original_render_is_the_identity_and_the_others_change_the_values():
    histograms = np.ones((3, 256))
    tables = renders(histograms)
    assert all(np.array_equal(t, LEVELS.astype(np.uint8)) for t in tables["original"])
    for name, bands in tables.items():
        if name != "original":
            assert any(not np.array_equal(t, LEVELS.astype(np.uint8)) for t in bands), name


LINE = re.compile(r"^dataset=(\S+) variant=(\S+)((?: \w+=\S+)+)$")


@pytest.mark.slow  # 10 maps of 4 x 4 cells, each render a whole-scene GeoTIFF: 15 s alone, minutes under load
def test_the_script_prints_lines_that_parse_on_a_small_window(real_data, capsys):
    import evaluate_renders  # scripts/ is on sys.path (conftest)

    assert evaluate_renders.main(["--real", str(real_data), "--window-tiles", "3", "--dates-window-tiles", "3",
                                  "--renders", "gamma_0.7,gain_0.8_1_1.25"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("dataset=")]
    parsed = []
    for line in lines:
        match = LINE.match(line)
        assert match, line
        fields = dict(kv.split("=") for kv in match.group(3).split())
        parsed.append((match.group(1), match.group(2), {k: float(v) for k, v in fields.items()}))
    variants = [(d, v) for d, v, _ in parsed]
    assert variants == [
        ("kinshasa_render", "2013_gamma_0.7"), ("kinshasa_render", "2013_gain_0.8_1_1.25"),
        ("kinshasa_render", "2015_gamma_0.7"), ("kinshasa_render", "2015_gain_0.8_1_1.25"),
        ("kinshasa_dates", "2013_vs_2015"), ("kinshasa_dhs_date", "2013"), ("kinshasa_dhs_date", "2015"),
    ]
    for dataset, _, fields in parsed:
        assert fields["n"] > 0
        if dataset == "kinshasa_render":
            assert set(fields) == {"mean_shift", "r", "n"} and abs(fields["mean_shift"]) < 10
        elif dataset == "kinshasa_dates":
            assert {"mean_shift", "r", "r_ok", "n"} <= set(fields)
        else:
            assert set(fields) == {"r2", "n"} and fields["n"] <= 44
