"""Estimates outside the range of the survey outcomes are counted and said, never passed
off as values (GENERATED raster and weights)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import rasterio

from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map
from poverty_mapper.core.models.model_file import TrainingDomain
from test_scene_standardization import SIZE, _model, _raster


def _map(tmp_path, domain):
    rng = np.random.default_rng(2)
    image = _raster(tmp_path / "image.tif", np.clip(rng.normal(110, 40, (3, SIZE, SIZE)), 1, 255).astype(np.uint8))
    model = replace(_model(), domain=domain)
    result = predict_poverty_map(PredictRequest(image, str(tmp_path / "map.tif"), model, device="cpu"))
    with rasterio.open(tmp_path / "map.tif") as ds:
        return result, ds.read(1, masked=True).compressed()


def test_estimates_outside_the_outcomes_are_counted_and_said(tmp_path):
    _, values = _map(tmp_path, None)
    lo, hi = np.percentile(values, [25, 75])
    result, again = _map(tmp_path, TrainingDomain(30, float(lo), float(hi), float((lo + hi) / 2), 0.1))
    outside = int(np.sum((again < lo) | (again > hi)))
    assert result.n_outside_range == outside > 0
    assert any(f"{outside} of {values.size} estimated cells" in note and "extrapolations" in note for note in result.notes)


def test_a_map_within_the_outcomes_says_nothing_of_it(tmp_path):
    _, values = _map(tmp_path, None)
    result, _ = _map(tmp_path, TrainingDomain(30, float(values.min()) - 1, float(values.max()) + 1, 0.0, 1.0))
    assert result.n_outside_range == 0 and not any("extrapolations" in note for note in result.notes)
