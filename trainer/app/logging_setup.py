"""The full story of a run goes to logs/training.log; the console only shows short lines.

A night-long run that fails is diagnosed the next morning from this file, so it gets everything
at DEBUG with timestamps and tracebacks, rotates instead of filling the disk, and is UTF-8 so
that no symbol name or path can break it.
"""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

LOG_NAME = "training.log"
MAX_BYTES = 5 * 1024 * 1024
BACKUP_COUNT = 5
HANDLER_NAME = "trainer-file"
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# Libraries whose DEBUG chatter (font searches, HTTP connections, JIT passes) would bury the
# trainer's own lines; --verbose lets it through.
NOISY_LOGGERS = ("matplotlib", "PIL", "urllib3", "yfinance", "peewee", "numba", "asyncio", "shap")


def setup_logging(log_dir: Path, *, verbose: bool = False) -> Path:
    """Send every log record to a rotating UTF-8 file in log_dir and return its path.

    Idempotent: calling it again (another log_dir, a test) replaces its handler instead of adding
    a second one. No console handler on purpose: console.py owns the terminal. Python warnings
    are logged too, so library deprecation noise lands in the file instead of on the console.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / LOG_NAME
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)
        handler.close()
    handler = RotatingFileHandler(log_path, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT,
                                  encoding="utf-8", delay=True)
    handler.set_name(HANDLER_NAME)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
    logging.captureWarnings(True)
    return log_path
