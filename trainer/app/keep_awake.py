"""Keep Windows from sleeping while a night-long run works; the display may still turn off.

Windows decides about sleep per thread: SetThreadExecutionState(ES_CONTINUOUS |
ES_SYSTEM_REQUIRED) holds the machine awake until the same thread clears it with ES_CONTINUOUS
or exits. It does not stop a closed lid, the power button or a chosen "Sleep".
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ES_CONTINUOUS = 0x80000000
ES_SYSTEM_REQUIRED = 0x00000001

log = logging.getLogger(__name__)


@contextmanager
def keep_awake(enabled: bool = True, *, platform: str | None = None,
               kernel32: Any = None) -> Iterator[bool]:
    """Hold off system sleep inside the block; yields whether it is held.

    A no-op when disabled (--allow-sleep) or off Windows. `platform` and `kernel32` are
    injectable so that the Windows path can be tested anywhere.
    """
    platform = sys.platform if platform is None else platform
    if not enabled:
        log.info("keep-awake: off (--allow-sleep); Windows may sleep during the run")
        yield False
        return
    if platform != "win32":
        log.debug("keep-awake: nothing to do on %s", platform)
        yield False
        return
    kernel32 = _windows_kernel32() if kernel32 is None else kernel32
    if not kernel32.SetThreadExecutionState(ES_CONTINUOUS | ES_SYSTEM_REQUIRED):
        log.warning("keep-awake: SetThreadExecutionState failed; Windows may sleep during the run")
        yield False
        return
    log.info("keep-awake: SetThreadExecutionState(ES_CONTINUOUS | ES_SYSTEM_REQUIRED); "
             "the computer stays awake until the run ends")
    try:
        yield True
    finally:
        kernel32.SetThreadExecutionState(ES_CONTINUOUS)
        log.info("keep-awake: SetThreadExecutionState(ES_CONTINUOUS); sleep allowed again")


def _windows_kernel32() -> Any:
    """kernel32 with SetThreadExecutionState typed as DWORD -> DWORD (the flags use bit 31)."""
    import ctypes

    kernel32 = ctypes.windll.kernel32
    kernel32.SetThreadExecutionState.argtypes = [ctypes.c_uint32]
    kernel32.SetThreadExecutionState.restype = ctypes.c_uint32
    return kernel32
