"""Who runs the batches of tiles: an executor runs a :class:`TileWork` over its batches
and gives back each batch's result once.

Which batches to run and what to do with their results stay with the caller (the mapping
run, the survey fit); how the batches run is the executor's: :class:`LocalExecutor` runs
them here, in order; :class:`.dask_run.DaskExecutor` on a Dask cluster's workers. Mapping
and the survey fit take either, through :class:`Executor`.
"""
from __future__ import annotations

from contextlib import closing
from typing import Any, Callable, Iterable, Iterator, Protocol, TypeVar

from ..errors import Canceled

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


class LocalExecutor:
    """Runs the batches on this machine, in order, through one reader (which reads ahead
    in threads where the work's reader does); ``is_canceled`` is asked before each batch."""

    def results(self, work: TileWork, batches: Iterable[B], is_canceled: CancelCheck) -> Iterator[tuple[B, Any]]:
        with closing(work.open_reader(read_ahead=True)) as reader, closing(work.run(reader, batches)) as results:
            while True:
                if is_canceled():
                    raise Canceled()
                item = next(results, None)
                if item is None:
                    return
                yield item


def executor_for(scheduler: Any = None) -> Executor:
    """The executor of a run: on the Dask cluster of ``scheduler`` (an address such as
    tcp://10.0.0.5:8786, or a connected ``distributed.Client``), else here."""
    if not scheduler:
        return LocalExecutor()
    from .dask_run import DaskExecutor

    return DaskExecutor(scheduler)
