"""Throughput and memory benchmark on GENERATED rasters (cached under out/bench/data).

    python scripts/bench.py [--device cpu|cuda] [--size 16384]

Generates a tiled 3-band uint8 GeoTIFF of size x size pixels and one 4x smaller (in
pixels), then measures in one run:
- raw read: the pipeline's own tile windows read with rasterio alone, one thread;
- pipeline throughput per extractor (histogram, random, cnn) and its ratio to raw read;
- a naive baseline for cnn (one tile at a time, synchronous, batch 1) and the ratio;
- peak resident memory of a histogram and of a cnn run on the whole large and the
  whole small raster (each in its own process);
- the same maps (histogram, cnn) on a Dask LocalCluster of 1 and of 2 worker processes
  (1 thread each) against the local pipeline, on a strip of the large raster
  (``--only-dask`` measures only these).
Writes out/bench/<device>.json and prints a table. The models are throughput models
(untrained CNN, random filters, zero regressor for cnn/random): no estimate here is
meaningful, only the speed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from _bootstrap import ROOT, import_plugin_package
from bench_checks import check_targets, cores_here, cpu_description, describe_cpu, report_targets

import_plugin_package()
import numpy as np  # noqa: E402
import rasterio  # noqa: E402
import torch  # noqa: E402
from rasterio.windows import Window  # noqa: E402

from poverty_mapper.core.extractors.cnn import CnnExtractor, ProxyCNN  # noqa: E402
from poverty_mapper.core.extractors.efficientnet import EfficientNetProxy  # noqa: E402
from poverty_mapper.core.extractors.imagenet import imagenet_state_dict  # noqa: E402
from poverty_mapper.core.models.defaults import DEFAULT_MODEL_PATH  # noqa: E402
from poverty_mapper.core.models.model_file import PovertyModel, Target, load_model, save_model  # noqa: E402
from poverty_mapper.core.inference.plan import auto_batch_size, thread_plan  # noqa: E402
from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map  # noqa: E402
from poverty_mapper.core.imagery.radiometry import EIGHT_BIT  # noqa: E402
from poverty_mapper.core.extractors.random_conv import RandomConvExtractor  # noqa: E402
from poverty_mapper.core.regression.ridge import RidgeRegressor  # noqa: E402
from poverty_mapper.core.imagery.tile_reader import TileReader  # noqa: E402
from poverty_mapper.core.imagery.tiling import region_window, tile_grid_for  # noqa: E402

OUT = ROOT / "out" / "bench"
DATA = OUT / "data"
PIXEL_M = 30.0
TILE_PX = 224


def generated_raster(size: int) -> Path:
    """A tiled, deflate-compressed 3-band uint8 GeoTIFF with a generated texture."""
    path = DATA / f"generated_bench_{size}.tif"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(size)
    tmp = path.with_suffix(".partial.tif")
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", crs="EPSG:32636",
                   transform=rasterio.transform.from_origin(500_000, 1_000_000, PIXEL_M, PIXEL_M),
                   tiled=True, blockxsize=256, blockysize=256, compress="deflate")
    strip = 512
    base = np.array([60, 90, 70], np.uint8)[:, None, None]
    with rasterio.open(tmp, "w", **profile) as dst:
        for row in range(0, size, strip):
            h = min(strip, size - row)
            coarse = rng.integers(0, 80, (3, h // 16 + 1, size // 16 + 1), dtype=np.uint8)
            texture = coarse.repeat(16, 1).repeat(16, 2)[:, :h, :size]
            noise = rng.integers(0, 24, (3, h, size), dtype=np.uint8)
            dst.write(base + texture + noise, window=Window(0, row, size, h))
    os.replace(tmp, path)
    return path


def throughput_models(path: Path) -> dict[str, PovertyModel]:
    default = load_model(DEFAULT_MODEL_PATH)
    with rasterio.open(path) as ds:
        reader = TileReader(ds, (1, 2, 3), TILE_PX, EIGHT_BIT)
        sample = [reader.read(w) for w in [PixelWindowAt(i * TILE_PX) for i in range(8)]]
    tiles = np.stack([s[0] for s in sample])
    valid = np.stack([s[1] for s in sample])
    random = RandomConvExtractor.sample(tiles, valid, n_filters=256, seed=0)
    torch.manual_seed(0)
    network = ProxyCNN(3, 3)
    means, stds = np.array([0.3, 0.4, 0.35]), np.array([0.1, 0.1, 0.1])
    cnn = CnnExtractor(network, means, stds)
    # The naive baseline runs the plain eager network (no batch-norm folding, no channels-last).
    plain_cnn = CnnExtractor(network, means, stds, fused=False)

    def with_extractor(extractor, name):
        n = extractor.n_features
        zero = RidgeRegressor(np.zeros(n), 0.0, np.zeros(n), np.ones(n), 1.0)
        return PovertyModel(name, Target("throughput only", "none"), ("BLUE", "GREEN", "RED"), "reflectance",
                            PIXEL_M, TILE_PX, extractor, zero)

    # EfficientNet-Lite0 at its ImageNet weights (what a trained proxy network costs to run).
    efficientnet = EfficientNetProxy(3, 3)
    efficientnet.load_imagenet(imagenet_state_dict())
    effnet = CnnExtractor(efficientnet.eval(), means, stds)
    plain_effnet = CnnExtractor(efficientnet, means, stds, fused=False)
    return {"histogram": default, "random": with_extractor(random, "bench random"), "cnn": with_extractor(cnn, "bench cnn"),
            "naive_cnn": with_extractor(plain_cnn, "bench cnn, plain"),
            "efficientnet": with_extractor(effnet, "bench efficientnet"),
            "naive_efficientnet": with_extractor(plain_effnet, "bench efficientnet, plain")}


def PixelWindowAt(offset: int):  # noqa: N802 (a tiny factory)
    from poverty_mapper.core.imagery.tiling import PixelWindow

    return PixelWindow(offset, offset, TILE_PX, TILE_PX)


def grid_for(path: Path, rows: int | None = None):
    with rasterio.open(path) as ds:
        bounds = None
        if rows is not None:
            b = ds.bounds
            bounds = (b.left, b.top - rows * PIXEL_M, b.right, b.top)
        region = region_window(ds.transform, ds.width, ds.height, bounds)
        return tile_grid_for(ds.transform, ds.crs, region, TILE_PX * PIXEL_M), bounds


def raw_read(path: Path, rows: int | None) -> dict:
    grid, _ = grid_for(path, rows)
    with rasterio.open(path) as ds:
        t0 = time.perf_counter()
        for r, c in grid.cells():
            inside = grid.tile_window(r, c).intersection(ds.width, ds.height)
            if inside is not None:
                ds.read(window=inside.to_rasterio())
        seconds = time.perf_counter() - t0
    return _rates(len(grid), seconds)


def best_of(runs: int, measure) -> dict:
    """The fastest of ``runs`` measurements: on a shared machine the slower ones are
    other work's interference, not the code's speed."""
    return max((measure() for _ in range(runs)), key=lambda stats: stats["tiles_per_s"])


def _rates(tiles: int, seconds: float) -> dict:
    return {"tiles": tiles, "seconds": round(seconds, 3), "tiles_per_s": round(tiles / seconds, 2),
            "megapixels_per_s": round(tiles * TILE_PX**2 / seconds / 1e6, 2)}


def pipeline(path: Path, model: PovertyModel, device: str, rows: int | None, executor=None, **options) -> dict:
    grid, bounds = grid_for(path, rows)
    out = OUT / "bench_output.tif"
    request = PredictRequest(str(path), str(out), model, bounds=bounds, radiometry="eight_bit", device=device, **options)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = predict_poverty_map(request, executor=executor)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    stats = _rates(result.n_cells, seconds)
    # this process's CPU time (all its threads) per wall second: the cores a local run keeps busy
    stats["cores_busy"] = round((time.process_time() - cpu0) / seconds, 2)
    plan = thread_plan(torch.device(device), model.extractor, options.get("read_workers"))
    stats["batch_size"] = options.get("batch_size") or auto_batch_size(torch.device(device), model.extractor)
    stats["read_workers"] = plan.read_workers if executor is None else 0  # a Dask worker reads in its task
    stats["torch_threads"] = plan.torch_threads or torch.get_num_threads()
    if device == "cuda":
        stats["gpu_memory_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return stats


def package_on_path() -> None:
    """Dask's worker processes copy this import path when they start: put a folder where
    ``poverty_mapper`` is this checkout first on it, so that they run this code."""
    folder = OUT / "package"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "poverty_mapper"
    if not link.is_symlink():
        link.symlink_to(ROOT, target_is_directory=True)
    sys.path.insert(0, str(folder))


def dask_workers(path: Path, models: dict, device: str, rows: int, repeats: int) -> dict:
    """The local pipeline, then a LocalCluster of 1 and of 2 worker processes (1 thread
    each; cluster start-up, the workers' imports and the model's first transfer left out
    by a warm-up run), on the first ``rows`` rows of ``path``."""
    from distributed import Client, LocalCluster

    from poverty_mapper.core.imagery.dask_run import DaskExecutor

    package_on_path()
    results: dict = {}
    for name in ("histogram", "cnn"):
        model = models[name]
        results[name] = {"local": best_of(repeats, lambda: pipeline(path, model, device, rows))}
        for n in (1, 2):
            with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                    Client(cluster) as client:
                executor = DaskExecutor(client)
                pipeline(path, model, device, 448, executor)
                results[name][f"dask_{n}_workers"] = best_of(repeats, lambda: pipeline(path, model, device, rows, executor))
        local = results[name]["local"]["tiles_per_s"]
        one, two = (results[name][f"dask_{n}_workers"]["tiles_per_s"] for n in (1, 2))
        results[name]["ratios"] = {"dask_1_vs_local": round(one / local, 3), "dask_2_vs_local": round(two / local, 3),
                                   "dask_2_vs_dask_1": round(two / one, 3),
                                   "dask_2_ceiling": round(min(2, cores_here()) / results[name]["local"]["cores_busy"], 3)}
    return results


def print_dask(results: dict) -> None:
    sys.stdout.write(f"{'Dask LocalCluster (1 thread per worker)':36} {'tiles':>6} {'tiles/s':>9} {'MP/s':>8}  ratio\n")
    for name, rows in results.items():
        for what in ("local", "dask_1_workers", "dask_2_workers"):
            stats = rows[what]
            ratio = "" if what == "local" else f"{rows['ratios'][what.replace('_workers', '') + '_vs_local']:.2f} x local"
            label = f"{name} {what.replace('_', ' ')}"
            sys.stdout.write(f"{label:36} {stats['tiles']:>6} {stats['tiles_per_s']:>9.1f} {stats['megapixels_per_s']:>8.1f}  {ratio}\n")
        # Two workers can at best use two of this machine's cores where the local run used cores_busy of them.
        sys.stdout.write(f"{name + ' local run keeps busy':36} {rows['local']['cores_busy']:>6.2f} cores; 2 workers on "
                         f"{cores_here()} cores can reach at most {rows['ratios']['dask_2_ceiling']:.2f} x local\n")


def peak_memory(path: Path, device: str, model_path: Path) -> float:
    """Peak resident memory (MB) of mapping all of ``path`` with ``model_path``, in a fresh process."""
    code = (
        "import sys; sys.path.insert(0, 'scripts');"
        "from _bootstrap import import_plugin_package; import_plugin_package();"
        "from poverty_mapper.core.models.model_file import load_model;"
        "from poverty_mapper.core.inference.predict import PredictRequest, predict_poverty_map;"
        f"predict_poverty_map(PredictRequest({str(path)!r}, {str(OUT / 'mem_output.tif')!r}, "
        f"load_model({str(model_path)!r}), radiometry='eight_bit', device={device!r}));"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent.
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return round(int(done.stdout.split()[-1]) / 1024, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--strip-rows", type=int, default=2048,
                        help="rows of the large raster used for the slow extractors (random, cnn)")
    parser.add_argument("--repeats", type=int, default=2, help="measurements per figure; the fastest is kept")
    parser.add_argument("--naive-rows", type=int, default=896, help="rows used for the naive cnn baseline")
    parser.add_argument("--dask-rows", type=int, default=2048, help="rows of the large raster mapped on Dask workers")
    parser.add_argument("--only-dask", action="store_true", help="measure only the Dask rows (out/bench/<device>_dask.json)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: PyTorch sees no CUDA device on this machine (run with --device cpu)")
    cpu = cpu_description()
    sys.stdout.write(describe_cpu(cpu) + "\n")
    if args.device == "cuda":
        sys.stdout.write(f"GPU: {torch.cuda.get_device_name()}\n")
    large, small = generated_raster(args.size), generated_raster(args.size // 2)
    models = throughput_models(large)
    fast_rows = None if args.device == "cuda" else args.strip_rows
    if args.only_dask:
        for model in (models["histogram"], models["cnn"]):
            pipeline(large, model, args.device, 448)  # warm-up, as below
        dask = {"device": args.device, "cpu": cpu, "cpu_threads": torch.get_num_threads(), "machine": platform.platform(),
                "raster": f"first {args.dask_rows} rows of {args.size}x{args.size} uint8 x3 (generated)",
                "repeats": f"best of {args.repeats} per figure",
                "dask": dask_workers(large, models, args.device, args.dask_rows, args.repeats)}
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"{args.device}_dask.json").write_text(json.dumps(dask, indent=2))
        print_dask(dask["dask"])
        sys.stdout.write(f"written: {OUT / (args.device + '_dask.json')}\n")
        return _verdict(dask)

    results: dict = {
        "device": args.device if args.device == "cpu" else f"cuda ({torch.cuda.get_device_name()})",
        "cpu": cpu,
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "rasters": {"large": f"{args.size}x{args.size} uint8 x3 (generated)", "small": f"{args.size // 2}x{args.size // 2} uint8 x3 (generated)"},
        "tile": f"{TILE_PX} px at {PIXEL_M:g} m",
    }
    # Warm up one-time set-up (DN tables, fused CNN, thread pools, file cache) on a strip.
    naive = (models["naive_cnn"], models["naive_efficientnet"])
    for model in models.values():
        pipeline(large, model, args.device, 448, mixed_precision=model not in naive)
    n = args.repeats
    results["repeats"] = f"best of {n} per figure"
    results["raw_read"] = {"full": best_of(n, lambda: raw_read(large, None)),
                           "strip": best_of(n, lambda: raw_read(large, args.strip_rows))}
    results["pipeline"] = {
        "histogram": best_of(n, lambda: pipeline(large, models["histogram"], args.device, None)),
        "random": best_of(n, lambda: pipeline(large, models["random"], args.device, fast_rows)),
        "cnn": best_of(n, lambda: pipeline(large, models["cnn"], args.device, fast_rows)),
        "efficientnet": best_of(n, lambda: pipeline(large, models["efficientnet"], args.device, fast_rows)),
    }
    for name in ("naive_cnn", "naive_efficientnet"):
        results[name] = best_of(n, lambda name=name: pipeline(large, models[name], args.device, args.naive_rows,
                                                              batch_size=1, read_workers=0, mixed_precision=False))
    ratios = {}
    for name, stats in results["pipeline"].items():
        raw = results["raw_read"]["full" if name == "histogram" or fast_rows is None else "strip"]
        ratios[f"{name}_vs_raw_read"] = round(stats["megapixels_per_s"] / raw["megapixels_per_s"], 3)
    for name in ("cnn", "efficientnet"):
        ratios[f"{name}_vs_naive"] = round(
            results["pipeline"][name]["megapixels_per_s"] / results[f"naive_{name}"]["megapixels_per_s"], 2)
    results["ratios"] = ratios
    OUT.mkdir(parents=True, exist_ok=True)
    cnn_path = save_model(models["cnn"], OUT / "bench_cnn.povmodel")
    results["peak_memory_mb"] = {}
    for name, model_path in (("histogram", DEFAULT_MODEL_PATH), ("cnn", cnn_path)):
        mem_large, mem_small = peak_memory(large, args.device, model_path), peak_memory(small, args.device, model_path)
        results["peak_memory_mb"][name] = {"large": mem_large, "small": mem_small,
                                           "large_vs_small": round(mem_large / mem_small, 3)}

    results["dask"] = dask_workers(large, models, args.device, args.dask_rows, n)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.device}.json").write_text(json.dumps(results, indent=2))
    rows = [("raw read (rasterio alone)", results["raw_read"]["full"], "")]
    for name, stats in results["pipeline"].items():
        rows.append((f"pipeline {name}", stats, f"{ratios[f'{name}_vs_raw_read']:.2f} x raw read"))
    for name in ("cnn", "efficientnet"):
        rows.append((f"naive {name} (batch 1, synchronous)", results[f"naive_{name}"],
                     f"{name} {ratios[f'{name}_vs_naive']:.2f} x naive"))
    sys.stdout.write(f"device: {results['device']}, torch threads: {results['cpu_threads']}\n")
    sys.stdout.write(f"{'what':36} {'tiles':>6} {'tiles/s':>9} {'MP/s':>8}  ratio\n")
    for what, stats, ratio in rows:
        sys.stdout.write(f"{what:36} {stats['tiles']:>6} {stats['tiles_per_s']:>9.1f} {stats['megapixels_per_s']:>8.1f}  {ratio}\n")
    for name, m in results["peak_memory_mb"].items():
        sys.stdout.write(f"peak memory ({name} run, whole raster): large {m['large']} MB, small {m['small']} MB, "
                         f"ratio {m['large_vs_small']}\n")
    print_dask(results["dask"])
    sys.stdout.write(f"written: {OUT / (args.device + '.json')}\n")
    return _verdict(results)


def _verdict(results: dict) -> int:
    """Every measured figure against its target (bench_checks.TARGETS); 1 when one misses."""
    sys.stdout.write(describe_cpu(results["cpu"]) + "\n")
    missed = report_targets(check_targets(results))
    if missed:
        sys.stderr.write("bench: targets missed: " + "; ".join(missed) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
