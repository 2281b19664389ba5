"""One answer at every door: the same files through every way a user scores them, for a model recording each face
mode, give the same fake probability (within 1e-5) and say the same about faces.

A door is one entry of `DOORS`: a name and a function (model folder, {input name: path}, scratch folder) ->
{input name: (fake probability, face_found or None where the door does not say per file)}. The inputs are a
photo with one face, one with two faces, one with none and a short video; the reference is the `Detector`
(the first door). The doors: the Detector, predict (CLI), pipeline image and video, evaluate's predictions.csv,
the app's API (gradio_client against app.py on 127.0.0.1), the endpoint handler (handler.py imported from the
folder in a fresh process) and explain's printed probability (pictures only). No door is told a face mode, crop
or frame count: each takes the model's record (the dlib model records a margin crop, not the package default, so
a door that picked its own would show), and for a model recording nothing every door takes the one default
(`scoring.scorer.resolve_faces`: the picture as given). Adding a door is one function and one `Door(...)` line.

The last test checks the video doors of a converted processor (DeepfakeImageProcessor, OpenCV resize): each
sampled frame gets exactly the image processor's pixels.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_hf.faces import dlib_available

from .conftest import LOAD_HANDLER, run_python, tiny_detector

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not dlib_available(), reason="dlib not installed")]
NUM_FRAMES = 4
TOLERANCE = 1e-5
# A door's answer per input: (fake probability, face_found or None where the door does not say per file, note or
# NOT_SAID where the door gives none per file).
Scores = dict[str, tuple]
NOT_SAID = "(this door gives no note per file)"


@dataclass
class Door:
    name: str
    score: Callable[[Path, dict[str, Path], Path], Scores]
    videos: bool = True  # False: a door for pictures only (explain), given the photos alone


# ------------------------------------------------------------------------------------------------ the doors
def detector_door(model: Path, inputs: dict[str, Path], scratch: Path) -> Scores:
    from deepfake_hf import Detector

    results = Detector.from_pretrained(model, progress=False)(list(inputs.values()))
    return {name: (result.fake_probability, result.face_found, result.note) for name, result in zip(inputs, results)}


PREDICT = "import sys; from deepfake_hf.cli import main; sys.exit(main(sys.argv[1:]))"


def predict_door(model: Path, inputs: dict[str, Path], scratch: Path) -> Scores:
    out = run_python(PREDICT, "predict", model, *inputs.values(), "--format", "json", "--out", scratch / "p.json")
    assert out.returncode == 0
    results = json.loads((scratch / "p.json").read_text())["results"]
    by_path = {result["path"]: result for result in results}
    return {name: (by_path[str(path)]["fake_probability"], by_path[str(path)]["face_found"], by_path[str(path)]["note"])
            for name, path in inputs.items()}


PIPELINE = """
import json, sys
from transformers import pipeline
inputs = json.loads(sys.argv[2])
image = pipeline("image-classification", model=sys.argv[1], trust_remote_code=True)
video = pipeline("video-classification", model=sys.argv[1], trust_remote_code=True)
NOT_SAID = sys.argv[3]
out = {}
for name, path in inputs.items():
    rows = (video if path.endswith(".mp4") else image)(path)
    fake = {r["label"]: r["score"] for r in rows}["fake"]
    # the stock pipelines (a model recording nothing) give the label scores alone
    out[name] = [rows[0].get("fake_probability", fake), rows[0].get("face_found"), fake, type(image).__name__,
                 rows[0].get("note", NOT_SAID)]
print(json.dumps(out))
"""


def pipeline_door(model: Path, inputs: dict[str, Path], scratch: Path) -> Scores:
    stdout = run_python(PIPELINE, model, json.dumps({name: str(path) for name, path in inputs.items()}),
                        NOT_SAID).stdout
    out = json.loads(stdout.strip().splitlines()[-1])
    face_model = _records_faces(model)
    for name, (probability, _, fake_score, pipeline_class, _) in out.items():
        assert fake_score == probability, name  # the "fake" row's score is predict's number
        # a face model gets the face-aware pipeline; one recording nothing keeps transformers' own
        assert (pipeline_class == "DeepfakeImageClassificationPipeline") == face_model, pipeline_class
    return {name: (probability, face_found, note) for name, (probability, face_found, _, _, note) in out.items()}


def _records_faces(model: Path) -> bool:
    return json.loads((model / "config.json").read_text()).get("face_preprocessing") not in (None, "none")


EVALUATE = """
import json, sys
from deepfake_hf.evaluation.evaluate import evaluate_model
result = evaluate_model(sys.argv[1], {"doors": sys.argv[2]}, sys.argv[3], n_resamples=10, plots=False)
print(json.dumps(result["test_sets"]["doors"].get("files_without_face", 0)))
"""


def evaluate_door(model: Path, inputs: dict[str, Path], scratch: Path) -> Scores:
    """evaluate's predictions.csv: a file's rows are the frames of its most suspicious person, whose mean is the
    file's score (the models here aggregate by the mean); face_found is counted, not said per file."""
    data = scratch / "data"
    for number, path in enumerate(inputs.values()):
        target = data / ("fake" if number % 2 else "real") / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    stdout = run_python(EVALUATE, model, data, scratch / "eval").stdout
    without_face = json.loads(stdout.strip().splitlines()[-1])
    rows: dict[str, list[float]] = {}
    with open(scratch / "eval" / "predictions.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            rows.setdefault(Path(row["path"]).name, []).append(float(row["score"]))
    scores: Scores = {name: (float(np.mean(rows[path.name])), None, NOT_SAID) for name, path in inputs.items()}
    scores["files without a face"] = (float(without_face), None, NOT_SAID)
    return scores


def app_door(model: Path, inputs: dict[str, Path], scratch: Path) -> Scores:
    """The Gradio app's API (app.py on 127.0.0.1, its own defaults, called with gradio_client): the "fake"
    confidence is the number; a verdict that is "not a verdict" is the app saying no face was found."""
    pytest.importorskip("gradio")
    from gradio_client import Client, handle_file

    from .app_server import running_app

    scores: Scores = {}
    with running_app(model) as url:
        client = Client(url, verbose=False)
        for name, path in inputs.items():
            api = "/analyse_video" if path.suffix == ".mp4" else "/analyse_image"
            verdict, probabilities, *_ = client.predict(handle_file(str(path)), api_name=api)
            assert probabilities is not None, f"{name}: {verdict}"
            fake = {row["label"]: row["confidence"] for row in probabilities["confidences"]}["fake"]
            # "not a verdict": no face found, its note the headline; "N face(s) found": faces were looked for
            found = False if "not a verdict" in verdict else True if re.search(r"\d+ faces? found", verdict) else None
            headline = verdict.splitlines()[0].removeprefix("### ")
            scores[name] = (fake, found, headline[:1].lower() + headline[1:] if found is False else NOT_SAID)
    return scores


def explain_door(model: Path, inputs: dict[str, Path], scratch: Path) -> Scores:
    """`deepfake-hf explain`'s function (explain_to_file, in this process): the fake probability it prints with the
    heatmap, on the crop predict scores. A door for pictures: it draws one image's map, so it takes no video."""
    from deepfake_hf.scoring.explain import explain_to_file

    scores: Scores = {}
    for name, path in inputs.items():
        result = explain_to_file(model, path, scratch / f"{path.stem}.png")
        scores[name] = (result["fake_probability"], None if result["faces"] is None else result["faces"] > 0,
                        result["note"])
    return scores


TOOLKIT = LOAD_HANDLER + """
print(json.dumps([handler({"inputs": open(path, "rb").read()}) for path in sys.argv[2:]]))
"""


def handler_door(model: Path, inputs: dict[str, Path], scratch: Path) -> Scores:
    """The Inference Endpoints handler as the toolkit runs it: handler.py imported from the model folder in a fresh
    process, each file sent as raw bytes."""
    from deepfake_hf.publish.endpoint import write_handler

    folder = scratch / "model"
    shutil.copytree(model, folder)
    write_handler(folder)
    answers = json.loads(run_python(TOOLKIT, folder, *inputs.values()).stdout.strip().splitlines()[-1])
    for name, answer in zip(inputs, answers):
        assert answer["error"] is None, f"{name}: {answer['error']}"
    return {name: (answer["fake_probability"], answer["face_found"], answer["note"])
            for name, answer in zip(inputs, answers)}


DOORS = [
    Door("Detector", detector_door),  # in this process; every other door runs in a fresh one
    Door("predict (CLI)", predict_door),
    Door("pipeline image and video", pipeline_door),
    Door("evaluate predictions.csv", evaluate_door),
    Door("app API (gradio_client)", app_door),
    Door("Inference Endpoints handler", handler_door),
    Door("explain (heatmap)", explain_door, videos=False),
]


# ----------------------------------------------------------------------------------------------- the inputs
@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    import av

    data = pytest.importorskip("skimage.data")
    folder = tmp_path_factory.mktemp("door_inputs")
    face = Image.fromarray(data.astronaut())
    face.save(folder / "one_face.png")
    pair = Image.new("RGB", (1024, 512))
    pair.paste(face, (0, 0))
    pair.paste(Image.merge("RGB", face.split()[::-1]).transpose(Image.Transpose.FLIP_LEFT_RIGHT), (512, 0))
    pair.save(folder / "two_faces.png")
    gradient = np.linspace(0, 255, 160 * 120 * 3).reshape(120, 160, 3).astype(np.uint8)  # nothing like a face
    Image.fromarray(gradient).save(folder / "no_face.png")
    frame = np.asarray(Image.new("RGB", (640, 360), (90, 110, 130)))
    small = np.asarray(face.resize((320, 320)))
    with av.open(str(folder / "clip.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=5, options={"crf": "18", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        for shift in range(6):
            pixels = frame.copy()
            pixels[20:340, 40 + 16 * shift:360 + 16 * shift] = small
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return {name: folder / file for name, file in (("one face", "one_face.png"), ("two faces", "two_faces.png"),
                                                   ("no face", "no_face.png"), ("video", "clip.mp4"))}


@pytest.fixture(scope="module", params=["deepfakebench", "dlib", None], ids=["deepfakebench", "dlib", "nothing"])
def model(request, tmp_path_factory) -> Path:
    """A model recording each face mode, and one recording nothing (an older folder): no door is told a face mode,
    so for the last every door must fall back on the same default (the picture as given, resolve_faces)."""
    folder = tmp_path_factory.mktemp(f"door_model_{request.param}") / "model"
    # The dlib model records a crop other than the package default, so a door that picked its own crop shows.
    geometry = {"face_crop": "margin", "face_margin": 0.2} if request.param == "dlib" else {}
    tiny_detector("vit", face_preprocessing=request.param, num_frames=NUM_FRAMES, **geometry).save_pretrained(folder)
    return folder


# -------------------------------------------------------------------------------------------------- the test
def test_every_door_gives_the_same_answer(model, inputs, tmp_path):
    from deepfake_hf.scoring.scorer import NO_FACE_NOTE

    reference = detector_door(model, inputs, tmp_path)
    if _records_faces(model):
        assert [reference[name][1] for name in ("one face", "two faces", "no face", "video")] == [True, True, False,
                                                                                                  True]
        assert reference["no face"][2] == NO_FACE_NOTE  # what every door that gives a note must say too
        assert_the_most_suspicious_face_decides(model, inputs["two faces"], reference["two faces"][0])
    else:  # recording nothing, the one default is the picture as given: no door looks for a face
        assert all(face_found is None and note is None for _, face_found, note in reference.values())
    for number, door in enumerate(DOORS[1:]):
        scratch = tmp_path / f"door{number}"
        scratch.mkdir()
        given = {name: path for name, path in inputs.items() if door.videos or path.suffix != ".mp4"}
        scores = door.score(model, given, scratch)
        for name in given:
            (probability, face_found, note), (got, said, noted) = reference[name], scores[name]
            assert got == pytest.approx(probability, abs=TOLERANCE), f"{door.name}: {name}"
            assert said is None or said == face_found, f"{door.name}: {name} face_found"
            assert noted == NOT_SAID or noted == note, f"{door.name}: {name} note"
        if "files without a face" in scores:
            expected = sum(face_found is False for _, face_found, _ in reference.values())
            assert scores["files without a face"][0] == expected, door.name


def assert_the_most_suspicious_face_decides(model: Path, path: Path, score: float) -> None:
    """The two-face photo's score (every door's, since they all agree with the Detector) is the higher of its two
    people's own scores, and those differ, so a door that took the first face or a mean would show. The
    deepfakebench mode keeps the largest face of a frame only, as DeepfakeBench's preprocessing does: one person."""
    from deepfake_hf import Scorer

    scorer = Scorer.from_pretrained(model)
    frames, _ = scorer.read(path)
    plan = scorer.plan(frames)
    people = scorer.probabilities(scorer.margins(plan.crops))
    if scorer.face_detector.name == "deepfakebench":
        assert plan.faces == 1 and score == pytest.approx(people[0], abs=TOLERANCE)
        return
    assert plan.faces == 2 and len(people) == 2 and abs(people[0] - people[1]) > 1e-4
    assert score == pytest.approx(max(people), abs=TOLERANCE)
    assert scorer.decide(plan, scorer.margins(plan.crops)).person == int(np.argmax(people))


def test_the_doors_are_listed_once():
    names = [door.name for door in DOORS]
    assert len(names) == len(set(names)) and names[0] == "Detector"


def run_without_terminal(code: str, *args: object) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter whose stdin is not a terminal (where transformers' "[y/N]" prompt would fail)."""
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"})


STOCK_PIPELINE = ("import json, sys, deepfake_hf; deepfake_hf.register(); from transformers import pipeline; "
                  "trust = {'trust_remote_code': True} if sys.argv[3:] == ['trust'] else {}; "
                  "rows = pipeline('image-classification', model=sys.argv[1], **trust)(sys.argv[2]); "
                  "print(json.dumps({r['label']: r['score'] for r in rows}))")


def test_pipeline_needs_what_the_readme_says(model, inputs):
    """README "Use", in a fresh process whose stdin is no terminal (where transformers' "[y/N]" prompt fails): a
    model recording no face mode (nothing, as an older folder, or "none") loads after register() without
    trust_remote_code and gives the Detector's number; a model that finds faces is refused (no prompt, no
    whole-picture score) until trust_remote_code=True, and then gives it too. Following the README, no traceback."""
    from deepfake_hf import Detector

    (expected,) = Detector.from_pretrained(model, progress=False)([inputs["one face"]])
    plain = run_without_terminal(STOCK_PIPELINE, model, inputs["one face"])
    if _records_faces(model):
        assert plain.returncode != 0 and "trust_remote_code=True" in plain.stderr
        followed = run_without_terminal(STOCK_PIPELINE, model, inputs["one face"], "trust")
    else:
        followed = plain
    assert followed.returncode == 0 and "Traceback" not in followed.stderr, followed.stderr[-2000:]
    fake = json.loads(followed.stdout.strip().splitlines()[-1])["fake"]
    assert fake == pytest.approx(expected.fake_probability, abs=TOLERANCE)


def test_a_whole_image_model_keeps_the_stock_pipeline_without_remote_code(tmp_path, inputs):
    """A model recording "none" needs no pipeline file: after register(), the stock pipeline loads without
    trust_remote_code and without a prompt (stdin is not a terminal here) and scores the image as given."""
    tiny_detector("vit", face_preprocessing="none").save_pretrained(tmp_path / "model")
    assert not (tmp_path / "model" / "pipeline_deepfake.py").exists()
    result = run_without_terminal(STOCK_PIPELINE, tmp_path / "model", inputs["one face"])
    assert result.returncode == 0, result.stderr[-2000:]
    fake = json.loads(result.stdout.strip().splitlines()[-1])["fake"]
    from deepfake_hf import Detector

    ours = Detector.from_pretrained(tmp_path / "model", faces="auto", progress=False)([inputs["one face"]])[0]
    assert ours.face_found is None  # "auto" takes the recorded "none": the image as given
    assert fake == pytest.approx(ours.fake_probability, abs=TOLERANCE)


# ------------------------------------------------------------------------- a converted processor's video frames
VIDEO_AND_FRAMES = """
import json, sys
from transformers import pipeline
from deepfake_hf.media import read_video_frames
folder, video, num_frames, options = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
clip = pipeline("video-classification", model=folder, trust_remote_code=True, **options)
image = pipeline("image-classification", model=folder, trust_remote_code=True, **options)
fake = lambda rows: {row["label"]: row["score"] for row in rows}["fake"]
frames = [fake(image(frame)) for frame in read_video_frames(video, num_frames)]
print(json.dumps({"video": fake(clip(video)), "frames": frames, "class": type(clip).__name__}))
"""


def test_a_converted_processor_gives_every_video_door_the_image_pixels(tmp_path, inputs):
    """A converted DeepfakeBench clip detector resizes with OpenCV (DeepfakeImageProcessor): the video pipeline
    (the face-aware one with face_mode="none", and the stock one with its saved video processor on a copy that
    records whole images) scores each sampled frame with exactly the image processor's pixels, so it agrees with
    `predict --faces none` and with the image pipeline on the same decoded frames."""
    from deepfake_hf import DeepfakeDetectorForImageClassification

    from .test_processors import build

    face_folder, _, _ = build("deepfakebench-clip", tmp_path)
    whole = DeepfakeDetectorForImageClassification.from_pretrained(face_folder)
    whole.config.face_preprocessing = "none"
    whole.save_pretrained(tmp_path / "whole")
    settings = json.loads((tmp_path / "whole" / "video_preprocessor_config.json").read_text())
    assert settings["frames_from_image_processor"] is True
    num_frames = int(json.loads((face_folder / "config.json").read_text()).get("num_frames") or 32)
    video = inputs["video"]
    predicted = run_python(PREDICT, "predict", face_folder, video, "--faces", "none", "--frame-scores",
                           "--format", "json", "--out", tmp_path / "p.json")
    assert predicted.returncode == 0
    (expected,) = json.loads((tmp_path / "p.json").read_text())["results"]
    for folder, options, pipeline_class in ((face_folder, {"face_mode": "none"}, "DeepfakeVideoClassificationPipeline"),
                                            (tmp_path / "whole", {}, "VideoClassificationPipeline")):
        got = json.loads(run_python(VIDEO_AND_FRAMES, folder, video, num_frames, json.dumps(options))
                         .stdout.strip().splitlines()[-1])
        assert got["class"] == pipeline_class
        assert got["video"] == pytest.approx(expected["fake_probability"], abs=TOLERANCE), folder.name
        assert got["frames"] == pytest.approx(expected["frame_scores"], abs=TOLERANCE), folder.name
        assert float(np.mean(got["frames"])) == pytest.approx(got["video"], abs=TOLERANCE)  # mean aggregation
