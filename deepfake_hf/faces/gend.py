"""The "gend" face mode: GenD's own face preprocessing, for models converted from GenD (the `gend-faces` extra).

GenD (github.com/yermandy/GenD @e03532d) prepares its data with `python detector.py ... -m at_least -n 32
--det_thres 0.1 -s 1.3 --target_size none`, so its published numbers rest on these crops: insightface's SCRFD
detector (buffalo_l's `det_10g.onnx`, run with onnxruntime) on the frame fitted into 640x640, boxes scoring
>= 0.1, non-maximum suppression at IoU 0.4; the largest box's five key points mapped onto GenD's own template
by `cv2.estimateAffinePartial2D` (LMEDS) and cut by `cv2.warpAffine` at the face's own size times 1.3 (the
model's processor resizes the crop); a video's frames in GenD's spread order (`media.GEND_FRAMES`).

The detector's weights are not downloaded unasked: `model_path=` (Python) or the `DEEPFAKE_HF_SCRFD_MODEL`
environment variable names a local `det_10g.onnx`, or the word `hub` there fetches the copy GenD's script
fetches (a Hugging Face dataset file at a fixed revision).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_hf.defaults import FACE_SCALE
from deepfake_hf.errors import one_line
from deepfake_hf.faces.base import Face, FaceDependencyError, FaceError, FaceMode, register
from deepfake_hf.media import GEND_FRAMES
from deepfake_hf.runtime.threads import explicit_threads, thread_budget

# Where the five points (left eye, right eye, nose tip, left and right mouth corner) land in a unit crop.
GEND_TEMPLATE = ((0.34, 0.46), (0.66, 0.46), (0.5, 0.64), (0.37, 0.82), (0.63, 0.82))
SCRFD_ENV = "DEEPFAKE_HF_SCRFD_MODEL"
HUB = "hub"  # the value of SCRFD_ENV that fetches GenD's copy of det_10g.onnx
# The file GenD's src/retinaface.py `prepare_model` downloads (insightface's buffalo_l detector).
HUB_FILE = {"repo_id": "theanhntp/Liblib", "repo_type": "dataset",
            "revision": "ae4357741af379482690fe3e0f2fa6fd32ba33b4",
            "filename": "insightface/models/buffalo_l/det_10g.onnx"}
DETECTION_SIZE = (640, 640)  # (width, height) the frame is fitted into, when the model's input is not fixed
DETECTION_THRESHOLD = 0.1  # GenD's README: --det_thres 0.1
NMS_THRESHOLD = 0.4
INPUT_MEAN, INPUT_STD = 127.5, 128.0
# SCRFD's output layouts by output count: (strides, anchors per position, with key points)
SCRFD_LAYOUTS = {6: ((8, 16, 32), 2, False), 9: ((8, 16, 32), 2, True), 10: ((8, 16, 32, 64, 128), 1, False),
                 15: ((8, 16, 32, 64, 128), 1, True)}
EXTRA = "pip install 'deepfake-hf[gend-faces]'"


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise FaceDependencyError(f"face mode 'gend' needs OpenCV: {EXTRA}") from None
    return cv2


# ------------------------------------------------------------------------------------------------ alignment
def gend_alignment(landmarks: Any, scale: float = FACE_SCALE) -> tuple[np.ndarray, int]:
    """(2x3 image->crop matrix, crop side) of GenD's `align_face` with `target_size=None`.

    The side is round(scale * the mean over the 10 point pairs of landmark / template distance); the
    template is scaled to the side, moved by the margin side * (scale - 1) / 2 and shrunk back into the side;
    the matrix is OpenCV's LMEDS partial affine fit of the points onto it. The dtypes are GenD's under numpy 2
    (float32 points and template; the margin and shrink factor in float64, stored back into the float32
    template), so the matrix is the one its script computes.
    """
    cv2 = _import_cv2()
    points = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    template = np.array(GEND_TEMPLATE, dtype=np.float32)
    pairs = np.triu_indices(5, k=1)
    point_distances = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)[pairs]
    template_distances = np.linalg.norm(template[:, None, :] - template[None, :, :], axis=-1)[pairs]
    side = np.int64(np.round(np.mean(point_distances / template_distances) * np.float32(scale)))
    if side < 1:
        raise FaceError(f"face mode 'gend': key points {points.tolist()} span no crop")
    margin = side * (scale - 1) / 2.0  # np.float64
    target = (template.astype(np.float64) * side).astype(np.float32)
    target = (target + margin).astype(np.float32)
    target = (target * (side / (side + 2 * margin))).astype(np.float32)
    matrix = cv2.estimateAffinePartial2D(points, target, method=cv2.LMEDS)[0]
    if matrix is None:
        raise FaceError(f"face mode 'gend': no similarity transform fits the key points {points.tolist()}")
    return matrix, int(side)


def gend_align(image: Any, landmarks: Any, scale: float = FACE_SCALE) -> Any:
    """GenD's aligned crop (a PIL image, side x side) of a PIL image or RGB array, from its five key points."""
    from PIL import Image

    cv2 = _import_cv2()
    matrix, side = gend_alignment(landmarks, scale)
    if isinstance(image, Image.Image):
        image = image if image.mode == "RGB" else image.convert("RGB")
    pixels = np.ascontiguousarray(np.asarray(image))
    # per channel, so the RGB crop is GenD's BGR crop with its channels swapped back
    return Image.fromarray(cv2.warpAffine(pixels, matrix, (side, side), flags=cv2.INTER_LINEAR))


class GenDFace(Face):
    """A face found by the "gend" mode: it is cut by GenD's alignment (the crop `size` does not apply)."""

    def aligned_crop(self, image: Any, size: int, scale: float) -> Any | None:
        return gend_align(image, self.landmarks, scale)


# ------------------------------------------------------------------------------------------------ detection
def anchor_centres(height: int, width: int, stride: int, anchors: int) -> np.ndarray:
    """(height * width * anchors, 2) float32 (x, y) anchor points of one SCRFD level, row by row."""
    rows, columns = np.mgrid[:height, :width]
    centres = np.stack([columns, rows], axis=-1).astype(np.float32)
    centres = (centres * stride).reshape((-1, 2))
    return np.stack([centres] * anchors, axis=1).reshape((-1, 2)) if anchors > 1 else centres


def decode_level(centres: np.ndarray, scores: np.ndarray, distances: np.ndarray, keypoints: np.ndarray,
                 stride: int, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One level's (scores, boxes, key points) at or above `threshold`: distances are in stride units, boxes are
    the anchor point minus/plus (left, top, right, bottom), key points the anchor point plus (dx, dy)."""
    keep = np.where(scores >= threshold)[0]
    distances = distances * stride
    boxes = np.stack([centres[:, 0] - distances[:, 0], centres[:, 1] - distances[:, 1],
                      centres[:, 0] + distances[:, 2], centres[:, 1] + distances[:, 3]], axis=-1)
    offsets = (keypoints * stride).reshape(len(centres), -1, 2)
    return scores[keep], boxes[keep], (centres[:, None, :] + offsets)[keep]


def nms(detections: np.ndarray, threshold: float = NMS_THRESHOLD) -> list[int]:
    """Rows of (x0, y0, x1, y1, score) kept by greedy suppression, best first (insightface's +1 pixel areas)."""
    x0, y0, x1, y1, scores = (detections[:, i] for i in range(5))
    areas = (x1 - x0 + 1) * (y1 - y0 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        width = np.maximum(0.0, np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]) + 1)
        height = np.maximum(0.0, np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]) + 1)
        overlap = width * height / (areas[best] + areas[rest] - width * height)
        order = rest[np.where(overlap <= threshold)[0]]
    return keep


class Scrfd:
    """insightface's SCRFD face detector from an ONNX file, run as GenD's RetinaFace class runs it."""

    def __init__(self, model_path: str | os.PathLike[str], threshold: float = DETECTION_THRESHOLD,
                 nms_threshold: float = NMS_THRESHOLD) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise FaceDependencyError(f"face mode 'gend' needs onnxruntime: {EXTRA}") from None
        self.model_path = str(model_path)
        options = onnxruntime.SessionOptions()
        # the user's OMP_NUM_THREADS, else this process's share of the cores, as torch gets (runtime.threads)
        options.intra_op_num_threads = explicit_threads() or thread_budget()
        try:
            self.session = onnxruntime.InferenceSession(self.model_path, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for a bad file
            raise FaceError(f"{SCRFD_ENV}: {self.model_path} is not an ONNX model onnxruntime can load "
                            f"({str(error).strip().splitlines()[0][:200]})") from None
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        fixed = [dim for dim in model_input.shape[2:4] if isinstance(dim, int)]
        self.input_size = (model_input.shape[3], model_input.shape[2]) if len(fixed) == 2 else DETECTION_SIZE
        self.output_names = [output.name for output in self.session.get_outputs()]
        layout = SCRFD_LAYOUTS.get(len(self.output_names))
        if layout is None or not layout[2]:
            raise FaceError(f"{SCRFD_ENV}: {self.model_path} has {len(self.output_names)} outputs; an SCRFD "
                            "detector with key points has 9 or 15 (det_10g.onnx: 9)")
        self.strides, self.anchors, _ = layout
        self.threshold, self.nms_threshold = float(threshold), float(nms_threshold)

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(detections (n, 5) x0, y0, x1, y1, score float32, key points (n, 5, 2) float32) of an RGB uint8 array,
        in image pixels, best first after suppression."""
        cv2 = _import_cv2()
        width, height = self.input_size
        if rgb.shape[0] / rgb.shape[1] > height / width:
            new_height = height
            new_width = int(new_height / (rgb.shape[0] / rgb.shape[1]))
        else:
            new_width = width
            new_height = int(new_width * (rgb.shape[0] / rgb.shape[1]))
        det_scale = float(new_height) / rgb.shape[0]
        canvas = np.zeros((height, width, 3), dtype=np.uint8)
        canvas[:new_height, :new_width] = cv2.resize(rgb, (new_width, new_height))
        # GenD passes a BGR frame with swapRB=True: the network sees RGB, as given here
        blob = cv2.dnn.blobFromImage(canvas, 1.0 / INPUT_STD, (width, height), (INPUT_MEAN,) * 3, swapRB=False)
        outputs = self.session.run(self.output_names, {self.input_name: blob})
        levels = len(self.strides)
        scores, boxes, points = [], [], []
        for index, stride in enumerate(self.strides):
            centres = anchor_centres(height // stride, width // stride, stride, self.anchors)
            level = decode_level(centres, outputs[index], outputs[index + levels], outputs[index + 2 * levels],
                                 stride, self.threshold)
            scores.append(level[0])
            boxes.append(level[1])
            points.append(level[2])
        score = np.vstack(scores)
        order = score.ravel().argsort()[::-1]
        detections = np.hstack((np.vstack(boxes) / det_scale, score)).astype(np.float32, copy=False)[order, :]
        keep = nms(detections, self.nms_threshold)
        return detections[keep, :], (np.vstack(points) / det_scale)[order][keep]


def scrfd_model_path(model_path: str | os.PathLike[str] | None = None) -> Path:
    """The det_10g.onnx to load: `model_path`, else DEEPFAKE_HF_SCRFD_MODEL (a path, or "hub" to fetch GenD's copy)."""
    chosen = str(model_path) if model_path is not None else os.environ.get(SCRFD_ENV, "").strip()
    if not chosen:
        raise FaceDependencyError(f"face mode 'gend' needs SCRFD's det_10g.onnx (insightface buffalo_l): set "
                                  f"{SCRFD_ENV} to its path, or to '{HUB}' to fetch the copy GenD's detector.py "
                                  "fetches (or --faces none for inputs that are GenD crops already)")
    if chosen == HUB:
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(**HUB_FILE))
        except Exception as error:  # offline, no such revision, network: huggingface_hub's own exception types
            raise FaceError(f"{SCRFD_ENV}={HUB}: could not fetch {HUB_FILE['filename']} from "
                            f"{HUB_FILE['repo_id']} ({one_line(error, 200)}); set it to a local det_10g.onnx") from None
    path = Path(chosen).expanduser()
    if not path.is_file():
        raise FaceError(f"{SCRFD_ENV}: {path} is not a file (SCRFD's det_10g.onnx, or '{HUB}')")
    return path


@register
class GenDFaceDetector(FaceMode):
    """GenD's detector.py face preprocessing (see the module): SCRFD, the largest face, GenD's alignment.

    GenD's "at_least" mode moves on to further frames of its order until 32 have a face; here the frames are
    the first `num_frames` of that order and a frame without a face is not scored. GenD prefers the face that
    overlaps a manipulation mask when it has one (training data); at test time, as here, the largest.
    """

    name = "gend"
    description = "GenD's preprocessing: SCRFD (det_10g.onnx), largest face, its template, crops at face size"
    order = 25
    frame_sampling = GEND_FRAMES
    crops = ("align",)
    auto = False
    recorded = True

    @classmethod
    def available(cls) -> bool:
        find = importlib.util.find_spec
        return find("onnxruntime") is not None and find("cv2") is not None

    @classmethod
    def build(cls, size: int, scale: float) -> GenDFaceDetector:
        return cls(scale=scale)

    def __init__(self, model_path: str | os.PathLike[str] | None = None, scale: float = FACE_SCALE,
                 threshold: float = DETECTION_THRESHOLD) -> None:
        self.scale = scale
        self.detector = Scrfd(scrfd_model_path(model_path), threshold=threshold)

    def detect(self, image: Any) -> list[Face]:
        """The largest face of a PIL image as a one-element list, or []."""
        rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        detections, points = self.detector.detect(rgb)
        if not len(detections):
            return []
        areas = (detections[:, 2] - detections[:, 0]) * (detections[:, 3] - detections[:, 1])
        best = int(np.argmax(areas))
        x0, y0, x1, y1, score = (float(value) for value in detections[best])
        return [GenDFace(box=(x0, y0, x1, y1), score=score, landmarks=points[best])]

    def detect_video(self, frames: Iterable[Any]) -> Iterator[list[Face]]:
        return (self.detect(frame) for frame in frames)
