"""Worker processes (--jobs): how many, and that they never outlive the run.

The backtest computes symbols and the training fits model folds in joblib's worker processes;
this process alone writes the database and the checkpoint, in a fixed order, so --jobs never
changes what is stored.
"""

from __future__ import annotations

import os
import threading
import time

from trainer import console

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
