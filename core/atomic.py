"""Writing outputs so that nothing half-written ever stands under the requested name."""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import PovertyMapperError

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_NOT_ALLOWED = (errno.EACCES, errno.EPERM, errno.EROFS)
# Below this much free space a write that came out incomplete is put down to a full disk
# (a writer such as GDAL's may report "No space left on device" without raising).
_NEARLY_FULL_BYTES = 1 << 20
# Files GDAL keeps beside a raster (statistics, overviews, masks): they describe an
# earlier file of the name and would show its statistics and, zoomed out, its map.
STALE_SIDECARS = (".aux.xml", ".ovr", ".msk")
# The temporary name: the writing machine and process let a later run on the same machine
# remove what a killed one left (never what a run on another machine is writing to a share).
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)-[0-9a-f]{12}\.partial(?P<suffix>.*)$")
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


class IncompleteOutput(PovertyMapperError):
    """An output whose re-reading shows it was not written whole."""


@contextmanager
def atomic_output(
    path: str | os.PathLike, suffix: str = "", verify: Callable[[Path], None] | None = None
) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it to ``path`` only when the
    block ends without an exception and ``verify`` (given the temporary path, raising
    :class:`IncompleteOutput` or an OSError) accepts it, else removes it. An earlier
    file of the same name stays untouched until the new one is complete and checked;
    GDAL's sidecars of the earlier file (:data:`STALE_SIDECARS`) go with it.

    A full disk, a folder that may not be written, or a folder standing under the
    output's name become a :class:`PovertyMapperError` that says so."""
    path = Path(path)
    remove_abandoned_partials(path)
    # Not created here (as mkstemp would, with mode 0600): the writer creates it with
    # the user's usual permissions.
    tmp_path = partial_path(path, suffix)
    try:
        yield tmp_path
        if verify is not None:
            verify(tmp_path)
        os.replace(tmp_path, path)
    except BaseException as exc:
        problem = _write_problem(path, exc)
        tmp_path.unlink(missing_ok=True)
        if problem is not None:
            raise PovertyMapperError(problem) from exc
        raise
    for sidecar in STALE_SIDECARS:
        Path(f"{path}{sidecar}").unlink(missing_ok=True)


def check_not_an_input(output: str | os.PathLike, inputs: dict[str, str | os.PathLike | None]) -> None:
    """Refuse an output that names one of the run's ``inputs`` (by what they are), however
    spelled: through a link, a relative path, ``..`` or another hard link to the file."""
    out = Path(output)
    for what, path in inputs.items():
        if path is None or str(path) == "":
            continue
        if _same_file(out, Path(path)):
            raise PovertyMapperError(
                f"The output {out} is the {what} ({path}); writing it would destroy the {what}. "
                "Choose another output file name."
            )


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def check_writable_folder(path: str | os.PathLike, what: str = "output") -> None:
    """Refuse, before any work, an output whose folder does not exist or cannot be written
    (tried with a small file, as permissions, read-only mounts and immutable folders answer)."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise PovertyMapperError(f"The folder {folder} of the {what} does not exist; choose an existing folder.")
    if path.is_dir():
        raise PovertyMapperError(f"{path} is a folder; choose a file name for the {what}.")
    probe = partial_path(path, ".probe")
    try:
        probe.touch(exist_ok=False)
    except OSError as exc:
        raise PovertyMapperError(
            f"Cannot write in the folder {folder} of the {what} ({exc.strerror}); choose a folder you can write to. "
            "Nothing was done."
        ) from exc
    probe.unlink(missing_ok=True)


def partial_path(path: Path, suffix: str = "") -> Path:
    """A temporary name beside ``path``, hidden, that says which machine and process write it."""
    return path.parent / f".{path.name}.{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}.partial{suffix}"


def remove_abandoned_partials(path: Path) -> None:
    """Remove temporary files of ``path``, and the temporary folders vector outputs are
    written in, left by runs that were killed (their process is gone)."""
    try:
        candidates = list(path.parent.glob(f".{glob_escape(path.name)}.*.partial*"))
    except OSError:
        return
    for candidate in candidates:
        match = _PARTIAL.match(candidate.name)
        if not (match and match["name"] == path.name and match["host"] == _HOST and not _process_alive(int(match["pid"]))):
            continue
        if candidate.is_dir() and not candidate.is_symlink():
            _restore_moved_aside(candidate / "earlier", path.parent)
            shutil.rmtree(candidate, ignore_errors=True)
        elif candidate.is_file():
            candidate.unlink(missing_ok=True)


def _restore_moved_aside(aside: Path, folder: Path) -> None:
    """Files of an earlier output that a killed run had moved aside (``aside``) while
    moving its own in go back where they were, unless a file of the name stands there."""
    try:
        earlier = [p for p in aside.iterdir() if p.is_file()] if aside.is_dir() else []
        for file in earlier:
            if not (folder / file.name).exists():
                os.replace(file, folder / file.name)
    except OSError:
        pass


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def free_bytes(folder: Path) -> int:
    """Space this process may still write in ``folder`` (root may use the reserved blocks)."""
    st = os.statvfs(folder)
    return (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize


def incomplete_output_problem(path: Path, detail: str) -> str:
    """What to tell the user when ``path`` was written but does not read back whole:
    a full disk when there is next to no space left beside it, else ``detail``."""
    kept = " An earlier file of that name is unchanged." if path.exists() else ""
    try:
        full = free_bytes(path.parent) < _NEARLY_FULL_BYTES
    except OSError:
        full = False
    if full:
        return _disk_full(path, kept)
    return f"{detail} Nothing was written under that name.{kept}"


def _disk_full(path: Path, kept: str) -> str:
    return (
        f"The disk is full: {path} could not be written. Free some space or choose a "
        f"folder on another disk; nothing was written under that name.{kept}"
    )


def _write_problem(path: Path, exc: BaseException) -> str | None:
    """What to tell the user about an error while writing ``path``."""
    kept = " An earlier file of that name is unchanged." if path.exists() else ""
    if isinstance(exc, IncompleteOutput):
        return incomplete_output_problem(path, str(exc))
    if not isinstance(exc, OSError):
        return None
    if exc.errno in _DISK_FULL:
        return _disk_full(path, kept)
    if exc.errno == errno.EFBIG:
        return (
            f"{path} would be larger than this disk or this process may write (file too large). "
            f"Choose a folder on another disk or a smaller region; nothing was written under that name.{kept}"
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
