"""The run plan: how a mapping run uses the machine (device, batch size, reader and
model threads, read-ahead, bf16), decided in one place before any tile is read."""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch

from ..errors import PovertyMapperError
from ..extractors.cnn import cpu_runs_bf16_convolutions

# Extractors run in bf16 where it is fast (histograms always count exactly). On the CPU
# only the CNN gains: the random features' small products were measured slower in bf16.
MIXED_PRECISION_KINDS = {"cpu": ("cnn",), "cuda": ("cnn", "random")}


def auto_batch_size(device: torch.device, extractor_kind: str) -> int:
    """Tiles per batch when not given. A GPU wants large batches; on the CPU small ones
    stay in cache (measured here: the CNN ran fastest at 8 tiles; histograms and random
    features, which loop over tiles themselves, at 16)."""
    if device.type == "cuda":
        return 256
    return 8 if extractor_kind == "cnn" else 16


@dataclass(frozen=True)
class ThreadPlan:
    """How the CPU's cores are shared between reading tiles and the model."""

    read_workers: int  # reader threads (0 = read in the calling thread)
    torch_threads: int | None  # threads for the model's CPU work (None = leave PyTorch's setting)


def thread_plan(device: torch.device, extractor_kind: str, read_workers: int | None = None) -> ThreadPlan:
    """Reader threads and model threads, automatic where not given (measured on 2 cores
    with ``make bench``, 224-px tiles of a tiled, deflated GeoTIFF):

    - Histograms on the CPU: one reader. Each reader has its own dataset handle and so
      its own decoded blocks; tiles that share a block but go to different readers
      decode it twice (0.81 of raw read speed with 1 reader, 0.73 with 2, 0.67 with 3).
    - A CNN on the CPU: the readers and the network get cores of their own, one reader
      for about two network cores. Readers that share cores with the network lose them
      to its threads, which spin between operations (against 2 network threads + 1
      reader: reading in the calling thread was 1.24 x as fast, 1 network thread + 1
      reader 1.57 x).
    - Random features cost ~25x more than reading a tile: one reader, every core to the model.
    - On a GPU the CPU only reads: two readers.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device.type == "cpu" and extractor_kind == "cnn" and cores > 1 and read_workers != 0:
        readers = read_workers if read_workers is not None else max(1, cores // 3)
        return ThreadPlan(readers, max(1, cores - readers))
    if read_workers is None:
        read_workers = 2 if device.type == "cuda" else 1
    if device.type == "cpu" and extractor_kind == "histogram":
        # A batch's counts and its small product with the regression's weights take a
        # few ms in one thread; PyTorch's threads woken for that product beside a busy
        # reader took 5 x as long (3.2 against 17 ms per batch of 16 on 2 cores).
        return ThreadPlan(read_workers, 1)
    return ThreadPlan(read_workers, None)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """PyTorch's CPU threads set to ``n`` for the calling thread, then restored."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fast_bf16(device: torch.device) -> bool:
    """Whether bfloat16 convolutions are fast here: CUDA, or a CPU with AMX or AVX512-BF16
    whose oneDNN runs them (measured on such a CPU: the CNN runs 2.5x faster; features
    differ by ~0.4%)."""
    if device.type == "cuda":
        return True
    cpu = getattr(torch, "cpu", None)
    hardware = any(bool(getattr(cpu, name, lambda: False)()) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))
    return hardware and cpu_runs_bf16_convolutions()


@dataclass(frozen=True)
class RunPlan:
    """How one run uses the machine; what an executor needs besides the work itself."""

    device: torch.device
    batch_size: int  # tiles per batch
    read_workers: int  # reader threads (0 = read in the calling thread)
    torch_threads: int | None  # threads for the model's CPU work (None = leave PyTorch's setting)
    prefetch_batches: int  # batches read ahead of the model
    bf16: bool  # the feature extractor runs under bfloat16 autocast


def plan_run(
    device: torch.device,
    extractor_kind: str,
    batch_size: int = 0,
    read_workers: int | None = None,
    prefetch_batches: int = 4,
    mixed_precision: bool = True,
) -> RunPlan:
    """The plan for ``extractor_kind`` on ``device``; 0 / None mean automatic.

    bf16 only where asked for, where the hardware is fast at it and where it pays for
    this kind of extractor (:data:`MIXED_PRECISION_KINDS`)."""
    if batch_size < 0:
        raise PovertyMapperError("The batch size must be at least 1 (or 0 for automatic).")
    threads = thread_plan(device, extractor_kind, read_workers)
    bf16 = mixed_precision and fast_bf16(device) and extractor_kind in MIXED_PRECISION_KINDS.get(device.type, ())
    return RunPlan(
        device=device,
        batch_size=batch_size or auto_batch_size(device, extractor_kind),
        read_workers=threads.read_workers,
        torch_threads=threads.torch_threads,
        prefetch_batches=prefetch_batches,
        bf16=bf16,
    )
