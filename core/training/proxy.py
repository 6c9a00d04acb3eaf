"""Proxy task A of Jean et al. 2016: a CNN learns nighttime-light classes from
daytime tiles (softmax + cross-entropy, Adam); its penultimate layer becomes the
feature extractor for the poverty regression."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_output, write_json
from ..extractors.cnn import CnnExtractor, ProxyCNN
from ..device import device_name, resolve_device
from ..errors import Canceled, PovertyMapperError
from ..models.model_file import PovertyModel, Scores, load_model, save_model
from ..imagery.nightlights import mean_lights_on_grid
from ..imagery.radiometry import resolve_radiometry
from ..imagery.tile_reader import TileReader, open_raster, read_batch
from ..imagery.tiling import new_model_tile_px, pixel_size_m, region_window, tile_grid_for
from ..options import TileOptions

log = logging.getLogger("poverty_mapper")


@dataclass(frozen=True)
class ProxyTrainingConfig(TileOptions):
    image_path: str
    nightlights_path: str
    model_path: str  # output .povmodel (the feature extractor)
    report_path: str | None = None  # JSON
    plot_path: str | None = None  # PNG
    bounds: tuple[float, float, float, float] | None = None  # in the image's CRS
    tile_size_m: float = 1920.0
    n_classes: int = 3
    thresholds: tuple[float, ...] | None = None  # fixed class edges; None = quantiles
    epochs: int = 10
    learning_rate: float = 1e-3
    start_model_path: str | None = None  # reuse the lower layers of this model's CNN
    val_fraction: float = 0.2
    block_size_tiles: int = 4
    width: int = 32
    feature_dim: int = 128
    seed: int = 0


@dataclass
class ProxyTrainingResult:
    model_path: str
    report: dict = field(default_factory=dict)


def class_thresholds(lights: np.ndarray, n_classes: int) -> np.ndarray:
    """Quantile class edges; a tile is in class k when k edges lie below its value.

    Ties (many dark tiles at 0) merge classes rather than leave one empty.
    """
    if lights.min() == lights.max():
        raise PovertyMapperError(
            "The nightlights are the same over all training tiles; choose a region with lit and dark places."
        )
    edges = np.unique(np.quantile(lights, np.arange(1, n_classes) / n_classes))
    return edges[edges < lights.max()]


def light_classes(lights: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.searchsorted(edges, lights, side="left")


def spatial_block_split(
    rows: np.ndarray, cols: np.ndarray, block: int, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices by blocks of ``block`` x ``block`` tiles.

    Whole blocks go to validation; training tiles that touch a validation tile (8
    neighbours) are left out, so no two neighbouring tiles straddle the split.
    """
    block_ids = (rows // block) * (cols.max() // block + 1) + cols // block
    blocks = np.unique(block_ids)
    order = np.random.default_rng(seed).permutation(blocks)
    counts = {b: int(np.sum(block_ids == b)) for b in blocks}
    target = max(1, round(val_fraction * rows.size))
    val_blocks, n_val = [], 0
    for b in order:
        if n_val >= target or len(val_blocks) == len(blocks) - 1:
            break
        val_blocks.append(b)
        n_val += counts[b]
    is_val = np.isin(block_ids, val_blocks)
    val_cells = set(zip(rows[is_val].tolist(), cols[is_val].tolist()))
    touches = np.array(
        [any((r + dr, c + dc) in val_cells for dr in (-1, 0, 1) for dc in (-1, 0, 1)) for r, c in zip(rows, cols)]
    )
    train = np.flatnonzero(~is_val & ~touches)
    val = np.flatnonzero(is_val)
    if train.size == 0 or val.size == 0:
        raise PovertyMapperError(
            "Too few tiles for a spatial validation split; choose a larger region or smaller tiles."
        )
    return train, val


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flips and quarter turns (imagery has no preferred orientation)."""
    k = int(torch.randint(0, 4, (1,), generator=generator))
    x = torch.rot90(x, k, dims=(2, 3))
    if int(torch.randint(0, 2, (1,), generator=generator)):
        x = torch.flip(x, dims=(3,))
    return x


def train_proxy(
    config: ProxyTrainingConfig,
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
) -> ProxyTrainingResult:
    progress = progress or (lambda _f: None)
    is_canceled = is_canceled or (lambda: False)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)

    # 1. Tiles and their nightlight labels.
    with open_raster(config.image_path, "image") as ds:
        bands = config.band_indexes or tuple(range(1, ds.count + 1))
        if any(not 1 <= b <= ds.count for b in bands):
            raise PovertyMapperError(f"Band numbers {bands} do not fit the image's {ds.count} bands.")
        radiometry = resolve_radiometry(config.radiometry, ds.dtypes[bands[0] - 1])
        region = region_window(ds.transform, ds.width, ds.height, config.bounds)
        centre = ds.transform * (region.col_off + region.width / 2, region.row_off + region.height / 2)
        px_m = float(np.mean(pixel_size_m(ds.transform, ds.crs, centre)))
        tile_px = new_model_tile_px(config.tile_size_m, px_m)
        grid = tile_grid_for(ds.transform, ds.crs, region, config.tile_size_m)
        lights = mean_lights_on_grid(config.nightlights_path, grid.transform, grid.shape, ds.crs)
        if not np.isfinite(lights).any():
            raise PovertyMapperError(
                "The nightlights raster does not cover the region of the image; choose nightlights that overlap it."
            )
        cells = [(r, c) for r, c in grid.cells() if np.isfinite(lights[r, c])]
        reader = TileReader(ds, bands, tile_px, radiometry)
        pixels_list, keep = [], []
        for start in range(0, len(cells), 64):
            if is_canceled():
                raise Canceled()
            chunk = cells[start : start + 64]
            pixels, valid = read_batch(reader, [grid.tile_window(r, c) for r, c in chunk], torch.device("cpu"))
            frac = valid.flatten(1).float().mean(1)
            ok = frac >= config.min_valid_fraction
            pixels_list.append(torch.where(valid.unsqueeze(1), pixels, torch.zeros_like(pixels))[ok])
            keep.extend(cell for cell, good in zip(chunk, ok.tolist()) if good)
            progress(0.2 * min(1.0, (start + 64) / len(cells)))
        band_names = tuple(ds.descriptions[b - 1] or f"band {b}" for b in bands)
    if len(keep) < 10:
        raise PovertyMapperError(
            f"Only {len(keep)} tiles have imagery and nightlights; choose a larger region or smaller tiles."
        )
    tiles = torch.cat(pixels_list)
    rows = np.array([r for r, _ in keep])
    cols = np.array([c for _, c in keep])
    y_light = np.array([lights[r, c] for r, c in keep], np.float64)

    # 2. Split in spatial blocks, then classes from the training tiles only.
    train_idx, val_idx = spatial_block_split(rows, cols, config.block_size_tiles, config.val_fraction, config.seed)
    edges = (
        np.asarray(sorted(config.thresholds), np.float64)
        if config.thresholds
        else class_thresholds(y_light[train_idx], config.n_classes)
    )
    labels = light_classes(y_light, edges)
    n_classes = edges.size + 1
    counts = np.bincount(labels[train_idx], minlength=n_classes)
    if np.any(counts == 0):
        empty = ", ".join(str(k) for k in np.flatnonzero(counts == 0))
        raise PovertyMapperError(
            f"Light class(es) {empty} get no training tile with thresholds {list(edges)}; "
            "choose thresholds inside the range of the nightlights, or quantile binning."
        )
    weights = counts.sum() / counts / n_classes

    # 3. Standardization from the training tiles (or the start model's, to keep its filters meaningful).
    start_model = load_model(config.start_model_path) if config.start_model_path else None
    if start_model is not None and not isinstance(start_model.extractor, CnnExtractor):
        raise PovertyMapperError("The starting model has no CNN to reuse; choose a model written by 'Train nightlight proxy'.")
    if start_model is not None and len(start_model.bands) == len(bands):
        means, stds = start_model.extractor.band_means, start_model.extractor.band_stds
    else:
        sample = tiles[torch.as_tensor(train_idx)].transpose(0, 1).reshape(len(bands), -1)
        sample = sample[:, sample.abs().sum(0) > 0]
        means = sample.mean(1).double().numpy()
        stds = sample.std(1).double().clamp(min=1e-6).numpy()

    network = ProxyCNN(len(bands), n_classes, config.width, config.feature_dim)
    reused: list[str] = []
    if start_model is not None:
        reused = network.reuse_lower_layers(start_model.extractor.network)
    extractor = CnnExtractor(network, means, stds)

    # 4. Train: softmax + cross-entropy weighted against class imbalance, Adam.
    network.to(device)
    loss_fn = nn.CrossEntropyLoss(weight=torch.as_tensor(weights, dtype=torch.float32, device=device))
    optimiser = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    y = torch.as_tensor(labels, dtype=torch.long)
    generator = torch.Generator().manual_seed(config.seed)
    valid_all = tiles.abs().sum(1) > 0
    history = []
    t_start = time.perf_counter()
    n_seen = 0
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        network.train()
        order = torch.as_tensor(train_idx)[torch.randperm(train_idx.size, generator=generator)]
        total_loss, correct = 0.0, 0
        for start in range(0, order.numel(), config.batch_size):
            if is_canceled():
                raise Canceled()
            idx = order[start : start + config.batch_size]
            if idx.numel() < 2:  # batch norm needs two samples
                continue
            x = extractor.standardize(tiles[idx].to(device), valid_all[idx].to(device))
            x = _augment(x, generator)
            target = y[idx].to(device)
            logits = network(x)
            loss = loss_fn(logits, target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total_loss += loss.item() * idx.numel()
            correct += int((logits.argmax(1) == target).sum())
            n_seen += idx.numel()
            progress(0.2 + 0.8 * (epoch + min(1.0, (start + idx.numel()) / order.numel())) / config.epochs)
        val_loss, val_acc, confusion = _evaluate(network, extractor, tiles, valid_all, y, val_idx, loss_fn, n_classes, device, config.batch_size)
        history.append({
            "epoch": epoch + 1,
            "train_loss": round(total_loss / max(1, train_idx.size), 5),
            "train_accuracy": round(correct / max(1, train_idx.size), 4),
            "val_loss": round(val_loss, 5),
            "val_accuracy": round(val_acc, 4),
            "seconds": round(time.perf_counter() - t0, 2),
        })
        log.info("Proxy epoch %d/%d: %s", epoch + 1, config.epochs, history[-1])
    network.eval()
    elapsed = time.perf_counter() - t_start

    report = {
        "image": Path(config.image_path).name,
        "nightlights": Path(config.nightlights_path).name,
        "device": device_name(device),
        "tiles": {"total": len(keep), "train": int(train_idx.size), "val": int(val_idx.size),
                  "left_out_as_buffer": int(len(keep) - train_idx.size - val_idx.size)},
        "tile_size_px": tile_px,
        "tile_size_m": config.tile_size_m,
        "classes": {"edges": [float(e) for e in edges], "binning": "fixed" if config.thresholds else "quantiles of training tiles",
                    "train_counts": counts.tolist(), "loss_weights": [round(float(w), 4) for w in weights]},
        "epochs": history,
        "confusion_matrix_val": {"rows": "true class", "columns": "predicted class", "matrix": confusion.tolist()},
        "training_tiles_per_second": round(n_seen / max(elapsed, 1e-9), 2),
        "reused_layers": len(reused),
        "split": f"spatial blocks of {config.block_size_tiles}x{config.block_size_tiles} tiles, "
                 f"{config.val_fraction:.0%} to validation, training tiles touching validation left out",
    }
    model = PovertyModel(
        name=f"Nightlight proxy CNN ({Path(config.image_path).stem})",
        target=None,
        bands=band_names,
        input_scaling=f"reflectance 0-1 ({radiometry.label})",
        pixel_size_m=config.tile_size_m / tile_px,
        tile_size_px=tile_px,
        extractor=extractor,
        regressor=None,
        radiometry=radiometry.key,
        band_indexes=tuple(bands),
        scores=Scores(
            protocol=report["split"],
            proxy_val_accuracy=history[-1]["val_accuracy"] if history else None,
        ),
        provenance={
            "task": "nightlight classes (proxy task A, Jean et al. 2016)",
            "data": f"{len(keep)} tiles of {Path(config.image_path).name} with {Path(config.nightlights_path).name}",
            "epochs": config.epochs, "batch_size": config.batch_size, "learning_rate": config.learning_rate,
            "seed": config.seed,
        },
    )
    save_model(model, config.model_path)
    if config.report_path:
        write_json(config.report_path, report)
    if config.plot_path:
        plot_training(report, config.plot_path)
    progress(1.0)
    return ProxyTrainingResult(model_path=config.model_path, report=report)


def _evaluate(network, extractor, tiles, valid_all, y, idx, loss_fn, n_classes, device, batch_size):
    network.eval()
    confusion = np.zeros((n_classes, n_classes), np.int64)
    total = 0.0
    with torch.inference_mode():
        for start in range(0, idx.size, batch_size):
            sel = torch.as_tensor(idx[start : start + batch_size])
            x = extractor.standardize(tiles[sel].to(device), valid_all[sel].to(device))
            target = y[sel].to(device)
            logits = network(x)
            total += float(loss_fn(logits, target)) * sel.numel()
            np.add.at(confusion, (target.cpu().numpy(), logits.argmax(1).cpu().numpy()), 1)
    return total / max(1, idx.size), float(np.trace(confusion) / max(1, confusion.sum())), confusion


def plot_training(report: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [e["epoch"] for e in report["epochs"]]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), constrained_layout=True)
    axes[0].plot(epochs, [e["train_loss"] for e in report["epochs"]], "o-", label="train")
    axes[0].plot(epochs, [e["val_loss"] for e in report["epochs"]], "o-", label="validation blocks")
    axes[0].set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    axes[1].plot(epochs, [e["train_accuracy"] for e in report["epochs"]], "o-", label="train")
    axes[1].plot(epochs, [e["val_accuracy"] for e in report["epochs"]], "o-", label="validation blocks")
    axes[1].set(xlabel="epoch", ylabel="accuracy", title="Accuracy", ylim=(0, 1))
    for ax in axes[:2]:
        ax.legend()
    matrix = np.array(report["confusion_matrix_val"]["matrix"])
    axes[2].imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        axes[2].text(j, i, str(v), ha="center", va="center")
    axes[2].set(xlabel="predicted class", ylabel="true class", title="Validation confusion matrix")
    fig.suptitle(f"Nightlight proxy training: {report['image']} ({report['device']})")
    with atomic_output(path, ".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
