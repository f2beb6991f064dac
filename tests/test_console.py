"""The terminal must never kill a run: console.py under cp1252, ASCII and UTF-8 outputs, on pipes
and on a terminal; and its other half, logging_setup.py, which keeps details off the terminal."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from logging.handlers import RotatingFileHandler
from pathlib import Path

import pytest

from trainer import console
from trainer.app.logging_setup import HANDLER_NAME, NOISY_LOGGERS, setup_logging

PROJECT_DIR = Path(__file__).resolve().parents[1]

# Everything console.py can print, with characters no cp1252 or ASCII console can encode.
SCRIPT = """\
from trainer import console
out = console.get_console()
out.print("glyphs: " + " ".join(f"{name}={console.glyph(name)}" for name in console.GLYPHS))
console.print_table("Models \\u2713", ["model", "auc", "note"],
                    [["rf", 0.61, "Z\\u00fcrich \\u2192 \\u4e2d\\u6587"], ["svm", 0.5, "[bold]x[/] :x:"]])
with console.make_progress(out) as progress:
    task = progress.add_task("Backtest \\u2713", total=3)
    for _ in range(3):
        console.warn("mid-progress warning \\u2717")
        progress.advance(task)
console.info("info \\u2713")
console.warn("warn \\u2192")
console.error("error \\u2717")
"""


def run_script(encoding: str, **extra_env: str) -> subprocess.CompletedProcess[bytes]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("TTY_COMPATIBLE", "FORCE_COLOR", "NO_COLOR", "COLUMNS", "PYTHONUTF8")}
    env.update(PYTHONIOENCODING=encoding, PYTHONPATH=str(PROJECT_DIR), COLUMNS="100", **extra_env)
    return subprocess.run([sys.executable, "-c", SCRIPT], cwd=PROJECT_DIR, env=env,
                          capture_output=True, timeout=60)


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252", "ascii"])
def test_prints_everything_without_crashing(encoding: str) -> None:
    result = run_script(encoding)
    stderr = result.stderr.decode(encoding)
    assert result.returncode == 0, stderr
    assert "UnicodeEncodeError" not in stderr and "Traceback" not in stderr
    stdout = result.stdout.decode(encoding)
    assert "3/3" in stdout and "ETA" in stdout  # the progress bar's final state
    assert "[bold]x[/] :x:" in stdout  # data is shown literally, not as markup or emoji
    assert "Error: error" in stderr and "Warning: warn" in stderr


def test_pipes_get_no_cursor_control_codes() -> None:
    result = run_script("utf-8")
    assert b"\x1b" not in result.stdout and b"\x1b" not in result.stderr
    assert result.stdout.count(b"Backtest") == 1  # no refresh frames, only the final state


def test_ascii_output_uses_ascii_fallbacks() -> None:
    result = run_script("ascii")
    assert max(result.stdout + result.stderr) < 128
    stdout = result.stdout.decode("ascii")
    assert "check=OK cross=X arrow=-> bullet=* ellipsis=..." in stdout
    assert "+-" in stdout and "---" in stdout  # ASCII table box and progress bar
    assert "-> info" in stdout and "X Error: error" in result.stderr.decode("ascii")


def test_cp1252_uses_what_cp1252_has() -> None:
    stdout = run_script("cp1252").stdout.decode("cp1252")
    assert "check=OK cross=X arrow=-> bullet=\u2022 ellipsis=\u2026" in stdout
    assert "Z\u00fcrich" in stdout  # encodable text survives; the rest becomes '?'
    assert "\u2501" not in stdout  # rich's heavy bar needs UTF-8


def test_utf8_output_uses_the_real_glyphs() -> None:
    stdout = run_script("utf-8").stdout.decode("utf-8")
    assert "check=\u2713 cross=\u2717 arrow=\u2192 bullet=\u2022 ellipsis=\u2026" in stdout
    assert "\u2501" in stdout


def test_warning_during_a_live_bar_prints_above_it_on_a_terminal() -> None:
    """On a terminal rich redraws the bar; a warning written past it would tear the bar apart."""
    result = run_script("cp1252", TTY_COMPATIBLE="1")
    assert result.returncode == 0, result.stderr.decode("cp1252")
    stdout, stderr = result.stdout.decode("cp1252"), result.stderr.decode("cp1252")
    assert stdout.count("mid-progress warning") == 3 and "mid-progress" not in stderr
    assert "Warning:" in stderr  # outside the bar, warnings still go to stderr


def test_console_is_one_per_process() -> None:
    assert console.get_console() is console.get_console()
    assert console.get_console().safe_box


@pytest.mark.parametrize(("encoding", "expected"), [("ascii", "OK"), ("cp1252", "OK"), ("utf-8", "\u2713")])
def test_glyph_follows_the_current_stdout(encoding: str, expected: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding=encoding))
    assert console.glyph("check") == expected


def test_glyph_is_ascii_on_a_legacy_windows_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console.get_console(), "legacy_windows", True)
    assert [console.glyph(name) for name in console.GLYPHS] == [plain for _, plain in console.GLYPHS.values()]


def test_table_right_aligns_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    console.print_table("t", ["name", "value"], [["a", 1.5], ["bb", 10]])
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if " a " in line)
    assert "  1.5 " in row  # padded on the left: right-aligned under "value"


# --- logging_setup: details go to logs/training.log, never to the terminal ---------------------


@pytest.fixture
def clean_root() -> Iterator[logging.Logger]:
    """Undo setup_logging so that other tests see the logging they expect."""
    root = logging.getLogger()
    level = root.level
    yield root
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    logging.captureWarnings(False)


def our_handlers(root: logging.Logger) -> list[logging.Handler]:
    return [handler for handler in root.handlers if handler.get_name() == HANDLER_NAME]


def test_log_file_is_rotating_utf8_at_debug(tmp_path: Path, clean_root: logging.Logger) -> None:
    path = setup_logging(tmp_path / "logs")
    assert path == tmp_path / "logs" / "training.log"
    (handler,) = our_handlers(clean_root)
    assert isinstance(handler, RotatingFileHandler)
    assert handler.maxBytes == 5 * 1024 * 1024 and handler.backupCount == 5
    assert handler.encoding == "utf-8" and handler.level == logging.DEBUG
    assert clean_root.level == logging.DEBUG


def test_setup_twice_keeps_one_handler(tmp_path: Path, clean_root: logging.Logger) -> None:
    setup_logging(tmp_path / "first")
    second = setup_logging(tmp_path / "second", verbose=True)
    (handler,) = our_handlers(clean_root)
    assert Path(handler.baseFilename) == second
    assert logging.getLogger("matplotlib").level == logging.NOTSET  # verbose lets libraries through


def test_log_has_details_and_the_terminal_none(tmp_path: Path, clean_root: logging.Logger,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    path = setup_logging(tmp_path)
    log = logging.getLogger("trainer.example")
    log.debug("debug line \u2713 Z\u00fcrich")
    try:
        raise ValueError("bad price")
    except ValueError:
        log.exception("backtest failed")
    logging.getLogger("matplotlib.font_manager").debug("font search noise")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
    text = path.read_text(encoding="utf-8")
    assert "DEBUG" in text and "debug line \u2713 Z\u00fcrich" in text
    assert "Traceback" in text and "ValueError: bad price" in text
    assert "old API" in text and "font search noise" not in text
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
