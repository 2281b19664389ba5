"""scoring.detector.Detector: scores match the model, batching across files, faces, workers; video pipeline."""

import json
import math
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_hf.faces import align_face, dlib_available, get_face_detector
from deepfake_hf.media import read_video_frames
from deepfake_hf.scoring.detector import Detector
from deepfake_hf.scoring.results import summarize

from .conftest import run_python, tiny_detector, write_image
from .media_samples import write_bad_inputs, write_video

needs_dlib = pytest.mark.skipif(not dlib_available(), reason="dlib not installed")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "detector"
    tiny_detector("vit", num_frames=6).save_pretrained(folder)
    return folder


def model_fake_probability(model, processor, images, temperature=1.0):
    """Reference: the calibrated fake probability computed straight from the model's head."""
    with torch.no_grad():
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        features = model.get_image_features(pixels).pooler_output
        raw = model.classifier(features)
    return (raw / temperature).softmax(-1)[:, 1].tolist()


def test_image_scores_match_the_model_with_threshold_and_temperature(tmp_path):
    model = tiny_detector("vit", threshold=0.3, calibration_temperature=2.0)
    processor = model.matching_image_processor()
    paths = [write_image(tmp_path / f"{i}.png", seed=i) for i in range(3)]
    results = Detector(model, processor, progress=False)(paths)
    expected = model_fake_probability(model, processor, [Image.open(p).convert("RGB") for p in paths], 2.0)
    for result, probability in zip(results, expected):
        assert result.fake_probability == pytest.approx(probability, abs=1e-5)
        assert result.label == ("fake" if probability >= 0.3 else "real")
        assert result.kind == "image" and result.frames == 1 and result.error is None


def test_pil_array_path_and_folder_inputs(model_dir, tmp_path):
    detector = Detector.from_pretrained(model_dir, progress=False)
    path = write_image(tmp_path / "in" / "a.png", seed=3)
    write_image(tmp_path / "in" / "sub" / "b.jpg", seed=4)
    (tmp_path / "in" / "notes.txt").write_text("skipped in folders")
    pil = Image.open(path).convert("RGB")
    single = detector(str(path))
    assert len(single) == 1
    results = detector([pil, np.asarray(pil), path])
    assert [r.path for r in results[:2]] == ["<image 0>", "<array 1>"] or results[0].path.endswith("a.png")
    probabilities = [r.fake_probability for r in results]
    assert max(probabilities) - min(probabilities) < 1e-5  # same pixels, same score whatever the input type
    folder = detector(tmp_path / "in")
    assert [r.path.split("in/")[-1] for r in folder] == ["a.png", "sub/b.jpg"]


def test_video_mean_and_confident_aggregation(model_dir, tmp_path):
    video = write_video(tmp_path / "clip.mp4", frames=30, size=(64, 48))
    mean = Detector.from_pretrained(model_dir, num_frames=5, progress=False)([video], frame_scores=True)[0]
    assert mean.kind == "video" and mean.frames == 5 and len(mean.frame_scores) == 5
    # The frame scores are the model's scores of the sampled frames.
    model = tiny_detector("vit")
    model.load_state_dict(Detector.from_pretrained(model_dir).scorer.model.state_dict())
    frames = read_video_frames(video, 5)
    expected = model_fake_probability(model, model.matching_image_processor(), frames)
    np.testing.assert_allclose(mean.frame_scores, expected, atol=1e-5)
    assert mean.fake_probability == pytest.approx(np.mean(expected), abs=1e-6)
    confident = Detector.from_pretrained(model_dir, num_frames=5, aggregation="confident", progress=False)
    from deepfake_hf.modeling_deepfake import confident_mean

    reference = confident_mean(torch.tensor([expected], dtype=torch.float64), 0.8, 0.5)[0].item()
    assert confident([video])[0].fake_probability == pytest.approx(reference, abs=1e-6)
    with pytest.raises(ValueError, match="aggregation"):
        Detector.from_pretrained(model_dir, aggregation="max")


def test_batches_mix_files_and_match_unbatched(model_dir, tmp_path):
    paths = [write_image(tmp_path / f"{i}.png", seed=i) for i in range(5)]
    paths.append(write_video(tmp_path / "clip.mp4", frames=10))
    batched = Detector.from_pretrained(model_dir, num_frames=3, batch_size=4, progress=False)
    calls = []
    original = batched.scorer.model.forward
    batched.scorer.model.forward = lambda *a, **k: calls.append(k["pixel_values"].shape[0]) or original(*a, **k)
    results = batched(paths)
    # 5 images + 3 video frames = 8 crops in 2 full batches: crops from several files share a batch.
    assert calls == [4, 4]
    single = Detector.from_pretrained(model_dir, num_frames=3, batch_size=1, progress=False)(paths)
    for a, b in zip(results, single):
        assert a.path == b.path and a.fake_probability == pytest.approx(b.fake_probability, abs=1e-5)


def test_decoding_runs_in_background_workers(model_dir, tmp_path):
    detector = Detector.from_pretrained(model_dir, progress=False, workers=2)
    threads = set()
    original = detector._prepare

    def spy(*args):
        threads.add(threading.current_thread().name)
        return original(*args)

    detector._prepare = spy
    detector([write_image(tmp_path / f"{i}.png", seed=i) for i in range(4)])
    assert threads and all(name.startswith("deepfake-hf") for name in threads)


def test_bad_inputs_each_get_one_line_error_and_batch_goes_on(model_dir, tmp_path):
    cases = write_bad_inputs(tmp_path / "mixed")
    inputs = [tmp_path / "mixed", cases["unsupported"], tmp_path / "missing.jpg", "https://example.com/x.mp4"]
    results = Detector.from_pretrained(model_dir, num_frames=3, progress=False)(inputs)
    by_name = {r.path.rsplit("/", 1)[-1]: r for r in results}
    good = {"good.png", "good.mp4", "cmyk.jpg", "gray16.png", "animated.gif"}
    for name, result in by_name.items():
        if name in good:
            assert result.error is None and result.label in ("real", "fake"), result
        else:
            assert result.label is None and "\n" not in result.error, result
            # the error is the problem alone: the `path` field already names the file (no repeat in CSV/JSON)
            assert result.error and result.path not in result.error, result
    assert by_name["animated.gif"].frames == 3
    assert "no such file" in by_name["missing.jpg"].error
    assert "URLs are not supported" in by_name["x.mp4"].error
    assert "unsupported file type .xyz" in by_name["table.xyz"].error
    counts = summarize(results)
    assert counts["scored"] == len(good) and counts["failed"] == len(results) - len(good)


def test_progress_bar_shown_on_request(model_dir, tmp_path, capsys):
    paths = [write_image(tmp_path / f"{i}.png", seed=i) for i in range(3)]
    Detector.from_pretrained(model_dir, progress=True)(paths)
    assert "3/3" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- faces
@pytest.fixture(scope="module")
def two_people(tmp_path_factory):
    data = pytest.importorskip("skimage.data")
    face = Image.fromarray(data.astronaut())
    pair = Image.new("RGB", (1024, 512))
    pair.paste(face, (0, 0))
    other = Image.merge("RGB", face.split()[::-1]).transpose(Image.Transpose.FLIP_LEFT_RIGHT)  # BGR, mirrored
    pair.paste(other, (512, 0))
    path = tmp_path_factory.mktemp("faces") / "pair.png"
    pair.save(path)
    return path


@needs_dlib
def test_most_suspicious_face_decides(two_people, tmp_path):
    model = tiny_detector("vit", threshold=0.5)
    processor = model.matching_image_processor()
    face_detector = get_face_detector("dlib", detect_size=1024)  # full size: both ~90 px faces at upsample 0
    result = Detector(model, processor, faces=face_detector, progress=False)([two_people], frame_scores=True)[0]
    image = Image.open(two_people).convert("RGB")
    faces = face_detector.detect(image)
    assert result.faces == len(faces) == 2
    per_face = model_fake_probability(model, processor, [align_face(image, face) for face in faces])
    assert result.fake_probability == pytest.approx(max(per_face), abs=1e-5)
    assert abs(per_face[0] - per_face[1]) > 1e-4  # the two crops really differ
    assert result.note is None


@needs_dlib
def test_faces_tracked_across_video_frames(two_people, tmp_path):
    import av

    pair = np.asarray(Image.open(two_people).convert("RGB").resize((640, 320)))
    path = tmp_path / "pair.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=5, options={"crf": "18", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 640, 320, "yuv420p"
        for shift in range(6):
            frame = av.VideoFrame.from_ndarray(np.roll(pair, 4 * shift, axis=1).copy(), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    result = Detector(tiny_detector("vit"), tiny_detector("vit").matching_image_processor(), faces="dlib",
                      num_frames=4, progress=False)([path])[0]
    assert result.error is None and result.frames == 4
    assert result.faces == 2  # two people followed across frames, not 8 separate faces


def test_no_face_scores_whole_frame_and_says_so(tmp_path):
    model = tiny_detector("vit")
    processor = model.matching_image_processor()
    path = write_image(tmp_path / "noise.png", size=(64, 64))
    result = Detector(model, processor, faces="auto" if dlib_available() else "none", progress=False)([path])[0]
    expected = model_fake_probability(model, processor, [Image.open(path).convert("RGB")])[0]
    assert result.fake_probability == pytest.approx(expected, abs=1e-5)
    if dlib_available():
        assert result.faces == 0 and "no face found" in result.note


# ------------------------------------------------------------------------------- video pipeline
VIDEO_PIPELINE = """
import json, sys
from transformers import pipeline
classify = pipeline("video-classification", model=sys.argv[1], trust_remote_code=True)
print(json.dumps({"model": type(classify.model).__name__, "frames": classify.video_processor.num_frames,
                  "scores": classify(sys.argv[2])}))
"""


@pytest.mark.slow  # fresh process
def test_video_classification_pipeline_in_fresh_process(model_dir, tmp_path):
    video = write_video(tmp_path / "clip.mp4", frames=25, size=(64, 48), audio=True)
    out = json.loads(run_python(VIDEO_PIPELINE, model_dir, video).stdout.strip().splitlines()[-1])
    assert out["model"] == "DeepfakeDetectorForVideoClassification" and out["frames"] == 6
    scores = {row["label"]: row["score"] for row in out["scores"]}
    assert set(scores) == {"real", "fake"} and sum(scores.values()) == pytest.approx(1.0)
    # The pipeline samples config.num_frames (6) frames over the whole clip and averages them in the
    # model: the same score the Detector gives for those frames.
    ours = Detector.from_pretrained(model_dir, progress=False)([video])[0]
    assert ours.frames == 6
    assert scores["fake"] == pytest.approx(ours.fake_probability, abs=1e-4)


def test_video_processor_samples_evenly_and_rotates(model_dir, tmp_path):
    from transformers import AutoVideoProcessor

    from deepfake_hf import register

    register()
    processor = AutoVideoProcessor.from_pretrained(model_dir)
    assert type(processor).__name__ == "DeepfakeVideoProcessor"
    video = write_video(tmp_path / "rot.mp4", frames=12, size=(64, 32), rotation=90)
    from deepfake_hf.modeling_deepfake import read_video_pyav_rotated

    frames, metadata = read_video_pyav_rotated(str(video), lambda metadata: processor.sample_frames(metadata, 4))
    assert frames.shape == (4, 64, 32, 3)  # displayed portrait
    assert metadata.frames_indices.tolist() == [0, 4, 7, 11]
    assert processor(str(video), return_tensors="pt")["pixel_values_videos"].shape == (1, 6, 3, 32, 32)


def test_video_logits_respect_threshold_once():
    model = tiny_detector("vit", threshold=0.3, calibration_temperature=1.5)
    pixels = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        raw = model.classifier(model.get_image_features(pixels[0]).pooler_output)
        frame_probability = (raw / 1.5).softmax(-1)[:, 1]
        video_score = model(pixels).logits.softmax(-1)[0, 1]
    mean = frame_probability.mean().item()
    expected = 1 / (1 + math.exp(-(math.log(mean / (1 - mean)) - math.log(0.3 / 0.7))))
    assert video_score.item() == pytest.approx(expected, abs=1e-5)


def test_native_export_gives_the_same_labels(tmp_path):
    from deepfake_hf import export_native

    tiny_detector("vit", threshold=0.3, calibration_temperature=1.5).save_pretrained(tmp_path / "model")
    export_native(tmp_path / "model", tmp_path / "native")
    paths = [write_image(tmp_path / f"{i}.png", seed=i) for i in range(4)]
    ours = Detector.from_pretrained(tmp_path / "model", progress=False)(paths)
    native = Detector.from_pretrained(tmp_path / "native", progress=False)(paths)
    assert type(Detector.from_pretrained(tmp_path / "native").scorer.model).__name__ == "ViTForImageClassification"
    assert [r.label for r in ours] == [r.label for r in native]
    # The stock class has the threshold folded into its head: its score is the threshold-centred one.
    for a, b in zip(ours, native):
        centred = 1 / (1 + math.exp(-(math.log(a.fake_probability / (1 - a.fake_probability))
                                      - math.log(0.3 / 0.7))))
        assert b.fake_probability == pytest.approx(centred, abs=1e-4)


def test_progress_counts_video_frames_as_they_decode(model_dir, tmp_path, capsys):
    video = write_video(tmp_path / "long.mp4", frames=40)
    Detector.from_pretrained(model_dir, num_frames=8, progress=True)([video, write_image(tmp_path / "a.png")])
    err = capsys.readouterr().err
    assert "9/9" in err and "frame" in err  # 8 video frames + 1 image


class EveryOtherFrame:
    """A face detector stub: one fixed face on even frames (by call order within a file), none on odd ones."""

    name = "stub"

    def __init__(self, always_none=False):
        self.always_none = always_none
        self.calls = 0

    def detect(self, image):
        from deepfake_hf.faces import Face

        self.calls += 1
        if self.always_none or self.calls % 2 == 0:
            return []
        width, height = image.size
        return [Face(box=(width * 0.25, height * 0.25, width * 0.75, height * 0.75))]


def test_no_face_is_the_headline_in_result_table_and_json(model_dir, tmp_path):
    from deepfake_hf.scoring.predict import format_results
    from deepfake_hf.scoring.scorer import NO_FACE_NOTE, NO_FACE_VIDEO_NOTE

    image = write_image(tmp_path / "landscape.png", size=(64, 64))
    video = write_video(tmp_path / "empty.mp4", frames=8)
    detector = Detector.from_pretrained(model_dir, faces=EveryOtherFrame(always_none=True), num_frames=4,
                                        progress=False)
    by_kind = {result.kind: result for result in detector([image, video])}
    assert by_kind["image"].face_found is False and by_kind["image"].note == NO_FACE_NOTE
    assert by_kind["video"].face_found is False and by_kind["video"].note == NO_FACE_VIDEO_NOTE
    assert by_kind["video"].frames == by_kind["video"].frames_scored == 4  # whole frames scored
    assert by_kind["video"].frames_with_faces == 0
    table = format_results(list(by_kind.values()), "table").splitlines()
    image_row = next(line for line in table if line.startswith("landscape.png"))
    assert f"NO FACE ({by_kind['image'].label}?)" in image_row and NO_FACE_NOTE in image_row
    assert "2 with no face" in table[-1] or "2 with no face" in "\n".join(table)
    report = json.loads(format_results(list(by_kind.values()), "json"))
    assert report["summary"]["no_face"] == 2
    assert all(row["note"].startswith("no face found") for row in report["results"])

    # with face detection off there is no face claim either way
    (plain,) = Detector.from_pretrained(model_dir, faces="none", progress=False)(image)
    assert plain.face_found is None and plain.note is None


def test_video_counts_sampled_scored_and_face_frames_separately(model_dir, tmp_path):
    from deepfake_hf.scoring.predict import format_results

    video = write_video(tmp_path / "half.mp4", frames=12)
    detector = Detector.from_pretrained(model_dir, faces=EveryOtherFrame(), num_frames=6, progress=False)
    (result,) = detector(video, frame_scores=True)
    assert result.frames == 6 and result.frames_with_faces == 3 and result.frames_scored == 3
    assert result.face_found is True
    assert [score is not None for score in result.frame_scores] == [True, False] * 3
    assert "faces found in 3 of 6 sampled frames; only those 3 were scored" == result.note
    row = next(line for line in format_results([result]).splitlines() if line.startswith(("half.mp4", "/")))
    assert " 3/6 " in row


def test_cancel_stops_scoring_and_frees_the_caller(model_dir, tmp_path):
    import time

    from deepfake_hf.errors import AnalysisCancelled

    files = [write_video(tmp_path / f"clip{index}.mp4", frames=40) for index in range(4)]
    detector = Detector.from_pretrained(model_dir, num_frames=32, batch_size=2, progress=False)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(AnalysisCancelled):
        detector(files, cancel=cancel)

    cancel = threading.Event()
    timer = threading.Timer(0.2, cancel.set)
    timer.start()
    started = time.perf_counter()
    with pytest.raises(AnalysisCancelled):
        detector(files * 5, cancel=cancel)
    elapsed = time.perf_counter() - started
    uncancelled = time.perf_counter()
    detector(files[:1])
    one_file = time.perf_counter() - uncancelled
    # 20 videos would take ~20x one file; cancelled, the call returns within a few files' time
    assert elapsed < 0.2 + 5 * one_file + 2, (elapsed, one_file)


def test_unloadable_models_are_one_clear_line(tmp_path, capsys):
    """A pickle-only checkpoint and foreign remote code: refused in one untruncated line, nothing executed."""
    from deepfake_hf.cli import main

    image = write_image(tmp_path / "img.png", size=(64, 64))
    model = tiny_detector("vit")
    pickled = tmp_path / "pickled"
    model.save_pretrained(tmp_path / "good")
    pickled.mkdir()
    (pickled / "config.json").write_text((tmp_path / "good" / "config.json").read_text())
    torch.save({"model": model, "epoch": 3}, pickled / "pytorch_model.bin")  # a whole object, not weights

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    marker = tmp_path / "executed"
    (foreign / "config.json").write_text(json.dumps({"model_type": "weird", "auto_map": {
        "AutoConfig": "configuration_weird.WeirdConfig",
        "AutoModelForImageClassification": "modeling_weird.WeirdModel"}}))
    for name in ("configuration_weird.py", "modeling_weird.py"):
        (foreign / name).write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    capsys.readouterr()  # save_pretrained's own progress bar

    assert main(["predict", str(pickled), str(image), "--faces", "none"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "pickle" in err and "never unpickles" in err and str(pickled) in err

    assert main(["predict", str(foreign), str(image), "--faces", "none"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "custom model code" in err
    assert err.endswith("only if you trust its author")  # whole, not cut mid-word
    assert "modeling_weird.py" in err and not marker.exists()
