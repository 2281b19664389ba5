"""Field-standard deepfake-detection metrics: frame and video level, bootstrap intervals, calibration.

Scores are fake probabilities (label 1 = fake, 0 = real). Threshold-free metrics (AUROC, AP, EER)
rank the scores; thresholded ones (accuracy, precision, ...) call a sample fake when its score is
at or above `threshold`, the same rule the model's `config.threshold` applies. A metric that is
undefined on the given input (AUROC on a single class, precision with no fake predictions, ...)
is `None`, and `result["reasons"][metric]` says why: never a crash and never a made-up number.

Video-level metrics group frame scores by the full source path of the video (DeepfakeBench groups
by folder name, which merges FF++ videos of the same name across manipulation methods), aggregate
them with the mean or the DFDC winner's "confident" rule, and bootstrap intervals resample whole
videos, because frames of one video are not independent.

Each metric is defined once, in its own module of `metric_defs` (name, label, how it is computed, where
it is shown); `binary_metrics` computes every registered one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepfake_hf.configuration_deepfake import (
    AGGREGATIONS,
    DEFAULT_AGGREGATION,
    DEFAULT_CONFIDENT_FRACTION,
    DEFAULT_CONFIDENT_THRESHOLD,
)
from deepfake_hf.evaluation.curves import ArrayLike, as_arrays
from deepfake_hf.evaluation.errors import MetricInputError
from deepfake_hf.evaluation.metric_defs import MetricInputs, interval_metrics, metric_names, registered_metrics

# the local `evaluate` module: evaluate.load(EVALUATE_MODULE_PATH) works offline
EVALUATE_MODULE_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "evaluate_metric",
                                    "deepfake_metrics.py")


# ------------------------------------------------------------------------------------------ single metrics
def binary_metrics(labels: ArrayLike, scores: ArrayLike, threshold: float = 0.5,
                   ece_bins: int = 15) -> dict[str, Any]:
    """All registered metrics (`metric_defs`) of one set of scores; see the module docstring.

    Keys: the metric names in metrics.json order, then n, n_real, n_fake, threshold, reasons (metric -> why
    it is None)."""
    labels, scores = as_arrays(labels, scores)
    metrics = registered_metrics()
    inputs = MetricInputs(labels, scores, threshold, ece_bins, metrics)
    result: dict[str, Any] = dict.fromkeys(metrics)
    result.update(n=inputs.n, n_real=inputs.n_real, n_fake=inputs.n_fake, threshold=float(threshold))
    if inputs.n == 0:
        result["reasons"] = dict.fromkeys(metrics, "no samples")
        return result
    for name in metrics:
        result[name] = inputs.value(name)
    result["reasons"] = {name: inputs.reasons[name] for name in metrics if name in inputs.reasons}
    return result


# ------------------------------------------------------------------------------------------ video level
def video_scores(scores: ArrayLike, groups: Sequence[Any] | np.ndarray, aggregation: str = DEFAULT_AGGREGATION,
                 labels: ArrayLike | None = None, confident_threshold: float = DEFAULT_CONFIDENT_THRESHOLD,
                 confident_fraction: float = DEFAULT_CONFIDENT_FRACTION,
                 ) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """Aggregate frame scores per video; `groups` are the videos' full paths (the grouping key as is).

    Returns (video_keys, video_scores, video_labels) in order of first appearance; `video_labels` is
    None when `labels` is None. Aggregation "mean" or "confident" (the model's own `confident_mean`).
    A video whose frames carry different labels is an error: the grouping key is wrong.
    """
    scores = np.asarray(scores, dtype=float).ravel()
    groups = [str(group) for group in groups]
    if len(groups) != scores.size:
        raise MetricInputError(f"groups ({len(groups)}) and scores ({scores.size}) differ in length")
    if aggregation not in AGGREGATIONS:
        raise MetricInputError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {aggregation!r}")
    unique_keys, index = np.unique(np.asarray(groups, dtype=object), return_inverse=True)
    first = np.full(len(unique_keys), scores.size)
    np.minimum.at(first, index, np.arange(scores.size))
    order = np.argsort(first)  # keep the order in which videos first appear
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    index = rank[index]
    keys = [str(key) for key in unique_keys[order]]

    if aggregation == "mean":
        aggregated = np.bincount(index, weights=scores, minlength=len(keys)) / np.bincount(index, minlength=len(keys))
    else:
        import torch

        from deepfake_hf.modeling_deepfake import confident_mean

        aggregated = np.array([
            float(confident_mean(torch.as_tensor(scores[index == video], dtype=torch.float64)[None],
                                 confident_threshold, confident_fraction)[0])
            for video in range(len(keys))
        ])

    video_labels = None
    if labels is not None:
        labels = np.asarray(labels).astype(int).ravel()
        low = np.full(len(keys), 2)
        high = np.full(len(keys), -1)
        np.minimum.at(low, index, labels)
        np.maximum.at(high, index, labels)
        mixed = np.nonzero(low != high)[0]
        if mixed.size:
            raise MetricInputError(f"{keys[mixed[0]]}: frames of one video have both labels")
        video_labels = low
    return keys, aggregated, video_labels


# ------------------------------------------------------------------------------------------ bootstrap
def bootstrap_ci(labels: ArrayLike, scores: ArrayLike, groups: Sequence[Any] | np.ndarray | None = None,
                 metrics: Sequence[str] | None = None, threshold: float = 0.5, n_resamples: int = 1000,
                 confidence: float = 0.95, seed: int = 0) -> dict[str, list[float] | None]:
    """Percentile bootstrap intervals {metric: [low, high]} (None when too few resamples define it).

    `metrics` default: the registered metrics with an interval (`metric_defs.interval_metrics`).

    With `groups`, whole groups (videos) are resampled with all their frames, so correlated frames
    do not shrink the interval; without, single samples are resampled. A resample is a vector of
    per-row multiplicities, so AUROC, AP, EER and (balanced) accuracy are computed as weighted
    metrics on one pre-sorted copy of the scores (`weighted_ranking_metrics`, equal to scikit-learn's
    with `sample_weight`); other metrics go through `binary_metrics` on the resampled rows.
    """
    labels, scores = as_arrays(labels, scores)
    metrics = interval_metrics() if metrics is None else tuple(metrics)
    rng = np.random.default_rng(seed)
    if groups is None:
        unit_of_row = np.arange(labels.size)
    else:
        _, unit_of_row = np.unique(np.asarray([str(g) for g in groups], dtype=object), return_inverse=True)
    n_units = int(unit_of_row.max()) + 1 if labels.size else 0
    intervals = dict.fromkeys(metrics)
    if not n_units:
        return intervals
    fast = set(metrics) <= set(WEIGHTED_METRICS)
    order = np.argsort(-scores, kind="stable")
    ranked = (labels[order], scores[order], unit_of_row[order])
    values: dict[str, list[float]] = {metric: [] for metric in metrics}
    for _ in range(n_resamples):
        counts = np.bincount(rng.integers(0, n_units, size=n_units), minlength=n_units)
        if fast:
            sample = weighted_ranking_metrics(ranked[0], ranked[1], counts[ranked[2]].astype(float), threshold,
                                              presorted=True)
        else:
            rows = np.repeat(np.arange(labels.size), counts[unit_of_row])
            sample = binary_metrics(labels[rows], scores[rows], threshold)
        for metric in metrics:
            if sample.get(metric) is not None:
                values[metric].append(sample[metric])
    alpha = (1.0 - confidence) / 2
    for metric, found in values.items():
        # an interval from a handful of defined resamples would be a made-up number
        if len(found) >= max(10, n_resamples // 2):
            low, high = np.quantile(found, [alpha, 1 - alpha])
            intervals[metric] = [float(low), float(high)]
    return intervals


WEIGHTED_METRICS = ("accuracy", "balanced_accuracy", "auroc", "ap", "eer")


def weighted_ranking_metrics(labels, scores, weights, threshold=0.5, presorted=False):
    """Accuracy, balanced accuracy, AUROC, AP and EER with per-sample weights, in one pass over sorted scores.

    Same definitions as `binary_metrics` (AUROC: trapezoid under the ROC; AP: sum over distinct
    thresholds of recall increase times precision; EER: linear interpolation between ROC points);
    undefined ones are absent. `presorted`: scores are already in decreasing order.
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=float)
    weights = np.asarray(weights, dtype=float)
    if not presorted:
        order = np.argsort(-scores, kind="stable")
        labels, scores, weights = labels[order], scores[order], weights[order]
    fake_weight = weights * labels
    real_weight = weights - fake_weight
    total = weights.sum()
    out = {}
    if total <= 0:
        return out
    called_fake = scores >= threshold
    positives, negatives = fake_weight.sum(), real_weight.sum()
    caught, false_alarms = fake_weight[called_fake].sum(), real_weight[called_fake].sum()
    out["accuracy"] = float((caught + negatives - false_alarms) / total)
    if positives <= 0 or negatives <= 0:
        return out
    out["balanced_accuracy"] = float(0.5 * (caught / positives + (negatives - false_alarms) / negatives))
    ends = np.r_[np.nonzero(np.diff(scores))[0], scores.size - 1]  # last row of each run of tied scores
    tp = np.cumsum(fake_weight)[ends]
    fp = np.cumsum(real_weight)[ends]
    tpr = np.r_[0.0, tp / positives]
    fpr = np.r_[0.0, fp / negatives]
    out["auroc"] = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 1.0)
    out["ap"] = float(np.sum(np.diff(tpr) * precision))
    gap = 1.0 - fpr - tpr  # decreasing along the curve; EER where it crosses 0
    after = int(np.argmax(gap <= 0))
    if after == 0:
        out["eer"] = 0.0
    else:
        before = after - 1
        step = gap[before] - gap[after]
        w = gap[before] / step if step > 0 else 0.0
        out["eer"] = float(fpr[before] + w * (fpr[after] - fpr[before]))
    return out


# ------------------------------------------------------------------------------------------ reports
def evaluate_scores(labels: ArrayLike, scores: ArrayLike, groups: Sequence[Any] | np.ndarray | None = None,
                    threshold: float = 0.5, aggregation: str = DEFAULT_AGGREGATION, n_resamples: int = 1000,
                    seed: int = 0, confident_threshold: float = DEFAULT_CONFIDENT_THRESHOLD,
                    confident_fraction: float = DEFAULT_CONFIDENT_FRACTION) -> dict[str, Any]:
    """{"frame": metrics + "ci", "video": metrics + "ci" or None}: one test set, as metrics.json stores it.

    Video metrics exist when `groups` has fewer distinct keys than samples (some group has frames).
    """
    labels, scores = as_arrays(labels, scores)
    frame = binary_metrics(labels, scores, threshold)
    frame["ci"] = bootstrap_ci(labels, scores, groups, threshold=threshold, n_resamples=n_resamples, seed=seed)
    video = None
    if groups is not None and len(set(map(str, groups))) < labels.size:
        _, v_scores, v_labels = video_scores(scores, groups, aggregation, labels, confident_threshold,
                                             confident_fraction)
        assert v_labels is not None  # video_scores returns video labels when given labels
        video = binary_metrics(v_labels, v_scores, threshold)
        video["aggregation"] = aggregation
        video["ci"] = bootstrap_ci(v_labels, v_scores, threshold=threshold, n_resamples=n_resamples, seed=seed)
    return {"frame": frame, "video": video}


# ------------------------------------------------------------------------------------------ calibration
def fit_temperature(labels: ArrayLike, logits: ArrayLike) -> float:
    """Temperature T > 0 minimising the log loss of softmax(logits / T) (Guo et al., ICML 2017).

    `logits` are (n, 2) uncalibrated head outputs (or (n,) fake-minus-real logit differences).
    """
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels).astype(int).ravel()
    logits = np.asarray(logits, dtype=float)
    margin = logits[:, 1] - logits[:, 0] if logits.ndim == 2 else logits.ravel()
    sign = 2 * labels - 1

    def loss(log_t):
        z = sign * margin / math.exp(log_t)
        return np.logaddexp(0.0, -z).mean()  # -log sigmoid(z), stable

    best = minimize_scalar(loss, bounds=(math.log(0.01), math.log(100.0)), method="bounded")
    return float(math.exp(best.x))


def threshold_at_fpr(labels: ArrayLike, scores: ArrayLike, target_fpr: float) -> float:
    """A threshold whose false-positive rate (real scored >= threshold) is at most `target_fpr`, with the
    most fake samples caught: midway between the highest real score that must stay below it and the next
    higher score, so float rounding in a reloaded model does not move any sample across it."""
    labels, scores = as_arrays(labels, scores)
    real = np.sort(scores[labels == 0])[::-1]
    if real.size == 0:
        raise MetricInputError("no real samples to set a false-positive rate on")
    allowed = int(math.floor(target_fpr * real.size + 1e-9))  # real samples that may score >= threshold
    if allowed >= real.size:
        return float(real[-1])
    below = real[allowed]  # this real sample, and all lower ones, must be called real
    above = scores[scores > below]
    upper = above.min() if above.size else max(1.0, below + 1.0)
    return float(below + (upper - below) / 2)


# ------------------------------------------------------------------------------------------ Trainer
def trainer_compute_metrics(eval_pred: Any) -> dict[str, float]:
    """`compute_metrics` for `transformers.Trainer`: numeric metrics of the model's calibrated logits.

    The model's logits are centred on its threshold, so the decision threshold here is 0.5.
    None-valued (undefined) metrics are left out, since the Trainer logs numbers.
    """
    predictions = eval_pred.predictions
    if isinstance(predictions, (tuple, list)):  # (logits, image_features, ...)
        predictions = predictions[0]
    logits = np.asarray(predictions, dtype=float)
    label_ids = eval_pred.label_ids
    if isinstance(label_ids, (tuple, list)):
        label_ids = label_ids[0]
    shifted = logits - logits.max(-1, keepdims=True)
    probabilities = np.exp(shifted[..., 1]) / np.exp(shifted).sum(-1)
    result = binary_metrics(np.asarray(label_ids), probabilities, threshold=0.5)
    return {key: float(value) for key, value in result.items()
            if key in metric_names() and value is not None}
