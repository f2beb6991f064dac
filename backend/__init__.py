"""Data and storage: SQLite store, price sources, data quality, features, labels, regimes.

Never imports `trainer`.
"""
