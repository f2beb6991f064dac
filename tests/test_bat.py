"""run_training.bat and run_signals.bat cannot run here, so their text is checked: every step of
the double-click story is present, every path ends at `pause`, and their explanations match
trainer/exit_codes.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trainer.app import exit_codes

PROJECT = Path(__file__).resolve().parents[1]
# (bat file, the label that runs the program, the program, the exit code meanings it explains)
BATS = {"run_training.bat": ("run_training", "run_training.py", exit_codes.MEANING),
        "run_signals.bat": ("run_signals", "generate_signals.py", exit_codes.SIGNALS_MEANING)}
START = "<start>"
GOTO = re.compile(r"(?:^|\s)goto\s+:?(\w+)", re.IGNORECASE)
CMD_SPECIAL = set("%&|<>^")


@pytest.fixture(scope="module", params=sorted(BATS))
def bat(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def raw(bat: str) -> bytes:
    return (PROJECT / bat).read_bytes()


@pytest.fixture(scope="module")
def lines(raw: bytes) -> list[str]:
    return [line.strip() for line in raw.decode("ascii").split("\r\n")]


def statements(lines: list[str]) -> list[str]:
    """The lines cmd executes: no blanks, comments or the leading @echo off."""
    return [line for line in lines if line and not line.lower().startswith(("rem ", "rem\t", "::"))]


def blocks(lines: list[str]) -> dict[str, list[str]]:
    """Statements grouped under the label that precedes them (START before the first label)."""
    grouped: dict[str, list[str]] = {START: []}
    current = START
    for line in statements(lines):
        if line.startswith(":"):
            current = line[1:].lower()
            grouped[current] = []
        else:
            grouped[current].append(line)
    return grouped


def is_echo(line: str) -> bool:
    return line.lower().startswith(("echo ", "echo.", "@echo"))


def command_index(lines: list[str], pattern: str) -> int:
    """Index in statements() of the one command line matching `pattern` (a regex)."""
    found = [index for index, line in enumerate(statements(lines))
             if not is_echo(line) and re.search(pattern, line, re.IGNORECASE)]
    assert len(found) == 1, f"expected one command matching {pattern!r}, found {len(found)}"
    return found[0]


def test_crlf_line_endings_only(raw: bytes) -> None:
    # LF-only batch files make cmd miss labels and split lines at odd places.
    assert raw.count(b"\n") == raw.count(b"\r\n") > 0
    assert raw.count(b"\r") == raw.count(b"\r\n")
    assert raw.endswith(b"\r\n")


def test_ascii_only(raw: bytes) -> None:
    # cmd reads the file in the console's OEM code page; anything beyond ASCII comes out garbled.
    raw.decode("ascii")


def test_comments_hold_no_characters_cmd_acts_on(lines: list[str]) -> None:
    comments = [line for line in lines if line.lower().startswith("rem ")]
    assert comments
    assert not [line for line in comments if CMD_SPECIAL & set(line)]


def test_starts_in_its_own_folder_with_quotes(lines: list[str]) -> None:
    assert lines[0].lower() == "@echo off"
    setlocal = command_index(lines, r"^setlocal\b")
    cd = command_index(lines, r'^cd /d "%~dp0"')
    assert setlocal < cd
    assert command_index(lines, r'^pushd "%~dp0"') > cd  # network shares cannot be cd'ed into


def test_finds_python_with_py_launcher_first_then_python(lines: list[str]) -> None:
    launcher = command_index(lines, r"^py -3 trainer\\bootstrap\.py --check-python\b")
    path_python = command_index(lines, r"^python trainer\\bootstrap\.py --check-python\b")
    assert launcher < path_python


def test_explains_how_to_install_python_when_none_fits(lines: list[str]) -> None:
    text = "\n".join(blocks(lines)["no_python"])
    assert "https://www.python.org/downloads/" in text
    assert '"Add python.exe to PATH"' in text
    # says what is too old with --version only: a Python older than 3.6 cannot even parse bootstrap.py
    assert "if defined TOO_OLD %TOO_OLD% --version" in text and "bootstrap" not in text


def test_sets_up_the_venv_through_bootstrap_then_runs_with_all_arguments(lines: list[str], bat: str) -> None:
    setup = command_index(lines, r"^%PYTHON% trainer\\bootstrap\.py$")
    program = BATS[bat][1].replace(".", r"\.")
    run = command_index(lines, rf'^"\.venv\\Scripts\\python\.exe" {program} %\*$')
    assert setup < run
    failure = "\n".join(blocks(lines)["setup_environment"]).lower()
    assert "internet" in failure and "delete the .venv folder" in failure
    assert "path too long" in failure and "python too new" in failure, "not every failure is the network"


def test_a_folder_dropped_onto_the_file_becomes_the_prices_folder(lines: list[str], bat: str) -> None:
    program = BATS[bat][1].replace(".", r"\.")
    start = "\n".join(blocks(lines)[START])
    assert 'if not "%~2"=="" goto after_drop' in start and 'if exist "%~1\\*" set "PRICES_FOLDER=%~f1"' in start
    command_index(lines, rf'^"\.venv\\Scripts\\python\.exe" {program} --prices-dir "%PRICES_FOLDER%"$')


def test_says_how_ctrl_c_keeps_the_window_explaining(lines: list[str], bat: str) -> None:
    run_block = "\n".join(blocks(lines)[BATS[bat][0]])
    assert '"Terminate batch job (Y/N)?" answer N' in run_block


def test_each_exit_code_is_read_right_after_its_command(lines: list[str]) -> None:
    program = statements(lines)
    commands = [index for index, line in enumerate(program)
                if re.match(r'^(cd|pushd|py|python|%PYTHON%|"\.venv\\\S+) ', line, re.IGNORECASE)]
    assert len(commands) == 7  # cd, pushd, py, python, bootstrap, the program with a dropped folder or not
    for index in commands:
        assert program[index + 1] == 'set "RC=%ERRORLEVEL%"', program[index]


def test_no_parenthesised_blocks(lines: list[str]) -> None:
    """Inside ( ... ) %RC% would expand before the block runs; the script uses goto instead."""
    opened = [line for line in statements(lines) if not is_echo(line) and line.endswith("(")]
    assert opened == []
    assert "enabledelayedexpansion" not in " ".join(lines).lower()


def test_every_goto_has_a_label(lines: list[str]) -> None:
    labels = set(blocks(lines))
    targets = {match.group(1).lower() for line in statements(lines) if not is_echo(line)
               for match in GOTO.finditer(line)}
    assert targets and targets <= labels


def test_explains_every_exit_code_with_the_documented_meaning(lines: list[str], bat: str) -> None:
    grouped = blocks(lines)
    label, _, meanings = BATS[bat]
    run_block = grouped[f"{label}_done"]
    for code, meaning in meanings.items():
        assert not CMD_SPECIAL & set(meaning), f"escape {meaning!r} before echoing it in the bat"
        branch = [line for line in run_block if line.startswith(f'if "%RC%"=="{code}" goto ')]
        assert len(branch) == 1, f"no branch for exit code {code}"
        label = GOTO.search(branch[0]).group(1).lower()
        assert f"echo Exit code {code}: {meaning}" in grouped[label]
    assert run_block[-1].lower().startswith("goto ")  # other codes get a generic explanation
    assert any("Exit code %RC%" in line for line in grouped[GOTO.search(run_block[-1]).group(1).lower()])


def test_every_path_pauses_then_exits_with_the_code(lines: list[str]) -> None:
    """Walk every path through the labels: none may end without `pause` (the window would close
    before the user reads why), and the only exit is `exit /b %RC%` after it."""
    grouped = blocks(lines)
    order = list(grouped)
    exits: list[str] = []

    def walk(label: str, paused: bool, seen: frozenset[str]) -> None:
        assert label not in seen, f"loop through {label}"
        for line in grouped[label]:
            lowered = line.lower()
            if lowered == "pause":
                paused = True
            elif lowered.startswith("exit"):
                assert paused, f"exit without pause in {label}"
                exits.append(line)
                return
            elif not is_echo(line) and (match := GOTO.search(line)):
                walk(match.group(1).lower(), paused, seen | {label})
                if lowered.startswith("goto"):  # unconditional: nothing after it runs
                    return
        following = order.index(label) + 1
        assert following < len(order), f"the script runs off its end after {label} without exit"
        walk(order[following], paused, seen | {label})

    walk(START, False, frozenset())
    assert exits and set(exits) == {"exit /b %RC%"}
