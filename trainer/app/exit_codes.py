"""Process exit codes, documented in README.md and explained by run_training.bat."""

COMPLETE = 0
UNEXPECTED_ERROR = 1
CONFIG_ERROR = 2
DATA_ERROR = 3
INTERRUPTED = 4
ALREADY_RUNNING = 5
NO_MODEL = 6  # generate_signals.py: no promoted model (or an unusable one)

MEANING = {
    COMPLETE: "training finished",
    UNEXPECTED_ERROR: "unexpected error (see logs/training.log); progress up to the last finished "
                      "symbol or model is saved",
    CONFIG_ERROR: "configuration error: a setting, argument or config file needs fixing (message above)",
    DATA_ERROR: "data error: the prices, the database, the disk or the cluster cannot be used (message above "
                "names which and what to do)",
    INTERRUPTED: "interrupted; progress is saved and the next run resumes where it stopped",
    ALREADY_RUNNING: "another training run is already working in this folder; wait for it or stop it",
}

# generate_signals.py ends with the same codes where they mean the same, and NO_MODEL.
SIGNALS_MEANING = {
    COMPLETE: "signals written",
    UNEXPECTED_ERROR: "unexpected error (see logs/training.log); nothing about training was changed",
    CONFIG_ERROR: "an argument, date or file needs fixing (message above)",
    DATA_ERROR: "data error: the database cannot be used (message above)",
    INTERRUPTED: "interrupted; run again to make these signals",
    ALREADY_RUNNING: "another signals run is already working in this folder; wait for it",
    NO_MODEL: "no usable model to make signals with (message above says how to get one)",
}
