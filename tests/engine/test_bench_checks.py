"""`make bench` names the CPU it ran on and fails, naming the figure, when one misses its
target. Figures here are made up for the checks; nothing is timed."""
from __future__ import annotations

import io

from bench_checks import check_targets, cpu_description, describe_cpu, report_targets  # scripts/, on the path (conftest)

ZEN3 = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n"
SAPPHIRE = "model name\t: Intel(R) Xeon(R) Platinum 8481C\nflags\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"


def test_the_cpu_line_names_the_model_and_the_kernels_flags(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    zen3 = cpu_description(ZEN3)
    assert zen3["model"] == "AMD EPYC 7B13"
    assert zen3["flags"] == {"avx2": True, "avx512f": False, "avx512_bf16": False, "amx_tile": False, "amx_bf16": False}
    line = describe_cpu(zen3)
    assert "AMD EPYC 7B13" in line and "flags: avx2 (no avx512f avx512_bf16 amx_tile amx_bf16)" in line
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in line
    assert all(cpu_description(SAPPHIRE)["flags"].values())


def _results(histogram=0.9, cnn=3.5, memory=(370.0, 369.0)):
    return {
        "ratios": {"histogram_vs_raw_read": histogram, "cnn_vs_naive": cnn, "efficientnet_vs_naive": 2.6},
        "peak_memory_mb": {"histogram": {"large": memory[0], "small": memory[1], "large_vs_small": memory[0] / memory[1]}},
    }


def test_every_measured_figure_is_shown_with_its_target_and_only_misses_are_named():
    out = io.StringIO()
    assert report_targets(check_targets(_results()), out) == []
    shown = out.getvalue()
    assert "histogram pipeline / raw read" in shown and ">= 0.7" in shown and "MISSED" not in shown
    assert "Dask" not in shown  # not measured in this run: not judged


def test_a_figure_below_its_target_is_named_with_value_and_target():
    missed = report_targets(check_targets(_results(histogram=0.44, memory=(624.0, 430.0))), io.StringIO())
    assert missed == ["histogram pipeline / raw read = 0.44 (target >= 0.7)",
                      "peak memory histogram, large / small raster = 1.45 (target 0.8 to 1.2)"]
    assert report_targets(check_targets(_results(memory=(1500.0, 1400.0))), io.StringIO()) == [
        "peak memory histogram, large raster (MB) = 1500 (target < 1024)"]
