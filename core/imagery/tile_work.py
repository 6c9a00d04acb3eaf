"""The seam between what is done with batches of tiles and who runs them: a
:class:`TileWork` (what to do with a batch, as plain data) and an :class:`Executor` (runs
a work's batches and gives back each batch's result once).

Mapping (inference.mapping_job) and the survey fit (training.cluster_features) each
describe their work; the executors (:mod:`.executors`: here; :mod:`.dask_run`: on a Dask
cluster's workers) run any work.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Protocol, TypeVar

B = TypeVar("B")
CancelCheck = Callable[[], bool]


class TileWork:
    """What to do with batches of tiles, as plain data an executor may send to other
    processes as it is (a subclass is a module-level dataclass: workers import it).

    :meth:`open_reader` opens the reader the work reads with where it runs; :meth:`run`
    goes through batches with it. Here one reader takes every batch (and may read ahead
    in threads); on a worker each thread opens its own and runs one batch at a time."""

    def paths(self) -> tuple[str, ...]:
        """The files or URLs the work reads (each worker must open them)."""
        raise NotImplementedError

    def at_paths(self, where: Callable[[str], str]) -> "TileWork":
        """The same work reading each of its paths as ``where(path)``."""
        raise NotImplementedError

    def for_workers(self) -> "TileWork":
        """The same work as a cluster's workers run it, each of their threads one batch at a
        time: no threads of its own beyond the worker's (the cluster's threads are its
        parallelism; threads of the work's own on top oversubscribe the worker's cores)."""
        return self

    def open_reader(self, read_ahead: bool) -> Any:
        """The reader (with a ``close``); ``read_ahead``: it may read ahead in threads of its
        own (here), else it reads in the calling thread (a worker's thread)."""
        raise NotImplementedError

    def run(self, reader: Any, batches: Iterable[B]) -> Iterator[tuple[B, Any]]:
        """(batch, result) for each of ``batches``, in order, read with ``reader``."""
        raise NotImplementedError


class Executor(Protocol):
    """Runs a work's batches: every batch's result comes back once, in any order."""

    def results(self, work: TileWork, batches: Iterable[B], is_canceled: CancelCheck) -> Iterator[tuple[B, Any]]:
        """(batch, result) for every batch; raises :class:`Canceled` when ``is_canceled``
        says so (asked at least once per batch), and a batch's error."""
        ...
