"""Ready-made face crops are scored as given: a DeepfakeBench JSON's frames, and a folder or manifest the user marks
with `#crops` (docs/data.md), are never searched for faces again, by the data loaders or by `evaluate`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_hf.data import datasets
from deepfake_hf.data.datasets import crops_marked, load_source
from deepfake_hf.faces import dlib_available

from .conftest import tiny_detector


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> dict[str, Path]:
    """One set of face pictures, as a folder, a manifest and a DeepfakeBench JSON (two frames per video)."""
    data = pytest.importorskip("skimage.data")
    root = tmp_path_factory.mktemp("crops")
    face = Image.fromarray(data.astronaut()).resize((256, 256))
    paths = {}
    for label in ("real", "fake"):
        for number in range(2):
            path = root / label / f"video{number}" / f"{number:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            (face if label == "real" else face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)).rotate(3 * number).save(path)
            paths[path] = label
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows([[str(path.relative_to(root)), label] for path, label in paths.items()])
    videos = {f"{label}-{path.parent.name}": {"label": f"FF-{'real' if label == 'real' else 'DF'}",
                                              "frames": [str(path.relative_to(root))]}
              for path, label in paths.items()}
    (root / "bench.json").write_text(json.dumps({"FF": {"all": {"test": videos}}}))
    return {"folder": root, "manifest": root / "manifest.csv", "json": root / "bench.json"}


def no_detection(monkeypatch):
    """Make any face search fail the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a face was searched for in a ready-made crop")

    monkeypatch.setattr(datasets._FaceCropper, "__call__", refuse)


def test_the_mark_is_a_suffix_of_a_folder_or_manifest(tmp_path):
    assert crops_marked(f"{tmp_path}/manifest.csv#crops") and crops_marked(f"{tmp_path}#crops")
    assert not crops_marked(f"{tmp_path}/manifest.csv") and not crops_marked(f"{tmp_path}/bench.json#test")
    (tmp_path / "odd#crops").mkdir()  # a folder really named so is that folder, not a mark
    assert not crops_marked(tmp_path / "odd#crops")


@pytest.mark.parametrize("kind", ["folder", "manifest", "json"])
def test_loaders_keep_crops_as_given(crops, kind, monkeypatch):
    spec = f"{crops[kind]}#test" if kind == "json" else f"{crops[kind]}#crops"
    expected = load_source(crops[kind], faces="none", num_frames=2, cache_dir=False, verbose=False)
    no_detection(monkeypatch)
    dataset, report = load_source(spec, faces="dlib", num_frames=2, cache_dir=False, verbose=False,
                                  return_report=True)
    assert report["crops"] is True and report["counts"].get("files_without_face", 0) == 0
    assert len(dataset) == len(expected) == 4
    for got, want in zip(dataset, expected):
        assert np.array_equal(np.asarray(got["image"]), np.asarray(want["image"])) and got["path"] == want["path"]


def test_unmarked_sources_report_no_crops(crops):
    _, report = load_source(crops["manifest"], num_frames=2, cache_dir=False, verbose=False, return_report=True)
    assert report["crops"] is False


@pytest.mark.slow  # evaluate twice
@pytest.mark.skipif(not dlib_available(), reason="dlib not installed")
@pytest.mark.parametrize("kind", ["manifest", "json"])
def test_evaluate_scores_crops_without_the_face_policy(crops, kind, tmp_path):
    """A model recording dlib faces: evaluate scores a DeepfakeBench JSON's frames and a `#crops` manifest's
    images as predict --faces none scores them, not as its face policy would (which differs on these pictures)."""
    from deepfake_hf import Detector
    from deepfake_hf.evaluation.evaluate import evaluate_model

    tiny_detector("vit", face_preprocessing="dlib").save_pretrained(tmp_path / "model")
    spec = f"{crops[kind]}#test" if kind == "json" else f"{crops[kind]}#crops"
    result = evaluate_model(tmp_path / "model", {"crops": spec}, tmp_path / "eval", n_resamples=10, plots=False)
    assert "scored as they are" in result["notes"]["crops"]
    with open(tmp_path / "eval" / "predictions.csv", newline="") as handle:
        scored = {row["path"]: float(row["score"]) for row in csv.DictReader(handle)}
    paths = sorted(scored)
    as_given = Detector.from_pretrained(tmp_path / "model", faces="none", progress=False)(paths)
    searched = Detector.from_pretrained(tmp_path / "model", progress=False)(paths)
    assert [scored[path] for path in paths] == pytest.approx([r.fake_probability for r in as_given], abs=1e-5)
    assert all(r.face_found for r in searched)  # the face policy would have cropped again...
    assert max(abs(a.fake_probability - b.fake_probability) for a, b in zip(as_given, searched)) > 1e-4  # ...and moved


@pytest.mark.skipif(not dlib_available(), reason="dlib not installed")
def test_predict_and_the_detector_score_marked_crops_as_given(crops, tmp_path):
    """`predict` and the `Detector` read the `#crops` mark as evaluate does: a marked folder's or manifest's
    pictures are scored as given (predict --faces none's numbers, no face search), though the model records dlib."""
    from deepfake_hf import Detector
    from deepfake_hf.scoring.predict import predict

    tiny_detector("vit", face_preprocessing="dlib").save_pretrained(tmp_path / "model")
    paths = sorted(str(path) for path in crops["folder"].rglob("*.png"))
    as_given = Detector.from_pretrained(tmp_path / "model", faces="none", progress=False)(paths)
    expected = {result.path: result.fake_probability for result in as_given}
    detector = Detector.from_pretrained(tmp_path / "model", progress=False)
    for kind in ("folder", "manifest"):
        spec = f"{crops[kind]}#crops"
        _, predicted = predict(tmp_path / "model", [spec], fmt="json", progress=False)
        for results in (detector([spec]), predicted):
            assert all(result.error is None and result.face_found is None for result in results), kind
            assert {result.path: result.fake_probability for result in results} == pytest.approx(expected, abs=1e-5)
    (unmarked,) = detector(paths[:1])
    assert unmarked.face_found is True  # without the mark the model's face policy runs on the same picture


def test_a_mark_on_something_else_is_one_failed_input(crops, tmp_path):
    from deepfake_hf.media import MediaError
    from deepfake_hf.scoring.detector import iter_listed

    (failed,) = list(iter_listed([f"{crops['json']}#crops"]))
    assert isinstance(failed, MediaError) and "marks a folder or a manifest" in str(failed)
    (missing,) = list(iter_listed([f"{tmp_path}/nothing#crops"]))
    assert isinstance(missing, MediaError) and "no such file or folder" in str(missing)
