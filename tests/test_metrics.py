"""Metric values against scikit-learn and hand computations; video grouping; bootstrap; calibration fits."""

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from deepfake_hf.evaluation.curves import deepfakebench_equal_error_rate, equal_error_rate, expected_calibration_error
from deepfake_hf.evaluation.metrics import (
    EVALUATE_MODULE_PATH,
    binary_metrics,
    bootstrap_ci,
    evaluate_scores,
    fit_temperature,
    threshold_at_fpr,
    trainer_compute_metrics,
    video_scores,
)


def fixed_inputs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n)
    # overlapping classes, rounded so that tied scores occur
    scores = np.clip(np.round(rng.normal(0.4 + 0.25 * labels, 0.2), 2), 0.0, 1.0)
    return labels, scores


def brute_force_eer(labels, scores):
    """Sweep every distinct score as a threshold, count FPR and FNR directly, intersect linearly."""
    points = [(0.0, 1.0)]  # threshold above every score: nothing fake
    for t in sorted(set(scores.tolist()), reverse=True):
        fake = scores >= t
        fpr = (fake & (labels == 0)).sum() / (labels == 0).sum()
        fnr = (~fake & (labels == 1)).sum() / (labels == 1).sum()
        points.append((fpr, fnr))
    for (f0, n0), (f1, n1) in zip(points, points[1:]):
        d0, d1 = n0 - f0, n1 - f1
        if d0 >= 0 >= d1:
            if d0 == d1:
                return f0
            w = d0 / (d0 - d1)
            return f0 + w * (f1 - f0)
    raise AssertionError("no crossing")


@pytest.mark.parametrize("threshold", [0.5, 0.37])
def test_binary_metrics_match_sklearn(threshold):
    labels, scores = fixed_inputs()
    result = binary_metrics(labels, scores, threshold=threshold)
    predicted = (scores >= threshold).astype(int)
    expected = {
        "accuracy": skm.accuracy_score(labels, predicted),
        "balanced_accuracy": skm.balanced_accuracy_score(labels, predicted),
        "precision": skm.precision_score(labels, predicted),
        "recall": skm.recall_score(labels, predicted),
        "f1": skm.f1_score(labels, predicted),
        "auroc": skm.roc_auc_score(labels, scores),
        "ap": skm.average_precision_score(labels, scores),
        "log_loss": skm.log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7)),
        "brier": skm.brier_score_loss(labels, scores),
    }
    for key, value in expected.items():
        assert result[key] == pytest.approx(value, abs=1e-12), key
    assert result["n"] == 300 and result["n_fake"] == labels.sum() and result["n_real"] == 300 - labels.sum()
    assert result["reasons"] == {}


def test_eer_matches_brute_force_and_threshold_is_on_the_curve():
    for seed in range(5):
        labels, scores = fixed_inputs(n=120, seed=seed)
        eer, threshold = equal_error_rate(labels, scores)
        assert eer == pytest.approx(brute_force_eer(labels, scores), abs=1e-9)
        # at the interpolated threshold the two error rates are close to the EER (within one ROC step)
        fake = scores >= threshold
        fpr = (fake & (labels == 0)).mean() / (labels == 0).mean()
        fnr = (~fake & (labels == 1)).mean() / (labels == 1).mean()
        step = 2.0 / min((labels == 0).sum(), (labels == 1).sum()) + 0.05
        assert abs(fpr - eer) < step and abs(fnr - eer) < step
    # perfectly separated: EER 0; inverted: EER 1
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])[0] == pytest.approx(0.0)
    assert equal_error_rate([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9])[0] == pytest.approx(1.0)


def test_deepfakebench_eer_is_the_nearest_roc_point_and_differs_from_the_interpolated_one():
    # ROC points (FPR, TPR): (0, 0) (0, 1/3) (1/4, 1/3) (1/4, 2/3) (3/4, 2/3) (3/4, 1) (1, 1).
    # FPR = 1 - TPR crosses the horizontal segment TPR = 2/3 at FPR = 1/3 (interpolated EER), while the
    # nearest existing point is (1/4, 2/3): |FNR - FPR| = 1/12, so DeepfakeBench reports 0.25.
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.35, 0.5, 0.8, 0.3, 0.6, 0.9])
    assert equal_error_rate(labels, scores)[0] == pytest.approx(1 / 3, abs=1e-9)
    assert deepfakebench_equal_error_rate(labels, scores) == pytest.approx(0.25, abs=1e-12)
    result = binary_metrics(labels, scores)
    assert result["eer"] == pytest.approx(1 / 3, abs=1e-9) and result["eer_deepfakebench"] == pytest.approx(0.25)
    # on a ROC point exactly on the line the two agree
    assert deepfakebench_equal_error_rate([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]) == pytest.approx(0.5)
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])[0] == pytest.approx(0.5)
    # undefined on one class, with the same reason as the interpolated EER
    single = binary_metrics([1, 1], [0.2, 0.9])
    assert single["eer_deepfakebench"] is None and "one class" in single["reasons"]["eer_deepfakebench"]


def test_ece_matches_calibration_curve_bins():
    labels, scores = fixed_inputs()
    prob_true, prob_pred = calibration_curve(labels, scores, n_bins=10, strategy="uniform")
    bins = np.searchsorted(np.linspace(0, 1, 11)[1:-1], scores)
    counts = np.bincount(bins, minlength=10)
    counts = counts[counts > 0]
    expected = float((counts / counts.sum() * np.abs(prob_true - prob_pred)).sum())
    assert expected_calibration_error(labels, scores, n_bins=10) == pytest.approx(expected, abs=1e-12)
    # hand computation: two bins, [0.1, 0.1] all real (gap 0.1) and [0.9, 0.7] both fake (gap 0.2)
    assert expected_calibration_error([0, 0, 1, 1], [0.1, 0.1, 0.9, 0.7], n_bins=10) == pytest.approx(0.15)


def test_single_class_gives_none_with_reasons():
    result = binary_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    for key in ("auroc", "ap", "eer", "eer_threshold", "balanced_accuracy"):
        assert result[key] is None and "one class" in result["reasons"][key]
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["recall"] == pytest.approx(2 / 3)
    real_only = binary_metrics([0, 0], [0.1, 0.2])
    assert real_only["precision"] is None and "threshold" in real_only["reasons"]["precision"]
    assert real_only["recall"] is None and real_only["f1"] is None
    empty = binary_metrics([], [])
    assert empty["n"] == 0 and empty["accuracy"] is None and empty["reasons"]["auroc"] == "no samples"
    decision = binary_metrics([0, 1], [-2.0, 3.0], threshold=0.0)  # SVM decision values
    assert decision["auroc"] == 1.0 and decision["log_loss"] is None and "probabilities" in decision["reasons"]["brier"]
    with pytest.raises(ValueError, match="NaN"):
        binary_metrics([0, 1], [0.1, float("nan")])


def test_video_grouping_uses_full_path():
    groups = ["ffpp/Deepfakes/000.mp4", "ffpp/Deepfakes/000.mp4", "ffpp/original/000.mp4",
              "ffpp/original/000.mp4", "ffpp/Deepfakes/000.mp4"]
    scores = [0.9, 0.7, 0.2, 0.4, 0.8]
    labels = [1, 1, 0, 0, 1]
    keys, aggregated, video_labels = video_scores(scores, groups, "mean", labels)
    assert keys == ["ffpp/Deepfakes/000.mp4", "ffpp/original/000.mp4"]  # same file name, two videos
    assert aggregated == pytest.approx([0.8, 0.3])
    assert video_labels.tolist() == [1, 0]
    with pytest.raises(ValueError, match="both labels"):
        video_scores(scores, ["000.mp4"] * 5, "mean", labels)


def test_confident_aggregation_uses_the_models_rule():
    import torch

    from deepfake_hf.modeling_deepfake import confident_mean

    frames = [0.95, 0.9, 0.85, 0.1, 0.2, 0.3]  # 3 of 6 confidently fake: not more than half
    groups = ["a"] * 6 + ["b"] * 4
    more = frames + [0.95, 0.9, 0.85, 0.2]  # video b: 3 of 4 confident -> mean of those
    _, aggregated, _ = video_scores(more, groups, "confident", confident_threshold=0.8, confident_fraction=0.5)
    expected_a = float(confident_mean(torch.tensor([frames]), 0.8, 0.5)[0])
    assert aggregated[0] == pytest.approx(expected_a) and aggregated[0] == pytest.approx(np.mean(frames))
    assert aggregated[1] == pytest.approx(0.9)


def test_bootstrap_resamples_videos_and_contains_the_estimate():
    rng = np.random.default_rng(1)
    video_labels = rng.integers(0, 2, size=40)
    frames = 8
    labels = np.repeat(video_labels, frames)
    # frames of a video share a video-level offset: correlated, as in real data
    offsets = np.repeat(rng.normal(0, 0.25, size=40), frames)
    scores = np.clip(0.35 + 0.3 * labels + offsets + rng.normal(0, 0.05, labels.size), 0, 1)
    groups = [f"set/{i // frames}/clip.mp4" for i in range(labels.size)]
    point = binary_metrics(labels, scores)
    by_video = bootstrap_ci(labels, scores, groups, n_resamples=300, seed=0)
    by_frame = bootstrap_ci(labels, scores, None, n_resamples=300, seed=0)
    for metric in ("auroc", "ap", "eer", "accuracy"):
        low, high = by_video[metric]
        assert low <= point[metric] <= high, metric
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    # resampling frames pretends 320 independent samples: a visibly narrower (wrong) interval
    assert width(by_video["auroc"]) > 1.5 * width(by_frame["auroc"])
    assert bootstrap_ci([1, 1, 1], [0.1, 0.5, 0.9], n_resamples=50)["auroc"] is None


def test_evaluate_scores_frame_and_video():
    labels = [0, 0, 1, 1, 0, 1]
    scores = [0.2, 0.3, 0.7, 0.6, 0.1, 0.9]
    groups = ["a/x.mp4", "a/x.mp4", "b/x.mp4", "b/x.mp4", "c/y.png", "d/z.png"]
    result = evaluate_scores(labels, scores, groups, n_resamples=20)
    assert result["frame"]["n"] == 6 and result["video"]["n"] == 4
    assert result["video"]["aggregation"] == "mean" and set(result["frame"]["ci"]) >= {"auroc", "eer"}
    assert evaluate_scores(labels, scores, [f"{i}.png" for i in range(6)], n_resamples=5)["video"] is None


def test_fit_temperature_recovers_a_known_scale():
    rng = np.random.default_rng(0)
    margin = rng.normal(0, 2.0, size=4000)
    labels = (rng.random(4000) < 1 / (1 + np.exp(-margin))).astype(int)  # calibrated at T = 1
    logits = np.stack([np.zeros_like(margin), 3.0 * margin], axis=1)     # over-confident by 3x
    assert fit_temperature(labels, logits) == pytest.approx(3.0, rel=0.1)


def test_threshold_at_fpr():
    labels = np.array([0] * 10 + [1] * 5)
    scores = np.concatenate([np.linspace(0.0, 0.9, 10), [0.5, 0.6, 0.95, 0.97, 0.99]])
    for target in (0.0, 0.1, 0.3):
        threshold = threshold_at_fpr(labels, scores, target)
        fpr = (scores[labels == 0] >= threshold).mean()
        assert fpr <= target + 1e-12
        # the same decisions as the lowest threshold meeting the target (found by brute force)
        lowest = min(t for t in np.unique(scores) if (scores[labels == 0] >= t).mean() <= target)
        assert ((scores >= threshold) == (scores >= lowest)).all()
        # and away from every score (midway), so rounding cannot flip a sample
        assert np.abs(scores - threshold).min() > 0.01
    assert threshold_at_fpr(labels, scores, 0.0) == pytest.approx((0.9 + 0.95) / 2)


def test_trainer_compute_metrics_from_logits():
    from transformers import EvalPrediction

    logits = np.array([[0.0, -2.0], [0.0, 1.0], [0.0, 0.5], [0.0, -0.1]])
    features = np.zeros((4, 3))
    out = trainer_compute_metrics(EvalPrediction(predictions=(logits, features), label_ids=np.array([0, 1, 0, 1])))
    probabilities = 1 / (1 + np.exp(-logits[:, 1]))
    assert out["auroc"] == pytest.approx(skm.roc_auc_score([0, 1, 0, 1], probabilities))
    assert out["accuracy"] == pytest.approx(0.5)
    assert all(isinstance(value, float) for value in out.values())


def test_evaluate_module_loads_offline(monkeypatch, tmp_path):
    import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    metric = evaluate.load(EVALUATE_MODULE_PATH, cache_dir=str(tmp_path))
    labels, scores = fixed_inputs(n=50)
    result = metric.compute(predictions=scores.tolist(), references=labels.tolist())
    assert result["auroc"] == pytest.approx(skm.roc_auc_score(labels, scores))
    assert result["eer"] == pytest.approx(brute_force_eer(labels, scores), abs=1e-9)


def test_weighted_ranking_metrics_match_sklearn_with_sample_weight():
    from deepfake_hf.evaluation.metrics import weighted_ranking_metrics

    rng = np.random.default_rng(3)
    for seed in range(4):
        labels, scores = fixed_inputs(n=150, seed=seed)
        weights = rng.integers(0, 4, size=labels.size).astype(float)  # a bootstrap resample's multiplicities
        out = weighted_ranking_metrics(labels, scores, weights, threshold=0.45)
        predicted = (scores >= 0.45).astype(int)
        assert out["auroc"] == pytest.approx(skm.roc_auc_score(labels, scores, sample_weight=weights), abs=1e-12)
        assert out["ap"] == pytest.approx(skm.average_precision_score(labels, scores, sample_weight=weights),
                                          abs=1e-12)
        assert out["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted, sample_weight=weights))
        assert out["balanced_accuracy"] == pytest.approx(
            skm.balanced_accuracy_score(labels, predicted, sample_weight=weights))
        # unit weights: the same EER as the brentq/sklearn computation and the brute force
        rows = np.repeat(np.arange(labels.size), weights.astype(int))
        assert out["eer"] == pytest.approx(equal_error_rate(labels[rows], scores[rows])[0], abs=1e-9)
        assert out["eer"] == pytest.approx(brute_force_eer(labels[rows], scores[rows]), abs=1e-9)
    assert "auroc" not in weighted_ranking_metrics([1, 1], [0.2, 0.3], [1, 1])
