"""One training process per work directory, and a way for other commands to see it running.

An OS file lock (fcntl on POSIX, msvcrt on Windows) is released by the operating system when
the process dies, even by SIGKILL or a power cut, so a stale lock can never block the user.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType

LOCK_NAME = ".run.lock"
LOCK_ATTEMPTS = 10
LOCK_RETRY_SECONDS = 0.1


class AlreadyRunning(RuntimeError):
    """Another run_training.py holds the lock of this work directory."""


def _try_lock(handle) -> bool:
    if os.name == "nt":
        import msvcrt

        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class RunLock:
    """Context manager held for the whole run; raises AlreadyRunning if another run holds it."""

    def __init__(self, folder: Path, name: str = LOCK_NAME) -> None:
        self.path = Path(folder) / name
        self._handle = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        # check_checkpoint.py probes the lock for an instant; do not mistake that for a run.
        for _ in range(LOCK_ATTEMPTS):
            if _try_lock(handle):
                break
            time.sleep(LOCK_RETRY_SECONDS)
        else:
            handle.close()
            raise AlreadyRunning(f"Another training run is already working in {self.path.parent.parent} "
                                 f"(it holds {self.path.parent.name}/{self.path.name}). Watch it with "
                                 "'python check_checkpoint.py' or stop it before starting another.")
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._handle is not None:
            self._handle.close()  # closing releases the lock on both platforms
            self._handle = None


def is_running(folder: Path) -> bool:
    """True while some process holds the run lock of this checkpoints folder.

    Opens the lock file for reading only: a status check must work in a folder it cannot write
    (a read-only share, a copy on a CD); a file it cannot even read is taken as 'not running'."""
    path = Path(folder) / LOCK_NAME
    if not path.exists():
        return False
    try:
        with open(path, encoding="utf-8") as handle:
            return not _try_lock(handle)
    except OSError:
        return False


def unwritable(folder: Path) -> str | None:
    """Why folder (created if missing) cannot be written, or None: checked before a command that
    writes starts, so a read-only folder gets one clear sentence instead of a traceback."""
    probe = Path(folder) / f".write-test-{os.getpid()}"
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        return error.strerror or str(error)
    return None
