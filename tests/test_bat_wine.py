"""run_training.bat and run_signals.bat run by a real cmd interpreter: Wine's cmd.exe.

test_bat.py reads the two files as text; here they run. Python is replaced by a small stub
program (compiled for Windows by mingw-w64 here) that records how it was called and exits with
the code the test chooses, so every path of the double-click story is walked: a folder dropped
onto the file, arguments passed on, each exit code explained and returned, a failed set-up, no
Python, a Python too old, a folder with spaces started from elsewhere. What Wine cannot show:
the "Terminate batch job (Y/N)?" prompt of a real console after Ctrl+C.

Needs `wine` and `x86_64-w64-mingw32-gcc` (Debian: `apt-get install wine wine64
gcc-mingw-w64-x86-64`); skipped with that reason where they are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from trainer.app import exit_codes

pytestmark = pytest.mark.slow

PROJECT = Path(__file__).resolve().parents[1]
WINE = shutil.which("wine")
MINGW = shutil.which("x86_64-w64-mingw32-gcc")
if WINE is None or MINGW is None:
    pytest.skip("Wine and mingw-w64 are not installed (apt-get install wine wine64 gcc-mingw-w64-x86-64)",
                allow_module_level=True)

STUB_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* Stands in for py.exe, python.exe and .venv\Scripts\python.exe: appends "argv0|arg|arg..." to
   the file STUB_LOG names, then exits with STUB_CHECK_RC (--check-python), STUB_SETUP_RC
   (bootstrap.py), STUB_VERSION_RC (--version) or STUB_RUN_RC (anything else). */
int main(int argc, char **argv) {
    const char *log = getenv("STUB_LOG"), *name = "STUB_RUN_RC", *code;
    FILE *out = log ? fopen(log, "a") : NULL;
    int i;
    if (out) {
        fprintf(out, "%s", argv[0]);
        for (i = 1; i < argc; i++) fprintf(out, "|%s", argv[i]);
        fprintf(out, "\n");
        fclose(out);
    }
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--check-python") == 0) { name = "STUB_CHECK_RC"; break; }
        if (strcmp(argv[i], "--version") == 0) { printf("Python 3.6.8\n"); name = "STUB_VERSION_RC"; break; }
        if (strstr(argv[i], "bootstrap.py") != NULL) name = "STUB_SETUP_RC";
    }
    if (strcmp(name, "STUB_RUN_RC") == 0) printf("the program ran\n");
    code = getenv(name);
    return code ? atoi(code) : 0;
}
"""
NO_PYTHON = 9009 % 256  # the bat's 9009, as a Unix process reports it (8 bits)
BATS = {"run_training.bat": ("run_training.py", exit_codes.MEANING),
        "run_signals.bat": ("generate_signals.py", exit_codes.SIGNALS_MEANING)}


@pytest.fixture(scope="module")
def wine_env(tmp_path_factory) -> dict[str, str]:
    """A Wine prefix of the tests' own (made once: about half a minute) and the environment."""
    prefix = tmp_path_factory.mktemp("wineprefix")
    env = {**os.environ, "WINEPREFIX": str(prefix), "WINEDEBUG": "-all", "WINEDLLOVERRIDES": "mscoree,mshtml=",
           "DISPLAY": ""}
    try:
        subprocess.run([WINE, "wineboot", "--init"], env=env, capture_output=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        pytest.skip("Wine is installed but did not set up its prefix within 5 minutes (wineboot --init)")
    return env


@pytest.fixture(scope="module")
def stub(tmp_path_factory, wine_env) -> Path:
    """The stub, compiled; skips when this Wine cannot run a Windows program at all (then no .bat
    could be judged here), which is a fact about the machine, not about the .bat files."""
    folder = tmp_path_factory.mktemp("stub")
    (folder / "stub.c").write_text(STUB_C, encoding="ascii")
    try:
        subprocess.run([MINGW, "-O1", "-o", str(folder / "stub.exe"), str(folder / "stub.c")], check=True,
                       capture_output=True, timeout=120)
        probe = subprocess.run([WINE, str(folder / "stub.exe")], env={**wine_env, "STUB_RUN_RC": "7"},
                               capture_output=True, timeout=120, check=False)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        pytest.skip(f"mingw-w64 or Wine cannot build or start the stub here ({error})")
    if probe.returncode != 7 or b"the program ran" not in probe.stdout:
        pytest.skip(f"Wine is installed but cannot run a Windows program here (exit {probe.returncode}: "
                    f"{probe.stderr.decode(errors='replace')[-300:]})")
    return folder / "stub.exe"


def install(tmp_path: Path, stub: Path, bat: str, *, folder_name: str = "my trainer",
            python: bool = True) -> Path:
    """The bat in a folder with spaces, its .venv's python and (unless python=False) py.exe: stubs."""
    app = tmp_path / folder_name
    (app / ".venv" / "Scripts").mkdir(parents=True)
    (app / "trainer").mkdir()
    shutil.copyfile(PROJECT / bat, app / bat)
    shutil.copyfile(stub, app / ".venv" / "Scripts" / "python.exe")
    if python:
        shutil.copyfile(stub, app / "py.exe")  # cmd looks in the current folder first
    return app


def windows_path(path: Path) -> str:
    return "Z:" + str(path).replace("/", "\\")


def run_bat(env: dict[str, str], app: Path, bat: str, *args: str, cwd: Path, **codes: int):
    """Run the bat as a double-click would (from another folder, empty input for the pause)."""
    log = app.parent / "stub.log"
    log.unlink(missing_ok=True)
    chosen = {f"STUB_{key.upper()}_RC": str(value) for key, value in codes.items()}
    env = {**env, "STUB_LOG": windows_path(log), **chosen}
    # wine starts a .bat as Explorer does, through cmd /c with the whole line quoted; "wine cmd /c
    # PATH ARG" would meet cmd's rule that strips the first and last quote of the line.
    result = subprocess.run([WINE, windows_path(app / bat), *args], env=env, cwd=cwd,
                            stdin=subprocess.DEVNULL, capture_output=True, timeout=180)
    output = result.stdout.decode("latin-1").replace("\r\n", "\n")
    calls = [line.split("|") for line in log.read_text(encoding="latin-1").splitlines()] if log.exists() else []
    return result.returncode, output, calls


@pytest.mark.parametrize("bat", sorted(BATS))
def test_a_dropped_folder_becomes_the_prices_folder(wine_env, stub, tmp_path, bat) -> None:
    app = install(tmp_path, stub, bat)
    prices = tmp_path / "my prices"
    prices.mkdir()
    code, output, calls = run_bat(wine_env, app, bat, windows_path(prices), cwd=tmp_path)
    program, meaning = BATS[bat]
    assert code == 0, output
    assert calls[-1][1:] == [program, "--prices-dir", windows_path(prices)], calls
    assert calls[0][1:] == ["-3", "trainer\\bootstrap.py", "--check-python"]  # the py launcher first
    assert f"Exit code 0: {meaning[0]}" in output
    assert "the program ran" in output


@pytest.mark.parametrize("bat", sorted(BATS))
def test_arguments_are_passed_on_and_every_exit_code_is_explained_and_returned(wine_env, stub, tmp_path,
                                                                               bat) -> None:
    app = install(tmp_path, stub, bat)
    program, meaning = BATS[bat]
    for code in (*sorted(meaning), 137):
        returned, output, calls = run_bat(wine_env, app, bat, "--max-symbols", "5", cwd=tmp_path, run=code)
        assert returned == code, output
        assert calls[-1][0].lower().endswith(".venv\\scripts\\python.exe"), calls
        assert calls[-1][1:] == [program, "--max-symbols", "5"]
        expected = f"Exit code {code}: {meaning[code]}" if code in meaning else \
            f"Exit code {code}: the program was stopped from outside"
        assert expected in output, output
        assert "Press any key" in output  # the window stays open to be read


@pytest.mark.parametrize("bat", sorted(BATS))
def test_a_failed_set_up_says_what_to_check_and_does_not_run_the_program(wine_env, stub, tmp_path, bat) -> None:
    app = install(tmp_path, stub, bat)
    code, output, calls = run_bat(wine_env, app, bat, cwd=tmp_path, setup=1)
    assert code == 1, output
    assert "Setting up the Python environment failed (bootstrap exit code 1)" in output
    assert "no internet connection" in output and "too long" in output
    assert "the program ran" not in output
    assert not any(call[0].lower().endswith(".venv\\scripts\\python.exe") for call in calls)


@pytest.mark.parametrize("bat", sorted(BATS))
def test_without_python_it_says_how_to_install_it(wine_env, stub, tmp_path, bat) -> None:
    app = install(tmp_path, stub, bat, python=False)
    code, output, calls = run_bat(wine_env, app, bat, cwd=tmp_path)
    assert code == NO_PYTHON, output
    assert "No Python 3.11 or newer was found" in output
    assert "python.org" in output
    assert calls == []


@pytest.mark.parametrize("bat", sorted(BATS))
def test_a_python_too_old_shows_its_version_not_a_traceback(wine_env, stub, tmp_path, bat) -> None:
    app = install(tmp_path, stub, bat)
    code, output, calls = run_bat(wine_env, app, bat, cwd=tmp_path, check=1)
    assert code == NO_PYTHON, output
    assert "Python 3.6.8" in output and "That Python is too old." in output
    assert [call[1:] for call in calls] == [["-3", "trainer\\bootstrap.py", "--check-python"], ["-3", "--version"]]
