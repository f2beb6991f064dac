"""Named moments where the kill-and-resume tests make the process die for real.

Timing a SIGKILL from outside cannot reliably land between a temp file's fsync and its rename,
or between a symbol's commit and its checkpoint entry. So the tests set
TRAINER_CRASH_AT=<point>:<n> and the process SIGKILLs itself the n-th time it passes that point.
Without the variable this is a dictionary lookup and nothing else.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV_VAR = "TRAINER_CRASH_AT"
_passes: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """Die by SIGKILL (no cleanup, like a power cut) if the test asked for it here."""
    wanted = os.environ.get(ENV_VAR)
    if not wanted:
        return
    point, _, count = wanted.rpartition(":")
    if point != name:
        return
    _passes[name] += 1
    if _passes[name] == int(count):
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))
