"""Evaluation: metrics, evaluate, calibrate, probes and the report."""
