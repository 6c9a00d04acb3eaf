"""What `make bench` holds its figures against: the CPU it ran on (model, the vector and
matrix extensions the network kernels use) and the target of every ratio it reports."""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from typing import Callable

# The CPU flags (/proc/cpuinfo) that decide which kernels PyTorch and oneDNN run.
FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
# Settings that make this machine run the kernels of a smaller CPU (the suite's second pass).
EMULATION = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")


def cpu_description(cpuinfo: str | None = None) -> dict:
    """The CPU's model and which of :data:`FLAGS` it has, PyTorch's kernel level and any
    emulation setting in force."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    try:
        import torch

        capability = torch.backends.cpu.get_cpu_capability()
    except (ImportError, AttributeError):
        capability = "unknown"
    return {
        "model": fields.get("model name") or platform.processor() or "unknown",
        "cores": cores_here(),
        "flags": {flag: flag in flags for flag in FLAGS},
        "torch_capability": capability,
        "emulation": {name: os.environ[name] for name in EMULATION if name in os.environ},
    }


def cores_here() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def describe_cpu(cpu: dict) -> str:
    have = " ".join(flag for flag, present in cpu["flags"].items() if present) or "none of them"
    lacks = " ".join(flag for flag, present in cpu["flags"].items() if not present)
    line = (f"CPU: {cpu['model']}, {cpu['cores']} cores; flags: {have}" + (f" (no {lacks})" if lacks else "")
            + f"; PyTorch kernels: {cpu['torch_capability']}")
    if cpu["emulation"]:
        line += "; emulating a smaller CPU: " + " ".join(f"{k}={v}" for k, v in cpu["emulation"].items())
    return line


@dataclass(frozen=True)
class Target:
    name: str
    value: Callable[[dict], float]  # the figure, from the results (KeyError: not measured)
    low: float | None = None  # the figure must be at least this
    high: float | None = None  # and below this

    def text(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{self.low:g} to {self.high:g}"
        return f">= {self.low:g}" if self.low is not None else f"< {self.high:g}"

    def met(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value < self.high)


TARGETS = (
    Target("histogram pipeline / raw read", lambda r: r["ratios"]["histogram_vs_raw_read"], low=0.7),
    Target("small CNN pipeline / naive batch-1 loop", lambda r: r["ratios"]["cnn_vs_naive"], low=3.0),
    Target("EfficientNet-Lite0 pipeline / naive loop", lambda r: r["ratios"]["efficientnet_vs_naive"], low=2.5),
    Target("peak memory histogram, large / small raster",
           lambda r: r["peak_memory_mb"]["histogram"]["large_vs_small"], low=0.8, high=1.2),
    Target("peak memory histogram, large raster (MB)", lambda r: r["peak_memory_mb"]["histogram"]["large"], high=1024),
    Target("peak memory cnn, large / small raster", lambda r: r["peak_memory_mb"]["cnn"]["large_vs_small"],
           low=0.8, high=1.2),
    Target("peak memory cnn, large raster (MB)", lambda r: r["peak_memory_mb"]["cnn"]["large"], high=1024),
    Target("Dask 2 local workers / local (histogram)", lambda r: r["dask"]["histogram"]["ratios"]["dask_2_vs_local"],
           low=1.5),
)


def check_targets(results: dict) -> list[tuple[Target, float]]:
    """(target, figure) for every target this run measured."""
    checked = []
    for target in TARGETS:
        try:
            checked.append((target, float(target.value(results))))
        except KeyError:
            continue
    return checked


def report_targets(checked: list[tuple[Target, float]], out=sys.stdout) -> list[str]:
    """Prints each figure with its target; the names of those that miss it."""
    out.write(f"{'figure':46} {'value':>8}  {'target':<12} \n")
    missed = []
    for target, value in checked:
        ok, shown = target.met(value), f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        out.write(f"{target.name:46} {shown:>8}  {target.text():<12} {'ok' if ok else 'MISSED'}\n")
        if not ok:
            missed.append(f"{target.name} = {shown} (target {target.text()})")
    return missed
