"""The shell around one signals run: the log, a lock of its own, and what each ending means as an
exit code and a message. The work itself is trainer/signals/generate.py."""

from __future__ import annotations

import json
import logging
import sys

from backend.store import StoreError
from backend.universe import UniverseError
from trainer import console
from trainer.app import exit_codes
from trainer.app.logging_setup import setup_logging
from trainer.app.run import refuse, refuse_unwritable
from trainer.app.run_lock import AlreadyRunning, RunLock
from trainer.options import SignalOptions
from trainer.paths import WorkPaths

log = logging.getLogger(__name__)
LOCK_NAME = ".signals.lock"


def run_signals(options: SignalOptions) -> int:
    paths = WorkPaths.at(options.workdir)
    refused = refuse_unwritable(paths.root)
    if refused is not None:
        return refused
    log_path = setup_logging(paths.logs)
    if options.as_json:
        console.keep_stdout_for_data()
    log.info("=== generate_signals.py %s", " ".join(sys.argv[1:]))
    from trainer.signals.generate import ModelError, SignalsError, generate_signals, print_signals

    try:
        with RunLock(paths.root / "signals", name=LOCK_NAME):
            result = generate_signals(options)
    except AlreadyRunning as error:
        console.error(str(error).replace("training run", "signals run"))
        return exit_codes.ALREADY_RUNNING
    except ModelError as error:
        return refuse("model", error, exit_codes.NO_MODEL)
    except (SignalsError, UniverseError) as error:
        return refuse("signals", error, exit_codes.CONFIG_ERROR)
    except StoreError as error:
        return refuse("database error", error, exit_codes.DATA_ERROR)
    except KeyboardInterrupt:
        console.warn("Stopped. Files of earlier signals runs are whole; run again to make these signals.")
        return exit_codes.INTERRUPTED
    except Exception as error:
        log.exception("unexpected error while making signals")
        console.error(f"Unexpected error while making signals: {type(error).__name__}: {error}")
        console.info(f"The full traceback is in {log_path}. Nothing about training was changed.")
        return exit_codes.UNEXPECTED_ERROR
    for warning in result.warnings:
        console.warn(warning)
    if result.skipped:
        console.warn(f"{len(result.skipped)} symbol(s) skipped: " + "; ".join(
            f"{symbol}: {reason}" for symbol, reason in list(result.skipped.items())[:8])
            + (" ..." if len(result.skipped) > 8 else ""))
    if options.as_json:
        print(json.dumps({"as_of": str(result.as_of.date()), "model_version": result.model.version,
                          "promoted": result.model.promoted, "csv": str(result.csv_path),
                          "signals": result.rows.to_dict("records"), "skipped": result.skipped,
                          "warnings": result.warnings}, default=str))
    else:
        print_signals(result)
    log.info("signals for %s written: %s", result.as_of.date(), result.csv_path)
    return exit_codes.COMPLETE
