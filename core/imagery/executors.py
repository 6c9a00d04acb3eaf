"""The executors of a :class:`.tile_work.TileWork`: :class:`LocalExecutor` runs its
batches here, in order; :class:`.dask_run.DaskExecutor` on a Dask cluster's workers.
:func:`executor_for` picks one for a run; mapping and the survey fit take either.
"""
from __future__ import annotations

from contextlib import closing
from typing import Any, Iterable, Iterator

from ..errors import Canceled
from .tile_work import B, CancelCheck, Executor, TileWork


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
