"""Hyperparameter search: what is searched (spaces), and a resumable, deterministic study (search)."""
