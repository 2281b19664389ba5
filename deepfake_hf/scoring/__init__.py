"""Scoring files: the Scorer (one model forward policy), the Detector (files in, results out), explanations."""
