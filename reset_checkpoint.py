"""Start over: delete progress (asks first). See README.md."""

import sys

from trainer.app.cli import reset_checkpoint_main

if __name__ == "__main__":
    sys.exit(reset_checkpoint_main(sys.argv[1:]))
