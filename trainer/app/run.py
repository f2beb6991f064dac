"""The shell around one training run: the lock, the log, keep-awake, and what each way of ending
means as an exit code and a message. The pipeline itself (trainer/pipeline.py) knows none of it.

Ctrl+C and SIGTERM raise KeyboardInterrupt wherever the program is; the pipeline's units of work
are atomic, so this only saves the checkpoint and says how to resume.
"""

from __future__ import annotations

import errno
import logging
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from backend.store import StoreError
from backend.universe import UniverseError
from trainer import console
from trainer.app import exit_codes
from trainer.app.keep_awake import keep_awake
from trainer.app.logging_setup import setup_logging
from trainer.app.run_lock import AlreadyRunning, RunLock, unwritable
from trainer.app.verdict import show_verdict
from trainer.config import ConfigError
from trainer.options import RunOptions
from trainer.paths import WorkPaths
from trainer.pipeline import DataError, execute, progress_line
from trainer.run_context import ConfigMismatch, open_run
from trainer.workers import ClusterError, close_clusters

log = logging.getLogger(__name__)


def refuse(what: str, error: BaseException, code: int) -> int:
    """Log why a command stopped, show the user the message (never a traceback), return the code."""
    log.error("%s: %s", what, error)
    console.error(str(error))
    return code


def disk_full(error: BaseException) -> bool:
    """A write failed because the disk (or the user's quota, or the file size limit) is full."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return True
    return isinstance(error, sqlite3.Error) and "full" in str(error).lower()


def refuse_disk_full(where: Path, error: BaseException) -> int:
    log.error("disk full: %s", error)
    console.error(f"The disk holding {where} is full ({error}). Free some space there and run the same "
                  "command again: everything saved so far is kept, and the run resumes where it stopped.")
    return exit_codes.DATA_ERROR


def _database_vanished(context) -> int:
    """The database file was deleted while the run worked: on Linux and macOS the run goes on
    writing into the deleted file, so a clean end would be a lie; say what happened instead."""
    log.error("the database %s disappeared during the run", context.paths.database)
    console.error(f"The database {context.paths.database} was deleted while the run was working, so what it "
                  "wrote is lost. Run the same command again: the run starts again from the prices.")
    return exit_codes.DATA_ERROR


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_stop_handlers() -> None:
    """SIGTERM, SIGHUP (a closed terminal) and SIGBREAK (Windows, a closed console) behave like Ctrl+C.
    SIGINT itself too, even when the program was started with it ignored (a shell script's
    'command &' starts it so, and Python then keeps ignoring it): 'kill -INT' must save and stop."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if hasattr(signal, "SIGBREAK"):
        signal.signal(signal.SIGBREAK, _raise_interrupt)
    if hasattr(signal, "SIGHUP"):  # the terminal was closed (Linux, macOS): stop cleanly, say so in the log
        signal.signal(signal.SIGHUP, _raise_interrupt)


def resume_command() -> str:
    """The command that resumes, quoted so that paths with spaces survive copy and paste."""
    words = ["python", "run_training.py", *sys.argv[1:]]
    return subprocess.list2cmdline(words) if os.name == "nt" else shlex.join(words)


def refuse_unwritable(root: Path) -> int | None:
    """CONFIG_ERROR with one clear sentence when the work folder cannot be written, else None."""
    problem = unwritable(root / "checkpoints")
    if problem is None:
        return None
    console.error(f"The work folder {root} cannot be written ({problem}). Run from a folder you can write to "
                  "(copy the project there), or give --workdir a writable folder. Nothing was changed.")
    return exit_codes.CONFIG_ERROR


def run_pipeline(options: RunOptions) -> int:
    paths = WorkPaths.at(options.workdir)
    refused = refuse_unwritable(paths.root)
    if refused is not None:
        return refused
    log_path = setup_logging(paths.logs)
    install_stop_handlers()
    log.info("=== run_training.py %s", " ".join(sys.argv[1:]))
    try:
        with RunLock(paths.checkpoints):
            return _run_locked(options, log_path)
    except AlreadyRunning as error:
        console.error(str(error))
        return exit_codes.ALREADY_RUNNING


def _run_locked(options: RunOptions, log_path: Path) -> int:
    try:
        context = open_run(options)
    except ConfigMismatch as error:
        console.error(str(error))
        return exit_codes.CONFIG_ERROR
    except (ConfigError, UniverseError) as error:
        return refuse("configuration error", error, exit_codes.CONFIG_ERROR)
    except StoreError as error:
        if disk_full(error.__cause__ or error):
            return refuse_disk_full(WorkPaths.at(options.workdir).root, error.__cause__ or error)
        return refuse("database error", error, exit_codes.DATA_ERROR)
    except (OSError, sqlite3.Error) as error:
        if not disk_full(error):
            raise
        return refuse_disk_full(WorkPaths.at(options.workdir).root, error)
    except KeyboardInterrupt:
        console.warn("Stopped before any work started; nothing changed.")
        return exit_codes.INTERRUPTED
    try:
        with keep_awake(not context.config.run.allow_sleep):
            execute(context)
        if not context.paths.database.exists():
            return _database_vanished(context)
        show_verdict(context)
    except KeyboardInterrupt:
        log.warning("interrupted during phase %s", context.state["current_phase"])
        context.checkpoint.save()
        console.warn(f"Stopped. Progress is saved ({progress_line(context)}).")
        console.info(f"Run the same command again to resume: {resume_command()}")
        return exit_codes.INTERRUPTED
    except DataError as error:
        return refuse("data error", error, exit_codes.DATA_ERROR)
    except ClusterError as error:
        return refuse("cluster error", error, exit_codes.DATA_ERROR)
    except StoreError as error:
        if not context.paths.database.exists():
            return _database_vanished(context)
        if disk_full(error.__cause__ or error):
            return refuse_disk_full(context.paths.root, error.__cause__ or error)
        return refuse("database error", error, exit_codes.DATA_ERROR)
    except Exception as error:
        if not context.paths.database.exists():
            log.exception("error after the database disappeared")
            return _database_vanished(context)
        if disk_full(error) or disk_full(error.__cause__ or error):
            log.exception("disk full in phase %s", context.state["current_phase"])
            return refuse_disk_full(context.paths.root, error)
        log.exception("unexpected error in phase %s", context.state["current_phase"])
        console.error(f"Unexpected error in phase '{context.state['current_phase']}': "
                      f"{type(error).__name__}: {error}")
        console.info(f"The full traceback is in {log_path}. Progress up to the last finished symbol "
                     "or model is saved; fix the cause and run again to resume.")
        return exit_codes.UNEXPECTED_ERROR
    finally:
        close_clusters()
        context.connection.close()
    return exit_codes.COMPLETE


