"""Real faults for the tests: a full disk (a tmpfs of a few kilobytes) and a file size
limit (RLIMIT_FSIZE). Mounting needs root, as the tests run in CI; the mount is
removed whatever the test does."""
from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def small_disk(folder: Path, size: str = "32k") -> Iterator[Path]:
    """``folder`` as a real filesystem of ``size`` bytes (a tmpfs), unmounted afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder: Path, leave_bytes: int = 0) -> None:
    """Fill the disk holding ``folder`` until about ``leave_bytes`` are free."""
    import os

    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    if free > leave_bytes:
        with open(folder / "filler", "wb") as fh:
            try:
                fh.write(b"\0" * (free - leave_bytes))
            except OSError:
                pass
