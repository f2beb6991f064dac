"""Train stock-signal models, resuming where the last run stopped. See README.md."""

import sys

from trainer.app.cli import run_training_main

if __name__ == "__main__":
    sys.exit(run_training_main(sys.argv[1:]))
