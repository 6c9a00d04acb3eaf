"""Running batches of tiles on a Dask cluster (Dask's distributed scheduler and its
workers; not to be confused with a survey cluster): the workers open the imagery
themselves and run the batches of a :class:`.tile_work.TileWork` on it; this process
gets each batch's result once.

- Workers open the imagery from its path: a file on a file system they share, or a GDAL
  virtual file system URL they can reach (/vsicurl/, /vsis3/). A run checks first that
  every worker can open it, and names those that cannot.
- A run's work (the job, the model) goes to each worker once, as a worker plugin: the
  scheduler keeps it and hands it to every worker, including one that joins or restarts
  mid-run.
- Each batch is a task. A worker that dies has its batches redone by the scheduler on
  another worker; this process takes each batch's result once, whichever attempt computed
  it, so nothing is lost and nothing counted twice.
- Canceling cancels the batches not yet done; at most a few batches per worker thread are
  given to the cluster at a time, so a continent's millions of tiles never wait in memory.

``distributed`` is imported only when a run asks for a Dask cluster: the plugin works
without it. :class:`DaskExecutor` is the :class:`.tile_work.Executor` that mapping
(inference.mapping_job) and the survey fit (training.cluster_features) run on it.
"""
from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import uuid
from typing import Any, Callable, Iterable, Iterator

from ..errors import Canceled, PovertyMapperError
from .tile_work import TileWork
from .tile_reader import open_raster

log = logging.getLogger(__name__)

try:  # the work's carrier must be a worker plugin where distributed is installed
    from distributed.diagnostics.plugin import WorkerPlugin as _PluginBase
except ImportError:  # runs refuse before using it: _distributed()
    _PluginBase = object

CancelCheck = Callable[[], bool]
CONNECT_TIMEOUT_S = 30.0  # to reach the scheduler, and for its first worker to be there
CANCEL_POLL_S = 0.5  # how often cancel is looked at while batches run
TEARDOWN_WAIT_S = 120.0  # at most this long a worker waits for its running batches before closing the imagery
BATCHES_PER_THREAD = 2  # batches handed to the cluster at a time, per worker thread
INSTALL_HINT = (
    "Running on a Dask cluster (a scheduler given) needs the Python packages 'distributed' and 'dask' on this machine "
    "and on the workers: pip install distributed==2026.8.0 (see requirements.txt)."
)


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise PovertyMapperError(INSTALL_HINT) from exc
    return distributed


def connect(scheduler: str, timeout_s: float | None = None):
    """A client of the scheduler at ``scheduler`` (e.g. tcp://10.0.0.5:8786) that has at
    least one worker; clear errors when it cannot be reached or has no workers."""
    distributed = _distributed()
    timeout_s = timeout_s or CONNECT_TIMEOUT_S
    _check_address(scheduler)
    try:
        client = distributed.Client(scheduler, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise PovertyMapperError(
            f"Cannot reach the Dask scheduler at '{scheduler}' within {timeout_s:g} s ({exc}). Start one with "
            "`dask scheduler` and give the address it prints (e.g. tcp://10.0.0.5:8786), and check that this "
            "machine can reach its port."
        ) from exc
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except (TimeoutError, OSError) as exc:
        client.close()
        raise PovertyMapperError(
            f"The Dask scheduler at '{scheduler}' has no workers after {timeout_s:g} s. Start some with "
            f"`dask worker {scheduler}` on machines that can read the imagery."
        ) from exc
    return client


def _check_address(scheduler: str) -> None:
    """Refuse at once an address that names no reachable host or no port number (a
    wrong name otherwise costs the whole connect timeout, and more)."""
    import socket

    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port

    example = "give the address `dask scheduler` prints, e.g. tcp://10.0.0.5:8786"
    try:
        protocol, location = parse_address(scheduler)
        if protocol not in ("tcp", "tls"):
            return
        host, port = parse_host_port(location, default_port=8786)
    except (ValueError, TypeError) as exc:
        raise PovertyMapperError(f"'{scheduler}' is not a Dask scheduler address ({exc}); {example}.") from None
    try:
        socket.getaddrinfo(host, port)
    except (socket.gaierror, UnicodeError) as exc:
        raise PovertyMapperError(
            f"The Dask scheduler address '{scheduler}' names a host '{host}' that this machine cannot find "
            f"({exc.args[-1] if exc.args else exc}); {example}."
        ) from None


def worker_path(path: str) -> str:
    """The imagery path as the workers get it: GDAL virtual file system URLs as they are,
    local paths made absolute (a worker's working directory is not this one's)."""
    if path.startswith("/vsi") or "://" in path:
        return path
    return os.path.abspath(path)


def _try_open(path: str) -> str | None:
    """Run on each worker: None when the imagery opens there, else the error."""
    try:
        open_raster(path).close()
    except Exception as exc:  # noqa: BLE001 (any failure is reported, per worker)
        return f"{type(exc).__name__}: {exc}"
    return None


def check_workers_read(client, path: str) -> None:
    """Refuse a path that some worker cannot open, naming the workers and their errors."""
    errors = {worker: error for worker, error in client.run(_try_open, path).items() if error}
    if errors:
        listed = "; ".join(f"{worker}: {error}" for worker, error in sorted(errors.items()))
        raise PovertyMapperError(
            f"{len(errors)} of the cluster's Dask workers cannot open the imagery '{path}' ({listed}). Workers open "
            "the imagery themselves: put it on a file system every worker mounts at the same path, or give a URL "
            "they can reach (/vsicurl/https://..., /vsis3/bucket/key.tif), best as a cloud-optimised GeoTIFF."
        )


class _JobPlugin(_PluginBase):
    """A run's work on a worker, with the readers of the worker's threads (one per thread).
    Handed to every worker once by the scheduler, also to one that joins or restarts
    mid-run; closed when the run ends."""

    def __init__(self, name: str, work: TileWork):
        self.name, self.work = name, work
        self._local = threading.local()
        self._readers: list[Any] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when a batch ends
        self._busy = 0  # batches running on this worker now

    def __getstate__(self) -> dict:
        return {"name": self.name, "work": self.work}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["name"], state["work"])

    def setup(self, worker) -> None:
        pass

    def teardown(self, worker) -> None:
        """Close the readers once no batch reads them: a canceled batch may still be running
        (a thread cannot be stopped), and closing a dataset under a read crashed the worker."""
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0, timeout=TEARDOWN_WAIT_S)
            for reader in self._readers:
                reader.close()
            self._readers.clear()

    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        """Marks a batch running, for :meth:`teardown` to wait for."""
        with self._idle:
            self._busy += 1
        try:
            yield
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def reader(self) -> Any:
        """This thread's reader, reading in this thread (opened on first use, closed with the run)."""
        reader = getattr(self._local, "reader", None)
        if reader is None:
            reader = self._local.reader = self.work.open_reader(read_ahead=False)
            with self._lock:
                self._readers.append(reader)
        return reader


def _run_task(plugin_name: str, batch: Any) -> Any:
    """On a worker: the result of one batch of the run's work, read with this thread's reader."""
    from distributed import get_worker

    plugin: _JobPlugin = get_worker().plugins[plugin_name]
    with plugin.in_use(), contextlib.closing(plugin.work.run(plugin.reader(), [batch])) as results:
        return next(results)[1]


class DaskRun:
    """One run's batches on a Dask cluster: the work's imagery checked on every worker,
    the work sent to each worker once, batches handed out a few per worker thread at a
    time and their results given back once each, in the order they complete; on leaving,
    batches not done are canceled and the work removed from the workers.

    ``work`` reads its paths as the workers reach them (:func:`worker_path`)."""

    def __init__(self, client, work: TileWork, batches_per_thread: int = BATCHES_PER_THREAD):
        self.client, self.batches_per_thread = client, max(1, batches_per_thread)
        self.work = work
        self.run_id = uuid.uuid4().hex[:12]
        self.name = f"poverty-mapper-job-{self.run_id}"
        self._pending: dict[Any, Any] = {}
        self._done: queue.Queue = queue.Queue()  # futures as they finish (their callbacks put them here)
        self._lost = False  # the scheduler stopped answering: nothing more to tell it

    def __enter__(self) -> "DaskRun":
        for path in self.work.paths():
            check_workers_read(self.client, path)
        self.client.register_plugin(_JobPlugin(self.name, self.work), name=self.name)
        return self

    def __exit__(self, *exc) -> None:
        """Cancel the batches not done and remove the work (each worker's teardown waits
        for its running batches). A scheduler that is gone cannot be told: that is logged,
        and the run's own error, if any, is what the user sees."""
        if self._lost:
            return
        try:
            if self._pending:
                self.client.cancel(list(self._pending), force=True)
                self._pending.clear()
            self.client.unregister_worker_plugin(self.name)
        except Exception as error:  # noqa: BLE001 (a lost scheduler fails in many ways: OSError, CommClosedError...)
            log.warning("Could not clean up the run on the Dask cluster: %s", error)

    def results(self, batches: Iterable[Any], is_canceled: CancelCheck) -> Iterator[tuple[Any, Any]]:
        """(batch, its result) for every batch, as they complete; raises :class:`Canceled`
        when ``is_canceled`` says so (looked at every CANCEL_POLL_S), and a batch's error."""
        numbered = enumerate(batches)
        self._submit(numbered)
        while self._pending:
            if is_canceled():
                raise Canceled()
            try:
                future = self._done.get(timeout=CANCEL_POLL_S)
            except queue.Empty:
                continue
            if future not in self._pending:  # already taken
                continue
            batch = self._pending.pop(future)
            with self._connection():
                result = future.result()  # a failed batch raises its error here
            future.release()
            yield batch, result
            if is_canceled():
                raise Canceled()
            self._submit(numbered)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[None]:
        """A scheduler or worker connection lost is said as such (a batch's own error is
        raised as it is), and the cluster is not called again on leaving."""
        from concurrent.futures import CancelledError

        try:
            yield
        except (CancelledError, OSError, TimeoutError) as exc:
            self._lost = True
            raise PovertyMapperError(
                f"The Dask cluster stopped answering during the run ({type(exc).__name__}: {exc}). Check that its "
                "scheduler and workers are running, then run again; nothing was written."
            ) from exc

    def _submit(self, numbered: Iterator[tuple[int, Any]]) -> None:
        with self._connection():
            self._submit_more(numbered)

    def _submit_more(self, numbered: Iterator[tuple[int, Any]]) -> None:
        threads = sum(self.client.nthreads().values()) or 1
        while len(self._pending) < self.batches_per_thread * threads:
            item = next(numbered, None)
            if item is None:
                return
            index, batch = item
            future = self.client.submit(
                _run_task, self.name, batch, key=f"poverty-mapper-batch-{self.run_id}-{index}", pure=False
            )
            self._pending[future] = batch
            future.add_done_callback(self._done.put)


class scheduler_client:  # noqa: N801 (used as a context manager, like open())
    """A connected client: the one given (left open), or one to the address given (closed on leaving)."""

    def __init__(self, scheduler, timeout_s: float | None = None):
        self.scheduler, self.timeout_s = scheduler, timeout_s
        self.own = isinstance(scheduler, str)

    def __enter__(self):
        self.client = connect(self.scheduler, self.timeout_s) if self.own else self.scheduler
        return self.client

    def __exit__(self, *exc) -> None:
        if self.own:
            self.client.close()




class DaskExecutor:
    """Runs a work's batches on the Dask cluster of ``scheduler`` (an address such as
    tcp://10.0.0.5:8786, or a connected ``distributed.Client``, which is left open)."""

    def __init__(self, scheduler, connect_timeout_s: float | None = None, batches_per_thread: int = BATCHES_PER_THREAD):
        self.scheduler = scheduler
        self.connect_timeout_s = connect_timeout_s
        self.batches_per_thread = batches_per_thread

    def results(self, work: TileWork, batches: Iterable[Any], is_canceled: CancelCheck) -> Iterator[tuple[Any, Any]]:
        """(batch, result) for every batch, as they complete on the workers (see :class:`DaskRun`)."""
        with scheduler_client(self.scheduler, self.connect_timeout_s) as client, \
                DaskRun(client, work.at_paths(worker_path).for_workers(), self.batches_per_thread) as run:
            yield from run.results(batches, is_canceled)
