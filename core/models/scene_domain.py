"""What a model's training imagery looked like, and whether a scene looks like it.

A model maps imagery like that it was trained on. A scene rendered or processed otherwise
(another contrast stretch, gamma or colour balance, another product) moves its estimates
as a whole, and every cell still looks as sure as before. The model file therefore keeps
what its training scenes looked like, and a run compares the scene with it.

A set of tiles is summarized by what such changes move: per band, the quantiles of its
pixel values (:data:`SUMMARY_QUANTILES`) and the median spread of a tile's pixels; per
pair of neighbouring bands, the quantiles of their difference (the colour balance). Pixel
values are counted in :data:`LEVELS` levels between the bounds ``lo`` and ``hi`` of each
band (for 8-bit imagery read as DN / 255: the DN themselves).

The test is calibrated on the training scenes themselves: random rectangular regions of
them, from :data:`SIZE_CLASSES`'s smallest to the whole scene, are summarized from
:data:`SAMPLE_TILES` of their tiles spread evenly, as a run samples its region. Their
summaries give a centre and a spread (covariance, shrunk by :data:`SHRINKAGE` towards its
diagonal, no part's spread under a level); a scene's *statistic* is the Mahalanobis distance of its summary from that
centre. The threshold, per region size class, is the :data:`FALSE_ALARM_QUANTILE` of the
distances of other random regions (half of the regions give the centre and spread, the
other half the thresholds): a region of the training scenes lies beyond it about once in
a hundred. A region smaller than the smallest class is not compared.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .metadata import TrainingScenes

LEVELS = 256
SUMMARY_QUANTILES = (0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98)
SAMPLE_TILES = 64  # tiles of a region read to summarize it
SIZE_CLASSES = (16, 64, 256, 1024)  # lower bounds of the region size classes, in cells
FALSE_ALARM_QUANTILE = 0.99
SHRINKAGE = 0.05
REGION_DRAWS = 4000  # random regions of the training scenes drawn to calibrate the test
MIN_DRAWS_PER_CLASS = 40  # a size class with fewer draws takes the next smaller class's threshold
REFERENCE_QUANTILES = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)  # of the training tiles' means, spreads, estimates


@dataclass(frozen=True)
class TileHistograms:
    """Per tile: counts of its valid pixels' levels per band [n, bands, LEVELS] and of the
    differences of neighbouring bands' levels [n, bands - 1, 2 LEVELS - 1]."""

    levels: np.ndarray
    differences: np.ndarray

    def __len__(self) -> int:
        return len(self.levels)

    def take(self, index: np.ndarray) -> "TileHistograms":
        return TileHistograms(self.levels[index], self.differences[index])

    @classmethod
    def concatenate(cls, parts: Sequence["TileHistograms"]) -> "TileHistograms":
        return cls(np.concatenate([p.levels for p in parts]), np.concatenate([p.differences for p in parts]))

    def tile_means_and_spreads(self) -> tuple[np.ndarray, np.ndarray]:
        """Each tile's mean and standard deviation per band, in levels [n, bands]."""
        counts = np.maximum(self.levels.sum(-1), 1)
        v = np.arange(LEVELS, dtype=np.float64)
        mean = (self.levels * v).sum(-1) / counts
        var = (self.levels * v**2).sum(-1) / counts - mean**2
        return mean, np.sqrt(np.maximum(var, 0.0))


def tile_histograms(values: np.ndarray, valid: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> TileHistograms:
    """:class:`TileHistograms` of tiles ``values`` [n, bands, h, w] (in the model's units)
    with ``valid`` [n, h, w]; values outside ``lo``..``hi`` count in the end levels."""
    n, bands = values.shape[:2]
    span = np.where(hi > lo, hi - lo, 1.0)
    with np.errstate(invalid="ignore"):
        scaled = (values.astype(np.float64) - lo.reshape(1, -1, 1, 1)) / span.reshape(1, -1, 1, 1) * (LEVELS - 1)
    levels = np.clip(np.rint(np.nan_to_num(scaled)), 0, LEVELS - 1).astype(np.int64)
    counts = np.zeros((n, bands, LEVELS), np.int64)
    differences = np.zeros((n, max(bands - 1, 0), 2 * LEVELS - 1), np.int64)
    for i in range(n):
        keep = levels[i][:, valid[i]]  # [bands, pixels]
        for b in range(bands):
            counts[i, b] = np.bincount(keep[b], minlength=LEVELS)
        for b in range(bands - 1):
            differences[i, b] = np.bincount(keep[b] - keep[b + 1] + LEVELS - 1, minlength=2 * LEVELS - 1)
    return TileHistograms(counts, differences)


def _quantiles(counts: np.ndarray) -> np.ndarray:
    """The :data:`SUMMARY_QUANTILES` of pooled counts [k, bins], as bin numbers [k, q]."""
    cumulative = np.cumsum(counts, -1) / np.maximum(counts.sum(-1, keepdims=True), 1)
    return np.stack([(cumulative < q).sum(-1) for q in SUMMARY_QUANTILES], -1).astype(np.float64)


def scene_summary(tiles: TileHistograms) -> np.ndarray:
    """The summary of a set of tiles (a scene's sample, a training region): per band the
    pixel quantiles and the median tile spread, per neighbouring bands the quantiles of
    their difference, all in units of the levels' range (0-1)."""
    pixel = _quantiles(tiles.levels.sum(0)) / (LEVELS - 1)
    _, spreads = tiles.tile_means_and_spreads()
    spread = np.median(spreads, axis=0) / (LEVELS - 1)
    colour = (_quantiles(tiles.differences.sum(0)) - (LEVELS - 1)) / (LEVELS - 1)
    return np.concatenate([pixel.ravel(), spread, colour.ravel()])


def sample_positions(n: int, k: int = SAMPLE_TILES) -> np.ndarray:
    """Up to ``k`` of ``n`` positions (cells in row-major order), spread evenly."""
    if n <= 0:
        return np.zeros(0, np.int64)
    return np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(np.int64))


def size_class(n_cells: int) -> int | None:
    """The size class of a region of ``n_cells`` cells; None below the smallest."""
    classes = [i for i, lower in enumerate(SIZE_CLASSES) if n_cells >= lower]
    return classes[-1] if classes else None


@dataclass(frozen=True)
class TrainingTiles:
    """One training scene's grid of cells (``shape``: rows, columns; a cell per tile, as a
    map of the whole scene lays them out): the cells whose tiles have enough valid pixels
    (row, column) and those tiles' histograms."""

    shape: tuple[int, int]
    cells: np.ndarray  # [n, 2]
    histograms: TileHistograms

    def tile_numbers(self) -> np.ndarray:
        """[rows, columns]: each cell's tile among ``cells``, -1 where it has none."""
        numbers = np.full(self.shape, -1, np.int64)
        numbers[self.cells[:, 0], self.cells[:, 1]] = np.arange(len(self.cells))
        return numbers


@dataclass(frozen=True)
class SceneDomain:
    """The training imagery's description and the calibrated test (see the module)."""

    facts: TrainingScenes
    lo: np.ndarray  # [bands] the levels' bounds, in the model's units
    hi: np.ndarray
    centre: np.ndarray  # [d] the training regions' mean summary
    precision: np.ndarray  # [d, d] the inverse of their shrunk covariance
    thresholds: np.ndarray  # [len(SIZE_CLASSES)] the statistic's threshold per size class
    tile_means: np.ndarray  # [bands, len(REFERENCE_QUANTILES)] quantiles of the training tiles' means
    tile_spreads: np.ndarray  # [bands, len(REFERENCE_QUANTILES)] ... of their spreads
    estimates: np.ndarray | None = None  # [len(REFERENCE_QUANTILES)] ... of their estimates

    @property
    def n_bands(self) -> int:
        return int(self.lo.size)

    def statistic(self, summary: np.ndarray) -> float:
        d = np.asarray(summary, np.float64) - self.centre
        return float(np.sqrt(max(d @ self.precision @ d, 0.0)))

    def threshold(self, n_cells: int) -> float | None:
        """The threshold for a region of ``n_cells`` cells; None where it is too small to compare."""
        k = size_class(n_cells)
        return None if k is None else float(self.thresholds[k])

    @classmethod
    def of_training(
        cls, scenes: Sequence[TrainingTiles], lo: np.ndarray, hi: np.ndarray, names: Sequence[str],
        estimates: np.ndarray | None = None, seed: int = 0,
    ) -> "SceneDomain | None":
        """The domain of the training scenes' tiles (``lo``, ``hi``: the levels' bounds per
        band); ``estimates``: the model's estimates of some of their tiles. None where no
        scene has tiles enough for a region of the smallest size class."""
        rng = np.random.default_rng(seed)
        usable = [s for s in scenes if len(s.cells) >= SIZE_CLASSES[0]]
        if not usable:
            return None
        summaries, sizes = _region_draws(usable, rng)
        fit, held = np.arange(len(sizes)) % 2 == 0, np.arange(len(sizes)) % 2 == 1
        centre = summaries[fit].mean(0)
        covariance = np.cov(summaries[fit].T)
        covariance = (1 - SHRINKAGE) * covariance + SHRINKAGE * np.diag(np.diag(covariance))
        # A summary counts in levels: a part that hardly varied over the regions still
        # varies by a level (a saturated band's top quantile, a constant one).
        covariance += np.diag(np.maximum(0.0, (1.0 / (LEVELS - 1)) ** 2 - np.diag(covariance)))
        precision = np.linalg.pinv(covariance)
        d = summaries[held] - centre
        distances = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, precision, d), 0.0))
        thresholds = _class_thresholds(distances, sizes[held])
        all_tiles = TileHistograms.concatenate([s.histograms for s in scenes])
        means, spreads = all_tiles.tile_means_and_spreads()
        facts = TrainingScenes(
            scenes=tuple(names), tiles=len(all_tiles), regions=int(len(sizes)), quantile=FALSE_ALARM_QUANTILE,
            sample_tiles=SAMPLE_TILES, largest_region_cells=int(max(np.prod(s.shape) for s in usable)),
        )
        span = (hi - lo)[:, None] / (LEVELS - 1)
        return cls(
            facts, np.asarray(lo, np.float64), np.asarray(hi, np.float64), centre, precision, thresholds,
            lo[:, None] + np.quantile(means, REFERENCE_QUANTILES, axis=0).T * span,
            np.quantile(spreads, REFERENCE_QUANTILES, axis=0).T * span,
            None if estimates is None or not len(estimates) else np.quantile(estimates, REFERENCE_QUANTILES),
        )

    def to_spec(self) -> tuple[dict, dict[str, np.ndarray]]:
        spec = {**self.facts.to_json(), "thresholds": [float(t) for t in self.thresholds],
                "size_classes": list(SIZE_CLASSES), "reference_quantiles": list(REFERENCE_QUANTILES)}
        arrays = {"lo": self.lo, "hi": self.hi, "centre": self.centre, "precision": self.precision,
                  "tile_means": self.tile_means, "tile_spreads": self.tile_spreads}
        if self.estimates is not None:
            arrays["estimates"] = self.estimates
        return spec, arrays

    @classmethod
    def from_spec(cls, spec: dict, arrays) -> "SceneDomain":
        if tuple(spec["size_classes"]) != SIZE_CLASSES or tuple(spec["reference_quantiles"]) != REFERENCE_QUANTILES:
            raise ValueError("the scene domain was calibrated for other region sizes or quantiles")
        lo, hi = (np.asarray(arrays[k], np.float64) for k in ("lo", "hi"))
        centre, precision = np.asarray(arrays["centre"], np.float64), np.asarray(arrays["precision"], np.float64)
        bands = lo.size
        size = len(SUMMARY_QUANTILES) * (2 * bands - 1) + bands
        if hi.shape != lo.shape or centre.shape != (size,) or precision.shape != (size, size):
            raise ValueError(f"the scene domain's arrays do not fit {bands} bands")
        thresholds = np.asarray(spec["thresholds"], np.float64)
        if thresholds.shape != (len(SIZE_CLASSES),) or not np.all(thresholds > 0):
            raise ValueError("the scene domain's thresholds are missing or not positive")
        estimates = arrays["estimates"] if "estimates" in arrays else None
        return cls(
            TrainingScenes.from_json(spec), lo, hi, centre, precision, thresholds,
            np.asarray(arrays["tile_means"], np.float64), np.asarray(arrays["tile_spreads"], np.float64),
            None if estimates is None else np.asarray(estimates, np.float64),
        )


def _region_draws(scenes: Sequence[TrainingTiles], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Summaries of :data:`REGION_DRAWS` random rectangular regions of the scenes (in turn),
    each sampled as a run samples its region (its cells in row-major order, those whose
    tile lacks valid pixels passed over), and the regions' sizes in cells."""
    numbers = [scene.tile_numbers() for scene in scenes]
    summaries, sizes = [], []
    attempts = 0
    while len(sizes) < REGION_DRAWS and attempts < 20 * REGION_DRAWS:
        attempts += 1
        k = attempts % len(scenes)
        top, left, height, width = random_rectangle(scenes[k].shape, rng)
        region = numbers[k][top:top + height, left:left + width].ravel()
        picked = region[sample_positions(region.size)]
        picked = picked[picked >= 0]
        if region.size < SIZE_CLASSES[0] or picked.size < SIZE_CLASSES[0]:
            continue
        summaries.append(scene_summary(scenes[k].histograms.take(picked)))
        sizes.append(region.size)
    return np.array(summaries), np.array(sizes)


def random_rectangle(shape: tuple[int, int], rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A random rectangle of a grid of ``shape`` (top, left, height, width in cells): its
    area drawn log-uniformly from the smallest size class to the whole grid, its sides'
    ratio within a factor of e."""
    rows, cols = shape
    area = np.exp(rng.uniform(np.log(SIZE_CLASSES[0]), np.log(max(rows * cols, SIZE_CLASSES[0]))))
    height = int(np.clip(round(np.sqrt(area) * np.exp(rng.uniform(-0.5, 0.5))), 1, rows))
    width = int(np.clip(round(area / height), 1, cols))
    return int(rng.integers(0, rows - height + 1)), int(rng.integers(0, cols - width + 1)), height, width


def _class_thresholds(distances: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The :data:`FALSE_ALARM_QUANTILE` of the distances of each size class's regions; a
    class with too few regions (larger than the scenes) takes the next smaller class's."""
    thresholds = np.zeros(len(SIZE_CLASSES))
    for k in range(len(SIZE_CLASSES)):
        in_class = np.array([size_class(int(s)) == k for s in sizes], bool)
        if in_class.sum() >= MIN_DRAWS_PER_CLASS:
            thresholds[k] = np.quantile(distances[in_class], FALSE_ALARM_QUANTILE)
        else:
            thresholds[k] = thresholds[k - 1] if k else np.quantile(distances, FALSE_ALARM_QUANTILE)
    return thresholds
