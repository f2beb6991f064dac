"""Set up `.venv` with the dependencies declared in pyproject.toml, only when they changed.

Standard library only: this runs on a fresh machine before anything is installed. The Makefile
and run_training.bat both call it, so the set-up logic lives in one tested place.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path

MINIMUM_PYTHON = (3, 11)
PROJECT_DIR = Path(__file__).resolve().parent.parent
STAMP_NAME = ".requirements-stamp"


def python_version_problem(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> str | None:
    """Return a message telling how to get a suitable Python, or None when this one is fine."""
    if tuple(version[:2]) >= MINIMUM_PYTHON:
        return None
    found = ".".join(str(part) for part in version)
    need = ".".join(str(part) for part in MINIMUM_PYTHON)
    return (
        f"Python {need} or newer is needed, but this is Python {found}. "
        "Install it from https://www.python.org/downloads/ (on Windows tick 'Add python.exe to PATH')."
    )


def declared_requirements(pyproject: Path, with_dev: bool) -> list[str]:
    """The dependency list of pyproject.toml (plus, for running the tests, the dev extras and the
    cluster extra: the cluster tests start a real Dask LocalCluster)."""
    # Imported here, not at the top: tomllib is new in 3.11, and `--check-python` must run on an
    # older Python to tell the user how to upgrade instead of dying with ModuleNotFoundError.
    import tomllib

    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    if with_dev:
        extras = project.get("optional-dependencies", {})
        requirements += extras.get("dev", []) + extras.get("cluster", [])
    return requirements


# Platforms where pyproject.toml asks for xgboost-cpu instead of xgboost (see its dependencies).
CPU_XGBOOST_PLATFORMS = ("linux", "win32")


def requirements_stamp(requirements: list[str]) -> str:
    """A fingerprint of the requirement list; a change means pip has work to do."""
    return hashlib.sha256("\n".join(sorted(requirements)).encode("utf-8")).hexdigest()


def venv_python(venv_dir: Path) -> Path:
    """The interpreter inside a virtual environment, on Windows or elsewhere."""
    if os.name == "nt":
        return venv_dir / "Scripts" / "python.exe"
    return venv_dir / "bin" / "python"


def install_stamps(pyproject: Path, with_dev: bool) -> list[str]:
    """The stamps an install satisfies, the requested one last.

    A dev install also covers the plain requirements, so `make demo` after `make test` does not
    reinstall (and does not need the network) just because the two lists differ.
    """
    stamps = [requirements_stamp(declared_requirements(pyproject, with_dev=False))]
    if with_dev:
        stamps.append(requirements_stamp(declared_requirements(pyproject, with_dev=True)))
    return stamps


def venv_is_broken(venv_dir: Path) -> bool:
    """True when the venv cannot start: missing, or the Python it was made from is gone.

    Uninstalling the Python a venv was made from leaves a venv interpreter that only says
    "No Python at ..."; a fresh venv is the only cure, so this is checked before every run.
    """
    config = venv_dir / "pyvenv.cfg"
    if not venv_python(venv_dir).exists() or not config.exists():
        return True
    for line in config.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip().lower() == "home":
            # os.path.isdir, not Path.is_dir: an unreadable folder must not crash the set-up.
            return not os.path.isdir(value.strip())
    return True


def needs_install(venv_dir: Path, stamp: str) -> bool:
    """True when the environment is missing or broken, or was built for other requirements."""
    stamp_file = venv_dir / STAMP_NAME
    if venv_is_broken(venv_dir) or not stamp_file.exists():
        return True
    return stamp not in stamp_file.read_text(encoding="utf-8").split()


def ensure_environment(venv_dir: Path, with_dev: bool, *, pyproject: Path = PROJECT_DIR / "pyproject.toml",
                       run: Callable[..., object] = subprocess.run) -> Path:
    """Create the venv and install the requirements when needed; return its interpreter.

    `run` is injectable so that tests can check the decisions without calling pip.
    """
    stamps = install_stamps(pyproject, with_dev)
    python = venv_python(venv_dir)
    if not needs_install(venv_dir, stamps[-1]):
        return python
    if venv_is_broken(venv_dir):
        print(f"Creating the virtual environment in {venv_dir} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    print("Installing dependencies (first run or changed requirements; this takes a few minutes) ...",
          flush=True)
    run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
         "--upgrade", "pip"], check=True)
    if sys.platform in CPU_XGBOOST_PLATFORMS:
        # An environment of an earlier release has the full xgboost; xgboost-cpu installs the same
        # module, and two distributions owning one folder break each other on the next upgrade.
        run([str(python), "-m", "pip", "uninstall", "--disable-pip-version-check", "-q", "-y", "xgboost"],
            check=False)
    # Not quiet: the first install downloads hundreds of MB, and a silent window looks hung.
    run([str(python), "-m", "pip", "install", "--disable-pip-version-check",
         *declared_requirements(pyproject, with_dev)], check=True)
    # Written only after pip succeeded: an interrupted install is retried on the next run.
    (venv_dir / STAMP_NAME).write_text("\n".join(stamps) + "\n", encoding="utf-8")
    return python


def _forgiving_output() -> None:
    """A path the console cannot encode (a redirected cp1252 stream) must print as '?', not crash."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when ready, 1 when this Python is too old, 2 when installing failed."""
    _forgiving_output()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dev", action="store_true", help="also install the test tools")
    parser.add_argument("--venv", default=str(PROJECT_DIR / ".venv"), help="virtual environment folder")
    parser.add_argument("--check-python", action="store_true",
                        help="only check the Python version (exit 1 with a message if too old)")
    args = parser.parse_args(argv)
    problem = python_version_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    if args.check_python:
        return 0
    try:
        ensure_environment(Path(args.venv), args.dev)
    except subprocess.CalledProcessError as error:
        print(f"Installing the dependencies failed (pip exit code {error.returncode}). "
              "Check the internet connection and run again; the messages above say which package failed.",
              file=sys.stderr)
        return 2
    except OSError as error:
        print(f"Creating the virtual environment failed: {error}. Close other windows that use it "
              f"and run again, or delete the folder {args.venv}.", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
