"""CPU time per tile of reading and of each network, on one thread (GENERATED raster).

    python scripts/bench_cpu_time.py

Each figure is the calling thread's own CPU time (``time.thread_time``), which other work
on the machine moves far less than wall-clock time: reading 224-px tiles of the bench's
generated 16384² raster, and the small CNN and EfficientNet-Lite0 as the pipeline runs them (bf16 where the CPU is
fast at it) and as the naive loop does (plain eager float32), in batches of 8. Run it
again with ``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2`` for an AVX2-only CPU. The
ratios to a read are what the run plan shares the cores by (core/inference/plan.py).
"""
from __future__ import annotations

import sys
import time

import numpy as np
import rasterio
import torch

from bench import TILE_PX, generated_raster, throughput_models
from bench_checks import cpu_description, describe_cpu
from poverty_mapper.core.imagery.radiometry import EIGHT_BIT
from poverty_mapper.core.imagery.tile_reader import TileReader
from poverty_mapper.core.imagery.tiling import PixelWindow
from poverty_mapper.core.inference.estimate import estimate_batch
from poverty_mapper.core.inference.plan import plan_run

BATCH = 8


def main() -> int:
    torch.set_num_threads(1)
    sys.stdout.write(describe_cpu(cpu_description()) + "\n")
    large = generated_raster(16384)
    models = throughput_models(large)
    dn = np.empty((BATCH, 3, TILE_PX, TILE_PX), np.uint8)
    valid = np.empty((BATCH, TILE_PX, TILE_PX), bool)
    with rasterio.open(large) as ds:
        reader = TileReader(ds, (1, 2, 3), TILE_PX, EIGHT_BIT)
        batches, start = 40, time.thread_time()
        for k in range(batches):
            for i in range(BATCH):
                n = k * BATCH + i
                reader.read_dn_into(PixelWindow(TILE_PX * (n % 73), TILE_PX * (20 + n // 73), TILE_PX, TILE_PX),
                                    dn[i], valid[i])
        read_ms = (time.thread_time() - start) / (BATCH * batches) * 1000
    sys.stdout.write(f"read: {read_ms:.2f} ms per tile\n")
    for name, repeats in (("cnn", 30), ("efficientnet", 6), ("naive_cnn", 30), ("naive_efficientnet", 6)):
        plan = plan_run(torch.device("cpu"), models[name].extractor, BATCH, mixed_precision=not name.startswith("naive"))
        estimate_batch(models[name], dn, valid, EIGHT_BIT, plan)  # warm-up
        start = time.thread_time()
        for _ in range(repeats):
            estimate_batch(models[name], dn, valid, EIGHT_BIT, plan)
        ms = (time.thread_time() - start) / (BATCH * repeats) * 1000
        sys.stdout.write(f"{name} ({'bf16' if plan.bf16 else 'float32'}): {ms:.2f} ms per tile, "
                         f"{ms / read_ms:.1f} x a read\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
