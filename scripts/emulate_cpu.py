"""Run a command as an AVX2-only CPU (no AVX-512, no AMX) runs it, whatever this CPU is.

    python scripts/emulate_cpu.py avx2 -- COMMAND [ARGS...]
    python scripts/emulate_cpu.py report          # the kernels this process's libraries picked

Every library of the numeric stack picks its kernels from the CPU when it loads; each is
told to stop at AVX2 through its own environment variable:

- numpy's own loops (SIMD dispatch): NPY_DISABLE_CPU_FEATURES lists the AVX-512 targets
  this numpy was built with;
- OpenBLAS (numpy's and scipy's BLAS and LAPACK): OPENBLAS_CORETYPE=Zen, the kernels it
  picks on an AMD Zen 2 or 3 (the AVX2 code of its Haswell kernels);
- PyTorch's own kernels: ATEN_CPU_CAPABILITY=avx2;
- oneDNN (PyTorch's convolutions): ONEDNN_MAX_CPU_ISA=AVX2, so no bf16 or AMX;
- MKL (PyTorch's BLAS and LAPACK): MKL_ENABLE_INSTRUCTIONS=AVX2 (on an AMD CPU MKL takes
  its generic path anyway, as it does on an AVX2-only AMD).

Before the command runs, the kernels are read back from each library's own report (numpy's
enabled dispatch targets, OpenBLAS's core name, PyTorch's CPU capability, oneDNN's and
MKL's verbose headers) in a child process with the same environment: the command is not
run if any library still uses AVX-512 or AMX.
"""
from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import sys

OPENBLAS_AVX2_CORE = "Zen"
AVX2_CORES = ("Zen", "Haswell")  # OpenBLAS core names of AVX2 CPUs without AVX-512
WIDE = re.compile(r"AVX-?512|AMX|bfloat16|DL Boost", re.IGNORECASE)


def numpy_avx512_targets() -> list[str]:
    """The AVX-512 targets of numpy's SIMD dispatch in this build (the names it accepts)."""
    from numpy.core._multiarray_umath import __cpu_dispatch__

    return [name for name in __cpu_dispatch__ if name.startswith("AVX512")]


def avx2_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with every library held to AVX2."""
    env = dict(os.environ if base is None else base)
    env.update({
        "NPY_DISABLE_CPU_FEATURES": " ".join(numpy_avx512_targets()),
        "OPENBLAS_CORETYPE": OPENBLAS_AVX2_CORE,
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "POVERTY_MAPPER_EMULATED_CPU": "avx2",
    })
    return env


def _openblas_cores() -> dict[str, str]:
    """OpenBLAS's own name of the kernels it picked, for every OpenBLAS loaded here."""
    import numpy  # noqa: F401 (loads the BLAS numpy is linked with)

    with open("/proc/self/maps", encoding="utf-8") as maps:
        paths = sorted({line.split()[-1] for line in maps if "openblas" in line.rsplit("/", 1)[-1].lower()})
    cores = {}
    for path in paths:
        lib = ctypes.CDLL(path)
        if hasattr(lib, "openblas_get_corename"):
            lib.openblas_get_corename.restype = ctypes.c_char_p
            cores[path] = lib.openblas_get_corename().decode()
    return cores


def _torch_kernels() -> dict[str, str]:
    """PyTorch's CPU capability; oneDNN's and MKL's ISA lines (their verbose headers,
    printed on their first call: a convolution, a float64 matrix product)."""
    import torch

    sys.stdout.flush()
    x = torch.ones(2, 64, 56, 56)  # large enough for PyTorch to hand it to oneDNN
    torch.nn.functional.conv2d(x, torch.ones(64, 64, 3, 3))
    a = torch.ones(64, 64, dtype=torch.float64)
    _ = a @ a
    return {
        "torch": torch.backends.cpu.get_cpu_capability(),
        "has": {"onednn": torch.backends.mkldnn.is_available(), "mkl": torch.backends.mkl.is_available()},
    }


def report() -> dict:
    """The kernels each library of this process picked (run with ONEDNN_VERBOSE=1 and
    MKL_VERBOSE=1 for their lines, see :func:`kernels`)."""
    from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    return {
        "numpy": [name for name in __cpu_dispatch__ if __cpu_features__.get(name)],
        "openblas": _openblas_cores(),
        **_torch_kernels(),
    }


def kernels(env: dict[str, str]) -> dict:
    """The kernels a Python process started with ``env`` runs: :func:`report` from a child
    process, with oneDNN's and MKL's lines naming their instruction sets."""
    env = {**env, "ONEDNN_VERBOSE": "1", "MKL_VERBOSE": "1"}
    done = subprocess.run([sys.executable, __file__, "report"], env=env, capture_output=True, text=True,
                          timeout=300, check=True)
    lines = done.stdout.splitlines()
    found = json.loads(next(line for line in lines if line.startswith("{")))
    found["onednn"] = next((line.split("isa:", 1)[1] for line in lines if ",cpu,isa:" in line), None)
    found["mkl"] = next((line for line in lines if line.startswith("MKL_VERBOSE") and " for " in line), None)
    return found


def wider_than_avx2(found: dict) -> list[str]:
    """What in ``found`` still runs AVX-512 or AMX kernels (empty: AVX2 at most)."""
    wide = [f"numpy: {name}" for name in found["numpy"] if name.startswith("AVX512")]
    wide += [f"OpenBLAS {path}: {core}" for path, core in found["openblas"].items() if core not in AVX2_CORES]
    if not found["openblas"]:
        wide.append("OpenBLAS: no core name read (numpy's BLAS is not an OpenBLAS this script knows)")
    if found["torch"] not in ("AVX2", "DEFAULT"):
        wide.append(f"PyTorch: {found['torch']}")
    for name in ("onednn", "mkl"):  # where PyTorch has them, their own lines must be read
        if found.get("has", {}).get(name, True) and (found[name] is None or WIDE.search(found[name])):
            wide.append(f"{name}: {found[name]}")
    return wide


def main(argv: list[str]) -> int:
    if argv[:1] == ["report"]:
        sys.stdout.write(json.dumps(report()) + "\n")
        return 0
    if len(argv) < 3 or argv[0] != "avx2" or argv[1] != "--":
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        return 2
    env = avx2_environment()
    found = kernels(env)
    wide = wider_than_avx2(found)
    if wide:
        sys.stderr.write("The AVX2 emulation did not take: " + "; ".join(wide) + "\n")
        return 1
    sys.stdout.write(f"AVX2 kernels: {json.dumps(found)}\n")
    sys.stdout.flush()
    os.execvpe(argv[2], argv[2:], env)
    return 1  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
