"""The Inference Endpoints handler (handler.py in every published folder): predict's answer, one-line errors.

The slow tests load handler.py the way the endpoint toolkit does (importlib from the model folder, in a fresh
process, `EndpointHandler(folder)(data)`) and compare with `deepfake-hf predict` run as a command.
"""

import base64
import http.server
import io
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from deepfake_hf.faces import dlib_available
from deepfake_hf.publish.endpoint import HANDLER_FILE, HANDLER_TEMPLATE, REQUIREMENTS_FILE, handler_requirements
from deepfake_hf.publish.endpoint_handler import EndpointHandler, PayloadError, parse_size, sniff
from deepfake_hf.scoring.results import FIELD_NAMES

from .conftest import LOAD_HANDLER, run_python, tiny_detector, write_image
from .media_samples import truncate, write_video

TOLERANCE = 1e-5


def face_photo(path):
    """A public-domain portrait (scikit-image's astronaut), so face detection has a face to find."""
    from PIL import Image

    data = pytest.importorskip("skimage.data")
    Image.fromarray(data.astronaut()).save(path)
    return Path(path)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from deepfake_hf.publish.endpoint import write_handler

    folder = tmp_path_factory.mktemp("handler") / "model"
    # a face model where dlib is here (the faces extra the handler's requirements install), so faces are found
    tiny_detector("vit", seed=5, face_preprocessing="dlib" if dlib_available() else None).save_pretrained(folder)
    write_handler(folder)
    return folder


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    video = write_video(folder / "clip.mp4", frames=12)
    return {"image": write_image(folder / "photo.png", size=(64, 52), seed=3), "video": video,
            "truncated": truncate(video, folder / "truncated.mp4")}


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """The folder tempfile writes to in this test, to check the handler leaves nothing there."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture(scope="module")
def handler(model_dir):
    return EndpointHandler(str(model_dir))


def predicted(model_dir, path):
    from deepfake_hf.scoring.predict import predict

    _, results = predict(str(model_dir), [str(path)], frame_scores=True, progress=False)
    return results[0].to_dict(True)


def assert_one_line_error(result, *words):
    assert set(result) >= set(FIELD_NAMES) - {"frame_scores"}
    assert result["error"] and "\n" not in result["error"] and "Traceback" not in result["error"], result
    assert result["fake_probability"] is None
    for word in words:
        assert word in result["error"], result["error"]


# ------------------------------------------------------------------------------------------ files
def test_handler_file_is_the_template_and_requirements_name_the_package(model_dir):
    from deepfake_hf import __version__

    assert (model_dir / HANDLER_FILE).read_text() == HANDLER_TEMPLATE.read_text()
    assert (model_dir / REQUIREMENTS_FILE).read_text() == f"deepfake-hf[video,faces]>={__version__}\n"


def test_requirements_add_timm_for_a_timm_encoder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "deepfake_detector",
                                                      "backbone_config": {"model_type": "timm_wrapper"}}))
    assert handler_requirements(tmp_path)[0].startswith("deepfake-hf[video,faces,timm]>=")
    assert handler_requirements(tmp_path / "missing")[0].startswith("deepfake-hf[video,faces]>=")


def test_requirements_add_onnxruntime_for_a_model_recording_gend_faces(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "deepfake_detector",
                                                      "face_preprocessing": "gend"}))
    assert handler_requirements(tmp_path)[0].startswith("deepfake-hf[video,faces,gend-faces]>=")


def test_handler_template_imports_only_the_package_absolutely():
    source = HANDLER_TEMPLATE.read_text()
    assert "from ." not in source and "import deepfake_hf" not in source.replace("from deepfake_hf", "")


def test_parse_size_and_sniff():
    assert parse_size("100mb") == 100 * 1024**2 and parse_size("5000") == 5000 and parse_size("1.5k") == 1536
    with pytest.raises(PayloadError, match="DEEPFAKE_HF_MAX_FILE_SIZE"):
        parse_size("lots")
    assert sniff(b"\x00\x00\x00\x18ftypisom" + b"\0" * 20) == ("video", ".mp4")
    assert sniff(b"\x1a\x45\xdf\xa3" + b"\0" * 20) == ("video", ".mkv")
    assert sniff(b"RIFF\0\0\0\0AVI LIST") == ("video", ".avi")
    with pytest.raises(PayloadError, match="not an image or a video"):
        sniff(b"%PDF-1.7 hello")


# ------------------------------------------------------------------------------------------ in process
@pytest.mark.parametrize("encode", ["bytes", "base64", "data-url", "pil"])
def test_image_gets_predicts_result(handler, model_dir, media, encode, private_tmp):
    from PIL import Image

    raw = media["image"].read_bytes()
    inputs = {"bytes": raw, "base64": base64.b64encode(raw).decode(),
              "data-url": "data:image/png;base64," + base64.b64encode(raw).decode(),
              # what the toolkit passes for an image/* body
              "pil": Image.open(io.BytesIO(raw)).convert("RGB")}[encode]
    result = handler({"inputs": inputs})
    expected = predicted(model_dir, media["image"])
    assert result["error"] is None, result
    assert abs(result["fake_probability"] - expected["fake_probability"]) <= TOLERANCE
    for key in ("kind", "label", "frames", "faces", "face_found", "note"):
        assert result[key] == expected[key], key
    assert "frame_scores" not in result  # per-frame scores are for videos unless asked for
    assert list(private_tmp.iterdir()) == []


def test_video_gets_predicts_result_with_frame_scores(handler, model_dir, media, private_tmp):
    result = handler({"inputs": base64.b64encode(media["video"].read_bytes()).decode()})
    expected = predicted(model_dir, media["video"])
    assert result["kind"] == "video" and result["frames"] == expected["frames"] == 12
    assert abs(result["fake_probability"] - expected["fake_probability"]) <= TOLERANCE
    assert max(abs(a - b) for a, b in zip(result["frame_scores"], expected["frame_scores"])) <= TOLERANCE
    assert "frame_scores" not in handler({"inputs": media["video"].read_bytes(),
                                          "parameters": {"frame_scores": False}})
    assert list(private_tmp.iterdir()) == []


def test_face_mode_parameter_scores_crops_as_given(handler, media):
    result = handler({"inputs": media["image"].read_bytes(), "parameters": {"faces": "none"}})
    assert result["error"] is None and result["faces"] is None and result["face_found"] is None
    assert_one_line_error(handler({"inputs": media["image"].read_bytes(), "parameters": {"faces": "bogus"}}),
                          "bogus")


def test_bad_payloads_give_one_line_errors(handler, media, private_tmp):
    assert_one_line_error(handler({"inputs": b"just some text, not a picture"}), "not an image or a video")
    assert_one_line_error(handler({"inputs": media["truncated"].read_bytes()}), "video")
    assert_one_line_error(handler({"inputs": media["image"].read_bytes()[:60]}), "image")
    assert_one_line_error(handler({"inputs": "this is not base64!"}), "base64")
    assert_one_line_error(handler({"inputs": b""}), "empty")
    assert_one_line_error(handler({"inputs": 42}), "int")
    assert_one_line_error(handler({"no inputs": 1}), "inputs")
    assert_one_line_error(handler({"inputs": b"x", "parameters": {"frames": 3}}), "unknown 'frames'")
    assert_one_line_error(handler({"inputs": b"x", "parameters": "fast"}), "parameters")
    assert list(private_tmp.iterdir()) == []


def test_byte_cap(model_dir, media, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_HF_MAX_FILE_SIZE", "1kb")
    small = EndpointHandler(str(model_dir))
    raw = media["video"].read_bytes()
    assert len(raw) > 1024
    assert_one_line_error(small({"inputs": raw}), "over the limit of 1,024 bytes", "DEEPFAKE_HF_MAX_FILE_SIZE")
    assert_one_line_error(small({"inputs": base64.b64encode(raw).decode()}), "over the limit")
    monkeypatch.setenv("DEEPFAKE_HF_MAX_FILE_SIZE", "huge")
    with pytest.raises(PayloadError, match="DEEPFAKE_HF_MAX_FILE_SIZE"):
        EndpointHandler(str(model_dir))


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_url_only_when_the_caller_opts_in(handler, model_dir, media, monkeypatch):
    from huggingface_hub import constants

    folder = str(media["image"].parent)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Files(*a, directory=folder))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/photo.png"
        assert_one_line_error(handler({"inputs": url}), "allow_url")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        result = handler({"inputs": url, "parameters": {"allow_url": True}})
        assert result["path"] == url and result["error"] is None
        expected = predicted(model_dir, media["image"])
        assert abs(result["fake_probability"] - expected["fake_probability"]) <= TOLERANCE
        assert_one_line_error(handler({"inputs": url.replace("photo", "missing"), "parameters": {"allow_url": True}}),
                              "HTTP 404")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
        assert_one_line_error(handler({"inputs": url, "parameters": {"allow_url": True}}), "offline")
        assert_one_line_error(handler({"inputs": "file:///etc/passwd", "parameters": {"allow_url": True}}),
                              "only http and https")
    finally:
        server.shutdown()


# ------------------------------------------------------------------------------------------ fresh process
# What the endpoint toolkit does with a repo holding handler.py (huggingface_inference_toolkit.utils.
# check_and_register_custom_pipeline_from_directory), then one call per argument: "b:FILE" sends the bytes,
# "64:FILE" the base64 string, "big:FILE" the bytes with a too-small pixel cap set before anything was imported.
TOOLKIT = LOAD_HANDLER + """
answers = []
for argument in sys.argv[2:]:
    how, path = argument.split(":", 1)
    raw = open(path, "rb").read()
    answers.append(handler({"inputs": raw if how == "b" else base64.b64encode(raw).decode()}))
print(json.dumps(answers))
"""


def predict_cli(model_dir, *files):
    """`deepfake-hf predict --format json --frame-scores` in a fresh process: {file name: result}."""
    command = [sys.executable, "-m", "deepfake_hf.cli", "predict", str(model_dir), *map(str, files),
               "--format", "json", "--frame-scores"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    return {Path(row["path"]).name: row for row in json.loads(done.stdout)["results"]}


@pytest.mark.slow  # fresh processes: the toolkit's import of handler.py, and predict as a command
def test_toolkit_loads_handler_in_a_fresh_process_and_matches_predict(model_dir, media, tmp_path):
    photo = face_photo(tmp_path / "astronaut.png")
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    calls = [f"b:{photo}", f"64:{photo}", f"b:{media['image']}", f"b:{media['video']}", f"64:{media['video']}",
             f"b:{media['truncated']}"]
    done = run_python(TOOLKIT, model_dir, *calls, env={"TMPDIR": str(temporary)})
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    expected = predict_cli(model_dir, photo, media["image"], media["video"])
    for answer, name in zip(answers, ["astronaut.png", "astronaut.png", "photo.png", "clip.mp4", "clip.mp4"]):
        assert answer["error"] is None, answer
        assert abs(answer["fake_probability"] - expected[name]["fake_probability"]) <= TOLERANCE
        assert (answer["label"], answer["face_found"], answer["note"]) == (
            expected[name]["label"], expected[name]["face_found"], expected[name]["note"])
    assert answers[0]["face_found"] is True and answers[2]["face_found"] is False
    assert len(answers[3]["frame_scores"]) == expected["clip.mp4"]["frames"]
    pairs = zip(answers[3]["frame_scores"], expected["clip.mp4"]["frame_scores"])
    assert max(abs(a - b) for a, b in pairs) <= TOLERANCE
    assert_one_line_error(answers[5], "video")
    assert list(temporary.iterdir()) == []  # the decoding folder of every call is gone


@pytest.mark.slow  # fresh process: the pixel cap is read when deepfake_hf.media is imported
def test_pixel_cap_in_a_fresh_process(model_dir, media):
    done = run_python(TOOLKIT, model_dir, f"b:{media['image']}", f"64:{media['video']}",
                      env={"DEEPFAKE_HF_MAX_PIXELS": "1000"})
    image, video = json.loads(done.stdout.strip().splitlines()[-1])
    assert_one_line_error(image, "too large", "DEEPFAKE_HF_MAX_PIXELS")
    assert_one_line_error(video, "DEEPFAKE_HF_MAX_PIXELS")


def test_convert_and_native_export_folders_get_a_working_handler(model_dir, media, tmp_path):
    """`export --native` and `convert` write handler.py too; on a stock checkpoint it still gives predict's number."""
    from deepfake_hf import export_native
    from deepfake_hf.convert.api import convert

    native = export_native(model_dir, tmp_path / "native")
    converted = convert(native, tmp_path / "converted")["out"]
    for folder in (native, Path(converted)):
        assert (folder / HANDLER_FILE).read_text() == HANDLER_TEMPLATE.read_text()
        assert (folder / REQUIREMENTS_FILE).is_file()
    result = EndpointHandler(str(native))({"inputs": media["image"].read_bytes()})
    assert abs(result["fake_probability"] - predicted(native, media["image"])["fake_probability"]) <= TOLERANCE


def test_exif_rotated_photo_as_bytes_gets_predicts_number(handler, model_dir, tmp_path):
    from PIL import Image

    photo = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees when shown
    Image.open(write_image(tmp_path / "source.png", size=(64, 40), seed=4)).save(photo, exif=exif, quality=95)
    result = handler({"inputs": photo.read_bytes()})
    assert result["kind"] == "image" and result["error"] is None
    assert abs(result["fake_probability"] - predicted(model_dir, photo)["fake_probability"]) <= TOLERANCE
