"""Shared fixtures. Tests that need ../shared/market-data skip with a reason when it is absent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[1]
REAL_DATA_DIR = PROJECT_DIR.parent / "shared" / "market-data" / "sp500-sample"

if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))


@pytest.fixture
def real_data_dir() -> Path:
    """The 70 real S&P 500 price files (AlphaVantage layout), or a skip when not beside the repo."""
    if not (REAL_DATA_DIR / "AAPL.csv.gz").exists():
        pytest.skip(f"real market data not found at {REAL_DATA_DIR} (it sits beside the repository "
                    "in development and CI, never on a user's machine)")
    return REAL_DATA_DIR
