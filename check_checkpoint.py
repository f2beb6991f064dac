"""Show the progress of the current or last run (safe while a run is writing). See README.md."""

import sys

from trainer.app.cli import check_checkpoint_main

if __name__ == "__main__":
    sys.exit(check_checkpoint_main(sys.argv[1:]))
