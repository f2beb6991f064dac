"""Machine learning: the dataset and its time split, the models, sample weights, the ensemble,
the benchmarks, metrics and SHAP. Pure functions of arrays; no files, no console."""
