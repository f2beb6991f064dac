"""Everything a run needs, resolved once: config, universe, source, database and checkpoint.

This is where a resume is made safe: the checkpoint is loaded (or recovered from .bak, or
rebuilt from the database), its config is compared with this run's, and the database and the
checkpoint are reconciled before any work starts.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from backend import store
from backend.prices.base import PriceSource
from backend.prices.factory import make_source
from backend.universe import UniverseEntry, UniverseError, folder_universe, load_universe
from trainer import console
from trainer.checkpoint import PHASES, CheckpointManager, new_state, now_iso
from trainer.config import LABEL_DESIGN, Config, ConfigError, describe_differences, load_config
from trainer.options import RunOptions
from trainer.paths import WorkPaths

log = logging.getLogger(__name__)


class ConfigMismatch(ConfigError):
    """The checkpoint belongs to a run with other settings; nothing was touched."""


@dataclass
class RunContext:
    paths: WorkPaths
    config: Config
    options: RunOptions
    universe: list[UniverseEntry]
    source: PriceSource
    connection: sqlite3.Connection
    checkpoint: CheckpointManager
    notices: list[str] = field(default_factory=list)  # what the start-up did (recovery, reconcile)
    resumed: bool = False  # a checkpoint of this run existed before this process started
    # Data derived from the database that no later phase changes, kept for this process's run so
    # that phases share it instead of each reading it again (the samples: see prepare_data).
    derived: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> dict:
        assert self.checkpoint.state is not None
        return self.checkpoint.state

    @property
    def run_id(self) -> str:
        return self.state["run_id"]

    @property
    def symbols(self) -> list[str]:
        return [entry.symbol for entry in self.universe]

    def sector_of(self, symbol: str) -> str:
        return next(entry.sector for entry in self.universe if entry.symbol == symbol)

    def phase_done(self, phase: str) -> bool:
        return PHASES.index(self.state["current_phase"]) > PHASES.index(phase)

    def advance(self, finished_phase: str) -> None:
        """Mark a phase finished (idempotent) and save the checkpoint."""
        following = PHASES[PHASES.index(finished_phase) + 1]
        if PHASES.index(self.state["current_phase"]) < PHASES.index(following):
            self.state["current_phase"] = following
        self.checkpoint.save()


def resolve_universe(options: RunOptions, config: Config, source: PriceSource,
                     paths: WorkPaths) -> list[UniverseEntry]:
    """--universe, else the source's own (demo market, CSV folder), else data/universe.csv."""
    if options.universe is not None:
        entries = load_universe(options.universe)
    elif config.data.source == "demo":
        entries = source.universe()
    elif config.data.source == "csv":
        entries, not_symbols = folder_universe(source.list_symbols())
        if not_symbols:
            console.warn(f"Left out of the universe: price files in {options.prices_dir} whose names are no ticker "
                         f"symbol ({', '.join(repr(name) for name in not_symbols[:5])}"
                         f"{' ...' if len(not_symbols) > 5 else ''}). Rename a file after its symbol (e.g. "
                         "BRK-B.csv) to use it.")
        if not entries:
            excel = sorted(path.name for path in Path(options.prices_dir).iterdir()
                           if path.suffix.lower() in (".xlsx", ".xls", ".xlsm", ".ods"))
            if excel:
                raise UniverseError(f"{options.prices_dir} holds spreadsheets ({', '.join(excel[:3])}"
                                    f"{' ...' if len(excel) > 3 else ''}) but no price files: save each as "
                                    "CSV (in Excel: File > Save As > CSV UTF-8) named after its symbol, e.g. "
                                    "AAPL.csv, in that folder.")
            raise UniverseError(f"No price files (SYM.csv or SYM.csv.gz) found in {options.prices_dir}. "
                                "Point --prices-dir at the folder that holds them.")
    else:
        entries = load_universe(paths.default_universe)
    if config.data.max_symbols is not None:
        entries = entries[: config.data.max_symbols]
    return entries


def open_run(options: RunOptions) -> RunContext:
    """Resolve the run; raises ConfigError / ConfigMismatch / UniverseError before touching data."""
    paths = WorkPaths.at(options.workdir)
    config = load_config(options.config_path, options.overrides())
    try:
        source = make_source(config.data.source, prices_dir=options.prices_dir,
                             max_daily_move=config.data.max_daily_move, demo_seed=config.data.demo_seed,
                             demo_symbols=config.data.demo_symbols)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    universe = resolve_universe(options, config, source, paths)
    symbols = [entry.symbol for entry in universe]
    identity = config.identity(symbols)
    config_hash = config.hash(symbols)

    checkpoint = CheckpointManager(paths.checkpoints)
    outcome = checkpoint.load()
    notices: list[str] = []
    archived = False
    if outcome.state is not None and outcome.state["config"].get("labels.design") != LABEL_DESIGN:
        notices.append(_archive_earlier_release(checkpoint, outcome.state))
        outcome, archived = replace(outcome, state=None, problem=None, recovered_from=None), True
    if (outcome.state is not None and outcome.state["config_hash"] != config_hash
            and (outcome.state["current_phase"] == "complete" or _nothing_done(outcome.state))):
        notices.append(_archive_finished(checkpoint, outcome.state, identity))
        outcome, archived = replace(outcome, state=None, problem=None, recovered_from=None), True
    if outcome.state is not None and outcome.state["config_hash"] != config_hash:
        raise ConfigMismatch(_mismatch_message(outcome.state, identity, options.workdir))
    connection = store.connect(paths.database)
    context = RunContext(paths, config, options, universe, source, connection, checkpoint, notices,
                         resumed=outcome.state is not None)
    if outcome.recovered_from == "backup":
        notices.append(f"The checkpoint was unusable ({outcome.problem}); recovered it from "
                       f"{checkpoint.backup_path.name}.")
    if outcome.state is None:
        _start_or_rebuild(context, config_hash, identity, outcome.problem, archived=archived)
    _refuse_other_prices_folder(context)
    _register_run(context, config_hash)
    _remove_stale_temp_files(context)
    reconcile(context)
    return context


def _refuse_other_prices_folder(context: RunContext) -> None:
    """An unfinished CSV run resumed with another --prices-dir would mix two folders' prices. The
    folder is not part of the settings (a work folder moved to another computer must resume), so
    it is checked here: refused while the recorded folder still exists, accepted with a notice
    when it is gone (moved)."""
    if not context.resumed or context.state["current_phase"] == "complete":
        return
    row = context.connection.execute("SELECT source FROM training_runs WHERE run_id = ?",
                                     (context.run_id,)).fetchone()
    if row is None or row[0] == context.source.key or not row[0].startswith("csv:"):
        return
    recorded = Path(row[0].removeprefix("csv:"))
    if recorded.is_dir():
        raise ConfigMismatch(f"Run {context.run_id} was started with the prices in {recorded}; now --prices-dir is "
                             f"{context.options.prices_dir}. Mixing two folders would mix two sets of prices. Run "
                             f"with --prices-dir \"{recorded}\" to resume it, or 'python reset_checkpoint.py' to "
                             "start over with the new folder.")
    context.notices.append(f"Run {context.run_id} was started with the prices in {recorded}, which no longer exists; "
                           f"it resumes with {context.options.prices_dir}.")


def _remove_stale_temp_files(context: RunContext) -> None:
    """Temp files of writes that a kill or a full disk cut short ('.<name>.<pid>.tmp'); only one
    run works in a folder (the lock), so any that exist now are stale."""
    for folder in (context.paths.checkpoints, context.paths.artifacts(context.run_id)):
        for stale in folder.glob(".*.tmp") if folder.is_dir() else []:
            stale.unlink(missing_ok=True)
            log.info("removed a stale temp file %s", stale)


def _archive_earlier_release(checkpoint: CheckpointManager, state: dict) -> str:
    """A checkpoint of an earlier release (labels of another design) can never be resumed, and
    resetting would delete its run: keep the run and start a new one beside it."""
    folder = checkpoint.archive(state["run_id"])
    return (f"The saved run {state['run_id']} was made by an earlier release of the trainer, whose labels "
            f"are no longer used ({LABEL_DESIGN} now), so it cannot be resumed. It is kept: its data stays in "
            f"the database, its report in reports/, any promoted model in models/, and its checkpoint in "
            f"{folder}. A new run starts.")


def _nothing_done(state: dict) -> bool:
    """No symbol finished yet (e.g. a run stopped by a wrong date): there is nothing to protect."""
    return (not state["backtest"]["completed_symbols"]
            and PHASES.index(state["current_phase"]) <= PHASES.index("backtest"))


def _archive_finished(checkpoint: CheckpointManager, state: dict, identity: dict) -> str:
    """A finished run (or one that finished nothing) never blocks the next one: with other settings,
    a new run starts beside it."""
    changes = describe_differences(state.get("config", {}), identity)
    folder = checkpoint.archive(state["run_id"])
    if state["current_phase"] == "complete":
        return (f"The last run ({state['run_id']}) is finished and had other settings ("
                + "; ".join(changes) + "). It is kept: its results stay in the database and its report in "
                f"reports/; its checkpoint is in {folder}. Starting a run with these settings.")
    return (f"The last run ({state['run_id']}) had not finished a single symbol, so nothing of it is lost by "
            "starting over: it had other settings (" + "; ".join(changes) + f"); its checkpoint is in {folder}. "
            "Starting a run with these settings.")


def _mismatch_message(state: dict, identity: dict, workdir: Path | None = None) -> str:
    changes = describe_differences(state.get("config", {}), identity)
    # The reset must reach this work directory, not the project folder's own checkpoint.
    reset_command = "python reset_checkpoint.py" + (f' --workdir "{workdir}"' if workdir is not None else "")
    lines = [f"The saved progress (run {state['run_id']}) was made with different settings, so it "
             "cannot be resumed with these:"]
    lines += [f"  - {change}" for change in changes] or ["  - (settings differ)"]
    lines += ["Nothing was changed. Either:",
              f"  1. start over with these settings:  {reset_command}",
              "  2. or resume the saved run by running again with its old settings (listed left of "
              "each arrow above)."]
    return "\n".join(lines)


def _start_or_rebuild(context: RunContext, config_hash: str, identity: dict, problem: str | None, *,
                      archived: bool = False) -> None:
    """No usable checkpoint: rebuild from the database if it holds this config's run, else start."""
    row = context.connection.execute(
        "SELECT run_id, is_demo FROM training_runs WHERE config_hash = ? ORDER BY created_at DESC LIMIT 1",
        (config_hash,)).fetchone()
    total = len(context.universe)
    models_total = len(context.config.training.models)
    if row is not None:
        # The database is the source of truth for data: a checkpoint that is damaged or was deleted
        # (while the run's rows were kept) costs the models, never the finished symbols.
        state = new_state(row[0], config_hash, identity, total, models_total, bool(row[1]))
        state["created_at"] = now_iso()
        context.checkpoint.start(state)
        context.resumed = True
        found = (f"The checkpoint and its backup were unusable ({problem})" if problem is not None else
                 f"The database holds run {row[0]} with these settings" if archived else
                 f"There was no checkpoint in {context.checkpoint.folder}, but the database holds run "
                 f"{row[0]} with these settings")
        context.notices.append(f"{found}; rebuilt progress from the database (run {row[0]}). Finished "
                               "symbols are kept; models will be retrained.")
        return
    if problem is not None:
        context.notices.append(f"The checkpoint was unusable ({problem}) and the database holds no run "
                               "with these settings; starting a new run.")
    run_id = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{config_hash[:8]}"
    context.checkpoint.start(new_state(run_id, config_hash, identity, total, models_total,
                                       context.source.is_demo))


def _register_run(context: RunContext, config_hash: str) -> None:
    with store.transaction(context.connection):
        context.connection.execute(
            "INSERT OR IGNORE INTO training_runs (run_id, config_hash, config_json, source, is_demo, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (context.run_id, config_hash, json.dumps(context.config.to_dict(), default=str),
             context.source.key, int(context.source.is_demo), context.state["created_at"]))
        store.write_rows(context.connection, "symbols", [
            {"symbol": e.symbol, "name": e.name, "sector": e.sector, "cap": e.cap} for e in context.universe])


def reconcile(context: RunContext) -> None:
    """Make the checkpoint agree with what the database committed (the database wins for data)."""
    _restart_if_database_lost(context)
    backtest = context.state["backtest"]
    committed = store.committed_symbols(context.connection, context.run_id)
    listed = set(backtest["completed_symbols"])
    missing_from_json = sorted(committed - listed)
    missing_from_db = sorted(listed - committed)
    if missing_from_json:
        backtest["completed_symbols"] += missing_from_json
        for symbol in missing_from_json:
            backtest["failed_symbols"].pop(symbol, None)
        context.notices.append(f"{len(missing_from_json)} symbol(s) were committed to the database but "
                               f"not yet recorded in the checkpoint ({', '.join(missing_from_json)}); "
                               "marked done, not recomputed.")
    if missing_from_db:
        backtest["completed_symbols"] = [s for s in backtest["completed_symbols"] if s in committed]
        context.notices.append(f"{len(missing_from_db)} symbol(s) recorded as done are not in the database "
                               f"({', '.join(missing_from_db)}); they will be redone.")
        if context.phase_done("backtest"):
            context.state["current_phase"] = "backtest"
    if backtest.get("in_progress"):
        if backtest["in_progress"] not in committed:  # committed: already said "marked done" above
            context.notices.append(f"The previous run stopped while working on {backtest['in_progress']}; "
                                   "it is redone from scratch.")
        backtest["in_progress"] = None
    backtest["total_samples"] = context.connection.execute(
        "SELECT COUNT(*) FROM trades WHERE run_id = ?", (context.run_id,)).fetchone()[0]
    context.checkpoint.save()
    for notice in context.notices:
        log.info(notice)


def _restart_if_database_lost(context: RunContext) -> None:
    """The checkpoint says the market context was built, but the database holds none of it: the
    database was deleted, emptied or replaced. Every later phase read and wrote data that is gone,
    so the run starts again from the prices (same run id; the models are retrained), instead of
    failing on the missing rows on every later run."""
    if not context.phase_done("market"):
        return
    if context.connection.execute("SELECT 1 FROM market_data WHERE run_id = ? LIMIT 1",
                                  (context.run_id,)).fetchone() is not None:
        return
    state = context.state
    clear_training(context.connection, state, context.paths.artifacts(context.run_id))
    state["backtest"].update(completed_symbols=[], in_progress=None, total_samples=0)
    state["current_phase"] = "prices"
    context.notices.append(f"The database {context.paths.database} holds none of run {context.run_id}'s data (it "
                           "was deleted, emptied or replaced): the run starts again from the prices, and its models "
                           "will be retrained. The results are the same as before.")


TRAINING_PHASES_RESET_TO = "dataset"


def clear_training(connection: sqlite3.Connection, state: dict[str, Any], artifacts: Path) -> None:
    """Forget models and everything after them for the checkpoint's run; keep the backtest."""
    run_id = state["run_id"]
    with store.transaction(connection):
        for table in store.TRAINING_TABLES:
            if table != "model_promotion_history":  # decisions stay as history
                connection.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
        connection.execute("DELETE FROM run_facts WHERE run_id = ? AND key NOT IN "
                           "('proxy', 'failed_symbols', 'skipped_symbols')", (run_id,))
    if artifacts.exists():
        shutil.rmtree(artifacts)
    training = state["training"]
    training.update(base_models_trained=[], in_progress=None, model_seconds={}, ensemble_trained=False,
                    ensemble_weights={}, benchmarks_trained=False)
    state["tuning"] = {}  # its studies stay in data/tuning.db: an unchanged dataset finds them finished
    state["evaluation"] = {"completed": False, "results": {}}
    state["portfolio"] = {"completed": False, "results": {}}
    state["shap"] = {"completed": False}
    state["promotion"] = {"decided": False, "decision": None}
    state["report"] = {"path": None}
    # Back to the dataset phase, never forward: a backtest that has not finished must finish first.
    if PHASES.index(state["current_phase"]) > PHASES.index(TRAINING_PHASES_RESET_TO):
        state["current_phase"] = TRAINING_PHASES_RESET_TO
