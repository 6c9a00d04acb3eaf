"""The proxy task's data: tiles of one or more daytime scenes labelled with their mean
night lights, light classes that work where almost every place is dark, a spatial
split, and tiles streamed from disk batch by batch (memory does not grow with the
scenes)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from rasterio.warp import transform as warp_points
from rasterio.warp import transform_bounds

from ..errors import PovertyMapperError
from ..imagery.nightlights import mean_lights_on_grid
from ..imagery.tile_reader import TileReader, read_batch
from ..imagery.tiling import PixelWindow, region_window, tile_grid_for
from .progress import Phase
from .setup import TrainingImagery

READ_CHUNK = 64  # tiles read per batch while labelling
# The dark class of "dark then quantiles": tiles at most this many robust standard
# deviations (1.4826 x median absolute deviation) above the median tile. Dark places
# are most tiles wherever lights are sparse; their spread is sensor noise and, in
# colour composites, the renderer's faint terrain.
DARK_SPREAD = 3.0
MIN_LIT_PER_CLASS = 2
BINNINGS = ("auto", "dark_then_quantiles", "quantiles")


@dataclass(frozen=True)
class TileSet:
    """The labelled tiles of every scene: where they are and their mean night lights.

    Pixels are not kept: :class:`TileStream` reads them when a batch needs them.
    ``x``/``y`` are tile centres in the first scene's CRS; ``band_sums`` hold, per tile
    and band, the sum and the sum of squares of its valid pixels and their number, for
    the input standardization of the training tiles alone.
    """

    scene: np.ndarray  # index of the scene per tile
    windows: tuple[PixelWindow, ...]
    x: np.ndarray
    y: np.ndarray
    lights: np.ndarray
    band_sums: np.ndarray  # (tiles, 3, bands): sum, sum of squares, count
    tile_m: float

    def __len__(self) -> int:
        return int(self.lights.size)

    def band_statistics(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-band mean and standard deviation of the valid pixels of tiles ``idx``."""
        total, squares, count = self.band_sums[idx].sum(0)
        mean = total / np.maximum(count, 1)
        std = np.sqrt(np.maximum(squares / np.maximum(count, 1) - mean**2, 0.0))
        return mean, np.maximum(std, 1e-6)


def labelled_tiles(
    scenes: Sequence[TrainingImagery], nightlights_path: str, bounds, tile_m: float, min_valid: float, phase: Phase
) -> TileSet:
    """Tiles of ``scenes`` (within ``bounds``, in the first scene's CRS) that have night
    lights and at least ``min_valid`` valid pixels, read once to check and summarise."""
    parts = []
    for k, scene in enumerate(scenes):
        ds = scene.dataset
        own_bounds = bounds if bounds is None or k == 0 else transform_bounds(scenes[0].dataset.crs, ds.crs, *bounds)
        grid = tile_grid_for(ds.transform, ds.crs, region_window(ds.transform, ds.width, ds.height, own_bounds), tile_m)
        lights = mean_lights_on_grid(nightlights_path, grid.transform, grid.shape, ds.crs)
        if not np.isfinite(lights).any():
            raise PovertyMapperError(
                "The nightlights raster does not cover the region of the image; choose nightlights that "
                f"overlap it ({Path(ds.name).name})."
            )
        cells = [(r, c) for r, c in grid.cells() if np.isfinite(lights[r, c])]

        def report(done: float, k=k) -> None:
            phase.report((k + done) / len(scenes))

        parts.append(_scene_tiles(scene, k, grid, lights, cells, min_valid, scenes[0].dataset.crs, phase, report))
    scene, windows, x, y, lights, sums = zip(*parts)
    lights = np.concatenate(lights)
    if lights.size < 10:
        raise PovertyMapperError(
            f"Only {lights.size} tiles have imagery and nightlights; choose a larger region or smaller tiles."
        )
    return TileSet(
        scene=np.concatenate(scene).astype(np.int64), windows=tuple(w for part in windows for w in part),
        x=np.concatenate(x), y=np.concatenate(y), lights=lights.astype(np.float64), band_sums=np.concatenate(sums),
        tile_m=tile_m,
    )


def scene_regions(scenes: Sequence[TrainingImagery], bounds) -> list[tuple[tuple[float, float, float, float], object, str]]:
    """The part of each scene that training reads (within ``bounds``, given in the first
    scene's CRS), in the scene's own CRS, with the scene's name; scenes that ``bounds``
    misses are left to :func:`labelled_tiles` to refuse."""
    regions = []
    for k, scene in enumerate(scenes):
        ds = scene.dataset
        west, south, east, north = ds.bounds
        if bounds is not None:
            own = bounds if k == 0 else transform_bounds(scenes[0].dataset.crs, ds.crs, *bounds)
            west, south, east, north = max(west, own[0]), max(south, own[1]), min(east, own[2]), min(north, own[3])
        if east > west and north > south:
            regions.append(((west, south, east, north), ds.crs, Path(ds.name).name))
    return regions


def _scene_tiles(scene: TrainingImagery, k: int, grid, lights, cells, min_valid, crs, phase: Phase, report):
    reader = scene.tile_reader()
    kept, sums = [], []
    for start in range(0, len(cells), READ_CHUNK):
        phase.check_canceled()
        chunk = cells[start : start + READ_CHUNK]
        pixels, valid = read_batch(reader, [grid.tile_window(r, c) for r, c in chunk], torch.device("cpu"))
        share = valid.flatten(1).float().mean(1)
        for i, cell in enumerate(chunk):
            if share[i] >= min_valid and share[i] > 0:
                kept.append(cell)
                sums.append(_sums(pixels[i], valid[i]))
        report(min(1.0, (start + READ_CHUNK) / max(1, len(cells))))
    if not kept:
        return (np.zeros(0, np.int64), [], np.zeros(0), np.zeros(0), np.zeros(0), np.zeros((0, 3, len(scene.bands))))
    rows, cols = np.array([r for r, _ in kept]), np.array([c for _, c in kept])
    cx, cy = grid.transform * (cols + 0.5, rows + 0.5)
    if scene.dataset.crs != crs:
        cx, cy = (np.asarray(v) for v in warp_points(scene.dataset.crs, crs, cx, cy))
    return (np.full(rows.size, k), [grid.tile_window(r, c) for r, c in kept], np.asarray(cx, float),
            np.asarray(cy, float), lights[rows, cols], np.stack(sums))


def _sums(pixels: torch.Tensor, valid: torch.Tensor) -> np.ndarray:
    values = pixels[:, valid].double()
    return np.stack([values.sum(1).numpy(), (values**2).sum(1).numpy(), np.full(values.shape[0], values.shape[1], float)])


def choose_binning(lights: np.ndarray, n_classes: int) -> str:
    """``auto`` binning: dark then quantiles where lit places stand out of a dark
    majority (real night lights), else plain quantiles."""
    return "dark_then_quantiles" if _lit(lights).size >= MIN_LIT_PER_CLASS * (n_classes - 1) else "quantiles"


def _dark_edge(lights: np.ndarray) -> float:
    median = float(np.median(lights))
    return median + DARK_SPREAD * 1.4826 * float(np.median(np.abs(lights - median)))


def _lit(lights: np.ndarray) -> np.ndarray:
    return lights[lights > _dark_edge(lights)]


def class_edges(lights: np.ndarray, n_classes: int, binning: str = "auto") -> np.ndarray:
    """Class edges from the training tiles' lights; a tile is in class k when k edges lie
    below its value.

    ``quantiles``: equal shares of tiles per class (ties, such as many tiles at 0, merge
    classes rather than leave one empty). ``dark_then_quantiles`` (for real night
    lights, where most places are dark): class 0 holds the dark tiles, up to
    :data:`DARK_SPREAD` robust standard deviations above the median tile, and the lit
    tiles above it are split into ``n_classes - 1`` quantile classes. ``auto``: the first
    where there are enough lit tiles, else the second (:func:`choose_binning`).
    """
    if lights.min() == lights.max():
        raise PovertyMapperError(
            "The nightlights are the same over all training tiles; choose a region with lit and dark places."
        )
    if binning == "auto":
        binning = choose_binning(lights, n_classes)
    if binning == "quantiles":
        edges = np.unique(np.quantile(lights, np.arange(1, n_classes) / n_classes))
        return edges[edges < lights.max()]
    if binning != "dark_then_quantiles":
        raise ValueError(f"unknown binning {binning!r}")
    dark_edge = _dark_edge(lights)
    lit = _lit(lights)
    if lit.size < MIN_LIT_PER_CLASS * (n_classes - 1):
        raise PovertyMapperError(
            f"Only {lit.size} training tiles are lit (above {dark_edge:.3g}, the dark level of this region); "
            f"{n_classes - 1} lit classes need at least {MIN_LIT_PER_CLASS * (n_classes - 1)}. Choose fewer "
            "classes, a larger region with more towns, or quantile binning."
        )
    lit_edges = np.quantile(lit, np.arange(1, n_classes - 1) / (n_classes - 1)) if n_classes > 2 else []
    edges = np.unique(np.concatenate([[dark_edge], lit_edges]))
    return edges[edges < lights.max()]


def light_classes(lights: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.searchsorted(edges, lights, side="left")


def spatial_block_split(
    gx: np.ndarray, gy: np.ndarray, block: int, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices by blocks of ``block`` x ``block`` tiles.

    ``gx``/``gy`` are tile positions in tile widths (grid columns and rows, or ground
    coordinates divided by the tile size, so that the same place on two dates falls in
    the same block). Whole blocks go to validation; training tiles within one tile of
    a validation tile (its 8 neighbours) are left out, so no two neighbouring tiles
    straddle the split.
    """
    gx, gy = np.asarray(gx, float), np.asarray(gy, float)
    bx, by = np.floor(gx / block).astype(np.int64), np.floor(gy / block).astype(np.int64)
    block_ids = (by - by.min()) * (bx.max() - bx.min() + 1) + (bx - bx.min())
    blocks, counts = np.unique(block_ids, return_counts=True)
    order = np.random.default_rng(seed).permutation(blocks.size)
    target = max(1, round(val_fraction * gx.size))
    chosen = np.cumsum(counts[order]) - counts[order] < target
    chosen[-1] = chosen[-1] and blocks.size == 1  # at least one block stays for training
    is_val = np.isin(block_ids, blocks[order[chosen]])
    touches = np.zeros(gx.size, bool)
    vx, vy = gx[is_val], gy[is_val]
    for start in range(0, gx.size, 2048):
        dx = np.abs(gx[start : start + 2048, None] - vx[None])
        dy = np.abs(gy[start : start + 2048, None] - vy[None])
        touches[start : start + 2048] = np.any((dx < 1.5) & (dy < 1.5), axis=1)
    train = np.flatnonzero(~is_val & ~touches)
    val = np.flatnonzero(is_val)
    if train.size == 0 or val.size == 0:
        raise PovertyMapperError(
            "Too few tiles for a spatial validation split; choose a larger region or smaller tiles."
        )
    return train, val


class TileStream:
    """Reads batches of a :class:`TileSet`'s tiles from disk, one batch ahead in a
    reader thread while the network works on the current one."""

    def __init__(self, tiles: TileSet, readers: Sequence[TileReader]):
        self.tiles = tiles
        self.readers = list(readers)

    def read(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(pixels [n, bands, px, px] with invalid pixels 0, valid [n, px, px]) of tiles ``idx``."""
        pixels, valid = [], []
        for i in idx.tolist():
            p, v = self.readers[self.tiles.scene[i]].read(self.tiles.windows[i])
            pixels.append(p)
            valid.append(v)
        return torch.from_numpy(np.stack(pixels)), torch.from_numpy(np.stack(valid))

    def batches(self, order: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
        """(indices, pixels, valid) per batch of ``order``, the next batch read meanwhile."""
        chunks = [order[s : s + batch_size] for s in range(0, order.size, batch_size)]
        if not chunks:
            return
        with ThreadPoolExecutor(1, thread_name_prefix="poverty-proxy-read") as pool:
            pending = pool.submit(self.read, chunks[0])
            for k, chunk in enumerate(chunks):
                pixels, valid = pending.result()
                if k + 1 < len(chunks):
                    pending = pool.submit(self.read, chunks[k + 1])
                yield chunk, pixels, valid
