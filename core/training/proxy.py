"""Proxy task A of Jean et al. 2016: a CNN learns nighttime-light classes from
daytime tiles (softmax + cross-entropy, Adam); its penultimate layer becomes the
feature extractor for the poverty regression."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_output
from ..device import device_name
from ..errors import PovertyMapperError
from ..extractors.cnn import CnnExtractor, ProxyCNN
from ..imagery.nightlights import mean_lights_on_grid
from ..imagery.tile_reader import read_batch
from ..imagery.tiling import region_window, tile_grid_for
from ..models.model_file import PovertyModel, Scores, load_model
from ..options import TileOptions
from .outputs import write_training_outputs
from .progress import CancelCheck, Phase, PhasedProgress, ProgressCallback
from .setup import TrainingImagery, open_imagery, region_centre

log = logging.getLogger("poverty_mapper")

# Shares of the progress bar: reading the tiles, then the epochs; the rest takes moments.
PROXY_PHASES = {"labelled tiles": 1.0, "classes": 0.0, "network": 0.0, "epochs": 4.0, "report": 0.0}
READ_CHUNK = 64  # tiles read per batch while labelling


@dataclass(frozen=True)
class _ProxyTrainingConfigInputs:
    """What proxy training cannot do without."""

    image_path: str
    nightlights_path: str
    model_path: str  # output .povmodel (the feature extractor)


@dataclass(frozen=True)
class ProxyTrainingConfig(TileOptions, _ProxyTrainingConfigInputs):
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


@dataclass(frozen=True)
class LabelledTiles:
    """The training tiles (invalid pixels set to 0), their grid cells and mean nightlights."""

    pixels: torch.Tensor  # (tiles, bands, px, px)
    rows: np.ndarray
    cols: np.ndarray
    lights: np.ndarray

    def __len__(self) -> int:
        return int(self.rows.size)


@dataclass(frozen=True)
class LightClasses:
    """The spatial split, and each tile's nightlight class (edges from training tiles only)."""

    train: np.ndarray  # tile indices
    val: np.ndarray
    edges: np.ndarray
    labels: np.ndarray  # class per tile
    counts: np.ndarray  # training tiles per class
    weights: np.ndarray  # loss weight per class, against imbalance
    binning: str

    @property
    def n_classes(self) -> int:
        return int(self.edges.size + 1)


@dataclass(frozen=True)
class EpochHistory:
    """What the epochs left: their scores, the last validation, and the training speed."""

    epochs: list[dict]  # losses and accuracies per epoch
    confusion: np.ndarray  # of the validation tiles after the last epoch
    tiles_seen: int
    seconds: float


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
    progress: ProgressCallback | None = None,
    is_canceled: CancelCheck | None = None,
) -> ProxyTrainingResult:
    """Trains the proxy CNN in five phases: the labelled tiles, their classes, the network,
    the epochs and the report (with the model file)."""
    phases = PhasedProgress(PROXY_PHASES, progress, is_canceled)
    torch.manual_seed(config.seed)  # the network's initial weights, and dropout
    with open_imagery(
        config.image_path, config, config.tile_size_m, new_network=True, pixel_size_at=region_centre(config.bounds)
    ) as imagery:
        tiles = _labelled_tiles(config, imagery, phases["labelled tiles"])
    classes = _light_classes(config, tiles)
    extractor, reused = _network(config, len(imagery.bands), tiles, classes)
    history = _epochs(config, imagery.device, tiles, classes, extractor, phases["epochs"])
    report = _proxy_report(config, imagery, tiles, classes, history, len(reused))
    write_training_outputs(
        _proxy_model(config, imagery, extractor, history, len(tiles)), config.model_path,
        report, config.report_path, config.plot_path, lambda path: plot_training(report, path),
    )
    phases.done()
    return ProxyTrainingResult(model_path=config.model_path, report=report)


def _labelled_tiles(config: ProxyTrainingConfig, imagery: TrainingImagery, phase: Phase) -> LabelledTiles:
    """The region's tiles that have nightlights and enough valid pixels, with their mean nightlights."""
    ds = imagery.dataset
    region = region_window(ds.transform, ds.width, ds.height, config.bounds)
    grid = tile_grid_for(ds.transform, ds.crs, region, config.tile_size_m)
    lights = mean_lights_on_grid(config.nightlights_path, grid.transform, grid.shape, ds.crs)
    if not np.isfinite(lights).any():
        raise PovertyMapperError(
            "The nightlights raster does not cover the region of the image; choose nightlights that overlap it."
        )
    cells = [(r, c) for r, c in grid.cells() if np.isfinite(lights[r, c])]
    reader = imagery.tile_reader()
    pixels_list, keep = [], []
    for start in range(0, len(cells), READ_CHUNK):
        phase.check_canceled()
        chunk = cells[start : start + READ_CHUNK]
        pixels, valid = read_batch(reader, [grid.tile_window(r, c) for r, c in chunk], torch.device("cpu"))
        ok = valid.flatten(1).float().mean(1) >= config.min_valid_fraction
        pixels_list.append(torch.where(valid.unsqueeze(1), pixels, torch.zeros_like(pixels))[ok])
        keep.extend(cell for cell, good in zip(chunk, ok.tolist()) if good)
        phase.report((start + READ_CHUNK) / len(cells))
    if len(keep) < 10:
        raise PovertyMapperError(
            f"Only {len(keep)} tiles have imagery and nightlights; choose a larger region or smaller tiles."
        )
    return LabelledTiles(
        pixels=torch.cat(pixels_list),
        rows=np.array([r for r, _ in keep]),
        cols=np.array([c for _, c in keep]),
        lights=np.array([lights[r, c] for r, c in keep], np.float64),
    )


def _light_classes(config: ProxyTrainingConfig, tiles: LabelledTiles) -> LightClasses:
    """Split in spatial blocks, then classes from the training tiles only."""
    train, val = spatial_block_split(tiles.rows, tiles.cols, config.block_size_tiles, config.val_fraction, config.seed)
    edges = (
        np.asarray(sorted(config.thresholds), np.float64)
        if config.thresholds
        else class_thresholds(tiles.lights[train], config.n_classes)
    )
    labels = light_classes(tiles.lights, edges)
    n_classes = edges.size + 1
    counts = np.bincount(labels[train], minlength=n_classes)
    if np.any(counts == 0):
        empty = ", ".join(str(k) for k in np.flatnonzero(counts == 0))
        raise PovertyMapperError(
            f"Light class(es) {empty} get no training tile with thresholds {list(edges)}; "
            "choose thresholds inside the range of the nightlights, or quantile binning."
        )
    return LightClasses(
        train=train, val=val, edges=edges, labels=labels, counts=counts,
        weights=counts.sum() / counts / n_classes,
        binning="fixed" if config.thresholds else "quantiles of training tiles",
    )


def _network(
    config: ProxyTrainingConfig, n_bands: int, tiles: LabelledTiles, classes: LightClasses
) -> tuple[CnnExtractor, list[str]]:
    """A new CNN (lower layers from the start model, if any) and its input standardization:
    from the training tiles, or the start model's, to keep its filters meaningful.
    Returns the extractor and the names of the reused layers."""
    start_model = load_model(config.start_model_path) if config.start_model_path else None
    if start_model is not None and not isinstance(start_model.extractor, CnnExtractor):
        raise PovertyMapperError("The starting model has no CNN to reuse; choose a model written by 'Train nightlight proxy'.")
    if start_model is not None and len(start_model.bands) == n_bands:
        means, stds = start_model.extractor.band_means, start_model.extractor.band_stds
    else:
        sample = tiles.pixels[torch.as_tensor(classes.train)].transpose(0, 1).reshape(n_bands, -1)
        sample = sample[:, sample.abs().sum(0) > 0]
        means = sample.mean(1).double().numpy()
        stds = sample.std(1).double().clamp(min=1e-6).numpy()
    network = ProxyCNN(n_bands, classes.n_classes, config.width, config.feature_dim)
    reused = network.reuse_lower_layers(start_model.extractor.network) if start_model is not None else []
    return CnnExtractor(network, means, stds), reused


@dataclass(frozen=True)
class _Fitting:
    """What every training and validation step uses."""

    extractor: CnnExtractor
    pixels: torch.Tensor
    valid: torch.Tensor  # per pixel: any band non-zero
    labels: torch.Tensor
    loss_fn: nn.Module
    optimiser: torch.optim.Optimizer
    generator: torch.Generator  # the order of the tiles and their turns
    device: torch.device
    batch_size: int

    def logits(self, idx: torch.Tensor, augment: bool) -> torch.Tensor:
        """The network's output on tiles ``idx`` (randomly turned and flipped with ``augment``)."""
        x = self.extractor.standardize(self.pixels[idx].to(self.device), self.valid[idx].to(self.device))
        return self.extractor.network(_augment(x, self.generator) if augment else x)


def _epochs(
    config: ProxyTrainingConfig, device: torch.device, tiles: LabelledTiles, classes: LightClasses,
    extractor: CnnExtractor, phase: Phase,
) -> EpochHistory:
    """Softmax + cross-entropy weighted against class imbalance, Adam; validation after each epoch."""
    network = extractor.network.to(device)
    fitting = _Fitting(
        extractor=extractor,
        pixels=tiles.pixels,
        valid=tiles.pixels.abs().sum(1) > 0,
        labels=torch.as_tensor(classes.labels, dtype=torch.long),
        loss_fn=nn.CrossEntropyLoss(weight=torch.as_tensor(classes.weights, dtype=torch.float32, device=device)),
        optimiser=torch.optim.Adam(network.parameters(), lr=config.learning_rate),
        generator=torch.Generator().manual_seed(config.seed),
        device=device,
        batch_size=config.batch_size,
    )
    history, n_seen = [], 0
    t_start = time.perf_counter()
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        total_loss, correct, seen = _train_epoch(fitting, classes.train, phase, epoch, config.epochs)
        n_seen += seen
        val_loss, val_acc, confusion = _evaluate(fitting, classes.val, classes.n_classes)
        history.append({
            "epoch": epoch + 1,
            "train_loss": round(total_loss / max(1, classes.train.size), 5),
            "train_accuracy": round(correct / max(1, classes.train.size), 4),
            "val_loss": round(val_loss, 5),
            "val_accuracy": round(val_acc, 4),
            "seconds": round(time.perf_counter() - t0, 2),
        })
        log.info("Proxy epoch %d/%d: %s", epoch + 1, config.epochs, history[-1])
    network.eval()
    return EpochHistory(history, confusion, n_seen, time.perf_counter() - t_start)


def _train_epoch(fitting: _Fitting, train: np.ndarray, phase: Phase, epoch: int, n_epochs: int) -> tuple[float, int, int]:
    """One pass over the training tiles in a random order: summed loss, correct answers, tiles seen."""
    fitting.extractor.network.train()
    order = torch.as_tensor(train)[torch.randperm(train.size, generator=fitting.generator)]
    total_loss, correct, seen = 0.0, 0, 0
    for start in range(0, order.numel(), fitting.batch_size):
        phase.check_canceled()
        idx = order[start : start + fitting.batch_size]
        if idx.numel() < 2:  # batch norm needs two samples
            continue
        logits = fitting.logits(idx, augment=True)
        target = fitting.labels[idx].to(fitting.device)
        loss = fitting.loss_fn(logits, target)
        fitting.optimiser.zero_grad()
        loss.backward()
        fitting.optimiser.step()
        total_loss += loss.item() * idx.numel()
        correct += int((logits.argmax(1) == target).sum())
        seen += idx.numel()
        phase.report((epoch + min(1.0, (start + idx.numel()) / order.numel())) / n_epochs)
    return total_loss, correct, seen


def _evaluate(fitting: _Fitting, idx: np.ndarray, n_classes: int) -> tuple[float, float, np.ndarray]:
    """Mean loss, accuracy and confusion matrix on tiles ``idx``."""
    fitting.extractor.network.eval()
    confusion = np.zeros((n_classes, n_classes), np.int64)
    total = 0.0
    with torch.inference_mode():
        for start in range(0, idx.size, fitting.batch_size):
            sel = torch.as_tensor(idx[start : start + fitting.batch_size])
            logits = fitting.logits(sel, augment=False)
            target = fitting.labels[sel].to(fitting.device)
            total += float(fitting.loss_fn(logits, target)) * sel.numel()
            np.add.at(confusion, (target.cpu().numpy(), logits.argmax(1).cpu().numpy()), 1)
    return total / max(1, idx.size), float(np.trace(confusion) / max(1, confusion.sum())), confusion


def _split_protocol(config: ProxyTrainingConfig) -> str:
    return (
        f"spatial blocks of {config.block_size_tiles}x{config.block_size_tiles} tiles, "
        f"{config.val_fraction:.0%} to validation, training tiles touching validation left out"
    )


def _proxy_report(
    config: ProxyTrainingConfig, imagery: TrainingImagery, tiles: LabelledTiles, classes: LightClasses,
    history: EpochHistory, n_reused: int,
) -> dict:
    n_train, n_val = int(classes.train.size), int(classes.val.size)
    return {
        "image": Path(config.image_path).name,
        "nightlights": Path(config.nightlights_path).name,
        "device": device_name(imagery.device),
        "tiles": {"total": len(tiles), "train": n_train, "val": n_val, "left_out_as_buffer": int(len(tiles) - n_train - n_val)},
        "tile_size_px": imagery.tile_px,
        "tile_size_m": config.tile_size_m,
        "classes": {"edges": [float(e) for e in classes.edges], "binning": classes.binning,
                    "train_counts": classes.counts.tolist(), "loss_weights": [round(float(w), 4) for w in classes.weights]},
        "epochs": history.epochs,
        "confusion_matrix_val": {"rows": "true class", "columns": "predicted class", "matrix": history.confusion.tolist()},
        "training_tiles_per_second": round(history.tiles_seen / max(history.seconds, 1e-9), 2),
        "reused_layers": n_reused,
        "split": _split_protocol(config),
    }


def _proxy_model(
    config: ProxyTrainingConfig, imagery: TrainingImagery, extractor: CnnExtractor, history: EpochHistory, n_tiles: int
) -> PovertyModel:
    return PovertyModel(
        name=f"Nightlight proxy CNN ({Path(config.image_path).stem})",
        target=None,
        bands=imagery.band_names,
        input_scaling=f"reflectance 0-1 ({imagery.radiometry.label})",
        pixel_size_m=config.tile_size_m / imagery.tile_px,
        tile_size_px=imagery.tile_px,
        extractor=extractor,
        regressor=None,
        radiometry=imagery.radiometry.key,
        band_indexes=imagery.bands,
        scores=Scores(
            protocol=_split_protocol(config),
            proxy_val_accuracy=history.epochs[-1]["val_accuracy"] if history.epochs else None,
        ),
        provenance={
            "task": "nightlight classes (proxy task A, Jean et al. 2016)",
            "data": f"{n_tiles} tiles of {Path(config.image_path).name} with {Path(config.nightlights_path).name}",
            "epochs": config.epochs, "batch_size": config.batch_size, "learning_rate": config.learning_rate,
            "seed": config.seed,
        },
    )


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
