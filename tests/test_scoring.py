"""The one scorer: predict, evaluate, explain and probes give the same calibrated score for the same file.

Videos here carry two synthetic people (stub face detector: one box per half of the frame, the right
person only on frames marked by a white bottom strip), so the face policy (tracking, most suspicious
person, frames without that person left out) is exercised, not only whole frames.
"""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_hf.evaluation.metrics import video_scores
from deepfake_hf.faces import Face, margin_crop
from deepfake_hf.scoring.detector import Detector
from deepfake_hf.scoring.predict import predict
from deepfake_hf.scoring.scorer import Scorer

from .conftest import tiny_detector, write_image

NUM_FRAMES = 6
THRESHOLD, TEMPERATURE = 0.3, 1.7  # off the defaults, so an uncalibrated or centred score would differ
LEFT, RIGHT = (10, 8, 42, 40), (54, 8, 86, 40)


class TwoPeople:
    """Stub face detector: the left person in every frame, the right one only where the bottom strip is white."""

    name = "stub-two"

    def detect(self, image):
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
        faces = [Face(box=LEFT)]
        if pixels[-4:].mean() > 128:
            faces.append(Face(box=RIGHT))
        return faces


class OnePerson:
    name = "stub-one"

    def detect(self, image):
        return [Face(box=LEFT)]


def write_people_video(path, frames=8, seed=0):
    """96x48 H.264 clip of noise (a different picture per frame and per half); even frames get a white
    bottom strip (the right person is "there"), odd ones a black one."""
    import av

    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10, options={"crf": "1", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 96, 48, "yuv420p"
        for index in range(frames):
            pixels = rng.integers(0, 256, (48, 96, 3), dtype=np.uint8)
            pixels[-4:] = 255 if index % 2 == 0 else 0
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scoring") / "detector"
    tiny_detector("vit", seed=4, num_frames=NUM_FRAMES, threshold=THRESHOLD,
                  calibration_temperature=TEMPERATURE).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("scoring_data") / "set"
    for index in range(3):
        write_image(root / "real" / f"r{index}.png", size=(96, 48), seed=index)
        write_image(root / "fake" / f"f{index}.png", size=(96, 48), seed=50 + index)
    (root / "real").mkdir(parents=True, exist_ok=True)
    write_people_video(root / "real" / "people_a.mp4", seed=1)
    write_people_video(root / "fake" / "people_b.mp4", seed=2)
    # an animated GIF: predict scores its frames, so evaluate must too (not only the first)
    rng = np.random.default_rng(9)
    gif = [Image.fromarray(rng.integers(0, 256, (48, 96, 3), dtype=np.uint8)) for _ in range(3)]
    gif[0].save(root / "fake" / "moving.gif", save_all=True, append_images=gif[1:], duration=100, loop=0)
    return root


def read_rows(out):
    with open(out / "predictions.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def evaluate_rows(model_dir, data, out, faces):
    from deepfake_hf.evaluation.evaluate import evaluate_model

    evaluate_model(model_dir, {"set": data}, out, faces=faces, n_resamples=0, plots=False)
    return read_rows(out)


def assert_predict_equals_evaluate(results, rows, aggregation="mean"):
    """Per file and per frame, evaluate's scores are predict's; returns the largest difference seen."""
    by_path = {result.path: result for result in results}
    assert {row["path"] for row in rows} == set(by_path)
    worst = 0.0
    keys, per_video, _ = video_scores([float(r["score"]) for r in rows], [r["video"] for r in rows], aggregation)
    for key, score in zip(keys, per_video):  # a file's rows aggregate to predict's fake_probability
        worst = max(worst, abs(score - by_path[key].fake_probability))
    for row in rows:
        result = by_path[row["path"]]
        frame = int(row["frame"])
        expected = result.frame_scores[frame if len(result.frame_scores) > 1 else 0]
        worst = max(worst, abs(float(row["score"]) - expected))
    for result in results:  # frames predict leaves out are not rows either
        if len(result.frame_scores) > 1:
            frames = sorted(int(r["frame"]) for r in rows if r["path"] == result.path)
            assert frames == [i for i, s in enumerate(result.frame_scores) if s is not None]
    assert worst < 1e-6, worst
    return worst


def model_probabilities(model, processor, images):
    """Reference: calibrated fake probability straight from the head (temperature, no threshold shift)."""
    with torch.no_grad():
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        raw = model.classifier(model.get_image_features(pixels).pooler_output)
    return (raw / TEMPERATURE).softmax(-1)[:, 1].double().numpy()


@pytest.mark.parametrize("faces", ["none", "one", "two"])
def test_predict_and_evaluate_give_the_same_scores(model_dir, data, tmp_path, faces):
    detector = {"none": "none", "one": OnePerson(), "two": TwoPeople()}[faces]
    _, results = predict(str(model_dir), [data], faces=detector, fmt="json", frame_scores=True, progress=False)
    assert all(result.error is None for result in results)
    rows = evaluate_rows(model_dir, data, tmp_path / "eval", detector)
    assert len([r for r in results if r.kind == "video"]) == 2
    assert_predict_equals_evaluate(results, rows)
    if faces == "two":
        videos = [r for r in results if r.kind == "video"]
        assert all(r.faces == 2 and r.frames == NUM_FRAMES for r in videos)


def test_two_person_clip_is_the_most_suspicious_persons_score(model_dir, data, tmp_path):
    """Checked against crops scored by hand: each person's mean, the larger one is the file's, and the
    per-frame scores are that person's (None where they are not seen)."""
    from deepfake_hf.media import read_video_frames

    model = tiny_detector("vit", seed=4, num_frames=NUM_FRAMES, threshold=THRESHOLD,
                          calibration_temperature=TEMPERATURE)
    processor = model.matching_image_processor()
    checked = []
    for video in sorted(data.rglob("*.mp4")):
        frames = read_video_frames(video, NUM_FRAMES)
        left = model_probabilities(model, processor, [margin_crop(f, Face(box=LEFT), size=256) for f in frames])
        present = [i for i, f in enumerate(frames) if np.asarray(f.convert("L"))[-4:].mean() > 128]
        right = model_probabilities(model, processor,
                                    [margin_crop(frames[i], Face(box=RIGHT), size=256) for i in present])
        assert present and len(present) < len(frames)
        (result,) = Detector.from_pretrained(model_dir, faces=TwoPeople(), progress=False)(video, frame_scores=True)
        expected = max(left.mean(), right.mean())
        assert result.fake_probability == pytest.approx(expected, abs=1e-5)
        assert result.label == ("fake" if expected >= THRESHOLD else "real")
        if right.mean() > left.mean():
            expected_frames = [float(right[present.index(i)]) if i in present else None for i in range(len(frames))]
        else:
            expected_frames = left.tolist()
        assert [s is None for s in result.frame_scores] == [s is None for s in expected_frames]
        assert [s for s in result.frame_scores if s is not None] == pytest.approx(
            [s for s in expected_frames if s is not None], abs=1e-5)
        checked.append(right.mean() > left.mean())
    assert len(checked) == 2


def test_confident_aggregation_agrees_too(model_dir, data, tmp_path):
    from deepfake_hf.evaluation.evaluate import evaluate_model

    _, results = predict(str(model_dir), [data], faces=TwoPeople(), aggregation="confident", fmt="json",
                         frame_scores=True, progress=False)
    evaluate_model(model_dir, {"set": data}, tmp_path / "c", faces=TwoPeople(), aggregation="confident",
                   n_resamples=0, plots=False)
    assert_predict_equals_evaluate(results, read_rows(tmp_path / "c"), aggregation="confident")


@pytest.mark.parametrize("faces", ["none", "two"])
def test_explain_reports_the_detectors_probability(model_dir, data, faces):
    from deepfake_hf.scoring.explain import explain, load_for_explain

    detector = "none" if faces == "none" else TwoPeople()
    image = Image.new("RGB", (96, 48))
    image.paste(Image.open(data / "fake" / "f0.png").convert("RGB"))
    image.paste((255, 255, 255), (0, 44, 96, 48))  # both people "there"
    (expected,) = Detector.from_pretrained(model_dir, faces=detector, progress=False)(image)
    model, processor = load_for_explain(model_dir)
    result = explain(model, image, processor=processor, faces=detector)
    assert result["fake_probability"] == pytest.approx(expected.fake_probability, abs=1e-6)
    assert result["label"] == expected.label and result["faces"] == expected.faces
    # not the threshold-centred score a plain softmax of the logits gives
    with torch.no_grad():
        centred = model(**processor(images=[image], return_tensors="pt")).logits.softmax(-1)[0, 1].item()
    if faces == "none":
        assert abs(centred - result["fake_probability"]) > 1e-3


def test_explain_cli_prints_the_calibrated_probability(model_dir, data, tmp_path, capsys):
    from deepfake_hf.cli import main

    image = data / "real" / "r1.png"
    (expected,) = Detector.from_pretrained(model_dir, faces="auto", progress=False)(image)
    assert main(["explain", str(model_dir), str(image), "--out", str(tmp_path / "heat.png")]) == 0
    assert f"(fake score {expected.fake_probability:.3f})" in capsys.readouterr().out


def test_probe_is_a_scorer_scored_like_a_model(model_dir, data, tmp_path):
    from deepfake_hf.evaluation.evaluate import load_model
    from deepfake_hf.evaluation.probes import ProbeScorer, extract_features, probe_scores, save_probe

    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 32)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(int)
    save_probe(tmp_path / "probe", [model_dir], "logreg", None, True, 0, {"C": 0.1}, features, labels)
    probe = load_model(tmp_path / "probe", device="cpu", faces=TwoPeople())
    assert isinstance(probe, ProbeScorer) and isinstance(probe, Scorer)
    results = Detector(probe, progress=False)(sorted(str(p) for p in data.rglob("*.*")), frame_scores=True)
    rows = evaluate_rows(tmp_path / "probe", data, tmp_path / "eval", TwoPeople())
    assert_predict_equals_evaluate(results, rows)
    # predict takes the probe folder as it takes a model folder
    _, predicted = predict(str(tmp_path / "probe"), [data], faces=TwoPeople(), fmt="json", frame_scores=True,
                           progress=False)
    assert_predict_equals_evaluate(predicted, rows)
    # an image's score is the probe's own on its most suspicious face crop
    path = data / "fake" / "f1.png"
    image = Image.open(path).convert("RGB")
    crops = [margin_crop(image, face, size=256) for face in TwoPeople().detect(image)]
    direct = probe_scores(probe.pipeline, extract_features([model_dir], None, cache_dir=False, images=crops))
    (result,) = [r for r in results if r.path == str(path)]
    assert result.fake_probability == pytest.approx(direct.max(), abs=1e-5)


def test_scorer_api_matches_detector_on_one_file(model_dir, data):
    scorer = Scorer.from_pretrained(model_dir, faces=TwoPeople(), device="cpu")
    video = data / "fake" / "people_b.mp4"
    plan, verdict = scorer.score_file(video)
    (result,) = Detector(scorer, progress=False)(video, frame_scores=True)
    assert plan.frames == result.frames == NUM_FRAMES and plan.faces == result.faces == 2
    assert verdict.probability == pytest.approx(result.fake_probability, abs=1e-9)
    assert verdict.frame_scores == pytest.approx(result.frame_scores, abs=1e-9)
    assert json.dumps(result.to_dict())  # plain JSON types


def test_evaluate_counts_files_scored_without_a_face(model_dir, data, tmp_path):
    from deepfake_hf.evaluation.evaluate import evaluate_model

    class Nobody:
        name = "stub-none"

        def detect(self, image):
            return []

    _, results = predict(str(model_dir), [data], faces=Nobody(), fmt="json", frame_scores=True, progress=False)
    assert all(result.face_found is False for result in results)
    result = evaluate_model(model_dir, {"set": data}, tmp_path / "n", faces=Nobody(), n_resamples=0, plots=False)
    assert result["test_sets"]["set"]["files_without_face"] == len(results) == 9  # 6 stills, 2 videos, 1 GIF
    assert_predict_equals_evaluate(results, read_rows(tmp_path / "n"))


def test_a_models_recorded_face_preprocessing_is_the_default(tmp_path):
    """A converted DeepfakeBench/GenD model records face_preprocessing="deepfakebench"; it survives save/load
    and the scorer (so predict, evaluate, Detector and the app) crops and samples frames that way unless told."""
    from deepfake_hf import DeepfakeDetectorConfig
    from deepfake_hf.faces import dlib_available
    from deepfake_hf.scoring.scorer import resolve_faces

    with pytest.raises(ValueError, match="face_preprocessing"):
        DeepfakeDetectorConfig(face_preprocessing="mtcnn")
    model = tiny_detector(face_preprocessing="deepfakebench")
    model.save_pretrained(tmp_path / "m")
    config = DeepfakeDetectorConfig.from_pretrained(tmp_path / "m")
    assert config.face_preprocessing == "deepfakebench"
    assert resolve_faces(None, config) == resolve_faces("auto", config) == "deepfakebench"
    assert resolve_faces("none", config) == "none" and resolve_faces("dlib", config) == "dlib"
    plain = tiny_detector().config
    assert plain.face_preprocessing is None
    assert resolve_faces(None, plain) == "none" and resolve_faces("auto", plain) == "auto"

    processor = model.matching_image_processor()
    scorer = Scorer(model, processor, faces="none")
    assert scorer.face_detector.name == "none" and scorer.frame_sampling == "even"
    if not dlib_available():
        pytest.skip("dlib not installed")
    scorer = Scorer(model, processor)
    assert scorer.face_detector.name == "deepfakebench" and scorer.frame_sampling == "deepfakebench"
    with pytest.raises(ValueError, match="does not apply"):
        Scorer(model, processor, crop="margin")


def test_deepfakebench_json_frames_are_scored_as_the_crops_they_are(model_dir, tmp_path):
    """A DeepfakeBench JSON lists aligned face crops: evaluate scores them whole, whatever the face mode
    (cropping a face out of a face crop would zoom out a second time), and says so."""
    from deepfake_hf.evaluation.evaluate import evaluate_model

    entries = {}
    for label_name, video in (("FF-real", "000"), ("FF-DF", "000_001")):
        paths = [write_image(tmp_path / "crops" / label_name / video / f"{k:03d}.png", size=(64, 64),
                             seed=k + len(video)) for k in range(3)]
        entries[label_name] = {"test": {"c23": {video: {"label": label_name,
                                                        "frames": [str(p.relative_to(tmp_path)) for p in paths]}}}}
    bench = tmp_path / "FF.json"
    bench.write_text(json.dumps({"FF": entries}))
    result = evaluate_model(model_dir, {"ff": f"{bench}#test"}, tmp_path / "eval", faces=TwoPeople(), n_resamples=0,
                            plots=False)
    assert "aligned face crops" in result["notes"]["ff"] and "stub-two" in result["notes"]["ff"]
    rows = read_rows(tmp_path / "eval")
    _, whole = predict(str(model_dir), [r["path"] for r in rows], faces="none", fmt="json", progress=False)
    expected = {r.path: r.fake_probability for r in whole}
    assert max(abs(float(r["score"]) - expected[r["path"]]) for r in rows) < 1e-6
    _, cropped = predict(str(model_dir), [r["path"] for r in rows], faces=TwoPeople(), fmt="json", progress=False)
    assert max(abs(r.fake_probability - expected[r.path]) for r in cropped) > 1e-4  # the stub would crop


# ------------------------------------------------------------------------------ what a model records of its input
def test_the_recorded_crop_geometry_is_the_scorers_default_and_an_option_wins(tmp_path):
    from deepfake_hf import DeepfakeDetectorConfig
    from deepfake_hf.configuration_deepfake import INPUT_KEYS

    with pytest.raises(ValueError, match="face_crop"):
        DeepfakeDetectorConfig(face_crop="square")
    with pytest.raises(ValueError, match="face_size"):
        DeepfakeDetectorConfig(face_size=0)
    model = tiny_detector(face_preprocessing="none", face_crop="margin", face_size=128, face_scale=1.5,
                          face_margin=0.2, num_frames=5)
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert {key: saved[key] for key in INPUT_KEYS} == {"face_preprocessing": "none", "face_crop": "margin",
                                                       "face_size": 128, "face_scale": 1.5, "face_margin": 0.2,
                                                       "num_frames": 5}
    scorer = Scorer.from_pretrained(tmp_path / "m", faces="auto")
    assert scorer.face_detector.name == "none"  # "auto" takes what the model records
    assert (scorer.crop, scorer.face_size, scorer.face_scale, scorer.margin, scorer.num_frames) == (
        "margin", 128, 1.5, 0.2, 5)
    scorer.set_policy(scorer.model.config, faces=TwoPeople(), crop="align", face_size=64)
    assert (scorer.crop, scorer.face_size, scorer.face_scale) == ("align", 64, 1.5)
    # a recorded crop that the mode asked for does not allow gives way to the mode's own crop
    scorer.set_policy(scorer.model.config, faces="deepfakebench")
    assert scorer.crop == "align"
    # a config without the new keys keeps today's defaults
    plain = Scorer(tiny_detector(), tiny_detector().matching_image_processor(), faces="none")
    assert (plain.crop, plain.face_size, plain.face_scale, plain.margin) == ("align", 256, 1.3, 0.3)


def test_evaluate_of_a_model_recording_whole_images_runs_no_face_detector(tmp_path, monkeypatch):
    """The quickstart model records "none" (its images are crops already): `evaluate` with the command line's
    default faces ("auto") scores its crops as given instead of running dlib on them."""
    from deepfake_hf.evaluation.evaluate import evaluate_model
    from deepfake_hf.faces import dlib

    def no_dlib(*args, **kwargs):
        raise AssertionError("dlib ran on ready-made crops")

    monkeypatch.setattr(dlib.DlibFaceDetector, "__init__", no_dlib)
    tiny_detector(face_preprocessing="none").save_pretrained(tmp_path / "m")
    for number in range(4):
        write_image(tmp_path / "data" / ("fake" if number % 2 else "real") / f"{number}.png", seed=number)
    result = evaluate_model(tmp_path / "m", {"crops": str(tmp_path / "data")}, tmp_path / "eval", faces="auto",
                            n_resamples=10, plots=False)
    assert result["test_sets"]["crops"]["frame"]["n"] == 4
    assert "files_without_face" not in result["test_sets"]["crops"]


def test_calibrate_records_the_input_it_was_fitted_on_when_the_model_records_none():
    from deepfake_hf.evaluation.calibrate import scored_input

    model = tiny_detector()
    scorer = Scorer(model, model.matching_image_processor(), faces="none")
    assert scored_input(scorer, model.config) == {"face_preprocessing": "none"}
    recorded = tiny_detector(face_preprocessing="deepfakebench")
    assert scored_input(scorer, recorded.config) == {}  # what a model records stays


def test_calibrating_a_model_on_faces_adds_the_face_pipeline(tmp_path):
    from deepfake_hf import DeepfakeDetectorConfig
    from deepfake_hf.configuration_deepfake import CUSTOM_PIPELINES, PIPELINE_FILE
    from deepfake_hf.evaluation.calibrate import add_face_pipeline

    tiny_detector().save_pretrained(tmp_path / "m")
    config = DeepfakeDetectorConfig.from_pretrained(tmp_path / "m")
    add_face_pipeline(config, tmp_path / "m")  # whole images: nothing to add
    assert not (tmp_path / "m" / PIPELINE_FILE).exists()
    config.face_preprocessing = "dlib"
    add_face_pipeline(config, tmp_path / "m")
    config.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / PIPELINE_FILE).is_file()
    assert json.loads((tmp_path / "m" / "config.json").read_text())["custom_pipelines"] == CUSTOM_PIPELINES


def test_the_face_pipeline_without_the_faces_extra_says_what_to_install(monkeypatch):
    import sys

    from deepfake_hf.faces import FaceDependencyError
    from deepfake_hf.pipeline_deepfake import DeepfakeImageClassificationPipeline

    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` fails
    model = tiny_detector(face_preprocessing="dlib")
    with pytest.raises(FaceDependencyError) as caught:
        DeepfakeImageClassificationPipeline(model=model, image_processor=model.matching_image_processor())
    assert "pip install 'deepfake-hf[faces]'" in str(caught.value) and "\n" not in str(caught.value)
    # scoring a ready-made crop as given needs no face detector
    pipe = DeepfakeImageClassificationPipeline(model=model, image_processor=model.matching_image_processor(),
                                               face_mode="none")
    rows = pipe(Image.new("RGB", (40, 40), (120, 90, 60)))
    assert rows[0]["face_found"] is None and {row["label"] for row in rows} == {"real", "fake"}
    expected = Scorer(model, model.matching_image_processor(), faces="none").score_file(
        Image.new("RGB", (40, 40), (120, 90, 60)))[1].probability
    assert rows[0]["fake_probability"] == pytest.approx(expected, abs=1e-6)
    fake_row = next(row for row in rows if row["label"] == "fake")
    assert fake_row["score"] == fake_row["fake_probability"]  # the "fake" row's score is predict's number
    several = pipe([Image.new("RGB", (40, 40), (120, 90, 60)), Image.new("RGB", (30, 50), (10, 200, 60))])
    assert len(several) == 2 and several[0][0]["fake_probability"] == pytest.approx(expected, abs=1e-6)


def test_only_a_model_that_finds_faces_carries_the_face_pipeline(tmp_path):
    from deepfake_hf.configuration_deepfake import CUSTOM_PIPELINES, PIPELINE_FILE

    for mode in ("deepfakebench", "dlib", "none", None):
        folder = tmp_path / str(mode)
        tiny_detector(face_preprocessing=mode).save_pretrained(folder)
        config = json.loads((folder / "config.json").read_text())
        finds = mode in ("deepfakebench", "dlib")
        assert (folder / PIPELINE_FILE).is_file() == finds, mode
        assert config.get("custom_pipelines") == (CUSTOM_PIPELINES if finds else None), mode


def test_train_and_export_record_the_input(tmp_path, monkeypatch):
    from deepfake_hf import export_native
    from deepfake_hf.training.recipes import load_recipe
    from deepfake_hf.training.train import input_record, record_input

    def recipe(faces):
        return load_recipe({"name": "r", "model": {"architecture": {"model_type": "vit"}}, "data": {"faces": faces}})

    assert input_record(recipe("none")) == {"num_frames": 32, "face_preprocessing": "none"}
    assert input_record(recipe("deepfakebench")) == {"num_frames": 32, "face_preprocessing": "deepfakebench",
                                                     "face_crop": "align", "face_size": 256, "face_scale": 1.3}
    monkeypatch.setattr("deepfake_hf.faces.dlib.dlib_available", lambda: False)
    assert input_record(recipe("auto"))["face_preprocessing"] == "none"  # "auto" as it resolved for the data
    converted = tiny_detector(face_preprocessing="deepfakebench").config
    record_input(converted, recipe("none"))  # fine-tuned on ready-made crops: the face mode it records stays
    assert converted.face_preprocessing == "deepfakebench"

    tiny_detector(face_preprocessing="dlib", face_crop="margin", num_frames=3).save_pretrained(tmp_path / "m")
    export_native(tmp_path / "m", tmp_path / "native")
    stock = json.loads((tmp_path / "native" / "config.json").read_text())
    assert (stock["face_preprocessing"], stock["face_crop"], stock["num_frames"]) == ("dlib", "margin", 3)
    assert "custom_pipelines" not in stock and not (tmp_path / "native" / "pipeline_deepfake.py").exists()
