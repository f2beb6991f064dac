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
    DATA_ERROR: "data error: no usable prices (message above names the files or symbols)",
    INTERRUPTED: "interrupted; progress is saved and the next run resumes where it stopped",
    ALREADY_RUNNING: "another training run is already working in this folder; wait for it or stop it",
    NO_MODEL: "no usable model to make signals with (message above says how to get one)",
}
