"""Pipeline phases in order: prices, market, backtest, training, evaluation, SHAP, gate, report."""
