"""Where a tradable account is simulated from the signals: positions, costs, NAV, and the
performance figures (Sharpe, drawdown, PSR/DSR) that judge it."""
