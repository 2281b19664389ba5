"""Evaluation: metrics, evaluate, calibrate, probes and the report.

- `metric_defs/`: the metric registry, one module per metric (name, label, how it is computed, where it is shown)
- `curves`: shared computations on ranked scores (EER two ways, ECE, validated arrays)
- `metrics`: `binary_metrics` (every registered metric), video aggregation, bootstrap intervals, calibration fits
- `testsets`: loading a test set, video keys, its metrics.json entry, predictions.csv
- `evaluate`: `evaluate_model`, `score_dataset` (distributed scoring as predict scores), loading models and test sets
- `perturbations`: robustness perturbations and their `--perturb` parsing
- `report`: report.md's tables and the plots
- `calibrate`: `calibrate_model` (temperature and threshold stored in the model's config)
- `probes`: frozen-feature probes and `run_probe`
- `errors`: the package's `DeepfakeHFError` subclasses
"""
