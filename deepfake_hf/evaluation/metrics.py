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
"""

import math
import os

import numpy as np

from deepfake_hf.configuration_deepfake import (
    AGGREGATIONS,
    DEFAULT_AGGREGATION,
    DEFAULT_CONFIDENT_FRACTION,
    DEFAULT_CONFIDENT_THRESHOLD,
)

METRIC_NAMES = (
    "accuracy", "balanced_accuracy", "precision", "recall", "f1", "auroc", "ap", "eer", "eer_threshold",
    "eer_deepfakebench", "log_loss", "brier", "ece",
)
# the metrics that get bootstrap intervals by default: the columns of the papers' cross-dataset table
CI_METRICS = ("auroc", "ap", "eer", "accuracy", "balanced_accuracy")
PROBABILITY_EPS = 1e-7
# the local `evaluate` module: evaluate.load(EVALUATE_MODULE_PATH) works offline
EVALUATE_MODULE_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "evaluate_metric", "deepfake_metrics.py")


def _as_arrays(labels, scores):
    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=float).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels ({labels.size}) and scores ({scores.size}) differ in length")
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 (real) or 1 (fake), got {sorted(set(labels.tolist()) - {0, 1})[:5]}")
    if not np.isfinite(scores).all():
        raise ValueError(f"{int((~np.isfinite(scores)).sum())} scores are NaN or infinite")
    return labels, scores


# ------------------------------------------------------------------------------------------ single metrics
def equal_error_rate(labels, scores):
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


def deepfakebench_equal_error_rate(labels, scores):
    """EER as DeepfakeBench computes it: the FPR of the ROC point where |FNR - FPR| is smallest.

    No interpolation: on sklearn's `roc_curve` (default `drop_intermediate=True`, as DeepfakeBench calls
    it) it takes the existing point nearest to the equal-error line, so it can differ from
    `equal_error_rate` by up to half a ROC step. Reported as `eer_deepfakebench` so published
    DeepfakeBench tables can be compared like for like. Needs both classes.
    """
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    return float(fpr[np.nanargmin(np.abs((1.0 - tpr) - fpr))])


def expected_calibration_error(labels, probabilities, n_bins=15):
    """Sum over equal-width probability bins of (bin share) * |fraction fake - mean predicted probability|.

    Bins as `sklearn.calibration.calibration_curve(strategy="uniform")`, so the reliability diagram
    and this number describe the same bins.
    """
    labels, probabilities = _as_arrays(labels, probabilities)
    bins = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], probabilities)
    count = np.bincount(bins, minlength=n_bins)
    fake = np.bincount(bins, weights=labels, minlength=n_bins)
    predicted = np.bincount(bins, weights=probabilities, minlength=n_bins)
    full = count > 0
    gap = np.abs(fake[full] - predicted[full]) / count[full]
    return float((count[full] / labels.size * gap).sum())


def binary_metrics(labels, scores, threshold=0.5, ece_bins=15):
    """All metrics of one set of scores; see the module docstring. Keys: METRIC_NAMES + n, n_real, n_fake,
    threshold, reasons (metric -> why it is None)."""
    from sklearn import metrics as skm

    labels, scores = _as_arrays(labels, scores)
    n, n_fake = int(labels.size), int(labels.sum())
    result = dict.fromkeys(METRIC_NAMES)
    result.update(n=n, n_real=n - n_fake, n_fake=n_fake, threshold=float(threshold))
    reasons = {}
    if n == 0:
        result["reasons"] = dict.fromkeys(METRIC_NAMES, "no samples")
        return result

    predicted = (scores >= threshold).astype(int)
    true_positive = int((predicted & labels).sum())
    predicted_fake = int(predicted.sum())
    result["accuracy"] = float((predicted == labels).mean())
    if n_fake:
        result["recall"] = true_positive / n_fake
    else:
        reasons["recall"] = "no fake samples"
    if predicted_fake:
        result["precision"] = true_positive / predicted_fake
    else:
        reasons["precision"] = f"no sample scored >= threshold {threshold:g}"
    if result["precision"] is not None and result["recall"] is not None:
        total = result["precision"] + result["recall"]
        result["f1"] = 2 * result["precision"] * result["recall"] / total if total else 0.0
    elif n_fake == 0 and predicted_fake == 0:
        reasons["f1"] = "no fake samples and no fake predictions"
    else:  # one of precision/recall is undefined but the other is 0: F1 = 2TP/(2TP+FP+FN) = 0
        result["f1"] = 0.0

    if 0 < n_fake < n:
        real_correct = int(((1 - predicted) & (1 - labels)).sum())
        result["balanced_accuracy"] = 0.5 * (true_positive / n_fake + real_correct / (n - n_fake))
        result["auroc"] = float(skm.roc_auc_score(labels, scores))
        result["ap"] = float(skm.average_precision_score(labels, scores))
        result["eer"], result["eer_threshold"] = equal_error_rate(labels, scores)
        result["eer_deepfakebench"] = deepfakebench_equal_error_rate(labels, scores)
    else:
        why = f"only one class present ({'fake' if n_fake else 'real'} only)"
        for key in ("balanced_accuracy", "auroc", "ap", "eer", "eer_threshold", "eer_deepfakebench"):
            reasons[key] = why

    if scores.min() >= 0.0 and scores.max() <= 1.0:
        clipped = np.clip(scores, PROBABILITY_EPS, 1 - PROBABILITY_EPS)
        result["log_loss"] = float(skm.log_loss(labels, clipped, labels=[0, 1]))
        result["brier"] = float(skm.brier_score_loss(labels, scores, pos_label=1))
        result["ece"] = expected_calibration_error(labels, scores, n_bins=ece_bins)
    else:
        for key in ("log_loss", "brier", "ece"):
            reasons[key] = "scores are not probabilities (outside [0, 1])"
    result["reasons"] = reasons
    return result


# ------------------------------------------------------------------------------------------ video level
def video_scores(scores, groups, aggregation=DEFAULT_AGGREGATION, labels=None,
                 confident_threshold=DEFAULT_CONFIDENT_THRESHOLD, confident_fraction=DEFAULT_CONFIDENT_FRACTION):
    """Aggregate frame scores per video; `groups` are the videos' full paths (the grouping key as is).

    Returns (video_keys, video_scores, video_labels) in order of first appearance; `video_labels` is
    None when `labels` is None. Aggregation "mean" or "confident" (the model's own `confident_mean`).
    A video whose frames carry different labels is an error: the grouping key is wrong.
    """
    scores = np.asarray(scores, dtype=float).ravel()
    groups = [str(group) for group in groups]
    if len(groups) != scores.size:
        raise ValueError(f"groups ({len(groups)}) and scores ({scores.size}) differ in length")
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {aggregation!r}")
    keys, index = np.unique(np.asarray(groups, dtype=object), return_inverse=True)
    first = np.full(len(keys), scores.size)
    np.minimum.at(first, index, np.arange(scores.size))
    order = np.argsort(first)  # keep the order in which videos first appear
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    index = rank[index]
    keys = [str(key) for key in keys[order]]

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
            raise ValueError(f"{keys[mixed[0]]}: frames of one video have both labels")
        video_labels = low
    return keys, aggregated, video_labels


# ------------------------------------------------------------------------------------------ bootstrap
def bootstrap_ci(labels, scores, groups=None, metrics=CI_METRICS, threshold=0.5, n_resamples=1000,
                 confidence=0.95, seed=0):
    """Percentile bootstrap intervals {metric: [low, high]} (None when too few resamples define it).

    With `groups`, whole groups (videos) are resampled with all their frames, so correlated frames
    do not shrink the interval; without, single samples are resampled. A resample is a vector of
    per-row multiplicities, so AUROC, AP, EER and (balanced) accuracy are computed as weighted
    metrics on one pre-sorted copy of the scores (`weighted_ranking_metrics`, equal to scikit-learn's
    with `sample_weight`); other metrics go through `binary_metrics` on the resampled rows.
    """
    labels, scores = _as_arrays(labels, scores)
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
    values = {metric: [] for metric in metrics}
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
def evaluate_scores(labels, scores, groups=None, threshold=0.5, aggregation=DEFAULT_AGGREGATION, n_resamples=1000,
                    seed=0, confident_threshold=DEFAULT_CONFIDENT_THRESHOLD,
                    confident_fraction=DEFAULT_CONFIDENT_FRACTION):
    """{"frame": metrics + "ci", "video": metrics + "ci" or None}: one test set, as metrics.json stores it.

    Video metrics exist when `groups` has fewer distinct keys than samples (some group has frames).
    """
    labels, scores = _as_arrays(labels, scores)
    frame = binary_metrics(labels, scores, threshold)
    frame["ci"] = bootstrap_ci(labels, scores, groups, threshold=threshold, n_resamples=n_resamples, seed=seed)
    video = None
    if groups is not None and len(set(map(str, groups))) < labels.size:
        _, v_scores, v_labels = video_scores(scores, groups, aggregation, labels, confident_threshold,
                                             confident_fraction)
        video = binary_metrics(v_labels, v_scores, threshold)
        video["aggregation"] = aggregation
        video["ci"] = bootstrap_ci(v_labels, v_scores, threshold=threshold, n_resamples=n_resamples, seed=seed)
    return {"frame": frame, "video": video}


# ------------------------------------------------------------------------------------------ calibration
def fit_temperature(labels, logits):
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


def threshold_at_fpr(labels, scores, target_fpr):
    """A threshold whose false-positive rate (real scored >= threshold) is at most `target_fpr`, with the
    most fake samples caught: midway between the highest real score that must stay below it and the next
    higher score, so float rounding in a reloaded model does not move any sample across it."""
    labels, scores = _as_arrays(labels, scores)
    real = np.sort(scores[labels == 0])[::-1]
    if real.size == 0:
        raise ValueError("no real samples to set a false-positive rate on")
    allowed = int(math.floor(target_fpr * real.size + 1e-9))  # real samples that may score >= threshold
    if allowed >= real.size:
        return float(real[-1])
    below = real[allowed]  # this real sample, and all lower ones, must be called real
    above = scores[scores > below]
    upper = above.min() if above.size else max(1.0, below + 1.0)
    return float(below + (upper - below) / 2)


# ------------------------------------------------------------------------------------------ Trainer
def trainer_compute_metrics(eval_pred):
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
            if key in METRIC_NAMES and value is not None}
