"""Where the work runs: in this process, in worker processes on this computer (--jobs), or on a
Dask cluster (--cluster). The backtest's symbols and the models' folds are pure tasks; this
process alone writes the database and the checkpoint, in a fixed order, so neither --jobs nor
--cluster changes what is stored.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from joblib import Parallel, delayed

from trainer import console

T = TypeVar("T")
_END = object()

_warned: list[int] = []  # a too-large --jobs is said once per run, not once per phase
_watching: list[int] = []  # the run process this worker watches (set once per worker process)


def worker_count(requested: int, tasks: int) -> int:
    """At most the cores and the tasks; more workers only compete for the same cores and memory."""
    cores = os.cpu_count() or 1
    if requested > cores and requested not in _warned:
        _warned.append(requested)
        console.warn(f"--jobs {requested} is more than this computer's {cores} cores; using "
                     f"{cores} (more workers only compete for the same cores and memory).")
    return max(1, min(requested, cores, tasks))


def leave_with_the_run(run_pid: int | None) -> None:
    """Called at the start of every task. A worker whose run was SIGKILLed would otherwise wait idle
    for minutes (joblib keeps its workers for reuse): a daemon thread ends this worker once its
    parent is no longer the run. POSIX only: on Windows a dead parent's id stays the child's parent id."""
    if run_pid is None or os.getpid() == run_pid or _watching or os.name == "nt":
        return
    _watching.append(run_pid)

    def watch() -> None:
        while os.getppid() == run_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="leave-with-the-run", daemon=True).start()


class ClusterError(RuntimeError):
    """The Dask cluster cannot be reached or lost a task for good; the message says what to do."""


_clients: dict[str, Any] = {}  # scheduler address -> its distributed.Client, one per run process
# address -> (shared, its future on the workers): the data last sent, reused while the caller passes
# the same object (the training data of every model and every tuning trial of a phase), released
# when another comes; shared is kept so that its id stays its own.
_scattered: dict[str, tuple[Any, Any]] = {}


def connect(address: str) -> Any:
    """The client of the Dask scheduler at address (made once per process)."""
    if address not in _clients:
        try:
            from distributed import Client
        except ImportError:
            raise ClusterError(f"--cluster {address} needs Dask's 'distributed' package, which is not installed. "
                               "Install the optional extra: .venv/bin/python -m pip install \"distributed>=2024.1\" "
                               "(the 'cluster' extra of pyproject.toml), or run without --cluster.") from None
        try:
            _clients[address] = Client(address, timeout=20, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as error:
            raise ClusterError(f"The Dask scheduler at {address} cannot be reached ({error}). Start it with "
                               "'python -m dask scheduler' and workers with 'python -m dask worker ADDRESS' (see the "
                               "README), check the address, or run without --cluster.") from None
    return _clients[address]


def close_clusters() -> None:
    """Disconnect from every scheduler (the cluster itself keeps running for the next run)."""
    _scattered.clear()
    while _clients:
        _, client = _clients.popitem()
        client.close()


def in_order(function: Callable[..., T], shared: Any, items: Iterable[Any], *, jobs: int,
             cluster: str | None = None) -> Iterator[T]:
    """function(shared, item, run_pid) for every item, yielded in the items' order, so the caller
    stores results exactly as a serial run would.

    - cluster (a Dask scheduler address): `shared` is sent to every worker once, the items are
      tasks (at most a few per worker in flight, so the items are produced as they are needed),
      and a worker that dies has its task run again by the scheduler on another worker.
    - jobs > 1: joblib's worker processes on this computer (large arrays memory-mapped).
    - otherwise in this process, one item at a time.
    run_pid is this process's id for local workers (they leave when it dies), None elsewhere."""
    if cluster:
        yield from _on_cluster(connect(cluster), cluster, function, shared, items)
        return
    if jobs == 1:
        yield from (function(shared, item, None) for item in items)
        return
    yield from Parallel(n_jobs=jobs, return_as="generator")(
        delayed(function)(shared, item, os.getpid()) for item in items)


def _on_cluster(client: Any, address: str, function: Callable[..., T], shared: Any,
                items: Iterable[Any]) -> Iterator[T]:
    from distributed.client import FutureCancelledError

    workers = max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
    window = 2 * workers
    if address not in _scattered or _scattered[address][0] is not shared:
        _scattered.pop(address, None)  # the earlier data's future is released on the workers
        _scattered[address] = (shared, client.scatter(shared, broadcast=True, hash=False))
    shared_future = _scattered[address][1]
    pending: deque = deque()
    source = iter(items)
    try:
        while True:
            while len(pending) < window:
                item = next(source, _END)
                if item is _END:
                    break
                pending.append(client.submit(function, shared_future, item, None, pure=False))
            if not pending:
                return
            future = pending.popleft()
            try:
                yield future.result()
            except (OSError, TimeoutError, FutureCancelledError) as error:
                raise ClusterError(f"The Dask cluster at {address} failed during the run ({type(error).__name__}: "
                                   f"{error}). Progress up to the last stored result is saved; run the same command "
                                   "again, or without --cluster.") from error
            except Exception as error:
                if type(error).__name__ == "KilledWorker":
                    raise ClusterError(f"The Dask cluster at {address} lost the workers that ran a task several "
                                       "times (distributed's allowed-failures). Progress up to the last stored "
                                       "result is saved; check the workers' memory and logs and run again.") from error
                raise
    finally:
        for future in pending:
            future.cancel()
