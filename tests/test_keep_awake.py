"""keep_awake on any OS: a fake kernel32 records the exact SetThreadExecutionState flags."""

from __future__ import annotations

import logging
import sys

import pytest

from trainer.app.keep_awake import ES_CONTINUOUS, ES_SYSTEM_REQUIRED, keep_awake

# The documented Windows values; a typo here would silently stop holding the machine awake.
AWAKE = 0x80000001
RELEASE = 0x80000000


class FakeKernel32:
    def __init__(self, result: int = RELEASE) -> None:
        self.calls: list[int] = []
        self.result = result  # the previous state on success, 0 on failure

    def SetThreadExecutionState(self, flags: int) -> int:  # noqa: N802 - the Windows name
        self.calls.append(flags)
        return self.result


def test_flags_are_the_windows_constants() -> None:
    assert ES_CONTINUOUS | ES_SYSTEM_REQUIRED == AWAKE
    assert ES_CONTINUOUS == RELEASE


def test_holds_on_enter_and_releases_on_exit(caplog: pytest.LogCaptureFixture) -> None:
    kernel32 = FakeKernel32()
    with caplog.at_level(logging.INFO, logger="trainer.app.keep_awake"):
        with keep_awake(True, platform="win32", kernel32=kernel32) as held:
            assert held is True
            assert kernel32.calls == [AWAKE]
    assert kernel32.calls == [AWAKE, RELEASE]
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "ES_CONTINUOUS | ES_SYSTEM_REQUIRED" in messages and "sleep allowed again" in messages


@pytest.mark.parametrize("exception", [RuntimeError("boom"), KeyboardInterrupt()])
def test_releases_when_the_run_fails_or_is_interrupted(exception: BaseException) -> None:
    kernel32 = FakeKernel32()
    with pytest.raises(type(exception)):
        with keep_awake(platform="win32", kernel32=kernel32):
            raise exception
    assert kernel32.calls == [AWAKE, RELEASE]


def test_allow_sleep_makes_no_call(caplog: pytest.LogCaptureFixture) -> None:
    kernel32 = FakeKernel32()
    with caplog.at_level(logging.INFO, logger="trainer.app.keep_awake"):
        with keep_awake(False, platform="win32", kernel32=kernel32) as held:
            assert held is False
    assert kernel32.calls == []
    assert "--allow-sleep" in caplog.text


def test_other_platforms_make_no_call() -> None:
    kernel32 = FakeKernel32()
    with keep_awake(True, platform="linux", kernel32=kernel32) as held:
        assert held is False
    assert kernel32.calls == []


def test_runs_on_this_machine_without_injection() -> None:
    """The default platform is the real one; off Windows this must not reach for ctypes.windll."""
    with keep_awake(True) as held:
        assert held is (sys.platform == "win32")


def test_failed_call_is_logged_and_not_undone(caplog: pytest.LogCaptureFixture) -> None:
    kernel32 = FakeKernel32(result=0)
    with caplog.at_level(logging.WARNING, logger="trainer.app.keep_awake"):
        with keep_awake(True, platform="win32", kernel32=kernel32) as held:
            assert held is False
    assert kernel32.calls == [AWAKE]
    assert "SetThreadExecutionState failed" in caplog.text
