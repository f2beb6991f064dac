"""What one invocation of run_training.py asks for, beside the config it overrides.

The run context and the pipeline take these options; the command line (trainer/app/cli.py) only
builds them, so the core never imports the shell.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunOptions:
    workdir: Path | None
    config_path: Path | None
    source: str | None
    prices_dir: Path | None
    universe: Path | None
    max_symbols: int | None
    start: str | None
    end: str | None
    jobs: int | None
    allow_sleep: bool
    open_report: bool
    tune_trials: int | None = None
    tune_minutes: float | None = None
    cluster: str | None = None
    demo_symbols: int | None = None

    def overrides(self) -> dict[str, object]:
        """Command-line settings that override the config file, as dotted keys."""
        pairs = {
            "data.source": self.source,
            "data.max_symbols": self.max_symbols,
            "data.start": self.start,
            "data.end": self.end,
            "run.jobs": self.jobs,
            "run.allow_sleep": True if self.allow_sleep else None,
            "tuning.trials": self.tune_trials,
            "tuning.minutes": self.tune_minutes,
            "run.cluster": self.cluster,
            "data.demo_symbols": self.demo_symbols,
        }
        return {key: value for key, value in pairs.items() if value is not None}


@dataclass(frozen=True)
class SignalOptions:
    """What one invocation of generate_signals.py asks for. source/prices_dir None: the model's own."""

    workdir: Path | None
    source: str | None
    prices_dir: Path | None
    universe: Path | None
    as_of: str | None
    model: str  # "production" or "candidate"
    as_json: bool
    max_age_days: int = 3  # warn when the newest price is older than this many business days
