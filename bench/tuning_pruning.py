"""What the median pruner saves, and what it costs: the same hyperparameter search on a finished
run's stored training data, with and without pruning, one after the other in this process.

    python bench/tuning_pruning.py --workdir DIR [--run RUN_ID] [--model lightgbm] [--trials 30]

Prints, for each variant, the wall time, how many trials were pruned, the best out-of-fold score
and the parameters it chose. Both searches use fresh temporary study files; nothing is written
to the work folder. Run it on a quiet machine: the ratio of the two times is the figure.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

from trainer.config import flatten, load_config  # noqa: E402
from trainer.ml.fitting import load_training_data  # noqa: E402
from trainer.tuning.search import SearchSettings, load_study, open_storage, search  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--run")
    parser.add_argument("--model", default="lightgbm")
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    connection = sqlite3.connect(f"file:{(args.workdir / 'data' / 'trainer.db').as_posix()}?mode=ro", uri=True)
    run_id = args.run or connection.execute(
        "SELECT run_id FROM training_runs WHERE finished_at IS NOT NULL ORDER BY created_at DESC").fetchone()[0]
    stored = connection.execute("SELECT config_json FROM training_runs WHERE run_id = ?", (run_id,)).fetchone()[0]
    config = load_config(None, {key: value for key, value in flatten(json.loads(stored)).items()
                                if not key.startswith(("run.", "tuning."))})
    data = load_training_data(connection, run_id, config)
    print(f"run {run_id}: {len(data.split.train_idx):,} training rows, {args.model}, {args.trials} trials")
    rows = []
    for pruning in (True, False):
        settings = SearchSettings(args.model, args.trials, config.tuning.metric, config.seed,
                                  config.training.uniqueness_weights, config.training.ensemble_min_train_years,
                                  pruning=pruning)
        with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as folder:  # Windows: the engine may hold it
            study = load_study(open_storage(Path(folder) / "tuning.db"), "bench", settings.metric)
            started = time.perf_counter()
            result = search(study, settings, data, out_of_time=lambda: False, after_trial=lambda result: None)
            seconds = time.perf_counter() - started
        rows.append((pruning, seconds, result))
        print(f"{'median pruner' if pruning else 'no pruning':<14} {seconds:8.1f} s  pruned {result.pruned:>3}  "
              f"best {result.best_value:.4f}  default {result.default_value:.4f}  {result.best_params}")
    (_, with_pruning, _), (_, without, _) = rows
    print(f"time with pruning / without: {with_pruning / without:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
