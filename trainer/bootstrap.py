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
import tomllib
import venv
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
    """The dependency list of pyproject.toml (plus the dev extras for running the tests)."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    if with_dev:
        requirements += project.get("optional-dependencies", {}).get("dev", [])
    return requirements


def requirements_stamp(requirements: list[str]) -> str:
    """A fingerprint of the requirement list; a change means pip has work to do."""
    return hashlib.sha256("\n".join(sorted(requirements)).encode("utf-8")).hexdigest()


def venv_python(venv_dir: Path) -> Path:
    """The interpreter inside a virtual environment, on Windows or elsewhere."""
    if os.name == "nt":
        return venv_dir / "Scripts" / "python.exe"
    return venv_dir / "bin" / "python"


def needs_install(venv_dir: Path, stamp: str) -> bool:
    """True when the environment is missing or was built for other requirements."""
    stamp_file = venv_dir / STAMP_NAME
    if not venv_python(venv_dir).exists() or not stamp_file.exists():
        return True
    return stamp_file.read_text(encoding="utf-8").strip() != stamp


def ensure_environment(venv_dir: Path, with_dev: bool) -> Path:
    """Create the venv and install the requirements when needed; return its interpreter."""
    requirements = declared_requirements(PROJECT_DIR / "pyproject.toml", with_dev)
    stamp = requirements_stamp(requirements)
    python = venv_python(venv_dir)
    if not needs_install(venv_dir, stamp):
        return python
    if not python.exists():
        print(f"Creating the virtual environment in {venv_dir} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(venv_dir)
    print("Installing dependencies (first run or changed requirements; this takes a few minutes) ...",
          flush=True)
    subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                    "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                    *requirements], check=True)
    (venv_dir / STAMP_NAME).write_text(stamp + "\n", encoding="utf-8")
    return python


def main(argv: list[str] | None = None) -> int:
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
