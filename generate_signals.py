"""Make tomorrow's signals with the promoted model and score the earlier ones. See README.md."""

import sys

from trainer.app.cli import generate_signals_main

if __name__ == "__main__":
    sys.exit(generate_signals_main(sys.argv[1:]))
