"""A run's scene check: does the scene look like the model's training imagery?

Before mapping, :data:`~.scene_domain.SAMPLE_TILES` tiles spread evenly over the region
are read and summarized as the model's training regions were (:mod:`.scene_domain`).
Beyond the threshold of the region's size class, the scene is unlike every part of the
training imagery that the check was calibrated on: the run says so, every estimated cell
is coded out of domain, and every interval is widened (:func:`scene_widening`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import rasterio

from ..imagery.radiometry import Radiometry
from ..imagery.tile_reader import TileReader
from ..imagery.tiling import PixelWindow, TileGrid
from .model_file import PovertyModel
from .scene_domain import LEVELS, SIZE_CLASSES, TileHistograms, sample_positions, scene_summary, tile_histograms

# The two-sided 80 % quantile of a normal distribution: an interval of +- this many
# standard deviations holds 80 %.
Z80 = 1.2816

DnTransform = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SceneCheck:
    """The scene check of one region: its statistic and threshold (None: the region is
    too small to compare), the tiles summarized and the region's area in tiles (its
    cells, fewer where cells lie closer than a tile)."""

    statistic: float | None
    threshold: float | None
    tiles: int
    area_tiles: float

    @property
    def alarm(self) -> bool:
        return self.statistic is not None and self.threshold is not None and self.statistic > self.threshold


def read_histograms(
    reader: TileReader, windows: Sequence[PixelWindow], bounds: tuple[np.ndarray, np.ndarray], min_valid_fraction: float,
    dn_transform: DnTransform | None = None, value_map: tuple[np.ndarray, np.ndarray] | None = None,
) -> TileHistograms:
    """The histograms of the tiles of ``windows`` with enough valid pixels, read in the
    model's units, counted in levels between ``bounds`` (``dn_transform``: applied to the digital numbers first, e.g. a
    generated render; ``value_map``: per-band scale and offset applied after)."""
    values, valids = [], []
    for window in windows:
        dn, valid = reader.read_dn(window)
        if valid.mean() < min_valid_fraction:
            continue
        v = reader.radiometry.apply(dn if dn_transform is None else dn_transform(dn))
        if value_map is not None:
            v = v * value_map[0][:, None, None] + value_map[1][:, None, None]
        values.append(v)
        valids.append(valid)
    if not values:
        n = len(reader.bands)
        return TileHistograms(np.zeros((0, n, LEVELS), np.int64), np.zeros((0, max(n - 1, 0), 2 * LEVELS - 1), np.int64))
    return tile_histograms(np.stack(values), np.stack(valids), *bounds)


def training_value_map(trained: PovertyModel, used: PovertyModel) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-band scale and offset that bring the values ``used`` reads (a model standardizing
    bands by the scene's statistics) to the training imagery's: what the network sees, in
    its training units. None when ``used`` reads the scene as the model was trained."""
    if used is trained:
        return None
    mean, std = np.asarray(used.extractor.band_means), np.asarray(used.extractor.band_stds)
    scale = np.asarray(trained.extractor.band_stds) / std
    return scale, np.asarray(trained.extractor.band_means) - mean * scale


def check_scene(
    ds: rasterio.io.DatasetReader, bands: tuple[int, ...], radiometry: Radiometry, trained: PovertyModel,
    used: PovertyModel, grid: TileGrid, cell_mask: np.ndarray, min_valid_fraction: float,
    dn_transform: DnTransform | None = None,
) -> SceneCheck | None:
    """The scene check of the cells ``cell_mask`` of ``grid`` (None: the model file has no
    scene domain, or the model reads other bands besides the image's). ``trained``: the
    model as its file holds it; ``used``: as it reads this scene (standardized by the
    scene's statistics or not). ``dn_transform``: see :func:`read_histograms`."""
    domain = trained.scene_domain
    if domain is None or domain.n_bands != len(bands):
        return None
    cells = np.argwhere(cell_mask)
    area = len(cells) * grid.step_x * grid.step_y / (grid.tile_x * grid.tile_y)
    threshold = domain.threshold(int(area))
    if threshold is None:
        return SceneCheck(None, None, 0, area)
    picked = cells[sample_positions(len(cells))]
    reader = TileReader(ds, bands, trained.tile_size_px, radiometry)
    windows = [grid.tile_window(int(r), int(c)) for r, c in picked]
    tiles = read_histograms(reader, windows, (domain.lo, domain.hi), min_valid_fraction, dn_transform,
                            training_value_map(trained, used))
    if len(tiles) < SIZE_CLASSES[0]:  # too few tiles with valid pixels enough
        return SceneCheck(None, None, len(tiles), area)
    return SceneCheck(domain.statistic(scene_summary(tiles)), threshold, len(tiles), area)


def scene_widening(model: PovertyModel) -> float | None:
    """The half-width added (in quadrature) to every interval of a scene unlike the
    training imagery: the survey outcomes' own 80 % half-width (:data:`Z80` standard
    deviations), what an estimate shifted by as much as the outcomes vary needs; without
    the outcomes' spread, the cross-validated half-width (the interval grows by sqrt 2)."""
    if model.domain is not None and model.domain.outcome_std > 0:
        return Z80 * model.domain.outcome_std
    return model.scores.interval_80


def scene_check_notes(model: PovertyModel, check: SceneCheck | None) -> tuple[str, ...]:
    """What the run says of its scene check (nothing where the scene is like the training imagery)."""
    if check is None:
        if model.scene_domain is None:
            return ("The model file does not describe its training imagery, so this run cannot tell whether the scene "
                    "is unlike it (the scene check is not available; fit the model again to add it).",)
        return ()
    if check.statistic is None:
        what = f"the area of {check.area_tiles:.0f} of the model's tiles" if check.area_tiles < SIZE_CLASSES[0] else \
            f"{check.tiles} sampled tiles with enough valid pixels"
        return (f"The region has {what}, too few (under {SIZE_CLASSES[0]}) to compare the scene with the model's "
                "training imagery: the scene check was not made.",)
    if not check.alarm:
        return ()
    widening = scene_widening(model)
    interval = model.scores.interval_80
    wider = "" if widening is None or interval is None else \
        f" (a cell at the cross-validated ±{interval:.2f} now ±{float(np.hypot(interval, widening)):.2f})"
    facts = model.scene_domain.facts
    return (
        f"This scene does not look like the imagery the model was trained on: its brightness, contrast and colour "
        f"balance ({check.tiles} tiles read) lie at distance {check.statistic:.1f} from the training imagery's, beyond "
        f"the threshold {check.threshold:.1f} that {facts.quantile * 100:.0f} % of random regions of the training scenes "
        "stay within. It may be rendered or processed otherwise (another stretch, gamma or colour balance, product "
        "or sensor) or show land unlike the training scenes': the estimates may be shifted as a whole. Every "
        f"estimated cell is coded 3 (out of domain) and its interval (band 3) widened{wider}. Map imagery rendered "
        "like the model's training imagery, or fit a model on imagery like this scene.",
    )


def scene_check_tags(check: SceneCheck | None) -> dict[str, str]:
    """The map's tags for its scene check: only where the scene was found unlike the training imagery."""
    if check is None or not check.alarm:
        return {}
    return {"SCENE_CHECK": f"unlike the training imagery: distance {check.statistic:.3g} > threshold {check.threshold:.3g}"}
