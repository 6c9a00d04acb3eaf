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
- ``int8``: for the small CNN PyTorch's x86 static quantization through FX (per-channel
  int8 weights, activations calibrated on 4 other batches); EfficientNet's "same" padding
  does not trace, so for it the folded network is run with PyTorch's quantized operators
  directly (``int8_x86`` and ``int8_onednn``, the two quantized engines of x86 CPUs):
  per-channel int8 weights, ReLU6 outputs on the fixed scale 6/255, the input, the
  projections and the residual sums on ranges calibrated on the same 4 batches. (PyTorch
  warns that its quantized tensors are deprecated and will be removed.)

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


def _quantized_conv(conv, out_range: tuple[float, float] | None):
    """A folded convolution as (packed int8 weights, kernel, stride, output scale, zero
    point, fused ReLU6); ``out_range`` None: a ReLU6 output (scale 6/255: the clip is the
    quantization's own)."""
    w = conv.weight.detach().float()
    scales = (w.abs().amax(dim=(1, 2, 3)).clamp(min=1e-8) / 127).double()
    wq = torch.quantize_per_channel(w, scales, torch.zeros(len(scales), dtype=torch.long), 0, torch.qint8)
    k, s = conv.kernel_size[0], conv.stride[0]
    packed = torch.ops.quantized.conv2d_prepack(wq, conv.bias.detach().float(), [s, s],
                                                [(k - 1) // 2] * 2 if s == 1 else [0, 0], [1, 1], conv.groups)
    return (packed, k, s, *(_affine(out_range) if out_range else (6 / 255, 0)), out_range is None)


def _affine(value_range: tuple[float, float]) -> tuple[float, int]:
    low, high = min(value_range[0], 0.0), max(value_range[1], 0.0)
    scale = max(high - low, 1e-6) / 255
    return scale, int(round(-low / scale))


def efficientnet_int8(network, calibration: list[torch.Tensor], engine: str):
    """EfficientNet-Lite0's folded feature path on PyTorch's quantized operators (``engine``)."""
    from poverty_mapper.core.extractors.efficientnet import same_padding

    torch.backends.quantized.engine = engine
    backbone = network.fused_features()
    relu6 = lambda conv, x: torch.clamp(conv(x), 0, 6)  # noqa: E731
    ranges: dict[str, list[float]] = {}

    def seen(name: str, t: torch.Tensor) -> torch.Tensor:
        low, high = ranges.setdefault(name, [float("inf"), float("-inf")])
        ranges[name] = [min(low, float(t.min())), max(high, float(t.max()))]
        return t

    with torch.no_grad():  # the float network on the calibration batches, noting each range
        for x in calibration:
            x = relu6(backbone._conv_stem, seen("input", x))
            for i, b in enumerate(backbone._blocks):
                h = relu6(b._expand_conv, x) if hasattr(b, "_expand_conv") else x
                h = seen(f"project{i}", b._project_conv(relu6(b._depthwise_conv, h)))
                x = seen(f"sum{i}", h + x) if b.skip else h
    stem, head = _quantized_conv(backbone._conv_stem, None), _quantized_conv(backbone._conv_head, None)
    blocks = [(_quantized_conv(b._expand_conv, None) if hasattr(b, "_expand_conv") else None,
               _quantized_conv(b._depthwise_conv, None), _quantized_conv(b._project_conv, ranges[f"project{i}"]),
               _affine(ranges[f"sum{i}"]) if b.skip else None) for i, b in enumerate(backbone._blocks)]
    in_scale, in_zero = _affine(ranges["input"])

    def conv(x, layer):
        packed, k, s, scale, zero, relu = layer
        op = torch.ops.quantized.conv2d_relu if relu else torch.ops.quantized.conv2d
        return op(same_padding(x, k, s) if s != 1 else x, packed, scale, zero)

    def run(x: torch.Tensor) -> torch.Tensor:
        torch.backends.quantized.engine = engine  # the engine the weights were packed for
        x = torch.quantize_per_tensor(x.contiguous(memory_format=torch.channels_last), in_scale, in_zero, torch.quint8)
        x = conv(x, stem)
        for expand, depthwise, project, residual in blocks:
            h = conv(conv(conv(x, expand) if expand else x, depthwise), project)
            x = torch.ops.quantized.add(h, x, *residual) if residual else h
        return conv(x, head).dequantize().mean((2, 3))

    return run


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
            paths = other_paths(naive.network, x, calibration, int8=name == "cnn")
            if name == "efficientnet":
                for engine in ("x86", "onednn"):
                    start = time.perf_counter()
                    quantized = efficientnet_int8(naive.network, calibration, engine)
                    paths[f"int8_{engine}"] = (lambda q=quantized: q(x), time.perf_counter() - start)
            for path, (run, prepare_s) in paths.items():
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
