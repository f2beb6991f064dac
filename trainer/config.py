"""Run configuration: defaults, TOML overrides, the identity hash and human-readable diffs.

One run = one config. The hash covers everything that changes results (universe, dates, source,
label, feature and model settings, seed) and nothing that does not (paths, --jobs, retry counts),
so a folder moved to another computer resumes with the same identity.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BASE_MODELS: tuple[str, ...] = (
    "random_forest",
    "xgboost",
    "lightgbm",
    "extra_trees",
    "gradient_boosting",
    "neural_network",
    "logistic_regression",
    "svm",
)
SOURCES = ("yfinance", "csv", "demo")


class ConfigError(ValueError):
    """A setting is invalid; the message names the setting and what to do."""


@dataclass(frozen=True)
class DataConfig:
    source: str = "yfinance"
    start: str | None = "2005-01-01"
    end: str | None = None
    max_symbols: int | None = None
    max_daily_move: float = 0.6  # |close/prev - 1| above this, not explained by a split, is quarantined
    min_history_days: int = 300  # fewer clean rows than this: the symbol is skipped with a reason
    demo_seed: int = 7
    demo_symbols: int = 82  # size of the demo market (82 named companies; more are generated, for scale tests)


@dataclass(frozen=True)
class LabelConfig:
    horizon: int = 20
    barrier_k: float = 1.5
    vol_window: int = 20
    stride: int = 5


@dataclass(frozen=True)
class FeatureConfig:
    shock_sigma: float = 4.0  # a daily move beyond this many trailing sigmas is a price-shock event


# What the labels are, beyond their settings: part of the run identity so that results made with
# another barrier design (symmetric in simple returns, before this release) are never resumed.
LABEL_DESIGN = "log-symmetric barriers"
ENSEMBLE_METRICS = ("auc_directional", "log_loss")


@dataclass(frozen=True)
class TrainingConfig:
    models: tuple[str, ...] = BASE_MODELS
    n_folds: int = 4
    holdout_share: float = 0.2
    min_feature_coverage: float = 0.4
    # Each label weighted by its average uniqueness (AFML ch. 4) times class balance.
    uniqueness_weights: bool = True
    # Greedy ensemble selection (Caruana) on out-of-fold predictions: its metric and number of picks.
    ensemble_metric: str = "auc_directional"
    ensemble_size: int = 25
    # Out-of-fold rows of a fold whose training window is shorter than this do not vote on the
    # ensemble weights nor pick the one-feature rule: a model fitted on 2-3 years (many 252-day
    # features still missing) predicts unlike the final one.
    ensemble_min_train_years: float = 4.0


TUNABLE_DEFAULT = ("lightgbm", "xgboost")


@dataclass(frozen=True)
class TuningConfig:
    """Hyperparameter search (trainer/tuning): off while trials is 0."""

    trials: int = 0  # per tuned model; the first trial is always the model's default parameters
    # Wall-time budget of the whole search (0: none), shared equally by the models; the running trial finishes.
    minutes: float = 0.0
    models: tuple[str, ...] = TUNABLE_DEFAULT
    # The purged walk-forward out-of-fold score on the training period that the search optimises.
    metric: str = "auc_directional"


@dataclass(frozen=True)
class ShapConfig:
    sample_rows: int = 2000


PORTFOLIO_EXITS = ("barriers", "horizon")


@dataclass(frozen=True)
class PortfolioConfig:
    """The account simulated from the signals (trainer/portfolio): what it holds and what trading costs."""

    # How many of the ranked universe are held each rebalance: a share (0 < top < 1, e.g. 0.1 =
    # the top decile) or a count (a whole number >= 1).
    top: float = 0.1
    # Long the top and short the bottom, half the capital each side (gross exposure 1, net 0).
    long_short: bool = False
    # "barriers": a position ends when its label's trade does (a barrier or the horizon);
    # "horizon": every position is held the full horizon.
    exits: str = "barriers"
    cost_bps: float = 10.0  # per side, on the traded value
    slippage_bps: float = 0.0  # per side, added to the cost
    cash_rate: float = 0.0  # annual interest earned by uninvested cash


@dataclass(frozen=True)
class GateConfig:
    confidence: float = 0.95
    bootstrap_reps: int = 1000
    # How far (directional AUC) the ensemble may trail the best base model or the one-feature rule
    # before the shortfall counts: fails only when the paired interval lies wholly below -margin.
    max_shortfall: float = 0.01
    # A regime is judged only with this many barrier-touching holdout samples on this many dates.
    min_regime_directional: int = 200
    min_regime_dates: int = 20
    leakage_auc: float = 0.80
    # The strategy after costs must beat the equal-weight universe and the same strategy driven by
    # the volatility-only benchmark (block-bootstrap lower bounds above 0); a Deflated Sharpe Ratio
    # (the probability that the Sharpe ratio is real after this run's trials) below min_dsr also
    # rejects; 0 shows the DSR without judging it.
    min_dsr: float = 0.0


@dataclass(frozen=True)
class RunConfig:
    """Settings that do not change results: excluded from the hash."""

    max_attempts: int = 3
    jobs: int = 1
    allow_sleep: bool = False
    # A Dask scheduler ("tcp://HOST:8786") that runs the backtest's symbols and the models' folds.
    cluster: str | None = None


@dataclass(frozen=True)
class Config:
    seed: int = 42
    data: DataConfig = field(default_factory=DataConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    shap: ShapConfig = field(default_factory=ShapConfig)
    portfolio: PortfolioConfig = field(default_factory=PortfolioConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self, universe_symbols: list[str]) -> dict[str, Any]:
        """Everything that defines the results of a run, as a flat dict of dotted keys."""
        settings = flatten(self.to_dict())
        settings = {key: value for key, value in settings.items() if not key.startswith("run.")}
        if self.data.demo_symbols == 82:  # added after the first runs were made: they keep their identity
            settings.pop("data.demo_symbols")
        if self.tuning.trials == 0:
            # Without a search its settings change nothing, and runs made before tuning existed
            # keep their identity (and resume) in this release.
            settings = {key: value for key, value in settings.items() if not key.startswith("tuning.")}
        settings["labels.design"] = LABEL_DESIGN
        settings["universe"] = list(universe_symbols)
        return settings

    def hash(self, universe_symbols: list[str]) -> str:
        text = json.dumps(self.identity(universe_symbols), sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def flatten(nested: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"labels": {"horizon": 20}} -> {"labels.horizon": 20}; tuples become lists."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = list(value) if isinstance(value, tuple) else value
    return flat


def describe_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Lines like "labels.horizon: 20 -> 10" for every setting that differs."""
    lines = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, "<not set>"), new.get(key, "<not set>")
        if before == after:
            continue
        if key == "universe" and isinstance(before, list) and isinstance(after, list):
            added = sorted(set(after) - set(before))
            removed = sorted(set(before) - set(after))
            lines.append(f"universe: {len(before)} -> {len(after)} symbols"
                         f" (added {_short(added)}, removed {_short(removed)})")
        else:
            lines.append(f"{key}: {before!r} -> {after!r}")
    return lines


def _short(symbols: list[str]) -> str:
    if not symbols:
        return "none"
    return ", ".join(symbols[:8]) + (f" and {len(symbols) - 8} more" if len(symbols) > 8 else "")


# Command-line options that set a config key: errors about such a key name the option.
OPTION_NAMES = {"data.source": "--source", "data.max_symbols": "--max-symbols", "data.start": "--start",
                "data.end": "--end", "run.jobs": "--jobs", "run.allow_sleep": "--allow-sleep",
                "tuning.trials": "--tune-trials", "tuning.minutes": "--tune-minutes", "run.cluster": "--cluster",
                "data.demo_symbols": "--demo-symbols"}


def _section_from(cls: type, values: dict[str, Any], section: str, source: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{source}: unknown setting '{section}.{key}'. "
                              f"Known settings in [{section}]: {', '.join(sorted(known))}.")
        kwargs[key] = _typed(f"{section}.{key}", value, getattr(cls(), key), str(known[key].type), source)
    return cls(**kwargs)


def _typed(name: str, value: Any, default: Any, annotation: str, source: str) -> Any:
    """The value in the type the default (or the annotation, for optional settings) has, or a
    ConfigError that names the setting, what was given and an example of what is expected."""
    def wrong(expected: str, example: str) -> ConfigError:
        return ConfigError(f"{source}: {name} must be {expected} (for example {name.rpartition('.')[2]} = "
                           f"{example}); got {value!r}.")
    if value is None and "None" in annotation:
        return None
    if isinstance(default, bool) or annotation == "bool":
        if not isinstance(value, bool):
            raise wrong("true or false", "true")
        return value
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
            raise wrong("a list of names", '["lightgbm", "xgboost"]')
        return tuple(value)
    if isinstance(default, float) or annotation.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong("a number", repr(default if default is not None else 1.0))
        return float(value)
    if isinstance(default, int) or annotation.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("a whole number", repr(default if default is not None else 10))
        return value
    if isinstance(default, str) or annotation.startswith("str"):
        if not isinstance(value, str):
            raise wrong("text in quotes", f'"{default if default is not None else "2005-01-31"}"')
        return value
    return value


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file, then command-line overrides ({"data.source": "demo"})."""
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    source = "run_training.py settings"
    if path is not None:
        source = str(path)
        try:
            # utf-8-sig: Notepad saves UTF-8 with a byte order mark, which TOML itself does not allow.
            loaded = tomllib.loads(Path(path).read_text(encoding="utf-8-sig"))
        except FileNotFoundError:
            raise ConfigError(f"Config file {path} does not exist. Check the --config path.") from None
        except (IsADirectoryError, PermissionError) as error:  # Windows says PermissionError for a folder
            if Path(path).is_dir():
                raise ConfigError(f"--config {path} is a folder; give the path of a .toml file.") from None
            raise ConfigError(f"Config file {path} cannot be read ({error.strerror}). Check its "
                              "permissions.") from None
        except UnicodeDecodeError:
            raise ConfigError(f"Config file {path} is not UTF-8 text. Save it as UTF-8 and run again.") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"Config file {path} is not valid TOML: {error}. Fix the line it names.") from None
        for key, value in loaded.items():
            (sections.setdefault(key, {}) if isinstance(value, dict) else top).update(
                value if isinstance(value, dict) else {key: value})
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.rpartition(".")
        (sections.setdefault(section, {}) if section else top)[key] = value
    if "seed" in top:
        top["seed"] = _typed("seed", top["seed"], 42, "int", source)
    section_types = {f.name: f.type for f in dataclasses.fields(Config)}
    kwargs: dict[str, Any] = {}
    for key, value in top.items():
        if key not in section_types or key in _SECTION_CLASSES:
            raise ConfigError(f"{source}: unknown top-level setting '{key}'. "
                              f"Use sections [{'], ['.join(_SECTION_CLASSES)}] or 'seed'.")
        kwargs[key] = value
    for section, values in sections.items():
        if section not in _SECTION_CLASSES:
            raise ConfigError(f"{source}: unknown section [{section}]. "
                              f"Known sections: {', '.join(_SECTION_CLASSES)}.")
        kwargs[section] = _section_from(_SECTION_CLASSES[section], values, section, source)
    config = Config(**kwargs)
    validate(config, source, given_on_command_line=set(overrides or {}))
    return config


_SECTION_CLASSES: dict[str, type] = {
    "data": DataConfig,
    "labels": LabelConfig,
    "features": FeatureConfig,
    "training": TrainingConfig,
    "tuning": TuningConfig,
    "shap": ShapConfig,
    "portfolio": PortfolioConfig,
    "gate": GateConfig,
    "run": RunConfig,
}


def validate(config: Config, source: str = "config", *, given_on_command_line: set[str] | None = None) -> None:
    """Reject settings that would make a run meaningless, naming the setting (and the command-line
    option, when it came from one)."""
    problems = []
    command_line = given_on_command_line or set()

    def name(key: str) -> str:
        return f"{OPTION_NAMES[key]} ({key})" if key in command_line and key in OPTION_NAMES else key

    if config.data.source not in SOURCES:
        problems.append(f"data.source is {config.data.source!r}; use one of {', '.join(SOURCES)}")
    for which in ("start", "end"):
        value = getattr(config.data, which)
        if value is not None:
            try:
                _parse_date(value)
            except ValueError:
                problems.append(f"{name('data.' + which)} is {value!r}; use a date like 2005-01-31 (year-month-day)")
    if config.data.start and config.data.end and config.data.start >= config.data.end:
        problems.append(f"{name('data.start')} ({config.data.start}) must be before {name('data.end')} "
                        f"({config.data.end})")
    if not 10 <= config.data.demo_symbols <= 3000:
        problems.append(f"{name('data.demo_symbols')} is {config.data.demo_symbols}; the demo market has 10 to "
                        "3000 symbols (82 by default; it is generated in memory at once)")
    elif config.data.demo_symbols != 82 and config.data.source != "demo":
        problems.append(f"{name('data.demo_symbols')} sizes the demo market; use it with --demo")
    if config.labels.horizon < 1 or config.labels.stride < 1 or config.labels.vol_window < 2:
        problems.append("labels.horizon and labels.stride must be >= 1 and labels.vol_window >= 2")
    if config.labels.barrier_k <= 0:
        problems.append("labels.barrier_k must be > 0")
    unknown = [m for m in config.training.models if m not in BASE_MODELS]
    if unknown or not config.training.models:
        problems.append(f"training.models has {unknown or 'nothing'}; choose from {', '.join(BASE_MODELS)}")
    twice = sorted({m for m in config.training.models if config.training.models.count(m) > 1})
    if twice:
        problems.append(f"training.models lists {', '.join(twice)} more than once; list each model once")
    if not 2 <= config.training.n_folds <= 20:
        problems.append("training.n_folds must be between 2 and 20")
    if not 0.05 <= config.training.holdout_share <= 0.5:
        problems.append("training.holdout_share must be between 0.05 and 0.5")
    if config.training.ensemble_metric not in ENSEMBLE_METRICS:
        problems.append(f"training.ensemble_metric must be one of {', '.join(ENSEMBLE_METRICS)}")
    if config.training.ensemble_size < 1 or config.training.ensemble_min_train_years < 0:
        problems.append("training.ensemble_size must be >= 1 and training.ensemble_min_train_years >= 0")
    if not 0.5 <= config.gate.confidence < 1.0 or config.gate.bootstrap_reps < 100:
        problems.append("gate.confidence must be in [0.5, 1) and gate.bootstrap_reps >= 100")
    if config.gate.max_shortfall < 0:
        problems.append("gate.max_shortfall must be >= 0")
    if not 0.0 <= config.gate.min_dsr < 1.0:
        problems.append("gate.min_dsr must be in [0, 1) (0 shows the Deflated Sharpe Ratio without judging it)")
    problems.extend(_portfolio_problems(config.portfolio))
    problems.extend(_tuning_problems(config, name))
    if config.run.jobs < 1 or config.run.max_attempts < 1:
        problems.append("run.jobs and run.max_attempts must be >= 1")
    if config.run.cluster is not None and "://" not in config.run.cluster:
        problems.append(f"{name('run.cluster')} is {config.run.cluster!r}; give the Dask scheduler's address, "
                        "for example tcp://192.168.1.20:8786")
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems) + ".")


def _tuning_problems(config: Config, name: Callable[[str], str]) -> list[str]:
    tuning, problems = config.tuning, []
    if not 0 <= tuning.trials <= 10_000:
        problems.append(f"{name('tuning.trials')} is {tuning.trials}; use 0 (no tuning) up to 10000 trials per model")
    if tuning.minutes < 0:
        problems.append(f"{name('tuning.minutes')} is {tuning.minutes}; use 0 (no time limit) or more minutes")
    if tuning.minutes > 0 and tuning.trials == 0:
        problems.append(f"{name('tuning.minutes')} limits a search that is off: also give the number of trials "
                        "(--tune-trials 50, or trials = 50 under [tuning] in the config file)")
    if tuning.metric not in ENSEMBLE_METRICS:
        problems.append(f"tuning.metric is {tuning.metric!r}; use one of {', '.join(ENSEMBLE_METRICS)}")
    if tuning.trials:
        untrained = [model for model in tuning.models if model not in config.training.models]
        if untrained or not tuning.models:
            problems.append(f"tuning.models has {untrained or 'nothing'}; list models that training.models "
                            f"trains ({', '.join(config.training.models)})")
        if len(set(tuning.models)) != len(tuning.models):
            problems.append("tuning.models lists a model more than once; list each model once")
    return problems


def _portfolio_problems(portfolio: PortfolioConfig) -> list[str]:
    problems = []
    top = portfolio.top
    if not (0 < top < 1 or (top >= 1 and float(top).is_integer())):
        problems.append(f"portfolio.top is {top!r}; use a share between 0 and 1 (0.1 = the top decile) "
                        "or a whole number of stocks (for example 10)")
    if portfolio.exits not in PORTFOLIO_EXITS:
        problems.append(f"portfolio.exits is {portfolio.exits!r}; use one of {', '.join(PORTFOLIO_EXITS)}")
    if not (0 <= portfolio.cost_bps < 1000 and 0 <= portfolio.slippage_bps < 1000):
        problems.append("portfolio.cost_bps and portfolio.slippage_bps must be between 0 and 1000 basis points")
    if not -0.5 < portfolio.cash_rate < 1:
        problems.append("portfolio.cash_rate is a yearly rate such as 0.02; it must be between -0.5 and 1")
    return problems


def _parse_date(text: str) -> None:
    from datetime import date

    date.fromisoformat(text)
