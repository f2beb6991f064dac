"""Orchestration: config, checkpoint, pipeline phases, models, evaluation, gate, report, console.

Importing this package must stay free of third-party imports: `trainer.bootstrap` runs before
the dependencies are installed.
"""
