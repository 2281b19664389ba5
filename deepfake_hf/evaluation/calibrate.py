"""`calibrate_model`: fit temperature scaling and a decision threshold on validation data and store them in the
model's config.json, where the model applies them (pipeline, predict and the app)."""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_hf.configuration_deepfake import (
    CUSTOM_PIPELINES,
    FACE_PREPROCESSINGS,
    PIPELINE_FILE,
    DeepfakeDetectorConfig,
)
from deepfake_hf.errors import one_line
from deepfake_hf.evaluation.curves import equal_error_rate
from deepfake_hf.evaluation.errors import EvaluationError
from deepfake_hf.evaluation.evaluate import load_frames_for, load_model, score_dataset
from deepfake_hf.evaluation.metrics import binary_metrics, fit_temperature, threshold_at_fpr
from deepfake_hf.scoring.scorer import sigmoid

CALIBRATION_METHODS = ("eer", "fpr")
# the metrics calibration.json records before and after the fit
RECORDED_METRICS = ("log_loss", "ece", "accuracy", "balanced_accuracy")


def scored_input(scorer: Any, config: Any) -> dict[str, Any]:
    """The input the calibration was fitted on, for a model that records none (`face_preprocessing` None): the
    scorer's face mode and crop, so every door scores new files the way the threshold was chosen."""
    from deepfake_hf.faces import finds_faces

    mode = getattr(scorer.face_detector, "name", None)
    if getattr(config, "face_preprocessing", None) is not None or mode not in FACE_PREPROCESSINGS:
        return {}
    record: dict[str, Any] = {"face_preprocessing": mode}
    if finds_faces(scorer.face_detector):
        record.update(face_crop=scorer.crop, face_size=scorer.face_size, face_scale=scorer.face_scale,
                      face_margin=scorer.margin)
    return record


def add_face_pipeline(config: Any, model_path: str | os.PathLike) -> None:
    """A model folder with remote code whose (newly recorded) input is a face gets the face-aware pipeline file and
    its `custom_pipelines` entry, as `save_pretrained` writes them, so `pipeline` finds faces as predict does."""
    folder = Path(model_path)
    if not config.finds_faces or not (folder / "modeling_deepfake.py").is_file():
        return
    config.custom_pipelines = copy.deepcopy(CUSTOM_PIPELINES)
    shutil.copyfile(Path(__file__).resolve().parents[1] / PIPELINE_FILE, folder / PIPELINE_FILE)


def calibrate_model(model_path: str | os.PathLike, val_sources: Mapping[str, str | os.PathLike], method: str = "eer",
                    target_fpr: float | None = None, faces: Any = None, num_frames: int | None = None,
                    batch_size: int = 32, device: Any = None, cache_dir: str | os.PathLike | None = None,
                    label_map: dict[str, str] | None = None, crop: str | None = None,
                    trust_remote_code: bool = False, face_workers: int | None = None) -> dict[str, Any]:
    """Fit temperature scaling and a threshold on validation data; store both in the model's config.json.

    method "eer": the threshold at the equal-error point; "fpr": the lowest threshold whose false-positive
    rate on the validation reals is at most `target_fpr`. `label_map` and `face_workers` as in `evaluate_model`.
    The previous values and the fit's numbers are written to calibration.json next to the config. Returns that
    record.
    """
    # Long: one linear pass (check, score, fit, validate through the config class, record), each step a call.
    if method not in CALIBRATION_METHODS:
        raise EvaluationError(f"calibration method must be 'eer' or 'fpr', got {method!r}")
    if method == "fpr" and (target_fpr is None or not 0.0 <= target_fpr < 1.0):
        raise EvaluationError("--target-fpr in [0, 1) is needed with --method fpr")
    sources = {str(name): os.fspath(spec) for name, spec in val_sources.items()}
    scorer = load_model(model_path, device=device, faces=faces, num_frames=num_frames, crop=crop,
                        trust_remote_code=trust_remote_code, face_workers=face_workers)
    if not hasattr(getattr(scorer.model, "config", None), "calibration_temperature"):
        raise EvaluationError(f"{model_path}: not a deepfake-hf detector (no calibration_temperature in its config)")
    label_blocks, margin_blocks = [], []
    for name, spec in sources.items():
        dataset, crops = load_frames_for(scorer, spec, cache_dir=cache_dir, label_map=label_map)
        scored = score_dataset(scorer, dataset, batch_size, description=f"calibrate {name}", find_faces=not crops)
        kept = ~np.isnan(scored)  # the rows predict scores (see score_dataset)
        margin_blocks.append(scored[kept])
        label_blocks.append(np.asarray(dataset["label"])[kept])
    labels, margins = np.concatenate(label_blocks), np.concatenate(margin_blocks)
    if not 0 < labels.sum() < labels.size:
        raise EvaluationError("validation data must contain both real and fake samples")

    raw = scorer.raw_margins(margins)
    temperature = fit_temperature(labels, raw)
    probabilities = sigmoid(raw / temperature)
    if method == "eer":
        threshold = equal_error_rate(labels, probabilities)[1]
    else:
        assert target_fpr is not None  # checked with the method above
        threshold = threshold_at_fpr(labels, probabilities, target_fpr)
    threshold = float(min(max(threshold, 1e-6), 1 - 1e-6))
    before = binary_metrics(labels, scorer.probabilities(margins), scorer.threshold)
    after = binary_metrics(labels, probabilities, threshold)

    # Through the config class, not raw JSON: its validation refuses a value the model could not load with.
    try:
        config = DeepfakeDetectorConfig.from_pretrained(model_path)
        calibrated = DeepfakeDetectorConfig.from_dict(
            {**config.to_dict(), **scored_input(scorer, config),
             "calibration_temperature": temperature, "threshold": threshold})
    except (OSError, ValueError, TypeError) as error:
        raise EvaluationError(f"{model_path}: calibration not stored ({one_line(error, 300)})") from None
    record = {
        "method": method, "target_fpr": target_fpr, "validation": dict(sources), "n": int(labels.size),
        "previous": {"calibration_temperature": config.calibration_temperature, "threshold": config.threshold},
        "calibration_temperature": temperature, "threshold": threshold,
        "before": {key: before[key] for key in RECORDED_METRICS},
        "after": {key: after[key] for key in RECORDED_METRICS},
        "false_positive_rate": float((probabilities[labels == 0] >= threshold).mean()),
        "true_positive_rate": float((probabilities[labels == 1] >= threshold).mean()),
    }
    add_face_pipeline(calibrated, model_path)
    calibrated.save_pretrained(model_path)
    (Path(model_path) / "calibration.json").write_text(json.dumps(record, indent=2))
    return record
