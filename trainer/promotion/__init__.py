"""Deciding and installing: the promotion gate and the production model folder."""
