"""Giving memory that a fit freed back to the operating system.

glibc's allocator keeps freed memory for reuse instead of returning it, in one heap per thread
that allocated it (the boosters' OpenMP threads each have theirs). After a fit the process then
holds what the fit needed at its peak: measured in one process fitting xgboost, lightgbm, sklearn's
histogram booster and the logistic regression one after the other on 300,000 x 63 rows, 261 MiB
stayed resident after every model was deleted, and 9 MiB after malloc_trim. At 2,400 symbols
that held memory, not the models, set the run's peak. Dask's workers trim the same way.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)
_libc: list = []  # [] not looked up yet, [None] no glibc here, [CDLL]


def give_back_freed_memory() -> bool:
    """Return freed heap memory to the system (glibc's malloc_trim); True when it ran. Elsewhere
    (macOS, Windows, musl) there is nothing to call and the allocator does its own returning."""
    if not _libc:
        _libc.append(_glibc())
    if _libc[0] is None:
        return False
    _libc[0].malloc_trim(0)
    return True


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - musl's libc.so.6 (if any) has no malloc_trim
    except (OSError, AttributeError) as error:
        log.debug("memory: malloc_trim is not available (%s); freed memory is left to the allocator", error)
        return None
    return libc
