"""Frozen-feature probes: cached features, cross-validation, linear probes as detectors, pickle-free reload."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_hf.evaluation.probes import (
    FEATURES_FILE,
    build_probe,
    extract_features,
    linear_head,
    load_probe,
    probe_scores,
    run_probe,
)
from deepfake_hf.faces import dlib_available

from .conftest import TINY_BACKBONES, tiny_detector


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    """A plain tiny ViT encoder checkpoint (with processor) and a saved tiny CLIP-vision detector."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    root = tmp_path_factory.mktemp("encoders")
    torch.manual_seed(0)
    config = {k: v for k, v in TINY_BACKBONES["vit"].items() if k != "model_type"}
    ViTModel(ViTConfig(**config), add_pooling_layer=False).save_pretrained(root / "vit")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root / "vit")
    tiny_detector("clip_vision_model", seed=1).save_pretrained(root / "clip")
    return root / "vit", root / "clip"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Separable by construction: fakes are brighter, so a probe has something to learn."""
    root = tmp_path_factory.mktemp("probe_data")
    rng = np.random.default_rng(0)
    for label, base in (("real", 60), ("fake", 170)):
        for i in range(10):
            pixels = np.clip(base + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
            (root / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / label / f"{i}.png")
    return root


@pytest.mark.parametrize("classifier", ["logreg", "linear-svm", "lda"])
def test_linear_probe_becomes_a_detector_with_the_same_scores(encoders, data, tmp_path, classifier):
    from transformers import pipeline

    import deepfake_hf

    vit, _ = encoders
    out = tmp_path / classifier
    # strong regularisation for logreg keeps its probabilities away from 0 and 1, so equality means something
    params = {"C": 1e-3} if classifier == "logreg" else {}
    result = run_probe({"train": data}, [vit], out, classifier=classifier, folds=3, pca=8, n_resamples=20,
                       cache_dir=tmp_path / "cache", plots=False, **params)
    assert result["probe"]["detector"] == str(out / "model")
    assert result["test_sets"]["3-fold CV"]["frame"]["n"] == 20
    # both record the input their features came from (faces "none" here), so every door feeds them that
    assert json.loads((out / "probe" / "probe.json").read_text())["input"]["face_preprocessing"] == "none"
    assert json.loads((out / "model" / "config.json").read_text())["face_preprocessing"] == "none"
    for name in ("predictions.csv", "metrics.json", "report.md", "probe/probe.json", f"probe/{FEATURES_FILE}"):
        assert (out / name).is_file(), name

    # refit the same pipeline on the saved features: the detector must reproduce it
    probe = load_probe(out / "probe")
    paths = sorted(str(p) for p in data.rglob("*.png"))
    images = [Image.open(p).convert("RGB") for p in paths]
    features = extract_features([vit], None, cache_dir=False, images=images)
    deepfake_hf.register()
    detector = deepfake_hf.DeepfakeDetectorForImageClassification.from_pretrained(out / "model").eval()
    from transformers import AutoImageProcessor

    pixel_values = AutoImageProcessor.from_pretrained(out / "model")(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        logits = detector(pixel_values=pixel_values).logits.double().numpy()
    decision = probe.pipeline.decision_function(features)
    assert logits[:, 1] - logits[:, 0] == pytest.approx(decision, rel=1e-5, abs=1e-4)  # float32 head
    if classifier != "linear-svm":  # logreg and LDA have probabilities: they equal the detector's
        expected = probe.pipeline.predict_proba(features)[:, 1]
        if classifier == "logreg":
            assert ((expected > 0.05) & (expected < 0.95)).mean() > 0.5
        assert torch.tensor(logits).softmax(-1)[:, 1].numpy() == pytest.approx(expected, abs=1e-5)
    # and pipeline() serves it
    classify = pipeline("image-classification", model=str(out / "model"))
    fake = {row["label"]: row["score"] for row in classify(paths[0])}["fake"]
    assert fake == pytest.approx(1 / (1 + np.exp(-decision[0])), abs=1e-4)


def test_nonlinear_probe_saved_without_pickle_and_evaluated_by_cli(encoders, data, tmp_path, capsys):
    from deepfake_hf.cli import main

    vit, clip = encoders
    out = tmp_path / "svm"
    code = main(["probe", "--faces", "none", str(data), "--backbone", str(vit), "--backbone", str(clip),
                 "--classifier", "svm", "--folds", "3", "--out", str(out), "--bootstrap", "20", "--no-plots"])
    assert code == 0 and "CV" in capsys.readouterr().out
    assert not (out / "model").exists()  # non-linear / two backbones: no detector head
    saved = list((out / "probe").iterdir())
    assert {p.name for p in saved} == {"probe.json", FEATURES_FILE}
    assert all(b"pickle" not in p.read_bytes()[:200] for p in saved)
    spec = json.loads((out / "probe" / "probe.json").read_text())
    assert spec["feature_dim"] == 64  # two 32-wide encoders concatenated

    # reloaded (refitted) probe gives the same scores as the one fitted in this process
    from safetensors.numpy import load_file

    stored = load_file(out / "probe" / FEATURES_FILE)
    fitted = build_probe("svm").fit(stored["features"], stored["labels"])
    assert probe_scores(load_probe(out / "probe").pipeline, stored["features"]) == pytest.approx(
        probe_scores(fitted, stored["features"]))
    # the CLI scores new data with the saved probe
    code = main(["evaluate", "--faces", "none", str(out / "probe"), str(data), "--out", str(tmp_path / "ev"),
                 "--bootstrap", "0", "--no-plots"])
    assert code == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["test_sets"][data.name]["frame"]["auroc"] > 0.9  # its own training data


    # a probe fitted on face crops is fed face crops by default: its record is read as a model config's
    spec["input"] = {"face_preprocessing": "deepfakebench", "num_frames": 3}
    (out / "probe" / "probe.json").write_text(json.dumps(spec))
    if dlib_available():
        scorer = load_probe(out / "probe")
        assert (scorer.face_detector.name, scorer.num_frames) == ("deepfakebench", 3)
        assert load_probe(out / "probe", faces="none").face_detector.name == "none"  # an option given wins


def test_features_are_cached(encoders, data, tmp_path):
    from deepfake_hf.data.datasets import load_source

    vit, clip = encoders
    dataset = load_source(str(data), cache_dir=tmp_path / "ds", verbose=False)
    first = extract_features([vit, clip], dataset, cache_dir=tmp_path / "features")
    assert first.shape == (20, 64)
    files = list((tmp_path / "features").glob("*.safetensors"))
    assert len(files) == 2
    # a second call reads the cache: overwrite it with a marker and see the marker come back
    from safetensors.numpy import load_file, save_file

    for path in files:
        marked = load_file(path)["features"]
        marked[:] = 7.0
        save_file({"features": marked}, path)
    assert (extract_features([vit, clip], dataset, cache_dir=tmp_path / "features") == 7.0).all()


def test_linear_head_folds_scaler_and_pca():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 10)) * rng.uniform(0.5, 3, 10) + rng.normal(size=10)
    y = (x[:, 0] + 0.5 * x[:, 3] > 0).astype(int)
    for classifier in ("logreg", "linear-svm", "lda"):
        pipeline = build_probe(classifier, pca=5).fit(x, y)
        weight, bias = linear_head(pipeline)
        assert x @ weight + bias == pytest.approx(pipeline.decision_function(x), abs=1e-8)
    with pytest.raises(ValueError, match="not linear"):
        linear_head(build_probe("svm").fit(x, y))


def test_cross_validation_never_splits_a_video():
    """1-NN on duplicated frames is perfect if a video's frames straddle folds; by-video folds give chance."""
    from sklearn.metrics import roc_auc_score

    from deepfake_hf.evaluation.probes import cross_validated_scores

    rng = np.random.default_rng(0)
    videos, frames = 40, 4
    video_features = rng.normal(size=(videos, 8))
    video_labels = np.tile([0, 1], videos // 2)  # labels unrelated to the features
    features = np.repeat(video_features, frames, axis=0)
    labels = np.repeat(video_labels, frames)
    groups = np.repeat([f"/d/{i}.mp4" for i in range(videos)], frames)
    scores, folds = cross_validated_scores(features, labels, groups, "knn", folds=5, n_neighbors=1)
    assert folds == 5 and roc_auc_score(labels, scores) < 0.8
    leaky, _ = cross_validated_scores(features, labels, np.arange(labels.size), "knn", folds=5, n_neighbors=1)
    assert roc_auc_score(labels, leaky) > 0.95
