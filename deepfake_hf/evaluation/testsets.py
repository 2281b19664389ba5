"""A test set's rows and results, shared by `evaluate` and `run_probe`: loading one, the video each row belongs
to, its metrics.json entry (frame, video and per-method metrics with the reasons for missing intervals) and
its rows in predictions.csv.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_hf.configuration_deepfake import (
    DEFAULT_AGGREGATION,
    DEFAULT_CONFIDENT_FRACTION,
    DEFAULT_CONFIDENT_THRESHOLD,
    DEFAULT_NUM_FRAMES,
)
from deepfake_hf.data.datasets import load_source
from deepfake_hf.evaluation.curves import ArrayLike
from deepfake_hf.evaluation.metrics import evaluate_scores
from deepfake_hf.runtime.outputs import SafeCsvWriter

# predictions.csv: one row per scored frame; `video` is the full-path key video metrics group by (`video_keys`)
PREDICTION_COLUMNS = ("test_set", "path", "group", "video", "frame", "label", "method", "score")


def load_test_set(spec: str | os.PathLike, faces: str = "none", num_frames: int = DEFAULT_NUM_FRAMES,
                  cache_dir: str | os.PathLike | None = None, label_map: dict[str, str] | None = None,
                  frame_sampling: str | None = None, return_report: bool = False) -> Any:
    """One data source as a dataset with columns image, label, path, group, method, frame (DataSourceError if
    unusable); with `return_report`, (dataset, data.load_source's report)."""
    return load_source(spec, label_map=label_map, faces=faces, num_frames=num_frames, cache_dir=cache_dir,
                       default_split="test", verbose=False, frame_sampling=frame_sampling,
                       return_report=return_report)


def video_keys(paths: Iterable[Any], groups: Iterable[Any]) -> list[str]:
    """The video each row belongs to, as a full path: video-level metrics average over these.

    A video file's (or animated image's) frames share its path. Images (face crops, frame folders) belong
    to their folder when their `group` is shared with other image files, else each still is its own item.
    Folder names alone are not enough: FF++ fakes of one source video sit in folders of the same name under
    each method (DeepfakeBench's grouping merges them), and a manifest's video id can repeat across methods,
    so the key is the full folder path, split further by group where one folder holds several groups.
    """
    from deepfake_hf.media import media_kind

    paths = [str(p) for p in paths]
    groups = [str(g) for g in groups]
    # group -> the distinct files of its rows (an animated image's frames share one file)
    files_of: dict[str, set[str]] = {}
    for path, group in zip(paths, groups):
        files_of.setdefault(group, set()).add(path)
    containers = []
    for path, group in zip(paths, groups):
        if media_kind(path) == "video" or len(files_of[group]) == 1:
            containers.append(path)
        else:
            containers.append(os.path.dirname(path))
    groups_in: dict[str, set[str]] = {}
    for container, group in zip(containers, groups):
        groups_in.setdefault(container, set()).add(group)
    return [container if len(groups_in[container]) == 1 else f"{container}#{group}"
            for container, group in zip(containers, groups)]


def test_set_metrics(labels: ArrayLike, scores: ArrayLike, groups: Sequence[Any] | np.ndarray,
                     methods: Sequence[Any] | np.ndarray, threshold: float, aggregation: str = DEFAULT_AGGREGATION,
                     n_resamples: int = 1000, seed: int = 0, confident_threshold: float = DEFAULT_CONFIDENT_THRESHOLD,
                     confident_fraction: float = DEFAULT_CONFIDENT_FRACTION) -> dict[str, Any]:
    """metrics.json's entry for one test set: frame, video and per-method metrics.

    A method's metrics compare the set's real samples with that method's fakes (as FF++ per-method tables do).
    """
    options: dict[str, Any] = dict(threshold=threshold, aggregation=aggregation, n_resamples=n_resamples,
                                   seed=seed, confident_threshold=confident_threshold,
                                   confident_fraction=confident_fraction)
    label_array = np.asarray(labels, dtype=int)
    score_array = np.asarray(scores, dtype=float)
    group_array = np.asarray(groups, dtype=object)
    method_array = np.asarray(methods, dtype=object)
    entry = evaluate_scores(label_array, score_array, group_array, **options)
    _explain_missing_intervals(entry, label_array, group_array, n_resamples)
    entry["per_method"] = {}
    fake_methods = sorted({m for m, y in zip(method_array, label_array) if y == 1 and m})
    if len(fake_methods) > 1 or (fake_methods and (label_array == 0).any()):
        for method in fake_methods:
            rows = (label_array == 0) | (method_array == method)
            # Intervals resample whole videos of this comparison, as the set's own intervals do.
            method_entry = evaluate_scores(label_array[rows], score_array[rows], group_array[rows], **options)
            _explain_missing_intervals(method_entry, label_array[rows], group_array[rows], n_resamples)
            entry["per_method"][method] = method_entry
    return entry


def _explain_missing_intervals(entry, labels, groups, n_resamples):
    """Add "ci_reasons" {metric: why its interval is null} to the frame and video levels of `entry`."""
    videos = {}
    for group, label in zip(groups, labels):
        videos.setdefault(str(group), set()).add(int(label))
    real_videos = sum(1 for found in videos.values() if 0 in found)
    fake_videos = sum(1 for found in videos.values() if 1 in found)
    for level in ("frame", "video"):
        metrics = entry.get(level)
        if not metrics:
            continue
        reasons = {}
        for key, interval in (metrics.get("ci") or {}).items():
            if interval is not None:
                continue
            if metrics.get(key) is None:
                reasons[key] = metrics.get("reasons", {}).get(key, "the metric itself is undefined")
            elif n_resamples <= 0:
                reasons[key] = "no bootstrap resamples (--bootstrap 0)"
            elif not (real_videos and fake_videos):
                reasons[key] = f"only one class among its videos ({'fake' if fake_videos else 'real'} only)"
            else:
                reasons[key] = (f"too few resamples define it: {real_videos} real and {fake_videos} fake videos "
                                f"(a resample often draws one class only)")
        metrics["ci_reasons"] = reasons


def write_predictions(path: str | os.PathLike, rows: Iterable[Sequence[Any]]) -> Path:
    """predictions.csv: PREDICTION_COLUMNS, then `rows` (one per scored frame), cells safe for spreadsheets."""
    path = Path(path)
    with open(path, "w", newline="") as handle:
        writer = SafeCsvWriter(handle)
        writer.writerow(list(PREDICTION_COLUMNS))
        writer.writerows(rows)
    return path
