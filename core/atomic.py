"""Writing outputs so that nothing half-written ever stands under the requested name."""
from __future__ import annotations

import errno
import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import PovertyMapperError

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_NOT_ALLOWED = (errno.EACCES, errno.EPERM, errno.EROFS)


@contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it to ``path`` only when the
    block ends without an exception, else removes it. An earlier file of the same
    name stays untouched until the new one is complete.

    A full disk, a folder that may not be written, or a folder standing under the
    output's name become a :class:`PovertyMapperError` that says so."""
    path = Path(path)
    # Not created here (as mkstemp would, with mode 0600): the writer creates it with
    # the user's usual permissions.
    tmp_path = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.partial{suffix}"
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        problem = _write_problem(path, exc)
        if problem is not None:
            raise PovertyMapperError(problem) from exc
        raise


def _write_problem(path: Path, exc: BaseException) -> str | None:
    """What to tell the user about an operating-system error while writing ``path``."""
    if not isinstance(exc, OSError):
        return None
    kept = " An earlier file of that name is unchanged." if path.exists() else ""
    if exc.errno in _DISK_FULL:
        return (
            f"The disk is full: {path} could not be written. Free some space or choose a "
            f"folder on another disk; nothing was written under that name.{kept}"
        )
    if exc.errno in _NOT_ALLOWED:
        return (
            f"Cannot write {path}: permission denied (or a read-only disk). Choose an output "
            f"in a folder you can write to.{kept}"
        )
    if exc.errno == errno.EISDIR or path.is_dir():
        return f"{path} is a folder; choose a file name for the output."
    if not path.parent.is_dir():
        return f"The folder {path.parent} does not exist; choose an existing folder for {path.name}."
    return None


def write_json(path: str | os.PathLike, data: dict) -> Path:
    with atomic_output(path, ".json") as tmp:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False), encoding="utf-8")
    return Path(path)
