"""Proxy task A of Jean et al. 2016: a CNN learns nighttime-light classes from daytime
tiles (softmax + cross-entropy, Adam); its penultimate layer becomes the feature extractor
for the poverty regression.

The default network is EfficientNet-Lite0 started from ImageNet weights, the method's
"reuse the lower layers"; ``frozen_blocks`` keeps the lowest blocks as ImageNet left
them. Tiles come from one or more scenes (dates) of the same place and are read from disk
batch by batch."""
from __future__ import annotations

import logging
import math
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import rasterio
import torch
from torch import nn

from ..errors import PovertyMapperError
from ..extractors.cnn import INPUT_READINGS, SCENE_MOMENTS, SMALL_CNN, CnnExtractor, ProxyCNN, build_network, reuse_lower_layers
from ..extractors.efficientnet import ARCHITECTURE as EFFICIENTNET
from ..extractors.efficientnet import N_BLOCKS, EfficientNetProxy
from ..imagery.scene_moments import moments, whole_image_values
from ..imagery.tile_reader import READ_CACHE_BYTES
from ..models.model_file import load_model
from ..options import TileOptions
from .outputs import write_training_outputs
from .proxy_outputs import held_out_scores, proxy_model, proxy_report
from .plots import plot_training
from .progress import CancelCheck, Phase, PhasedProgress, ProgressCallback
from .render_augmentation import SceneRenders, random_curves
from .proxy_tiles import (
    TileSet,
    TileStream,
    choose_binning,
    class_edges,
    labelled_tiles,
    light_classes,
    scene_regions,
    spatial_block_split,
)
from .lights_source import check_bundled_cover, training_lights
from .setup import TrainingImagery, open_imagery, region_centre

log = logging.getLogger("poverty_mapper")

# Shares of the progress bar: reading the tiles, then the epochs; the rest takes moments.
PROXY_PHASES = {"labelled tiles": 1.0, "classes": 0.0, "network": 0.0, "epochs": 4.0, "report": 0.0}
ARCHITECTURES = (EFFICIENTNET, SMALL_CNN)
# The spread of an ImageNet network's inputs (TensorFlow's Lite preprocessing maps 0-255
# to -1..1; natural photographs then have a standard deviation of about 0.5): training
# tiles are standardized to it, so the reused filters see inputs of the size they know.
IMAGENET_INPUT_STD = 0.5
StatusCallback = Callable[[str], None]


@dataclass(frozen=True)
class _ProxyTrainingConfigInputs:
    """What proxy training cannot do without."""

    image_path: str
    nightlights_path: str | None  # None: labels from the bundled lights (NASA Black Marble 2016, Africa)
    model_path: str  # output .povmodel (the feature extractor)


@dataclass(frozen=True)
class ProxyTrainingConfig(TileOptions, _ProxyTrainingConfigInputs):
    more_image_paths: tuple[str, ...] = ()  # further scenes (dates) of the same place, same bands
    report_path: str | None = None  # JSON
    plot_path: str | None = None  # PNG
    bounds: tuple[float, float, float, float] | None = None  # in the image's CRS
    tile_size_m: float = 1920.0
    architecture: str = EFFICIENTNET  # or 'small_cnn'
    imagenet_start: bool = True  # EfficientNet: start from ImageNet weights (else random)
    frozen_blocks: int = 0  # EfficientNet: the stem and this many lowest blocks stay as started
    n_classes: int = 3
    binning: str = "auto"  # 'dark_then_quantiles', 'quantiles' or 'auto' (the first where lights are mostly dark)
    thresholds: tuple[float, ...] | None = None  # fixed class edges
    epochs: int = 10
    learning_rate: float = 1e-3
    start_model_path: str | None = None  # reuse the lower layers of this model's CNN
    val_fraction: float = 0.2
    block_size_tiles: int = 4
    width: int = 32  # small CNN
    feature_dim: int = 128  # small CNN
    seed: int = 0
    split_seed: int | None = None  # the held-out blocks' draw (None: ``seed``)
    threads: int | None = None  # PyTorch CPU threads while training (None: PyTorch's setting)
    # How tiles become the network's input: each band standardized by its whole scene's mean
    # and spread (the same at every later use of the network, whatever the render), or by the
    # training tiles' ('training_statistics').
    input_reading: str = SCENE_MOMENTS
    # Each training tile as if its scene were rendered with another gamma per band (for the
    # scene_moments reading: :mod:`.render_augmentation`).
    photometric_augmentation: bool = True


@dataclass
class ProxyTrainingResult:
    model_path: str
    report: dict = field(default_factory=dict)


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
    status: StatusCallback | None = None,
) -> ProxyTrainingResult:
    """Trains the proxy network in five phases: the labelled tiles, their classes, the
    network, the epochs and the report (with the model file). ``status`` receives a line
    after each epoch (scores and time left)."""
    if config.architecture not in ARCHITECTURES:
        raise PovertyMapperError(f"Unknown network {config.architecture!r}; choose one of {', '.join(ARCHITECTURES)}.")
    if config.input_reading not in INPUT_READINGS:
        raise PovertyMapperError(f"Unknown input reading {config.input_reading!r}; choose one of {', '.join(INPUT_READINGS)}.")
    _check_config(config)
    lights = training_lights(config.nightlights_path)
    phases = PhasedProgress(PROXY_PHASES, progress, is_canceled)
    torch.manual_seed(config.seed)  # the network's initial weights, and dropout
    with ExitStack() as stack:
        stack.enter_context(_repeatable(config.threads))
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=READ_CACHE_BYTES))  # memory bounded whatever the scenes
        scenes = _open_scenes(config, stack)
        if lights.bundled:
            check_bundled_cover(scene_regions(scenes, config.bounds))
        tiles = labelled_tiles(scenes, lights.path, config.bounds, config.tile_size_m,
                               config.min_valid_fraction, phases["labelled tiles"])
        classes = _light_classes(config, tiles)
        extractor, reused = _network(config, len(scenes[0].bands), tiles, classes)
        stream = TileStream(tiles, [scene.tile_reader() for scene in scenes])
        inputs = _scene_inputs(config, extractor, scenes)
        history = _epochs(config, scenes[0].device, stream, classes, inputs, phases["epochs"], status)
    report = proxy_report(config, lights, scenes[0], tiles, classes, history, len(reused), extractor)
    write_training_outputs(
        proxy_model(config, lights, scenes[0], extractor, history, len(tiles)), config.model_path,
        report, config.report_path, config.plot_path, lambda path: plot_training(report, path),
    )
    phases.done()
    return ProxyTrainingResult(model_path=config.model_path, report=report)


def _open_scenes(config: ProxyTrainingConfig, stack: ExitStack) -> list[TrainingImagery]:
    """Every scene opened; later scenes must have the first one's bands and tile pixels."""
    scenes = []
    for path in (config.image_path, *config.more_image_paths):
        scene = stack.enter_context(open_imagery(
            path, config, config.tile_size_m, new_network=True, pixel_size_at=region_centre(config.bounds)
        ))
        if scenes and (len(scene.bands) != len(scenes[0].bands) or scene.tile_px != scenes[0].tile_px):
            raise PovertyMapperError(
                f"The scene {Path(path).name} does not match {Path(config.image_path).name}: "
                f"{len(scene.bands)} bands and {scene.tile_px}-pixel tiles against {len(scenes[0].bands)} and "
                f"{scenes[0].tile_px}. Several scenes must have the same bands and pixel size."
            )
        scenes.append(scene)
    return scenes


@contextmanager
def _repeatable(threads: int | None) -> Iterator[None]:
    """PyTorch's deterministic algorithms (where an operation has none, a warning), and
    ``threads`` CPU threads, for the training; the earlier settings restored after."""
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    threads_before = torch.get_num_threads()
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.set_num_threads(threads_before)


@dataclass(frozen=True)
class SceneInputs:
    """How the network reads each training scene: as every later reading of the scene will
    (:func:`..models.scene_reading.scene_read_model`), and, for photometric augmentation,
    the scene's moments under other renders (None: no augmentation)."""

    readings: list[CnnExtractor]
    renders: list[SceneRenders] | None


def _scene_inputs(config: ProxyTrainingConfig, extractor: CnnExtractor, scenes: list[TrainingImagery]) -> SceneInputs:
    if extractor.reads_scene_moments:
        readings, renders = [], []
        for scene in scenes:
            values = whole_image_values(scene.dataset, scene.bands, scene.radiometry, scene.tile_px, scene.tile_m)
            readings.append(extractor.standardized_by(*moments(values)))
            renders.append(SceneRenders(values, extractor.input_std))
        return SceneInputs(readings, renders if config.photometric_augmentation else None)
    return SceneInputs([extractor] * len(scenes), None)


def _check_config(config: ProxyTrainingConfig) -> None:
    """Refuse, before any reading, settings that cannot train a useful network."""
    if config.epochs < 1:
        raise PovertyMapperError("Proxy training needs at least one epoch.")
    if not (math.isfinite(config.learning_rate) and config.learning_rate > 0):
        raise PovertyMapperError(f"The learning rate must be above 0, not {config.learning_rate:g}; e.g. 0.001.")
    if not 0 <= config.frozen_blocks <= N_BLOCKS:
        raise PovertyMapperError(f"The frozen blocks must be 0 to {N_BLOCKS} (EfficientNet has {N_BLOCKS} blocks), "
                                 f"not {config.frozen_blocks}.")
    n_classes = len(config.thresholds) + 1 if config.thresholds else config.n_classes
    if n_classes < 2:
        raise PovertyMapperError(f"The network needs at least 2 night-light classes to tell apart, not {n_classes}; "
                                 "e.g. 3 (dark, dim, bright).")
    if not (math.isfinite(config.tile_size_m) and config.tile_size_m > 0 and 0 < config.val_fraction < 1
            and config.block_size_tiles >= 1 and config.batch_size >= 1 and config.seed >= 0):
        raise PovertyMapperError("The tile size must be more than 0 m, the share held out between 0 and 1, the block "
                                 "and batch sizes 1 or more and the seed 0 or more.")


def _light_classes(config: ProxyTrainingConfig, tiles: TileSet) -> LightClasses:
    """Split in spatial blocks (by ground position, so dates of one place stay together),
    then classes from the training tiles only."""
    train, val = spatial_block_split(
        tiles.x / tiles.tile_m, -tiles.y / tiles.tile_m, config.block_size_tiles, config.val_fraction,
        config.seed if config.split_seed is None else config.split_seed,
    )
    binning = (
        "fixed" if config.thresholds
        else choose_binning(tiles.lights[train], config.n_classes) if config.binning == "auto" else config.binning
    )
    edges = (
        np.asarray(sorted(config.thresholds), np.float64)
        if config.thresholds
        else class_edges(tiles.lights[train], config.n_classes, binning)
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
        weights=counts.sum() / counts / n_classes, binning=binning,
    )


def _network(
    config: ProxyTrainingConfig, n_bands: int, tiles: TileSet, classes: LightClasses
) -> tuple[CnnExtractor, list[str]]:
    """A new network and its input standardization. Its lower layers come from the start
    model (keeping its standardization when the bands agree), else from ImageNet for
    EfficientNet with ``imagenet_start``. Returns the extractor and the reused tensors."""
    start_model = load_model(config.start_model_path) if config.start_model_path else None
    if start_model is not None and not start_model.extractor.is_network:
        raise PovertyMapperError("The starting model has no CNN to reuse; choose a model written by 'Train nightlight proxy'.")
    means, stds = tiles.band_statistics(classes.train)
    if start_model is not None:
        old = start_model.extractor.network.config
        network = build_network({**old, "in_bands": n_bands, "n_classes": classes.n_classes,
                                 **({"frozen_blocks": config.frozen_blocks} if "frozen_blocks" in old else {})})
        reused = reuse_lower_layers(network, start_model.extractor.network)
        old_extractor = start_model.extractor
        if len(start_model.bands) == n_bands:
            means, stds = old_extractor.band_means, old_extractor.band_stds
        else:
            stds = stds / old_extractor.input_std
        return CnnExtractor(network, means, stds, input_std=old_extractor.input_std,
                            input_reading=config.input_reading), reused
    if config.architecture == SMALL_CNN:
        network = ProxyCNN(n_bands, classes.n_classes, config.width, config.feature_dim)
        return CnnExtractor(network, means, stds, input_reading=config.input_reading), []
    network = EfficientNetProxy(n_bands, classes.n_classes, config.frozen_blocks)
    reused = []
    if config.imagenet_start:
        from ..extractors.imagenet import imagenet_state_dict

        reused = network.load_imagenet(imagenet_state_dict())
    return CnnExtractor(network, means, stds / IMAGENET_INPUT_STD, input_std=IMAGENET_INPUT_STD,
                        input_reading=config.input_reading), reused


@dataclass(frozen=True)
class _Fitting:
    """What every training and validation step uses."""

    extractor: CnnExtractor
    inputs: SceneInputs  # how the network reads each scene
    stream: TileStream
    labels: torch.Tensor
    loss_fn: nn.Module
    optimiser: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler  # cosine decay of the learning rate, per batch
    generator: torch.Generator  # the order of the tiles and their turns
    device: torch.device
    batch_size: int

    def logits(self, idx: np.ndarray, pixels: torch.Tensor, valid: torch.Tensor, augment: bool) -> torch.Tensor:
        """The network's output on the tiles ``idx`` (randomly turned, flipped and, with
        photometric augmentation, stretched with ``augment``)."""
        x = self._inputs(idx, pixels.to(self.device), valid.to(self.device), augment)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            return self.extractor.network(_augment(x, self.generator) if augment else x).float()

    def _inputs(self, idx: np.ndarray, pixels: torch.Tensor, valid: torch.Tensor, augment: bool) -> torch.Tensor:
        """The batch standardized, each tile as the network reads its scene (with
        ``augment`` and photometric augmentation: as a random render of its scene)."""
        scene = self.stream.tiles.scene[idx]
        renders = self.inputs.renders if augment else None
        curves = None if renders is None else random_curves(len(idx), pixels.shape[1], self.generator)
        x = torch.empty(pixels.shape, dtype=torch.float32, device=pixels.device)
        for s in np.unique(scene):
            rows = np.flatnonzero(scene == s)
            at = torch.as_tensor(rows, device=pixels.device)
            x[at] = (self.inputs.readings[int(s)].standardize(pixels[at], valid[at]) if renders is None
                     else renders[int(s)].standardize(pixels[at], valid[at], curves[torch.as_tensor(rows)]))
        return x


def _epochs(
    config: ProxyTrainingConfig, device: torch.device, stream: TileStream, classes: LightClasses,
    inputs: SceneInputs, phase: Phase, status: StatusCallback | None,
) -> EpochHistory:
    """Softmax + cross-entropy weighted against class imbalance, Adam on the weights that
    are not frozen with the learning rate decaying to 0 along a cosine (the last epochs
    settle instead of jumping between minima); validation on the held-out blocks after
    each epoch. ``inputs``: how the network reads each scene."""
    extractor = inputs.readings[0]
    network = extractor.network.to(device)
    if device.type == "cuda":
        network.to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam([p for p in network.parameters() if p.requires_grad], lr=config.learning_rate)
    steps = config.epochs * -(-classes.train.size // config.batch_size)
    fitting = _Fitting(
        extractor=extractor,
        inputs=inputs,
        stream=stream,
        labels=torch.as_tensor(classes.labels, dtype=torch.long),
        loss_fn=nn.CrossEntropyLoss(weight=torch.as_tensor(classes.weights, dtype=torch.float32, device=device)),
        optimiser=optimiser,
        schedule=torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, steps)),
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
        val_loss, confusion = _evaluate(fitting, classes.val, classes.n_classes, phase)
        scores = held_out_scores(confusion, classes.counts)
        history.append({
            "epoch": epoch + 1,
            "train_loss": round(total_loss / max(1, seen), 5),
            "train_accuracy": round(correct / max(1, seen), 4),
            "val_loss": round(val_loss, 5),
            "val_accuracy": scores["accuracy"],
            "val_balanced_accuracy": scores["balanced_accuracy"],
            "seconds": round(time.perf_counter() - t0, 2),
        })
        _tell(status, history[-1], config.epochs, time.perf_counter() - t_start)
    network.eval()
    return EpochHistory(history, confusion, n_seen, time.perf_counter() - t_start)


def _tell(status: StatusCallback | None, epoch: dict, n_epochs: int, elapsed: float) -> None:
    left = elapsed / epoch["epoch"] * (n_epochs - epoch["epoch"])
    line = (f"Epoch {epoch['epoch']}/{n_epochs}: loss {epoch['train_loss']:.3f}, held-out accuracy "
            f"{epoch['val_accuracy']:.2f} (balanced {epoch['val_balanced_accuracy']:.2f}); "
            f"about {left / 60:.0f} min left" if left else f"Epoch {epoch['epoch']}/{n_epochs}: done")
    log.info("Proxy %s", line)
    if status is not None:
        status(line)


def _train_epoch(fitting: _Fitting, train: np.ndarray, phase: Phase, epoch: int, n_epochs: int) -> tuple[float, int, int]:
    """One pass over the training tiles in a random order: summed loss, correct answers, tiles seen."""
    fitting.extractor.network.train()
    order = train[torch.randperm(train.size, generator=fitting.generator).numpy()]
    total_loss, correct, seen = 0.0, 0, 0
    for idx, pixels, valid in fitting.stream.batches(order, fitting.batch_size):
        phase.check_canceled()
        if idx.size < 2:  # batch norm needs two samples
            continue
        logits = fitting.logits(idx, pixels, valid, augment=True)
        target = fitting.labels[torch.as_tensor(idx)].to(fitting.device)
        loss = fitting.loss_fn(logits, target)
        fitting.optimiser.zero_grad()
        loss.backward()
        fitting.optimiser.step()
        fitting.schedule.step()
        total_loss += loss.item() * idx.size
        correct += int((logits.argmax(1) == target).sum())
        seen += idx.size
        phase.report((epoch + min(1.0, seen / order.size)) / n_epochs)
    return total_loss, correct, seen


def _evaluate(fitting: _Fitting, idx: np.ndarray, n_classes: int, phase: Phase) -> tuple[float, np.ndarray]:
    """Mean loss and confusion matrix (rows: true class) on tiles ``idx``."""
    fitting.extractor.network.eval()
    confusion = np.zeros((n_classes, n_classes), np.int64)
    total = 0.0
    with torch.inference_mode():
        for sel, pixels, valid in fitting.stream.batches(idx, fitting.batch_size):
            phase.check_canceled()
            logits = fitting.logits(sel, pixels, valid, augment=False)
            target = fitting.labels[torch.as_tensor(sel)].to(fitting.device)
            total += float(fitting.loss_fn(logits, target)) * sel.size
            np.add.at(confusion, (target.cpu().numpy(), logits.argmax(1).cpu().numpy()), 1)
    return total / max(1, idx.size), confusion
