"""Frozen-feature probes: scikit-learn classifiers on features of one or several frozen encoders.

The frozen-backbone method (REFERENCE.md, "frozen-probe"): pooled features of pretrained encoders
(CLIP, DINO, ...; several are concatenated), optional standardisation and PCA, then an SVM, LDA,
k-NN or logistic regression. `run_probe` extracts (and caches) the features, cross-validates with
folds that never split a video, reports like `evaluate` (predictions.csv, metrics.json, report.md,
plots), then fits on all the data and saves the probe:

- every probe: `probe/probe.json` (backbones, classifier and its parameters) and
  `probe/train_features.safetensors` (the training features and labels). No pickle: loading refits
  the same deterministic scikit-learn pipeline on the stored features (`load_probe`), and
  `deepfake-hf evaluate DIR/probe DATA` scores with it.
- a linear probe (logistic regression, linear SVM, LDA) on one backbone is also folded into a
  `DeepfakeDetectorForImageClassification` head (`model/`), which loads with `pipeline(...)` and gives
  the scikit-learn model's scores: softmax(head)[fake] = sigmoid(decision function).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from deepfake_hf.configuration_deepfake import (
    DEFAULT_AGGREGATION,
    DEFAULT_CALIBRATION_TEMPERATURE,
    DEFAULT_NUM_FRAMES,
    DEFAULT_THRESHOLD,
)
from deepfake_hf.errors import DeepfakeHFError, one_line
from deepfake_hf.evaluation.report import render_report, write_plots
from deepfake_hf.evaluation.testsets import load_test_set, test_set_metrics, video_keys, write_predictions
from deepfake_hf.runtime.outputs import prepare_output_dir, undone_on_failure
from deepfake_hf.scoring.scorer import HUB_LOAD_KEYS, Scorer

CLASSIFIERS = ("logreg", "linear-svm", "lda", "svm", "knn")
LINEAR_CLASSIFIERS = ("logreg", "linear-svm", "lda")
PROBE_FILE = "probe.json"
FEATURES_FILE = "train_features.safetensors"


class ProbeError(DeepfakeHFError, ValueError):
    """A one-line problem with a probe's inputs."""


# ----------------------------------------------------------------------------------------- encoders
def load_encoder(spec, device="cpu"):
    """A detector whose `get_image_features(...).pooler_output` gives the frozen features of `spec`, with its processor.

    `spec` is a saved deepfake-hf detector folder (its backbone, pooling and normalisation) or an
    encoder checkpoint (folder or Hub id) loaded with `from_backbone` and the family's default pooling.
    """
    from deepfake_hf import register
    from deepfake_hf.modeling_deepfake import DeepfakeDetectorForImageClassification
    from deepfake_hf.safety import UnsafeFileError, check_model_source

    register()
    spec = os.fspath(spec)
    try:
        # sizes and weight headers checked before anything is built (for a Hub id, its config.json)
        config = check_model_source(spec) or {}
    except UnsafeFileError as error:
        raise ProbeError(str(error)) from None
    try:
        if os.path.isdir(spec) and config.get("model_type") == "deepfake_detector":
            model = DeepfakeDetectorForImageClassification.from_pretrained(spec)
        else:
            model = DeepfakeDetectorForImageClassification.from_backbone(spec)
    except (OSError, ValueError, KeyError) as error:
        raise ProbeError(f"{spec}: cannot load an encoder ({one_line(error, 300)})") from None
    model.requires_grad_(False)
    return model.to(device).eval(), model.matching_image_processor()


def _encoder_fingerprint(spec):
    """What identifies an encoder's features: its path and its files' sizes and modification times."""
    spec = os.fspath(spec)
    if not os.path.isdir(spec):
        return spec
    stats = sorted((name, os.path.getsize(os.path.join(spec, name)), os.path.getmtime(os.path.join(spec, name)))
                   for name in os.listdir(spec) if os.path.isfile(os.path.join(spec, name)))
    return [os.path.abspath(spec), stats]


def feature_cache_dir():
    """`$DEEPFAKE_HF_CACHE/features`, by default `~/.cache/deepfake_hf/features`."""
    from deepfake_hf.data.datasets import cache_root

    return cache_root() / "features"


def extract_features(backbones, dataset, batch_size=32, cache_dir=None, device=None, images=None):
    """(rows, sum of feature widths) float32 features of `dataset`'s images, the backbones concatenated.

    Cached per backbone under `cache_dir` (default `feature_cache_dir()`; False: no cache), keyed by
    the encoder files and the dataset's fingerprint. `images` (a list of PIL images) replaces `dataset`.
    """
    import torch
    from safetensors.numpy import load_file, save_file
    from tqdm.auto import tqdm

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    parts = []
    for spec in backbones:
        cache_path = None
        if cache_dir is not False and images is None and getattr(dataset, "_fingerprint", None):
            key = hashlib.sha1(json.dumps([_encoder_fingerprint(spec), dataset._fingerprint, len(dataset)],
                                          default=str).encode()).hexdigest()[:20]
            cache_path = Path(cache_dir or feature_cache_dir()) / f"{key}.safetensors"
            if cache_path.is_file():
                parts.append(load_file(cache_path)["features"])
                continue
        model, processor = load_encoder(spec, device)
        count = len(images) if images is not None else len(dataset)
        chunks = []
        for start in tqdm(range(0, count, batch_size), desc=f"features {Path(str(spec)).name}", unit="batch",
                          leave=False):
            batch = images[start:start + batch_size] if images is not None else \
                dataset[start:start + batch_size]["image"]
            pixel_values = processor(images=[image.convert("RGB") for image in batch],
                                     return_tensors="pt")["pixel_values"].to(device)
            with torch.no_grad():
                chunks.append(model.get_image_features(pixel_values).pooler_output.float().cpu().numpy())
        features = np.concatenate(chunks) if chunks else np.zeros((0, model.config.hidden_size), np.float32)
        if cache_path is not None:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            temporary = cache_path.with_suffix(f".{os.getpid()}.tmp")
            save_file({"features": np.ascontiguousarray(features)}, temporary)
            os.replace(temporary, cache_path)
        parts.append(features)
    return np.concatenate(parts, axis=1)


# ----------------------------------------------------------------------------------------- classifiers
def build_probe(classifier="logreg", pca=None, standardize=True, seed=0, **params):
    """The scikit-learn pipeline: [StandardScaler] -> [PCA] -> classifier. Deterministic for a fixed seed."""
    from sklearn.decomposition import PCA
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if classifier not in CLASSIFIERS:
        raise ProbeError(f"classifier {classifier!r} is not one of {', '.join(CLASSIFIERS)}")
    estimators = {
        "logreg": lambda: LogisticRegression(max_iter=params.get("max_iter", 2000), C=params.get("C", 1.0)),
        "linear-svm": lambda: SVC(kernel="linear", C=params.get("C", 1.0)),
        "svm": lambda: SVC(kernel="rbf", C=params.get("C", 1.0), gamma=params.get("gamma", "scale")),
        "lda": lambda: LinearDiscriminantAnalysis(),
        "knn": lambda: KNeighborsClassifier(n_neighbors=params.get("n_neighbors", 5)),
    }
    steps = []
    if standardize:
        steps.append(("scale", StandardScaler()))
    if pca:
        steps.append(("pca", PCA(n_components=pca, svd_solver="full", random_state=seed)))
    steps.append(("classifier", estimators[classifier]()))
    return Pipeline(steps)


def probe_scores(pipeline, features):
    """Fake probabilities: predict_proba where the classifier has it, else sigmoid of the decision function."""
    if hasattr(pipeline, "predict_proba") and not isinstance(pipeline[-1], _svc_class()):
        classes = list(pipeline.classes_)
        return pipeline.predict_proba(features)[:, classes.index(1)]
    decision = pipeline.decision_function(features)
    return 1.0 / (1.0 + np.exp(-decision))


def _svc_class():
    from sklearn.svm import SVC

    return SVC


def linear_head(pipeline):
    """(weight, bias) with weight @ x + bias equal to the pipeline's decision function on raw features."""
    classifier = pipeline[-1]
    if not hasattr(classifier, "coef_") or getattr(classifier, "kernel", "linear") != "linear":
        raise ProbeError(f"{type(classifier).__name__} is not linear: it cannot become a detector head")
    weight = np.asarray(classifier.coef_, dtype=np.float64).reshape(-1)
    bias = float(np.asarray(classifier.intercept_).reshape(-1)[0])
    for name, step in reversed(pipeline.steps[:-1]):
        if name == "pca":  # u = C (z - m)
            bias -= float(weight @ step.components_ @ step.mean_)
            weight = weight @ step.components_
        elif name == "scale":  # z = (x - mu) / s
            weight = weight / step.scale_
            bias -= float(weight @ step.mean_)
    return weight, bias


def cross_validated_scores(features, labels, groups, classifier="logreg", folds=5, pca=None, standardize=True,
                           seed=0, **params):
    """Out-of-fold fake probabilities; folds never split a group (video) and keep both classes."""
    from sklearn.model_selection import StratifiedGroupKFold

    labels = np.asarray(labels, dtype=int)
    per_class = min(len(set(np.asarray(groups, dtype=object)[labels == c])) for c in (0, 1))
    if per_class < 2:
        raise ProbeError(f"cross-validation needs at least 2 videos/images per class, got {per_class}")
    folds = min(folds, per_class)
    scores = np.zeros(labels.size)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(features, labels, groups):
        n_components = min(pca, len(train), features.shape[1]) if pca else None
        pipeline = build_probe(classifier, n_components, standardize, seed, **params).fit(features[train],
                                                                                           labels[train])
        scores[test] = probe_scores(pipeline, features[test])
    return scores, folds


# ----------------------------------------------------------------------------------------- save / load
class ProbeScorer(Scorer):
    """A saved probe as a `scoring.Scorer`: features from the frozen encoder(s), the refitted scikit-learn
    pipeline as the head. Same frames, face policy, batching and verdict as a detector's scorer, so
    `evaluate`, `Detector` and the rest score a probe exactly as they score a model."""

    def __init__(self, folder, device=None, **policy):
        import torch
        from safetensors.numpy import load_file

        from deepfake_hf.safety import UnsafeFileError, read_json

        folder = Path(folder)
        self.name = str(folder)
        try:
            self.spec = read_json(folder / PROBE_FILE)
        except UnsafeFileError as error:
            raise ProbeError(str(error)) from None
        stored = load_file(folder / FEATURES_FILE)
        self.pipeline = build_probe(self.spec["classifier"], self.spec["pca"], self.spec["standardize"],
                                    self.spec["seed"], **self.spec["params"]).fit(stored["features"],
                                                                                 stored["labels"])
        self.backbones = self.spec["backbones"]
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.encoders = [load_encoder(spec, self.device) for spec in self.backbones]
        self.model = self.image_processor = None  # no single transformers model
        # The probe's scores are probabilities as they are: threshold 0.5, temperature 1, no centring.
        self.fake_index, self.threshold, self.temperature, self.centre = 1, DEFAULT_THRESHOLD, 1.0, 0.0
        # the input its features were extracted from (faces.input_record), read as any model's config is
        self.set_policy(SimpleNamespace(**self.spec.get("input", {})), **policy)

    def preprocess(self, images):
        """One input per image: its pixel values for each encoder (each has its own processor)."""
        if not images:
            return []
        rgb = [image.convert("RGB") for image in images]
        per_encoder = [processor(images=rgb, return_tensors="pt")["pixel_values"] for _, processor in self.encoders]
        return list(zip(*per_encoder))

    def forward(self, inputs):
        """The probe's fake log-odds of one batch (logit of its probability)."""
        import torch

        inputs = list(inputs)
        with torch.inference_mode():
            features = np.concatenate([
                model.get_image_features(torch.stack([item[position] for item in inputs]).to(self.device))
                .pooler_output.float().cpu().numpy()
                for position, (model, _) in enumerate(self.encoders)], axis=1)
        p = np.clip(probe_scores(self.pipeline, features), 1e-12, 1 - 1e-12)
        return np.log(p) - np.log1p(-p)


def load_probe(folder, device=None, **policy):
    """The saved probe in `folder` as a `ProbeScorer`; `policy` (faces, num_frames, ...) as for any scorer."""
    folder = Path(folder)
    if not (folder / PROBE_FILE).is_file():
        raise ProbeError(f"{folder}: no {PROBE_FILE}")
    return ProbeScorer(folder, device, **policy)


def load_scorer(path_or_id, device=None, **options):
    """The scorer of any saved model: a probe folder (probe.json) or an image classifier (a deepfake-hf
    detector, a native export, a Hub id). `predict`, `evaluate` and `calibrate` load models through it;
    `options` are the scorer's (and, for classifiers, `from_pretrained`'s loading options)."""
    if os.path.isfile(os.path.join(os.fspath(path_or_id), PROBE_FILE)):
        # a probe is a local folder whose encoders load from its own record: no Hub loading options
        policy = {key: value for key, value in options.items() if key not in (*HUB_LOAD_KEYS, "attn_implementation")}
        return load_probe(path_or_id, device=device, **policy)
    return Scorer.from_pretrained(path_or_id, device=device, **options)


def save_probe(folder, backbones, classifier, pca, standardize, seed, params, features, labels, record=None):
    """Save a probe; `record` (faces.input_record) is the input its features came from, which every door reads."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"backbones": [os.fspath(b) for b in backbones], "classifier": classifier, "pca": pca,
            "standardize": standardize, "seed": seed, "params": params, "feature_dim": int(features.shape[1]),
            "input": dict(record or {}),
            "format": "scikit-learn pipeline refitted on train_features.safetensors at load (no pickle)"}
    (folder / PROBE_FILE).write_text(json.dumps(spec, indent=2))
    save_file({"features": np.ascontiguousarray(features, dtype=np.float32),
               "labels": np.asarray(labels, dtype=np.int64)}, folder / FEATURES_FILE)
    return folder


def probe_to_detector(backbone, pipeline, out_dir, record=None):
    """Fold a fitted linear pipeline into a detector on `backbone` and save it, recording `record`
    (faces.input_record: the input its features came from); returns the model."""
    import torch

    weight, bias = linear_head(pipeline)
    model, processor = load_encoder(backbone)
    if weight.size != model.config.hidden_size:
        raise ProbeError(f"probe has {weight.size} inputs but {backbone} gives {model.config.hidden_size} features")
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.weight[1] = torch.as_tensor(weight, dtype=model.classifier.weight.dtype)
        model.classifier.bias[1] = bias
    model.config.threshold = DEFAULT_THRESHOLD
    model.config.calibration_temperature = 1.0
    for key, value in (record or {}).items():
        setattr(model.config, key, value)
    model.image_processor = processor
    model.requires_grad_(True)
    model.save_pretrained(out_dir)
    return model


# ----------------------------------------------------------------------------------------- run
@undone_on_failure
def run_probe(data: dict[str, str | os.PathLike], backbones: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
              classifier: str = "logreg", folds: int = 5, pca: int | None = None, standardize: bool = True,
              seed: int = 0, faces: str = "none", num_frames: int | None = None, batch_size: int = 32,
              n_resamples: int = 1000, overwrite: bool = False, cache_dir: str | os.PathLike | None = None,
              plots: bool = True, label_map: dict[str, str] | None = None, **params: Any) -> dict[str, Any]:
    """Extract features, cross-validate, report like `evaluate`, fit on everything and save the probe.

    `data` is {name: spec}; all sources are pooled into one training set (`label_map` as in `data.load_source`).
    Returns the metrics dict.
    """
    # Long: one linear pipeline (load, extract, cross-validate, report, fit, save), each step a call.
    from deepfake_hf.data.datasets import linked_groups
    from deepfake_hf.faces import input_record

    out_dir = Path(out_dir)
    prepare_output_dir(out_dir, overwrite)
    num_frames = num_frames or DEFAULT_NUM_FRAMES
    if not backbones:
        raise ProbeError("give at least one --backbone")
    if classifier not in CLASSIFIERS:
        raise ProbeError(f"classifier {classifier!r} is not one of {', '.join(CLASSIFIERS)}")
    feature_blocks: list[np.ndarray] = []
    label_list: list[int] = []
    paths: list[str] = []
    groups: list[str] = []
    methods: list[str] = []
    frames: list[int] = []
    for spec in data.values():
        dataset = load_test_set(spec, faces=faces, num_frames=num_frames, label_map=label_map)
        feature_blocks.append(extract_features(backbones, dataset, batch_size, cache_dir=cache_dir))
        label_list += dataset["label"]
        paths += dataset["path"]
        groups += dataset["group"]
        methods += dataset["method"]
        frames += dataset["frame"]
    features = np.concatenate(feature_blocks)
    labels = np.asarray(label_list, dtype=int)
    videos = video_keys(paths, groups)
    # folds keep linked groups together (an FF++ fake A_B with its source videos A and B), as split_by_group does
    components = linked_groups(groups)
    fold_groups = [components[group] for group in groups]
    scores, used_folds = cross_validated_scores(features, labels, fold_groups, classifier, folds, pca, standardize,
                                                seed, **params)
    name = f"{used_folds}-fold CV"
    description = f"probe {classifier} on {' + '.join(map(str, backbones))}" + (f", PCA {pca}" if pca else "")
    result: dict[str, Any] = {
        "model": description, "threshold": DEFAULT_THRESHOLD,
        "calibration_temperature": DEFAULT_CALIBRATION_TEMPERATURE, "video_aggregation": DEFAULT_AGGREGATION,
        "test_sets": {name: test_set_metrics(labels, scores, videos, methods, DEFAULT_THRESHOLD,
                                             n_resamples=n_resamples, seed=seed)},
        "probe": {"classifier": classifier, "backbones": [str(b) for b in backbones], "pca": pca,
                  "standardize": standardize, "folds": used_folds, "feature_dim": int(features.shape[1]),
                  "n": int(labels.size), "sources": {k: str(v) for k, v in data.items()}}}

    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / "predictions.csv", zip([name] * labels.size, paths, groups, videos, frames,
                                                       labels.tolist(), methods, scores.tolist()))
    n_components = min(pca, labels.size, features.shape[1]) if pca else None
    final = build_probe(classifier, n_components, standardize, seed, **params).fit(features, labels)
    record = input_record(faces, num_frames)  # "auto" as it resolved for the data
    save_probe(out_dir / "probe", backbones, classifier, n_components, standardize, seed, params, features, labels,
               record)
    result["probe"]["saved"] = str(out_dir / "probe")
    if classifier in LINEAR_CLASSIFIERS and len(backbones) == 1:
        probe_to_detector(backbones[0], final, out_dir / "model", record)
        result["probe"]["detector"] = str(out_dir / "model")
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    written = write_plots({name: (labels, scores)}, out_dir) if plots else []
    (out_dir / "report.md").write_text(render_report(result, written))
    return result
