"""The one place that writes to the terminal: short lines, tables and progress bars.

A predecessor died after an hour of work printing a check mark to a Windows cp1252 console, so
nothing here may raise on a character the output cannot encode: the streams replace what they
cannot encode, glyphs fall back to ASCII, and rich draws ASCII boxes and bars on such outputs.
Details belong in logs/training.log (see logging_setup.py), not here.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

# name -> (Unicode glyph, ASCII fallback)
GLYPHS: dict[str, tuple[str, str]] = {
    "check": ("\u2713", "OK"),
    "cross": ("\u2717", "X"),
    "arrow": ("\u2192", "->"),
    "bullet": ("\u2022", "*"),
    "ellipsis": ("\u2026", "..."),
}

_consoles: dict[str, Console] = {}


def get_console() -> Console:
    """The process's console on stdout, created once so every part shares its settings."""
    if "stdout" not in _consoles:
        _forgive_unencodable_output()
        _consoles["stdout"] = _new_console(file=None)
    return _consoles["stdout"]


def guard_streams() -> None:
    """Called first by every entry point: unencodable characters print as '?', and a closed pipe
    or terminal ends the output, never the program (see _SurvivesClosedPipe)."""
    _forgive_unencodable_output()


def keep_stdout_for_data() -> None:
    """Send progress lines and tables to stderr from now on: stdout carries a machine-readable
    document (--json), and nothing else may be mixed into it."""
    _consoles["stdout"] = _get_error_console()


def glyph(name: str) -> str:
    """The symbol `name` (see GLYPHS) if stdout can show it, else its ASCII stand-in."""
    return _glyph_for(get_console(), name)


def make_progress(console: Console, *, transient: bool = False) -> Progress:
    """A progress bar with description, bar, done/total, rate, elapsed time and ETA.

    On a pipe or file (CI, logs) rich draws nothing while running and prints the final state
    once, so no cursor-control codes end up in the output. On a non-UTF output the bar is ASCII.
    """
    return Progress(
        TextColumn("{task.description}", style="progress.description", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA", style="progress.remaining", markup=False),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Print a table; cells are shown literally (a '[' in a symbol name is not markup)."""
    rows = [list(row) for row in rows]
    table = Table(title=Text(title), title_style="bold")
    for index, column in enumerate(columns):
        numeric = bool(rows) and all(isinstance(row[index], int | float) for row in rows)
        table.add_column(Text(column), justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(cell if isinstance(cell, Text) else Text(str(cell)) for cell in row))
    get_console().print(table)


def info(message: str) -> None:
    """A progress line for the user, on stdout."""
    console = get_console()
    console.print(Text.assemble((_glyph_for(console, "arrow"), "cyan"), " ", message))


def warn(message: str) -> None:
    """Something the user should know about that did not stop the run, on stderr."""
    console = _get_error_console()
    console.print(Text.assemble(("Warning:", "bold yellow"), " ", message))


def error(message: str) -> None:
    """Why the run stopped, in one or two lines (the traceback goes to the log), on stderr."""
    console = _get_error_console()
    console.print(Text.assemble((f"{_glyph_for(console, 'cross')} Error:", "bold red"), " ", message))


class _RateColumn(ProgressColumn):
    """Items per second, or per minute when slower: symbols take 0.2 s, models minutes."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("-/s", style="progress.data.speed")
        if speed >= 1:
            return Text(f"{speed:.1f}/s", style="progress.data.speed")
        return Text(f"{speed * 60:.1f}/min", style="progress.data.speed")


class _CurrentStderr(io.TextIOBase):
    """Whatever sys.stderr is at the moment of writing.

    While a progress bar is live on a terminal, rich swaps in a proxy for sys.stderr that prints
    above the bar. Following the swap keeps a warning from tearing the bar apart; a console bound
    to the original stream (or one that unwraps the proxy, as rich's own does) would not.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()

    def fileno(self) -> int:
        return sys.stderr.fileno()

    @property
    def encoding(self) -> str:
        return sys.stderr.encoding


def _get_error_console() -> Console:
    """Warnings and errors go to stderr so that stdout stays clean for --json and pipes."""
    if "stderr" not in _consoles:
        _forgive_unencodable_output()
        _consoles["stderr"] = _new_console(file=_CurrentStderr())
    return _consoles["stderr"]


def _new_console(file: io.TextIOBase | None) -> Console:
    # safe_box: no box characters that legacy Windows consoles cannot draw. legacy_windows is
    # auto-detected (old conhost without VT codes gets the win32 API instead of escape codes).
    # emoji=False: a message like "AAPL:x:" must not become an emoji the console cannot encode.
    return Console(file=file, safe_box=True, legacy_windows=None, emoji=False)


def _glyph_for(console: Console, name: str) -> str:
    fancy, plain = GLYPHS[name]
    if console.legacy_windows:  # old console fonts lack these; match rich's ASCII bars there
        return plain
    try:
        fancy.encode(console.encoding)
    except (UnicodeEncodeError, LookupError):  # LookupError: an encoding Python does not know
        return plain
    return fancy


def _forgive_unencodable_output() -> None:
    """Make stdout and stderr write '?' for what their encoding lacks instead of raising.

    Glyphs and rich already avoid such characters; this covers the rest (a symbol name, a path,
    rich's own ellipsis when it truncates a cell).
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")
    if not isinstance(sys.stdout, _SurvivesClosedPipe) and sys.stdout is not None:
        sys.stdout = _SurvivesClosedPipe(sys.stdout)
    if not isinstance(sys.stderr, _SurvivesClosedPipe) and sys.stderr is not None:
        sys.stderr = _SurvivesClosedPipe(sys.stderr)


class _SurvivesClosedPipe:
    """A stream that keeps working when its reader goes away.

    `run_training.py | head -1`, or a closed terminal, turns every later write into a
    BrokenPipeError (or an OSError): in the middle of a backtest that would stop the run for
    nothing. The first such write points the file descriptor at the null device, logs it once,
    and the run goes on; everything is still in logs/training.log."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self._closed = False

    def _reader_gone(self, error: OSError) -> None:
        if self._closed:
            return
        self._closed = True
        import logging
        import os

        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass  # no descriptor to redirect (a StringIO in tests): writes are dropped below
        # info, not warning: without a log file (check_checkpoint.py) a warning would be printed
        # to stderr by logging's last resort, the very stream that may be gone
        logging.getLogger(__name__).info("the output stream was closed (%s); the run goes on, "
                                         "messages continue in this log only", error)

    def write(self, text: str) -> int:
        if self._closed:
            return len(text)
        try:
            return self._stream.write(text)
        except (BrokenPipeError, ConnectionResetError) as error:
            self._reader_gone(error)
            return len(text)
        except OSError as error:
            if error.errno not in (5, 32):  # EIO: the terminal is gone; EPIPE
                raise
            self._reader_gone(error)
            return len(text)

    def flush(self) -> None:
        if self._closed:
            return
        try:
            self._stream.flush()
        except (BrokenPipeError, ConnectionResetError) as error:
            self._reader_gone(error)
        except OSError as error:
            if error.errno not in (5, 32):
                raise
            self._reader_gone(error)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
