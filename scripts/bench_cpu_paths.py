"""Other ways to run the networks on this CPU, against the way the pipeline runs them
(GENERATED raster and untrained or ImageNet weights: speed and agreement only).

    python scripts/bench_cpu_paths.py
    python scripts/emulate_cpu.py avx2 -- python scripts/bench_cpu_paths.py   # as an AVX2-only CPU

For the small CNN and EfficientNet-Lite0, in float32 (the path of CPUs without bf16),
batches of 8 tiles of the bench's generated 16384² raster, PyTorch on every core this
process may use, wall time per tile, best of 3, all in one run:

- ``pipeline``: the extractor as a map runs it (folded batch norm, fused oneDNN
  convolution + activation, channels-last);
- ``naive``: the plain eager network one tile at a time (the bench's naive loop);
- ``torchscript``: the folded network traced, frozen and optimized for inference;
- ``compile``: the folded network through ``torch.compile`` (inductor, frozen weights;
  needs a C++ compiler, and its first call's compile time is printed);
- ``int8`` (small CNN only): PyTorch's x86 static quantization (per-channel int8 weights,
  activations calibrated on 4 other batches); EfficientNet's "same" padding does not trace.

Each path's ratio to ``pipeline`` (above 1: faster) and its features' relative difference
from float32 (norm of the difference / norm) are printed:

    path=<network>_<path> ms_per_tile= vs_pipeline= feature_difference=
"""
from __future__ import annotations

import copy
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

BATCH = 8


def read_batches(path, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` batches of tiles of the generated raster, as reflectance and validity."""
    out = []
    with rasterio.open(path) as ds:
        reader = TileReader(ds, (1, 2, 3), TILE_PX, EIGHT_BIT)
        for k in range(n):
            tiles = [reader.read(PixelWindow(TILE_PX * (k * BATCH + i), TILE_PX * 20, TILE_PX, TILE_PX))
                     for i in range(BATCH)]
            out.append((torch.as_tensor(np.stack([t[0] for t in tiles])), torch.as_tensor(np.stack([t[1] for t in tiles]))))
    return out


def per_tile_ms(run, repeats: int) -> float:
    with torch.no_grad():
        run()
        run()
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(repeats):
                run()
            best = min(best, (time.perf_counter() - start) / (repeats * BATCH) * 1000)
    return best


def difference(features: torch.Tensor, reference: torch.Tensor) -> float:
    return float((features.float() - reference).norm() / reference.norm())


def other_paths(network: torch.nn.Module, x: torch.Tensor, calibration: list[torch.Tensor], int8: bool) -> dict:
    """The folded network run each other way: name -> (callable on ``x``, seconds to prepare)."""
    folded = network.fused_features().eval()
    x_last = x.contiguous(memory_format=torch.channels_last)
    paths = {}
    with torch.no_grad():
        start = time.perf_counter()
        scripted = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(folded.to(memory_format=torch.channels_last), x_last)))
        paths["torchscript"] = (lambda: scripted(x_last), time.perf_counter() - start)
        import torch._inductor.config as inductor

        inductor.freezing = True
        compiled = torch.compile(folded)
        start = time.perf_counter()
        compiled(x_last)
        paths["compile"] = (lambda: compiled(x_last), time.perf_counter() - start)
        if int8:
            from torch.ao.quantization import get_default_qconfig_mapping
            from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

            start = time.perf_counter()
            prepared = prepare_fx(copy.deepcopy(folded), get_default_qconfig_mapping("x86"), (x,))
            for batch in calibration:
                prepared(batch)
            quantized = convert_fx(prepared)
            paths["int8"] = (lambda: quantized(x), time.perf_counter() - start)
    return paths


def main() -> int:
    sys.stdout.write(describe_cpu(cpu_description()) + f"; PyTorch threads {torch.get_num_threads()}\n")
    large = generated_raster(16384)
    models = throughput_models(large)
    batches = read_batches(large, 5)
    (pixels, valid), others = batches[0], batches[1:]
    for name, repeats in (("cnn", 20), ("efficientnet", 4)):
        extractor, naive = models[name].extractor, models[f"naive_{name}"].extractor
        with torch.autocast("cpu", enabled=False), torch.no_grad():
            reference = naive.extract(pixels, valid).float()
            pipeline_ms = per_tile_ms(lambda: extractor.extract(pixels, valid), repeats)
            results = {
                "pipeline": (pipeline_ms, difference(extractor.extract(pixels, valid), reference)),
                "naive": (per_tile_ms(lambda: [naive.extract(pixels[i:i + 1], valid[i:i + 1]) for i in range(BATCH)],
                                      repeats), 0.0),
            }
            x = naive.standardize(pixels, valid)
            calibration = [naive.standardize(p, v) for p, v in others]
            for path, (run, prepare_s) in other_paths(naive.network, x, calibration, int8=name == "cnn").items():
                features = run()
                results[path] = (per_tile_ms(run, repeats), difference(features, reference))
                sys.stdout.write(f"  {name} {path}: prepared in {prepare_s:.1f} s\n")
        for path, (ms, diff) in results.items():
            sys.stdout.write(f"path={name}_{path} ms_per_tile={ms:.2f} vs_pipeline={pipeline_ms / ms:.2f} "
                             f"feature_difference={diff:.4f}\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
