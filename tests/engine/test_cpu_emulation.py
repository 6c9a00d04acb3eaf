"""The second pass of `make test` (scripts/emulate_cpu.py) runs every library of the
numeric stack with the kernels of an AVX2-only CPU, read back from each library's own
report, and refuses to run the tests when one of them still uses wider kernels."""
from __future__ import annotations

import os
import subprocess
import sys

import emulate_cpu  # scripts/ is on sys.path (conftest)
from conftest import ROOT


def test_the_avx2_environment_takes_every_library_to_avx2():
    found = emulate_cpu.kernels(emulate_cpu.avx2_environment())
    assert found["openblas"] and set(found["openblas"].values()) == {emulate_cpu.OPENBLAS_AVX2_CORE}
    assert found["torch"] == "AVX2"
    assert found["onednn"] == "Intel AVX2"
    assert "AVX2" in found["numpy"] and not [name for name in found["numpy"] if name.startswith("AVX512")]
    assert found["has"] == {"onednn": True, "mkl": True}  # the PyTorch wheel of requirements.txt
    assert found["mkl"] is not None and emulate_cpu.wider_than_avx2(found) == []


def test_a_library_left_on_wider_kernels_is_named():
    found = {
        "numpy": ["AVX2", "AVX512F"], "openblas": {"/lib/libopenblas.so": "Cooperlake"}, "torch": "AVX512",
        "onednn": "Intel AVX-512 with Intel DL Boost and bfloat16 support",
        "mkl": "MKL_VERBOSE oneMKL 2024.0 for Intel(R) 64 architecture Intel(R) Advanced Vector Extensions 512 "
               "(Intel(R) AVX-512) with Intel(R) AMX enabled processors",
    }
    wide = emulate_cpu.wider_than_avx2(found)
    assert wide == ["numpy: AVX512F", "OpenBLAS /lib/libopenblas.so: Cooperlake", "PyTorch: AVX512",
                    f"onednn: {found['onednn']}", f"mkl: {found['mkl']}"]
    # A library whose report could not be read is not taken for an AVX2 one.
    unread = {"numpy": ["AVX2"], "openblas": {}, "torch": "AVX2", "onednn": None, "mkl": None,
              "has": {"onednn": True, "mkl": False}}
    assert emulate_cpu.wider_than_avx2(unread) == [
        "OpenBLAS: no core name read (numpy's BLAS is not an OpenBLAS this script knows)", "onednn: None"]


def test_the_command_runs_under_the_emulation_and_its_status_is_kept(tmp_path):
    code = "import os, sys; print(os.environ['OPENBLAS_CORETYPE'], os.environ['ATEN_CPU_CAPABILITY']); sys.exit(3)"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "emulate_cpu.py"), "avx2", "--", sys.executable,
                           "-c", code], capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines()[-1] == "Zen avx2"
    assert done.stdout.startswith("AVX2 kernels: ")
