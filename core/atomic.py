"""Writing outputs so that nothing half-written ever stands under the requested name."""
from __future__ import annotations

import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it to ``path`` only when the
    block ends without an exception, else removes it. An earlier file of the same
    name stays untouched until the new one is complete."""
    path = Path(path)
    # Not created here (as mkstemp would, with mode 0600): the writer creates it with
    # the user's usual permissions.
    tmp_path = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.partial{suffix}"
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, data: dict) -> Path:
    with atomic_output(path, ".json") as tmp:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False), encoding="utf-8")
    return Path(path)
