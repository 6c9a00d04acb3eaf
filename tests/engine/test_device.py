"""Choosing where the model runs, and naming the GPU for the dock."""
from __future__ import annotations

import pytest
import torch

from poverty_mapper.core import device
from poverty_mapper.core.errors import PovertyMapperError


def test_cuda_device_name_is_none_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.cuda_device_name() is None


def test_cuda_device_name_names_the_first_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"Test GPU {index}")
    assert device.cuda_device_name() == "Test GPU 0"


def test_cuda_without_a_gpu_is_refused_with_a_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PovertyMapperError, match="choose 'auto' or 'cpu'"):
        device.resolve_device("cuda")
    assert device.resolve_device("auto") == torch.device("cpu")
