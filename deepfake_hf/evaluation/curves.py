"""Computations on ranked scores that metric definitions share: validated arrays, the EER two ways, the ECE.

Below both `metric_defs` (which compute through these) and `metrics` (which re-uses them for calibration
and plots), so neither imports the other's internals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepfake_hf.evaluation.errors import MetricInputError

PROBABILITY_EPS = 1e-7

ArrayLike = Sequence[float] | np.ndarray


def as_arrays(labels: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(int labels, float scores) as flat arrays; MetricInputError when they cannot be scored together."""
    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=float).ravel()
    if labels.shape != scores.shape:
        raise MetricInputError(f"labels ({labels.size}) and scores ({scores.size}) differ in length")
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise MetricInputError(f"labels must be 0 (real) or 1 (fake), got {sorted(set(labels.tolist()) - {0, 1})[:5]}")
    if not np.isfinite(scores).all():
        raise MetricInputError(f"{int((~np.isfinite(scores)).sum())} scores are NaN or infinite")
    return labels, scores


def equal_error_rate(labels: ArrayLike, scores: ArrayLike) -> tuple[float, float]:
    """(EER, threshold): the ROC point where FPR = 1 - TPR, interpolated linearly between ROC points.

    Solved with brentq on sklearn's ROC curve; the threshold is interpolated at the same FPR. Needs
    both classes. DeepfakeBench reports a different number, the FPR of the nearest existing ROC point
    (`deepfakebench_equal_error_rate`); the two agree only when a ROC point lies on FPR = 1 - TPR.
    """
    from scipy.interpolate import interp1d
    from scipy.optimize import brentq
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(labels, scores)
    # sklearn's first threshold is +inf (nothing predicted fake); the highest score gives the same point.
    thresholds = thresholds.copy()
    thresholds[0] = thresholds[1] if len(thresholds) > 1 else np.max(scores)
    tpr_at = interp1d(fpr, tpr)
    eer = brentq(lambda x: 1.0 - x - tpr_at(x), 0.0, 1.0)
    threshold = float(interp1d(fpr, thresholds)(eer))
    return float(eer), threshold


def deepfakebench_equal_error_rate(labels: ArrayLike, scores: ArrayLike) -> float:
    """EER as DeepfakeBench computes it: the FPR of the ROC point where |FNR - FPR| is smallest.

    No interpolation: on sklearn's `roc_curve` (default `drop_intermediate=True`, as DeepfakeBench calls
    it) it takes the existing point nearest to the equal-error line, so it can differ from
    `equal_error_rate` by up to half a ROC step. Reported as `eer_deepfakebench` so published
    DeepfakeBench tables can be compared like for like. Needs both classes.
    """
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    return float(fpr[np.nanargmin(np.abs((1.0 - tpr) - fpr))])


def expected_calibration_error(labels: ArrayLike, probabilities: ArrayLike, n_bins: int = 15) -> float:
    """Sum over equal-width probability bins of (bin share) * |fraction fake - mean predicted probability|.

    Bins as `sklearn.calibration.calibration_curve(strategy="uniform")`, so the reliability diagram
    and this number describe the same bins.
    """
    labels, probabilities = as_arrays(labels, probabilities)
    bins = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], probabilities)
    count = np.bincount(bins, minlength=n_bins)
    fake = np.bincount(bins, weights=labels, minlength=n_bins)
    predicted = np.bincount(bins, weights=probabilities, minlength=n_bins)
    full = count > 0
    gap = np.abs(fake[full] - predicted[full]) / count[full]
    return float((count[full] / labels.size * gap).sum())
