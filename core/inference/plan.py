"""The run plan: how a mapping run uses the machine (device, batch size, reader and
model threads, read-ahead, bf16), decided in one place before any tile is read."""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch

from ..errors import PovertyMapperError
from ..extractors.base import FeatureExtractor
from ..extractors.cnn import cpu_runs_bf16_convolutions


def auto_batch_size(device: torch.device, extractor: FeatureExtractor) -> int:
    """Tiles per batch when not given. A GPU wants large batches; on the CPU small ones
    stay in cache (measured here: the CNN ran fastest at 8 tiles; histograms and random
    features, which loop over tiles themselves, at 16)."""
    if device.type == "cuda":
        return 256
    return 8 if extractor.is_network else 16


@dataclass(frozen=True)
class ThreadPlan:
    """How the CPU's cores are shared between reading tiles and the model."""

    read_workers: int  # reader threads (0 = read in the calling thread)
    torch_threads: int | None  # threads for the model's CPU work (None = leave PyTorch's setting)


@dataclass(frozen=True)
class CpuCapabilities:
    """What this machine's CPU can do for the model: its cores (those this process may
    use), the widest vector kernels PyTorch runs on it (``avx2`` or ``avx512``, or less)
    and whether oneDNN runs bf16 convolutions on AMX or on AVX512-BF16."""

    cores: int
    vector: str  # PyTorch's kernel level: "avx512", "avx2" or "default"
    amx: bool
    bf16: bool  # oneDNN runs bf16 convolutions here (AMX or AVX512-BF16)


def cpu_capabilities() -> CpuCapabilities:
    """This machine's :class:`CpuCapabilities`, as PyTorch and oneDNN see them (the
    settings ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA that make a CPU run as a smaller
    one are honoured)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        vector = torch.backends.cpu.get_cpu_capability().lower()
    except AttributeError:
        vector = "default"
    vector = "avx512" if vector.startswith("avx512") else vector
    cpu = getattr(torch, "cpu", None)
    amx = bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)())
    return CpuCapabilities(cores, vector, amx and vector == "avx512", fast_bf16(torch.device("cpu")))


# CPU time of the small CNN (ProxyCNN) on a tile, on one core in batches of 8, against
# reading that tile (224 px of a tiled, deflated 8-bit GeoTIFF), per kind of kernel the
# network runs on. Measured as each thread's own CPU time (unaffected by other work on
# the machine): bf16 on AVX512-BF16 (AMD Zen 4) 2.2 ms against 0.55 ms to read (4.0);
# float32 on AVX2 (the same CPU limited to AVX2 kernels, as AMD Zen 3 runs) 4.8 ms (8.7).
# bf16 on AMX (Intel Xeon), from `make bench`'s rates: 2736 tiles/s read, 1309 for the
# network on one core (2.1).
NETWORK_PER_READ = {"amx": 2.1, "bf16": 4.0, "float32": 8.7}


def network_per_read(cpu: CpuCapabilities, network_cost: float) -> float:
    """How many times a tile's read its network costs on one core of ``cpu``;
    ``network_cost``: the network's cost per tile against the small CNN's."""
    kernels = "amx" if cpu.amx and cpu.bf16 else "bf16" if cpu.bf16 else "float32"
    return NETWORK_PER_READ[kernels] * network_cost


def thread_plan(
    device: torch.device, extractor: FeatureExtractor, read_workers: int | None = None,
    cpu: CpuCapabilities | None = None,
) -> ThreadPlan:
    """Reader threads and model threads, automatic where not given, from what the CPU can
    do (measured on 2 cores with ``make bench``, 224-px tiles of a tiled, deflated GeoTIFF):

    - Histograms on the CPU: one reader, and one thread to count (their ``cpu_threads``).
      Each reader has its own dataset handle and so its own decoded blocks; tiles that
      share a block but go to different readers decode it twice (0.81 of raw read speed
      with 1 reader, 0.73 with 2, 0.67 with 3). PyTorch's threads woken for a batch's
      small product with the regression's weights beside a busy reader took 5 x as long
      as one thread.
    - A network on the CPU: readers and the network share the cores in the ratio of their
      costs (:func:`network_per_read`): with ``r`` the network's cost per tile against a
      read, ``cores / (1 + r)`` readers, rounded, each on a core of its own. Readers that
      share cores with the network lose them to its threads, which spin between
      operations (against 2 network threads + 1 reader: reading in the calling thread was
      1.24 x as fast), so where that rounds to no reader (a network several times the
      read: bf16 without AMX, float32 kernels, EfficientNet) every core goes to the
      network and tiles are read in the calling thread between batches. On 2 cores: the
      small CNN with bf16 on AMX gets 1 reader + 1 network thread (a reader's core then
      keeps the network fed: 1350 tiles/s against 1070 for 2 network threads); on
      AVX512-BF16 or in float32, and EfficientNet everywhere, 2 network threads, which on
      an otherwise idle CPU gain over 1 + 1 by the model 1 / (read + network / 2) against
      1 / network (about 1.2 x at r = 4, 1.4 x at r = 8.7). On a machine busy with other
      work, threads that wait for each other lose most: 1 + 1 was faster there.
    - Random features cost ~25x more than reading a tile: one reader, every core to the model.
    - On a GPU the CPU only reads: two readers.
    """
    if device.type == "cpu" and extractor.is_network:
        cpu = cpu or cpu_capabilities()
        if cpu.cores <= 1:
            return ThreadPlan(1 if read_workers is None else read_workers, None)
        if read_workers == 0:
            return ThreadPlan(0, None)
        if read_workers is None:
            read_workers = min(cpu.cores - 1, round(cpu.cores / (1.0 + network_per_read(cpu, extractor.network_cost))))
        return ThreadPlan(read_workers, max(1, cpu.cores - read_workers))
    if read_workers is None:
        read_workers = 2 if device.type == "cuda" else 1
    if device.type == "cpu" and extractor.cpu_threads is not None:
        return ThreadPlan(read_workers, extractor.cpu_threads)
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
    extractor: FeatureExtractor,
    batch_size: int = 0,
    read_workers: int | None = None,
    prefetch_batches: int = 4,
    mixed_precision: bool = True,
) -> RunPlan:
    """The plan for ``extractor`` on ``device``; 0 / None mean automatic.

    bf16 only where asked for, where the hardware is fast at it and where it pays for
    this extractor (its ``bf16_devices``)."""
    if batch_size < 0:
        raise PovertyMapperError("The batch size must be at least 1 (or 0 for automatic).")
    threads = thread_plan(device, extractor, read_workers)
    bf16 = mixed_precision and fast_bf16(device) and device.type in extractor.bf16_devices
    return RunPlan(
        device=device,
        batch_size=batch_size or auto_batch_size(device, extractor),
        read_workers=threads.read_workers,
        torch_threads=threads.torch_threads,
        prefetch_batches=prefetch_batches,
        bf16=bf16,
    )
