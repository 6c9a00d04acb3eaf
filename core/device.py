"""Choosing where the model runs."""
from __future__ import annotations

import torch

from .errors import PovertyMapperError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(choice: str = "auto") -> torch.device:
    """``auto`` takes CUDA when a GPU is visible, else the CPU."""
    choice = (choice or "auto").lower()
    if choice not in DEVICE_CHOICES:
        raise PovertyMapperError(f"Unknown device {choice!r}; choose auto, cpu or cuda.")
    if choice == "cuda" and not torch.cuda.is_available():
        raise PovertyMapperError(
            "CUDA was requested but this PyTorch sees no GPU; choose 'auto' or 'cpu', "
            "or install a CUDA build of PyTorch."
        )
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def cuda_device_name() -> str | None:
    """The name of the CUDA GPU PyTorch sees (the first one), or None without one."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"
