"""The "gend" face mode: GenD's detector.py preprocessing (SCRFD, its 5-point template, crops at the face's size).

References here are written from GenD's documented steps (README: `detector.py -m at_least -n 32 --det_thres 0.1
-s 1.3 --target_size none`; its align_face and RetinaFace steps), not from its code. The detector runs a stand-in
ONNX model exported here with det_10g.onnx's outputs (names, order, 2-D shapes) that returns known faces; the real
weights are never downloaded in tests.
"""

import json

import numpy as np
import pytest
from PIL import Image

from deepfake_hf import faces
from deepfake_hf.media import sample_frame_indices, spread_frame_order
from tests.conftest import tiny_detector

cv2 = pytest.importorskip("cv2")

# GenD's five-point template (fractions of the crop side) and its command line's scale
TEMPLATE = [[0.34, 0.46], [0.66, 0.46], [0.5, 0.64], [0.37, 0.82], [0.63, 0.82]]
SCALE = 1.3
# Key points of a tilted face in a 320x240 image (float32, as SCRFD's decoding gives them)
LANDMARKS = np.array([[101.3, 86.7], [142.9, 83.1], [121.6, 106.2], [106.4, 127.9], [137.8, 124.5]], dtype=np.float32)


def reference_crop(bgr, landmarks, scale=SCALE):
    """GenD's align_face with target_size None, step by step as its documentation and code describe them
    (numpy 2 promotion: the side is a numpy integer, so margins are float64 stored into the float32 template)."""
    dst = np.array(TEMPLATE, dtype=np.float32)
    pairs = np.triu_indices(5, k=1)
    wanted = np.linalg.norm(landmarks[:, None, :] - landmarks[None, :, :], axis=-1)[pairs]
    unit = np.linalg.norm(dst[:, None, :] - dst[None, :, :], axis=-1)[pairs]
    side = np.round(np.mean(wanted / unit) * scale).astype(int)
    dst[:, 0] = dst[:, 0] * side
    dst[:, 1] = dst[:, 1] * side
    margin = side * (scale - 1) / 2.0
    dst += margin
    dst *= side / (side + 2 * margin)
    matrix = cv2.estimateAffinePartial2D(landmarks.astype(np.float32), dst, method=cv2.LMEDS)[0]
    return cv2.warpAffine(bgr, matrix, (int(side), int(side)), flags=cv2.INTER_LINEAR)


def textured_image(path, size=(320, 240)):
    """A smooth-plus-noise picture on disk (bilinear warps of pure noise hide little; gradients show offsets)."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[:size[1], :size[0]]
    base = np.stack([x * 255 / size[0], y * 255 / size[1], (x + y) % 256], axis=-1)
    pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


# ------------------------------------------------------------------------------------------------ frames
def test_frames_are_gends_spread_order():
    def brute_force(count):  # the documented rule: start at count // 2, then the farthest frame, lowest on a tie
        order = [count // 2]
        while len(order) < count:
            rest = [i for i in range(count) if i not in order]
            order.append(max(rest, key=lambda i: (min(abs(i - j) for j in order), -i)))
        return order

    for count in range(1, 70):
        assert spread_frame_order(count) == brute_force(count), count
    assert spread_frame_order(300, 5) == [150, 0, 299, 75, 224]
    assert sample_frame_indices(300, 5, sampling="gend") == [0, 75, 150, 224, 299]
    assert sample_frame_indices(20, 32, sampling="gend") == list(range(20))  # a short clip: every frame


def test_mode_properties():
    mode = faces.face_mode("gend")
    assert mode.recorded and not mode.auto and mode.crops == ("align",) and mode.frame_sampling == "gend"
    assert "gend" in faces.recorded_face_modes()


# ------------------------------------------------------------------------------------------------ alignment
def test_alignment_is_bit_exact_with_gends_steps(tmp_path):
    from deepfake_hf.faces.gend import GenDFace, gend_align

    path = textured_image(tmp_path / "frame.png")
    bgr = cv2.imread(str(path))  # GenD reads the frame as BGR
    expected = reference_crop(bgr, LANDMARKS)[..., ::-1]
    image = Image.open(path)
    crop = np.asarray(gend_align(image, LANDMARKS))
    assert crop.shape == expected.shape and crop.shape[0] not in (256, 224)  # the face's own size
    assert np.array_equal(crop, expected)
    # what every door calls: crop_face with the scorer's crop size, which GenD's crops do not use
    face = GenDFace(box=(90.0, 60.0, 150.0, 140.0), landmarks=LANDMARKS)
    assert np.array_equal(np.asarray(faces.crop_face(image, face, crop="align", size=256, scale=SCALE)), expected)
    for scale in (1.0, 1.5):
        assert np.array_equal(np.asarray(gend_align(image, LANDMARKS, scale)),
                              reference_crop(bgr, LANDMARKS, scale)[..., ::-1])


# ------------------------------------------------------------------------------------------------ detector
# det_10g.onnx's outputs, in its order: scores, boxes, key points at strides 8, 16, 32 (2-D, 2 anchors a position);
# the detector reads them by position, as GenD does (TorchScript refuses det_10g's numeric names, "448", ...)
OUTPUT_NAMES = [f"{kind}_{stride}" for kind in ("score", "bbox", "kps") for stride in (8, 16, 32)]
STRIDES = (8, 16, 32)
INPUT = 640
# (stride, row, column, anchor, score, (left, top, right, bottom) in strides, key points in 640-pixel input space)
A_POINTS = [[200.0, 170.0], [280.0, 170.0], [240.0, 210.0], [210.0, 250.0], [270.0, 250.0]]
FACES = [
    (8, 25, 30, 1, 0.9, (10, 12, 10, 14), A_POINTS),  # face A: box (160, 104, 320, 312)
    (16, 12, 15, 0, 0.8, (5, 6, 5, 8), A_POINTS),  # A seen again, larger: suppressed (IoU 0.93)
    (32, 5, 5, 0, 0.05, (4, 4, 4, 4), A_POINTS),  # the largest box, under GenD's 0.1 threshold: dropped
    (8, 60, 70, 0, 0.5, (2, 2, 2, 2), [[560.0, 480.0]] * 5),  # a small second face: kept
]


def standin_outputs():
    """The nine arrays a stand-in SCRFD returns (for a 640x640 input)."""
    scores, boxes, points = [], [], []
    for stride in STRIDES:
        count = (INPUT // stride) ** 2 * 2
        scores.append(np.zeros((count, 1), np.float32))
        boxes.append(np.ones((count, 4), np.float32))
        points.append(np.zeros((count, 10), np.float32))
    for stride, row, column, anchor, score, distances, keypoints in FACES:
        level = STRIDES.index(stride)
        index = (row * (INPUT // stride) + column) * 2 + anchor
        centre = np.array([column * stride, row * stride], np.float32)
        scores[level][index] = score
        boxes[level][index] = distances
        points[level][index] = ((np.array(keypoints, np.float32) - centre) / stride).ravel()
    return scores + boxes + points


def export_standin(path):
    """A stand-in det_10g.onnx: input `input.1` (1, 3, 640, 640), SCRFD's nine outputs holding FACES."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")

    class StandIn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            for name, value in zip(OUTPUT_NAMES, standin_outputs()):
                self.register_buffer(name, torch.from_numpy(value))

        def forward(self, x):
            zero = x.mean() * 0  # keeps the input in the graph
            return tuple(getattr(self, name) + zero for name in OUTPUT_NAMES)

    torch.onnx.export(StandIn(), (torch.zeros(1, 3, INPUT, INPUT),), str(path), input_names=["input.1"],
                      output_names=OUTPUT_NAMES, dynamo=False)
    return path


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note that this is its older exporter
        return export_standin(tmp_path_factory.mktemp("scrfd") / "det_10g.onnx")


def test_decoding_threshold_and_suppression(standin, tmp_path):
    from deepfake_hf.faces.gend import Scrfd

    rgb = np.asarray(Image.open(textured_image(tmp_path / "frame.png")))  # 320x240: fitted into 640x480, x2
    detections, points = Scrfd(standin).detect(rgb)
    assert detections.dtype == np.float32 and points.shape == (2, 5, 2)
    assert np.allclose(detections[:, :4], [[80, 52, 160, 156], [272, 232, 288, 248]])
    assert np.allclose(detections[:, 4], [0.9, 0.5])
    assert np.allclose(points[0], np.array(A_POINTS) / 2) and np.allclose(points[1], [[280.0, 240.0]] * 5)
    # nothing at all: no face
    assert len(Scrfd(standin, threshold=0.95).detect(rgb)[0]) == 0


def test_the_mode_takes_the_largest_face_and_reads_the_path_from_the_environment(standin, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_HF_SCRFD_MODEL", str(standin))
    detector = faces.get_face_detector("gend")
    image = Image.open(textured_image(tmp_path / "frame.png"))
    [face] = detector.detect(image)
    assert face.box == pytest.approx((80, 52, 160, 156)) and face.landmarks == pytest.approx(np.array(A_POINTS) / 2)
    assert faces.face_mode("gend").build(size=256, scale=1.5).scale == 1.5


def test_predict_with_gend_faces_scores_gends_crop(standin, tmp_path, monkeypatch):
    from deepfake_hf.cli import main

    model_dir = tmp_path / "model"
    tiny_detector("vit", face_preprocessing="gend").save_pretrained(model_dir)
    image = textured_image(tmp_path / "frame.png")
    crop = reference_crop(cv2.imread(str(image)), np.array(A_POINTS, np.float32) / 2)
    cv2.imwrite(str(tmp_path / "crop.png"), crop)
    monkeypatch.setenv("DEEPFAKE_HF_SCRFD_MODEL", str(standin))

    def scores(path, *options):
        out = tmp_path / f"{path.stem}-{len(options)}.jsonl"
        assert main(["predict", str(model_dir), str(path), *options, "--format", "jsonl", "--out", str(out)]) == 0
        return json.loads(out.read_text().splitlines()[0])

    found = scores(image)  # the recorded mode: gend
    assert found["face_found"] is True and found["faces"] == 1
    assert found["fake_probability"] == pytest.approx(scores(tmp_path / "crop.png", "--faces", "none")[
        "fake_probability"], abs=1e-6)
    assert scores(image, "--faces", "gend")["fake_probability"] == found["fake_probability"]


# ------------------------------------------------------------------------------------------------ errors
def test_missing_weights_and_runtime_are_one_line(monkeypatch, tmp_path):
    import sys

    from deepfake_hf.faces.gend import Scrfd

    monkeypatch.delenv("DEEPFAKE_HF_SCRFD_MODEL", raising=False)
    with pytest.raises(faces.FaceDependencyError, match="set DEEPFAKE_HF_SCRFD_MODEL to its path") as error:
        faces.get_face_detector("gend")
    assert "\n" not in str(error.value)
    monkeypatch.setenv("DEEPFAKE_HF_SCRFD_MODEL", str(tmp_path / "absent.onnx"))
    with pytest.raises(faces.FaceError, match="absent.onnx is not a file"):
        faces.get_face_detector("gend")
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    pytest.importorskip("onnxruntime")
    with pytest.raises(faces.FaceError, match="broken.onnx is not an ONNX model"):
        Scrfd(tmp_path / "broken.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(faces.FaceDependencyError, match=r"pip install 'deepfake-hf\[gend-faces\]'"):
        Scrfd(tmp_path / "broken.onnx")


def test_hub_is_fetched_only_when_asked_and_from_gends_file(monkeypatch, tmp_path):
    import huggingface_hub

    from deepfake_hf.faces.gend import HUB_FILE, scrfd_model_path

    asked = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda **kwargs: asked.append(kwargs) or "/x/det.onnx")
    (tmp_path / "det_10g.onnx").write_bytes(b"")
    monkeypatch.setenv("DEEPFAKE_HF_SCRFD_MODEL", str(tmp_path / "det_10g.onnx"))
    assert scrfd_model_path() == tmp_path / "det_10g.onnx" and not asked
    monkeypatch.setenv("DEEPFAKE_HF_SCRFD_MODEL", "hub")
    assert str(scrfd_model_path()) == "/x/det.onnx" and asked == [HUB_FILE]
    assert HUB_FILE["filename"].endswith("buffalo_l/det_10g.onnx") and len(HUB_FILE["revision"]) == 40

    def offline(**kwargs):
        raise OSError("offline\nsecond line")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(faces.FaceError, match="could not fetch .*offline second line") as error:
        scrfd_model_path()
    assert "\n" not in str(error.value)


def test_a_video_is_read_in_gends_frame_order(tmp_path):
    pytest.importorskip("av")
    from deepfake_hf.media import read_video_frames
    from tests.media_samples import level_index, write_video

    video = write_video(tmp_path / "clip.mp4", frames=40)
    frames = read_video_frames(video, 5, sampling=faces.face_mode("gend").frame_sampling)
    assert [level_index(frame) for frame in frames] == sorted(spread_frame_order(40, 5)) == [0, 10, 20, 29, 39]


def test_predict_without_the_detector_file_fails_in_one_line(tmp_path, monkeypatch, capsys):
    from deepfake_hf.cli import main

    monkeypatch.delenv("DEEPFAKE_HF_SCRFD_MODEL", raising=False)
    tiny_detector("vit", face_preprocessing="gend").save_pretrained(tmp_path / "model")
    image = textured_image(tmp_path / "frame.png")
    assert main(["predict", str(tmp_path / "model"), str(image)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "DEEPFAKE_HF_SCRFD_MODEL" in err[0] and "--faces none" in err[0], err
