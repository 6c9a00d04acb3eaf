"""What the machine can hold: work larger than its free memory is refused before it starts."""
from __future__ import annotations

from pathlib import Path

from .errors import PovertyMapperError

# Share of the free memory one run may plan to use (the rest: the operating system,
# QGIS, GDAL's cache and torch's buffers).
MEMORY_SHARE = 0.5


def available_memory_bytes() -> int | None:
    """Memory the system can still give (Linux's MemAvailable); None where it does not say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def check_memory(needed_bytes: float, work: str, fix: str) -> None:
    """Refuse ``work`` when it would need more than :data:`MEMORY_SHARE` of the free memory;
    the message gives the estimate and ``fix``."""
    available = available_memory_bytes()
    if available is None or needed_bytes <= MEMORY_SHARE * available:
        return
    raise PovertyMapperError(
        f"{work} would need about {_size(needed_bytes)} of memory; this machine has {_size(available)} free, "
        f"of which a run may use {MEMORY_SHARE:.0%}. Nothing was started. {fix}"
    )


def _size(n_bytes: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.3g} {unit}"
    return f"{n_bytes / 1e3:.3g} kB"
