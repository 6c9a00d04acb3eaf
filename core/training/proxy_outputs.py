"""What proxy training writes: its report (held-out scores, the data, the network) and its
model file (the feature extractor, without a regressor)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..device import device_name
from ..extractors.cnn import CnnExtractor
from ..extractors.efficientnet import EfficientNetProxy
from ..models.model_file import PovertyModel, Scores
from .lights_source import BUNDLED_CLASSES, BUNDLED_LABELS, TrainingLights
from .proxy_tiles import TileSet
from .setup import TrainingImagery

if TYPE_CHECKING:
    from .proxy import EpochHistory, LightClasses, ProxyTrainingConfig


def held_out_scores(confusion: np.ndarray, train_counts: np.ndarray) -> dict:
    """Accuracy and balanced accuracy (mean recall of the classes present) of a confusion
    matrix (rows: true class), beside chance (1 / classes, the balanced accuracy of a
    guess) and the accuracy of always answering the majority class of training."""
    n = confusion.sum()
    present = confusion.sum(1) > 0
    recall = np.diag(confusion)[present] / confusion.sum(1)[present]
    return {
        "accuracy": round(float(np.trace(confusion) / max(1, n)), 4),
        "balanced_accuracy": round(float(recall.mean()) if recall.size else 0.0, 4),
        "chance": round(1.0 / confusion.shape[0], 4),
        "majority_class_accuracy": round(float(confusion[int(np.argmax(train_counts))].sum() / max(1, n)), 4),
        "n": int(n),
    }



def split_protocol(config: ProxyTrainingConfig) -> str:
    return (
        f"spatial blocks of {config.block_size_tiles}x{config.block_size_tiles} tiles, "
        f"{config.val_fraction:.0%} to validation, training tiles touching validation left out"
    )


def network_report(config: ProxyTrainingConfig, extractor: CnnExtractor, n_reused: int) -> dict:
    network = extractor.network
    start = ("model " + Path(config.start_model_path).name if config.start_model_path
             else "ImageNet" if isinstance(network, EfficientNetProxy) and config.imagenet_start else "random")
    return {
        "architecture": network.config["architecture"], "start": start, "reused_tensors": n_reused,
        "frozen_blocks": int(network.config.get("frozen_blocks", 0)),
        "weights": int(sum(p.numel() for p in network.parameters())),
        "trained_weights": int(sum(p.numel() for p in network.parameters() if p.requires_grad)),
    }


def proxy_report(
    config: ProxyTrainingConfig, lights: TrainingLights, imagery: TrainingImagery, tiles: TileSet,
    classes: LightClasses, history: EpochHistory, n_reused: int, extractor: CnnExtractor,
) -> dict:
    n_train, n_val = int(classes.train.size), int(classes.val.size)
    return {
        "image": Path(config.image_path).name,
        "scenes": [Path(p).name for p in (config.image_path, *config.more_image_paths)],
        "nightlights": lights.name,
        "nightlights_kind": lights.kind(),
        **({"labels": f"{BUNDLED_LABELS}: {BUNDLED_CLASSES}"} if lights.bundled else {}),
        "radiometry": imagery.radiometry.label,
        "device": device_name(imagery.device),
        "network": network_report(config, extractor, n_reused),
        "tiles": {"total": len(tiles), "train": n_train, "val": n_val, "left_out_as_buffer": int(len(tiles) - n_train - n_val)},
        "tile_size_px": imagery.tile_px,
        "tile_size_m": config.tile_size_m,
        "input_reading": config.input_reading,
        "photometric_augmentation": config.photometric_augmentation,
        "classes": {"edges": [float(e) for e in classes.edges], "binning": classes.binning,
                    "train_counts": classes.counts.tolist(), "loss_weights": [round(float(w), 4) for w in classes.weights]},
        "seed": config.seed,
        "threads": torch.get_num_threads() if config.threads is None else config.threads,
        "epochs": history.epochs,
        "held_out": held_out_scores(history.confusion, classes.counts),
        "confusion_matrix_val": {"rows": "true class", "columns": "predicted class", "matrix": history.confusion.tolist()},
        "training_tiles_per_second": round(history.tiles_seen / max(history.seconds, 1e-9), 2),
        "training_seconds": round(history.seconds, 1),
        "reused_layers": n_reused,
        "split": split_protocol(config),
    }


def proxy_model(
    config: ProxyTrainingConfig, lights: TrainingLights, imagery: TrainingImagery, extractor: CnnExtractor,
    history: EpochHistory, n_tiles: int,
) -> PovertyModel:
    scenes = ", ".join(Path(p).name for p in (config.image_path, *config.more_image_paths))
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
            protocol=split_protocol(config),
            proxy_val_accuracy=history.epochs[-1]["val_accuracy"] if history.epochs else None,
        ),
        provenance={
            "task": "nightlight classes (proxy task A, Jean et al. 2016)",
            "network": extractor.network.config["architecture"],
            "data": f"{n_tiles} tiles of {scenes} with {lights.name}",
            "nightlights": lights.kind(),
            **({"labels": BUNDLED_LABELS} if lights.bundled else {}),
            "epochs": config.epochs, "batch_size": config.batch_size, "learning_rate": config.learning_rate,
            "seed": config.seed, "input_reading": config.input_reading,
            "photometric_augmentation": config.photometric_augmentation,
        },
    )
