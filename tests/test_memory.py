"""Freed memory goes back to the system after a fit (glibc only)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from trainer.ml.memory import _glibc, give_back_freed_memory


def _resident_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as lines:
        return next(int(line.split()[1]) for line in lines if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux") or _glibc() is None,
                    reason="malloc_trim is glibc's (Linux); elsewhere there is nothing to trim")
def test_freed_small_allocations_are_given_back() -> None:
    # 300,000 small arrays (1 KiB each, from the heap, not mmap), then every one but each 1000th
    # freed: the heap is full of holes that glibc keeps for reuse until it is trimmed.
    arrays = [np.ones(128) for _ in range(300_000)]
    kept = arrays[::1000]
    del arrays
    before = _resident_mib()
    assert give_back_freed_memory() is True
    after = _resident_mib()
    assert before - after > 100, f"resident {before:.0f} MiB before the trim, {after:.0f} MiB after"
    assert len(kept) == 300


def test_it_is_safe_to_call_anywhere() -> None:
    assert give_back_freed_memory() in (True, False)
    assert give_back_freed_memory() == (sys.platform.startswith("linux") and _glibc() is not None)
