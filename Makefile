# Two commands on Linux/macOS; each sets itself up (creates .venv, installs what changed).
PYTHON ?= python3
VENV_PY = .venv/bin/python

.PHONY: demo test fast-test lint bench setup setup-dev

setup:
	$(PYTHON) trainer/bootstrap.py

setup-dev:
	$(PYTHON) trainer/bootstrap.py --dev

demo: setup
	$(VENV_PY) run_training.py --demo

test: setup-dev
	$(VENV_PY) -m pytest -q

fast-test: setup-dev
	$(VENV_PY) -m pytest -q -m "not slow"

lint: setup-dev
	$(VENV_PY) -m ruff check .

bench: setup
	$(VENV_PY) bench/run_bench.py
