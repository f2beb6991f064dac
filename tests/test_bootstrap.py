"""bootstrap.py decides when to build .venv and call pip; these tests check the decisions on real
folders with pip replaced, and that the version check works on a Python too old for the rest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trainer import bootstrap

PROJECT_DIR = Path(__file__).resolve().parents[1]
BOOTSTRAP = PROJECT_DIR / "trainer" / "bootstrap.py"

PYPROJECT = """\
[project]
name = "demo"
dependencies = ["pandas>=2.0", "rich>=13.0"]

[project.optional-dependencies]
dev = ["pytest>=7.4"]
"""


@pytest.fixture
def pyproject(tmp_path: Path) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(PYPROJECT, encoding="utf-8")
    return path


def make_venv(venv_dir: Path, home: Path, stamps: list[str] | None = None) -> Path:
    """A venv skeleton: the interpreter file, pyvenv.cfg pointing at `home`, maybe a stamp file."""
    python = bootstrap.venv_python(venv_dir)
    python.parent.mkdir(parents=True)
    python.write_text("", encoding="utf-8")
    (venv_dir / "pyvenv.cfg").write_text(f"home = {home}\nversion = 3.11.7\n", encoding="utf-8")
    if stamps is not None:
        (venv_dir / bootstrap.STAMP_NAME).write_text("\n".join(stamps) + "\n", encoding="utf-8")
    return venv_dir


class FakeRun:
    """Stands in for subprocess.run: records the commands, optionally fails like pip would."""

    def __init__(self, fail: bool = False) -> None:
        self.commands: list[list[str]] = []
        self.fail = fail

    def __call__(self, command: list[str], check: bool) -> None:
        assert check or "uninstall" in command  # removing a package that is not there is no error
        self.commands.append(command)
        if self.fail:
            raise subprocess.CalledProcessError(1, command)


@pytest.mark.parametrize("version", [(3, 10, 12), (3, 9, 0), (2, 7, 18)])
def test_old_python_is_rejected_with_install_advice(version: tuple[int, int, int]) -> None:
    problem = bootstrap.python_version_problem(version)
    assert problem is not None
    assert "3.11" in problem and ".".join(map(str, version)) in problem
    assert "https://www.python.org/downloads/" in problem
    assert "Add python.exe to PATH" in problem


@pytest.mark.parametrize("version", [(3, 11, 0), (3, 11, 9), (3, 12, 1), (3, 13, 0)])
def test_supported_python_is_accepted(version: tuple[int, int, int]) -> None:
    assert bootstrap.python_version_problem(version) is None


def test_declared_requirements_with_and_without_dev(pyproject: Path) -> None:
    assert bootstrap.declared_requirements(pyproject, with_dev=False) == ["pandas>=2.0", "rich>=13.0"]
    assert bootstrap.declared_requirements(pyproject, with_dev=True) == [
        "pandas>=2.0", "rich>=13.0", "pytest>=7.4"]


def test_declared_requirements_without_dev_extras(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\ndependencies = ["numpy"]\n', encoding="utf-8")
    assert bootstrap.declared_requirements(path, with_dev=True) == ["numpy"]


def test_stamp_follows_the_list_but_not_its_order() -> None:
    stamp = bootstrap.requirements_stamp(["pandas>=2.0", "rich>=13.0"])
    assert bootstrap.requirements_stamp(["rich>=13.0", "pandas>=2.0"]) == stamp
    assert bootstrap.requirements_stamp(["pandas>=2.1", "rich>=13.0"]) != stamp
    assert bootstrap.requirements_stamp(["pandas>=2.0"]) != stamp


def test_dev_install_also_satisfies_the_plain_requirements(pyproject: Path) -> None:
    plain = bootstrap.install_stamps(pyproject, with_dev=False)
    dev = bootstrap.install_stamps(pyproject, with_dev=True)
    assert len(plain) == 1 and len(dev) == 2
    assert dev[0] == plain[0] and dev[1] != plain[0]


def test_needs_install_when_the_venv_is_missing(tmp_path: Path) -> None:
    assert bootstrap.needs_install(tmp_path / ".venv", "abc")


def test_needs_install_when_the_stamp_is_stale_or_missing(tmp_path: Path) -> None:
    assert bootstrap.needs_install(make_venv(tmp_path / "a", tmp_path, ["old"]), "new")
    assert bootstrap.needs_install(make_venv(tmp_path / "b", tmp_path), "new")


def test_no_install_when_the_stamp_is_fresh(tmp_path: Path) -> None:
    venv_dir = make_venv(tmp_path / ".venv", tmp_path, ["plain", "dev"])
    assert not bootstrap.needs_install(venv_dir, "dev")
    assert not bootstrap.needs_install(venv_dir, "plain")


def test_venv_whose_python_was_uninstalled_is_broken(tmp_path: Path) -> None:
    venv_dir = make_venv(tmp_path / ".venv", tmp_path / "Python311-uninstalled", ["fresh"])
    assert bootstrap.venv_is_broken(venv_dir)
    assert bootstrap.needs_install(venv_dir, "fresh")
    (venv_dir / "pyvenv.cfg").unlink()
    assert bootstrap.venv_is_broken(venv_dir)


def test_ensure_environment_skips_pip_when_fresh(tmp_path: Path, pyproject: Path) -> None:
    stamps = bootstrap.install_stamps(pyproject, with_dev=False)
    venv_dir = make_venv(tmp_path / ".venv", tmp_path, stamps)
    run = FakeRun()
    python = bootstrap.ensure_environment(venv_dir, False, pyproject=pyproject, run=run)
    assert python == bootstrap.venv_python(venv_dir)
    assert run.commands == []


def test_ensure_environment_installs_and_stamps_when_stale(tmp_path: Path, pyproject: Path) -> None:
    venv_dir = make_venv(tmp_path / ".venv", tmp_path, ["old"])
    run = FakeRun()
    bootstrap.ensure_environment(venv_dir, True, pyproject=pyproject, run=run)
    cpu_build = sys.platform in bootstrap.CPU_XGBOOST_PLATFORMS
    assert len(run.commands) == (3 if cpu_build else 2)
    assert run.commands[0][-2:] == ["--upgrade", "pip"]
    if cpu_build:  # an earlier release's full xgboost makes way for xgboost-cpu (the same module)
        assert run.commands[1][3:5] == ["uninstall", "--disable-pip-version-check"] and \
            run.commands[1][-2:] == ["-y", "xgboost"]
    assert run.commands[-1][-3:] == ["pandas>=2.0", "rich>=13.0", "pytest>=7.4"]
    assert all(command[0] == str(bootstrap.venv_python(venv_dir)) for command in run.commands)
    written = (venv_dir / bootstrap.STAMP_NAME).read_text(encoding="utf-8").split()
    assert written == bootstrap.install_stamps(pyproject, with_dev=True)
    assert not bootstrap.needs_install(venv_dir, written[0])


def test_failed_pip_leaves_the_stamp_stale(tmp_path: Path, pyproject: Path) -> None:
    venv_dir = make_venv(tmp_path / ".venv", tmp_path, ["old"])
    with pytest.raises(subprocess.CalledProcessError):
        bootstrap.ensure_environment(venv_dir, False, pyproject=pyproject, run=FakeRun(fail=True))
    assert (venv_dir / bootstrap.STAMP_NAME).read_text(encoding="utf-8").split() == ["old"]


def test_broken_venv_is_rebuilt_from_scratch(tmp_path: Path, pyproject: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    venv_dir = make_venv(tmp_path / ".venv", tmp_path / "gone", ["old"])
    created: list[tuple[bool, Path]] = []

    class FakeBuilder:
        def __init__(self, with_pip: bool, clear: bool) -> None:
            assert with_pip
            self.clear = clear

        def create(self, target: Path) -> None:
            created.append((self.clear, target))

    monkeypatch.setattr(bootstrap.venv, "EnvBuilder", FakeBuilder)
    bootstrap.ensure_environment(venv_dir, False, pyproject=pyproject, run=FakeRun())
    assert created == [(True, venv_dir)]


@pytest.mark.parametrize("failure", [subprocess.CalledProcessError(1, ["pip"]),
                                     PermissionError("the file is in use")])
def test_main_explains_a_failed_setup(failure: Exception, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    def fail(venv_dir: Path, with_dev: bool) -> Path:
        raise failure

    monkeypatch.setattr(bootstrap, "ensure_environment", fail)
    assert bootstrap.main(["--venv", "somewhere"]) == 2
    assert "run again" in capsys.readouterr().err


def test_check_python_runs_as_a_script() -> None:
    """The way run_training.bat calls it: trainer/ first on sys.path, nothing installed."""
    result = subprocess.run([sys.executable, str(BOOTSTRAP), "--check-python"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_check_python_explains_on_a_python_without_tomllib() -> None:
    """Python 3.10 has no tomllib: the check must still print the advice, not ImportError."""
    script = (
        "import runpy, sys\n"
        "sys.modules['tomllib'] = None\n"  # makes `import tomllib` fail as on 3.10
        "sys.version_info = (3, 10, 4, 'final', 0)\n"
        f"sys.argv = [{str(BOOTSTRAP)!r}, '--check-python']\n"
        f"runpy.run_path({str(BOOTSTRAP)!r}, run_name='__main__')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Python 3.11 or newer is needed, but this is Python 3.10.4" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_trainer_module_shadows_the_standard_library() -> None:
    """Run as a script, bootstrap.py has trainer/ first on sys.path: a trainer/logging.py would
    replace the standard module and break the set-up on every machine."""
    names = {path.stem for path in (PROJECT_DIR / "trainer").iterdir()
             if path.suffix == ".py" or (path / "__init__.py").exists()}
    assert not names & sys.stdlib_module_names
