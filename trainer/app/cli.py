"""Argument parsing for the three entry points. Heavy imports stay inside the functions so that
check_checkpoint.py answers in well under a second."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer import console
from trainer.config import SOURCES
from trainer.options import RunOptions


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def _positive_minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of minutes, got {text!r}") from None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be more than 0 minutes, got {text}")
    return value


def _workdir(text: str) -> Path:
    """A folder (created when missing), never an existing file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder (it is created if it does not exist)")
    return path


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not value >= 0.5:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be at least 0.5 seconds, got {text}")
    return value


def _chosen_source(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """--demo is --source demo; --prices-dir alone means --source csv; None: the default."""
    if args.demo and args.source not in (None, "demo"):
        parser.error(f"--demo contradicts --source {args.source}; use one of them")
    demo_symbols = getattr(args, "demo_symbols", None)
    if demo_symbols and (args.source not in (None, "demo") or args.prices_dir is not None):
        parser.error("--demo-symbols sizes the demo market; it cannot be used with --source "
                     f"{args.source or 'csv'} or --prices-dir")
    source = "demo" if args.demo or (demo_symbols and args.source is None) else args.source
    if args.prices_dir is not None and source is None:
        source = "csv"
    return source


def build_run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_training.py",
        description="Backtest a stock universe into SQLite and train signal models; resumes "
                    "automatically where the last run stopped.")
    parser.add_argument("--demo", action="store_true", help="offline demo market (same as --source demo)")
    parser.add_argument("--source", choices=SOURCES, help="price source (default: yfinance)")
    parser.add_argument("--demo-symbols", type=_positive_int, metavar="N",
                        help="a demo market of N symbols (default 82; implies --demo), for scale tests")
    parser.add_argument("--prices-dir", type=Path, help="folder of SYM.csv / SYM.csv.gz files (--source csv)")
    parser.add_argument("--universe", type=Path, help="CSV with symbol,name,sector[,cap] (default: data/universe.csv)")
    parser.add_argument("--config", type=Path, dest="config_path", help="TOML file overriding the default settings")
    parser.add_argument("--workdir", type=_workdir, help="where data/, checkpoints/, logs/, reports/ and models/ live")
    parser.add_argument("--max-symbols", type=_positive_int, help="use only the first N symbols of the universe")
    parser.add_argument("--start", help="first date, YYYY-MM-DD (default 2005-01-01)")
    parser.add_argument("--end", help="last date, YYYY-MM-DD (default: newest available)")
    parser.add_argument("--jobs", type=_positive_int,
                        help="worker processes for the backtest and the model fits (at most the cores)")
    parser.add_argument("--allow-sleep", action="store_true", help="let Windows sleep while training runs")
    parser.add_argument("--tune-trials", type=_positive_int, metavar="N",
                        help="search N hyperparameter sets per tuned model (config [tuning]; resumable)")
    parser.add_argument("--tune-minutes", type=_positive_minutes, metavar="M",
                        help="stop the search after M minutes, shared by the tuned models (the running trial finishes)")
    parser.add_argument("--cluster", metavar="tcp://HOST:PORT",
                        help="run the backtest and the model fits on this Dask scheduler's workers")
    parser.add_argument("--no-open", action="store_true", help="do not open the report in the browser at the end")
    return parser


def parse_run_options(argv: list[str]) -> RunOptions:
    parser = build_run_parser()
    args = parser.parse_args(argv)
    source = _chosen_source(parser, args)
    return RunOptions(workdir=args.workdir, config_path=args.config_path, source=source,
                      prices_dir=args.prices_dir, universe=args.universe, max_symbols=args.max_symbols,
                      start=args.start, end=args.end, jobs=args.jobs, allow_sleep=args.allow_sleep,
                      open_report=not args.no_open, tune_trials=args.tune_trials,
                      tune_minutes=args.tune_minutes, cluster=args.cluster, demo_symbols=args.demo_symbols)


def run_training_main(argv: list[str]) -> int:
    console.guard_streams()
    options = parse_run_options(argv)
    from trainer.app.run import run_pipeline

    return run_pipeline(options)


def generate_signals_main(argv: list[str]) -> int:
    console.guard_streams()
    parser = argparse.ArgumentParser(
        prog="generate_signals.py",
        description="Make BUY / HOLD / SELL signals for the newest (or --as-of) date with the promoted model, "
                    "and score the earlier signals that have matured. Nothing is retrained.")
    parser.add_argument("--workdir", type=_workdir, help="the folder you trained in (default: project folder)")
    parser.add_argument("--demo", action="store_true", help="the demo market, continued after its training end")
    parser.add_argument("--source", choices=SOURCES, help="price source (default: the one the model was trained on)")
    parser.add_argument("--prices-dir", type=Path, help="folder of SYM.csv files (--source csv)")
    parser.add_argument("--universe", type=Path, help="CSV with symbol,name,sector (default: the model's symbols)")
    parser.add_argument("--as-of", help="date of the signals, YYYY-MM-DD (default: the newest price)")
    parser.add_argument("--model", choices=("production", "candidate"), default="production",
                        help="production (default), or candidate: the last run's model even if not promoted")
    parser.add_argument("--max-age", type=_positive_int, default=3,
                        help="warn when the newest price is older than this many business days (default 3)")
    parser.add_argument("--json", action="store_true", help="print the signals as JSON for scripts")
    args = parser.parse_args(argv)
    source = _chosen_source(parser, args)
    from trainer.app.signals import run_signals
    from trainer.options import SignalOptions

    return run_signals(SignalOptions(workdir=args.workdir, source=source, prices_dir=args.prices_dir,
                                     universe=args.universe, as_of=args.as_of, model=args.model,
                                     as_json=args.json, max_age_days=args.max_age))


def check_checkpoint_main(argv: list[str]) -> int:
    console.guard_streams()
    parser = argparse.ArgumentParser(prog="check_checkpoint.py",
                                     description="Show the progress of the current or last training run.")
    parser.add_argument("--workdir", type=_workdir, help="work directory of the run (default: project folder)")
    parser.add_argument("--watch", action="store_true", help="refresh every few seconds until Ctrl+C")
    parser.add_argument("--json", action="store_true",
                        help="print the state as one line of JSON for scripts (with --watch: one line per refresh)")
    parser.add_argument("--interval", type=_interval, default=3.0,
                        help="seconds between refreshes with --watch (at least 0.5)")
    parser.add_argument("--signals", action="store_true",
                        help="the live track record of the signals made by generate_signals.py")
    args = parser.parse_args(argv)
    if args.signals:
        from trainer.app.signal_record import show_signal_record

        return show_signal_record(args.workdir, as_json=args.json)
    from trainer.app.status import show_status

    return show_status(args.workdir, watch=args.watch, as_json=args.json, interval=args.interval)


def reset_checkpoint_main(argv: list[str]) -> int:
    console.guard_streams()
    parser = argparse.ArgumentParser(prog="reset_checkpoint.py",
                                     description="Delete training progress so the next run starts over.")
    parser.add_argument("--workdir", type=_workdir, help="work directory of the run (default: project folder)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--phase", choices=["training"],
                        help="'training': keep prices and backtest, reset models and everything after")
    parser.add_argument("--prices", action="store_true", help="also delete the shared price cache")
    args = parser.parse_args(argv)
    from trainer.app.reset import reset

    return reset(args.workdir, assume_yes=args.yes, phase=args.phase, include_prices=args.prices)
