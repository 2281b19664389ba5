"""The "deepfakebench" face mode: DeepfakeBench's face preprocessing exactly (the `faces` extra).

SCLBD/DeepfakeBench, preprocessing/preprocess.py: dlib's HOG detector on the full-resolution frame upsampled
once, the largest face only, and the frame is kept only when dlib finds a face again in its aligned crop; the
video frames are DeepfakeBench's own (`frame_sampling`). 40-80x slower than "dlib" (no downscaling, no
tracking), for models trained on DeepfakeBench's crops, which record it as their `face_preprocessing`.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

import numpy as np

from deepfake_hf.defaults import FACE_SCALE, FACE_SIZE
from deepfake_hf.faces.align import align_face
from deepfake_hf.faces.base import Face, FaceDependencyError, FaceError, register
from deepfake_hf.faces.dlib import DlibFaceDetector, _dlib_model_path, _thread_models, five_points_from_68
from deepfake_hf.media import DEEPFAKEBENCH_FRAMES

# dlib's frontal detector reports a face found at pyramid level j (of the 2x upsampled frame) as a 73x73 box in
# that level's pixels (its 80x80 scan window less the HOG border), mapped up with pyramid_down<6>.rect_up(box, j)
_LEVEL_BOX = 73
_PYRAMID_RATE = 6
_SMALLEST_LEVEL = 64  # the detector's min_pyramid_layer_width and _height (read from its serialized form)
# dlib's overlap test (iou 0.33, or 79% of either box covered) lets a smaller box of a higher score suppress a
# larger one; the levels skipped may hold such a box for a face found just above them, so a coarse result
# counts only when its largest box lies this many levels above the skipped ones
_COARSE_MARGIN = 2
# levels skipped when searching the aligned crop again (its face is about 150 of its 256 pixels; the smallest
# box these levels find is 76 px); a crop where they find nothing is scanned whole
_CROP_COARSE_LEVELS = 4


@register
class DeepfakeBenchFaceDetector(DlibFaceDetector):
    """DeepfakeBench's face preprocessing, step for step, so converted DeepfakeBench and GenD models see
    the crops they were trained on.

    Per frame: dlib's HOG detector on the full-resolution RGB frame with one 2x upsampling, the largest
    box (ties: the first dlib reports), the 68-point predictor in that box, key points 37, 44, 30, 49, 55;
    then the frame counts only if the detector finds a face again in the aligned `size` crop at `scale`
    (DeepfakeBench drops the frame otherwise). No downscaling, no tracking, no score filtering: exact
    rather than fast (0.64 s a 720p frame against 16 ms for `"dlib"`, 1.4-1.8 s a 1080p frame, measured
    side by side on 2 busy CPU cores). DeepfakeBench uses dlib's 81-point
    predictor, whose first 68 points follow the 68-point layout; the 68-point model stands in for it
    unless `landmarks_model` names that predictor's file (`CropLandmarks` checks it).
    """

    name = "deepfakebench"
    description = "DeepfakeBench's preprocessing exactly: full-resolution dlib, largest face, its frames"
    order = 20
    frame_sampling = DEEPFAKEBENCH_FRAMES
    crops = ("align",)
    auto = False
    recorded = True
    # scan the coarse pyramid levels first (`coarse_face_boxes`), the whole frame only when they find no face:
    # the "deepfakebench-fast" mode, measured against this one by `deepfake-hf bench exact-faces`
    coarse_first: ClassVar[bool] = False

    @classmethod
    def build(cls, size: int, scale: float) -> DeepfakeBenchFaceDetector:
        return cls(size=size, scale=scale)

    def __init__(self, size: int = FACE_SIZE, scale: float = FACE_SCALE,
                 landmarks_model: str | os.PathLike[str] | None = None) -> None:
        try:
            super().__init__(detect_size=None, min_score=float("-inf"), keypoints="deepfakebench", keyframe_interval=1)
        except FaceDependencyError as error:  # the usual cause: a converted model asks for this mode by default
            raise FaceDependencyError(f"face mode 'deepfakebench': {error} (or --faces none for inputs that are "
                                      "already aligned face crops)") from None
        if landmarks_model is not None:  # DeepfakeBench's own 81-point predictor: its key points, exactly
            predictor = CropLandmarks(landmarks_model)
            if predictor.points < 68:
                raise FaceError(f"--landmarks-model: {predictor.predictor_path} places {predictor.points} points; "
                                "the key points need the 68-point layout (68 or 81 points)")
            self._predictor_path = predictor.predictor_path
        self.size, self.scale, self.landmarks_model = size, scale, landmarks_model
        # {stage: [wall seconds, CPU seconds of the calling thread, calls]}: what `deepfake-hf bench video`
        # reports per stage (frame to array, detection, landmarks, warp, re-detection in the crop)
        self.stage_times: dict[str, list[float]] = {}
        self.full_frame_scans = 0  # coarse_first: frames whose coarse levels held no face (scanned whole)
        self._stage_lock = threading.Lock()

    def worker_options(self) -> dict[str, Any] | None:
        if type(self).__init__ is not DeepfakeBenchFaceDetector.__init__:
            return None
        landmarks = None if self.landmarks_model is None else os.fspath(self.landmarks_model)
        return {"size": self.size, "scale": self.scale, "landmarks_model": landmarks}

    @contextlib.contextmanager
    def _stage(self, name):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            with self._stage_lock:
                totals = self.stage_times.setdefault(name, [0.0, 0.0, 0])
                totals[0] += wall
                totals[1] += cpu
                totals[2] += 1

    def detect(self, image: Any) -> list[Face]:
        """The largest face of a PIL image (RGB) as a one-element list, or [] (none, or lost in its crop)."""
        with self._stage("to_array"):
            rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        detector, predictor = self._models()
        with self._stage("detection"):
            rects = self._boxes(detector, rgb, coarse_levels(rgb.shape[1], rgb.shape[0]))
        if not len(rects):
            return []
        with self._stage("landmarks"):
            rect = max(rects, key=lambda r: r.width() * r.height())
            shape = predictor(rgb, rect)
            points = np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], dtype=np.float64)
        face = Face(box=(float(rect.left()), float(rect.top()), float(rect.right() + 1), float(rect.bottom() + 1)),
                    landmarks=five_points_from_68(points, self.keypoints))
        with self._stage("warp"):
            crop = np.asarray(align_face(rgb, face, size=self.size, scale=self.scale))
        # DeepfakeBench searches its BGR copy of the crop; dlib's HOG takes the strongest gradient over the
        # channels, so channel order does not change what it finds.
        with self._stage("redetection"):
            # any box from the coarse levels is one the full scan finds too (the same scores), and dlib's
            # overlap test always keeps the best box, so "found again" is exact either way
            found_again = len(self._boxes(detector, crop, _CROP_COARSE_LEVELS, margin=0))
        return [face] if found_again else []

    def _boxes(self, detector: Any, rgb: np.ndarray, skip_levels: int, margin: int = _COARSE_MARGIN) -> Any:
        """`detector(rgb, 1)`; with `coarse_first`, the coarse levels' boxes when they settle it."""
        if self.coarse_first and skip_levels > 0:
            boxes = coarse_face_boxes(detector, rgb, skip_levels, margin)
            if boxes is not None:
                return boxes
            if margin:  # the frame itself, not its crop
                self.full_frame_scans += 1
        return detector(rgb, 1)

    def detect_video(self, frames: Iterable[Any]) -> Iterator[list[Face]]:
        return (self.detect(frame) for frame in frames)




def _level_box(dlib, pyramid, box, level):
    """The 73x73 box at pyramid `level` that dlib maps up to `box` (rect_up rounds once, at the end), or None."""
    near = pyramid.rect_down(box, level)
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            left, top = near.left() + dx, near.top() + dy
            candidate = dlib.rectangle(left, top, left + _LEVEL_BOX - 1, top + _LEVEL_BOX - 1)
            if pyramid.rect_up(candidate, level) == box:
                return candidate
    return None


def _pyramid_levels(dlib, pyramid, width, height):
    """How many pyramid levels dlib's HOG scanner builds for an image (create_fhog_pyramid's loop)."""
    rect, levels = dlib.rectangle(0, 0, width - 1, height - 1), 0
    while True:
        rect, levels = pyramid.rect_down(rect), levels + 1
        if rect.width() < _SMALLEST_LEVEL or rect.height() < _SMALLEST_LEVEL:
            return levels


def coarse_levels(width: int, height: int) -> int:
    """The pyramid levels a first, coarse scan skips: as many as leave faces of an eighth of the frame's
    shorter side findable (a box at level j is about 36.5 * 1.2**j frame pixels)."""
    smallest = min(width, height) / 8
    return max(0, math.floor(math.log(max(smallest, 1.0) / (_LEVEL_BOX / 2)) / math.log(1.2)))


def coarse_face_boxes(detector: Any, rgb: np.ndarray, skip_levels: int, margin: int = _COARSE_MARGIN
                      ) -> list[Any] | None:
    """`detector(rgb, 1)`'s boxes from the pyramid levels >= `skip_levels` only, or None when it finds none there.

    dlib's scanner builds each level from the one below (pyramid_down<6> of the 2x upsampled frame) and scans
    every level separately, so scanning level `skip_levels`' image with upsample 0 repeats the full scan's
    levels from there up, bit for bit (the same scores), for about 0.69**skip_levels of its work; the boxes are
    mapped to the frame as the full scan maps them. What it cannot see: faces smaller than those levels find
    (about 36.5 * 1.2**skip_levels px), and a smaller box of a higher score, in the skipped levels, that would
    have suppressed one of these in dlib's overlap test. So a scan counts only when its largest box lies
    `margin` levels above the levels it skipped; when it finds a face closer to them, the levels from `margin`
    below that face up are scanned once more (their images are built already). None (scan the full frame) when
    no scan counts, and when a box cannot be mapped exactly."""
    import dlib

    height, width = rgb.shape[:2]
    up, down = dlib.pyramid_down(2), dlib.pyramid_down(_PYRAMID_RATE)
    size = up.rect_up(dlib.rectangle(0, 0, width - 1, height - 1))
    levels = [dlib.resize_image(rgb, size.bottom() + 1, size.right() + 1)]  # what pyramid_up does in detector(rgb, 1)
    full_levels = _pyramid_levels(dlib, down, levels[0].shape[1], levels[0].shape[0])
    for _ in range(skip_levels):
        levels.append(down(levels[-1]))

    def scan(skip):
        """(boxes in the frame, the largest one's level above `skip`, -1 for none), or None (not mapped)."""
        image = levels[skip]
        if _pyramid_levels(dlib, down, image.shape[1], image.shape[0]) != full_levels - skip:
            return None  # the top of the pyramid would differ: leave it to the full scan
        boxes, top = [], -1
        for box in detector(image, 0):
            guess = round(math.log(max(box.width(), 1) / _LEVEL_BOX) / math.log(_PYRAMID_RATE / (_PYRAMID_RATE - 1)))
            for level in (guess, guess - 1, guess + 1):
                found = _level_box(dlib, down, box, level) if level >= 0 else None
                if found is not None:
                    break
            else:
                return None
            boxes.append(up.rect_down(down.rect_up(found, skip + level)))
            top = max(top, level)
        return boxes, top

    scanned = scan(skip_levels)
    if scanned is not None and 0 <= scanned[1] < margin and skip_levels + scanned[1] - margin >= 1:
        # a face just above the skipped levels: once more from `margin` levels below it (already built)
        scanned = scan(skip_levels + scanned[1] - margin)
    if scanned is None or scanned[1] < margin:
        return None
    return scanned[0]


class CropLandmarks:
    """All landmark points of a face crop, found again in the crop as DeepfakeBench's preprocessing does
    before it saves them with the crop (its loader and landmark-based methods read that `.npy`).

    DeepfakeBench (preprocessing/preprocess.py) turns the aligned crop to BGR, runs dlib's HOG detector on it
    with one 2x upsampling, takes the first box dlib reports, runs the shape predictor in it and saves every
    point as integers (imutils' `shape_to_np`): an (81, 2) array with its 81-point predictor, (68, 2) with
    dlib's public 68-point one (the default here; `predictor` names another file, such as the 81-point one).
    Calling it gives that array for an RGB crop (PIL image or array), or None when no face is found again.
    """

    def __init__(self, predictor: str | os.PathLike[str] | None = None) -> None:
        try:
            import dlib
        except ImportError:
            raise FaceDependencyError("crop landmarks need the faces extra: pip install 'deepfake-hf[faces]'") from None
        self._dlib = dlib
        self.predictor_path = str(predictor) if predictor is not None else _dlib_model_path(
            "shape_predictor_68_face_landmarks.dat")
        try:
            _, shape_predictor = self._models()
        except RuntimeError as error:  # dlib's own text: "Unable to open ...", "Error deserializing ..."
            raise FaceError(f"--landmarks-model: {self.predictor_path} is not a dlib shape predictor "
                            f"({str(error).strip().splitlines()[0]})") from None
        # a predictor says how many points it places only through a shape it made
        self.points = shape_predictor(np.zeros((8, 8), dtype=np.uint8), dlib.rectangle(0, 0, 7, 7)).num_parts

    def _models(self) -> tuple[Any, Any]:
        return _thread_models(self._dlib, self.predictor_path)

    def __call__(self, crop: Any) -> np.ndarray | None:
        rgb = np.asarray(crop if getattr(crop, "mode", "RGB") == "RGB" else crop.convert("RGB"))
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        detector, predictor = self._models()
        rects = detector(bgr, 1)
        if not len(rects):
            return None
        shape = predictor(bgr, rects[0])
        return np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)], dtype=np.int64)
