"""The "dlib" face mode: dlib's HOG frontal face detector and 68-point landmarks (the `faces` extra).

Detection runs on a downscaled copy of the frame (boxes mapped back), the 68-point shape predictor on the
full-resolution frame, reduced to five key points the way DeepfakeBench does (or the ArcFace eye-centre
convention); in a video, faces are followed between key frames. The detector and predictor are pooled per
thread (`_thread_models`), the HOG detector cached on disk (`_frontal_face_detector`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_hf.faces.base import Face, FaceDependencyError, FaceError, FaceMode, register
from deepfake_hf.faces.tracking import box_iou


@register
class DlibFaceDetector(FaceMode):
    """dlib HOG detector + 68-point landmarks, reduced to the five ArcFace points.

    Detection runs on a copy whose longest side is at most `detect_size` pixels (full-HD frames
    are ~10x slower otherwise); when nothing is found there, it tries once more with dlib's 2x
    upsampling, which finds faces down to ~40 pixels at that scale. Detections scoring below
    `min_score` (dlib's SVM margin; frontal faces score ~0.5-2) are dropped as likely false positives
    unless they are the best detection in the frame.

    `detect_video(frames)` does the same for the frames of one video, cheaper: a key frame (the first,
    every `keyframe_interval`-th, and any frame where a face is lost) is searched whole as `detect`
    does; in the frames between, each face is searched for only in a window around its previous box
    (`track_margin` box sizes on every side) at the scale (upsampling) that found it. The box is
    still the HOG detector's own box in every frame, and the landmarks are computed per frame, so the
    crops match `detect`'s wherever both find the face. `keyframe_interval=1` makes it `detect` per frame.
    """

    name = "dlib"
    description = "fast: downscaled search, faces followed between key frames"
    order = 10
    auto = True
    recorded = True

    @classmethod
    def available(cls) -> bool:
        return dlib_available()

    def __init__(self, detect_size: int | None = 640, min_score: float = 0.1, keypoints: str = "deepfakebench",
                 keyframe_interval: int = 8, track_margin: float = 0.75) -> None:
        try:
            import dlib
        except ImportError:
            raise FaceDependencyError("the dlib face detector needs the faces extra: "
                              "pip install 'deepfake-hf[faces]'") from None
        self._dlib = dlib
        self.detect_size = detect_size
        self.min_score = min_score
        five_points_from_68(np.zeros((68, 2)), keypoints)  # validate the name early
        self.keypoints = keypoints
        if int(keyframe_interval) < 1 or track_margin <= 0:
            raise FaceError("keyframe_interval must be >= 1 and track_margin > 0")
        self.keyframe_interval = int(keyframe_interval)
        self.track_margin = float(track_margin)
        self._predictor_path = _dlib_model_path("shape_predictor_68_face_landmarks.dat")
        self._models()

    def worker_options(self) -> dict[str, Any] | None:
        if type(self).__init__ is not DlibFaceDetector.__init__:  # a subclass's own options are unknown here
            return None
        return {"detect_size": self.detect_size, "min_score": self.min_score, "keypoints": self.keypoints,
                "keyframe_interval": self.keyframe_interval, "track_margin": self.track_margin}

    @property
    def independent_frames(self) -> bool:
        return self.keyframe_interval == 1

    def _models(self):
        """This thread's (HOG detector, shape predictor): see _thread_models."""
        return _thread_models(self._dlib, self._predictor_path)

    def detect(self, image: Any) -> list[Face]:
        """Faces in a PIL image (RGB), largest first."""
        rgb, small, factor = self._scaled(image)
        return self._faces(rgb, self._search(small), factor)

    def detect_video(self, frames: Iterable[Any]) -> Iterator[list[Face]]:
        """Yield the faces of each frame (PIL images of one video, in order), like `detect` per frame."""
        # (box in detection pixels, upsampling that found it) per face of the previous frame
        tracks: list[tuple[tuple, int]] = []
        for index, frame in enumerate(frames):
            rgb, small, factor = self._scaled(frame)
            found = None
            if tracks and index % self.keyframe_interval:
                found = self._follow(small, tracks)
            if found is None:  # key frame, nobody to follow, or a face lost: search the whole frame
                found = self._search(small)
            tracks = [(box, upsample) for box, _, upsample in found]
            yield self._faces(rgb, found, factor)

    # ------------------------------------------------------------------------------------------ internals
    def _scaled(self, image):
        """(full-resolution RGB array, the copy to detect on, its scale factor)."""
        if image.mode != "RGB":  # decoded video frames already are: no copy
            image = image.convert("RGB")
        rgb = np.asarray(image)
        factor = min(1.0, self.detect_size / max(rgb.shape[:2])) if self.detect_size else 1.0
        if factor >= 1.0:
            return rgb, rgb, 1.0
        small_size = (round(rgb.shape[1] * factor), round(rgb.shape[0] * factor))
        # reducing_gap=1: an integer box reduction first, then bicubic for the rest; ~10x faster than
        # bicubic alone on 720p/1080p frames (0.8 vs 8.8 ms, 1.8 vs 15 ms here), same faces found
        return rgb, np.asarray(image.resize(small_size, reducing_gap=1.0)), factor

    def _search(self, small):
        """Whole-frame detections [(box, score, upsample)]: at the detection size, else 2x upsampled."""
        for upsample in (0, 1):
            found = self._run(small, upsample)
            if found:
                return found
        return []

    def _follow(self, small, tracks):
        """Each tracked face searched for near its previous box; None when any of them is not found."""
        height, width = small.shape[:2]
        found = []
        for (x0, y0, x1, y1), upsample in tracks:
            reach = self.track_margin * max(x1 - x0, y1 - y0)
            # Window origin on a multiple of 48 px: the 8 px HOG cells of the first two pyramid levels
            # (scale 1 and 5/6) then fall where they do on the whole frame, so the detector sees the same
            # features there (with a multiple of 8, 41% of boxes matched the whole-frame search exactly,
            # with 48, 65%, on the benchmark clips; the rest differ by about one pyramid step).
            left, top = int(max(0.0, x0 - reach)) // 48 * 48, int(max(0.0, y0 - reach)) // 48 * 48
            right, bottom = int(min(width, math.ceil(x1 + reach))), int(min(height, math.ceil(y1 + reach)))
            window = np.ascontiguousarray(small[top:bottom, left:right])
            near = self._run(window, upsample, filter_weak=False)
            if not near:
                return None
            found.extend(((bx0 + left, by0 + top, bx1 + left, by1 + top), score, upsample)
                         for (bx0, by0, bx1, by1), score, _ in near)
        # the same face seen from two overlapping windows counts once
        found.sort(key=lambda item: item[1], reverse=True)
        unique = []
        for item in found:
            if all(box_iou(item[0], kept[0]) < 0.5 for kept in unique):
                unique.append(item)
        return self._drop_weak(unique)

    def _run(self, pixels, upsample, filter_weak=True):
        """dlib's detections [(box (x0, y0, x1, y1) in `pixels`' coordinates, score, upsample)]."""
        rects, scores, _ = self._models()[0].run(pixels, upsample, 0.0)
        found = [((float(rect.left()), float(rect.top()), float(rect.right() + 1), float(rect.bottom() + 1)),
                  float(score), upsample) for rect, score in zip(rects, scores)]
        return self._drop_weak(found) if filter_weak else found

    def _drop_weak(self, found):
        best = max((score for _, score, _ in found), default=0.0)
        # A weak detection is kept when it is the frame's best (a profile face scores low); beside a
        # stronger face it is most likely a false positive (hands, patterns).
        return [item for item in found if item[1] >= self.min_score or item[1] == best]

    def _faces(self, rgb, found, factor):
        """Faces (boxes mapped back to full resolution, landmarks on the full-resolution frame), largest first."""
        faces = []
        height, width = rgb.shape[:2]
        for (x0, y0, x1, y1), score, _ in found:
            box = (max(0.0, x0 / factor), max(0.0, y0 / factor),
                   min(float(width), x1 / factor), min(float(height), y1 / factor))
            full_rect = self._dlib.rectangle(*(int(round(v)) for v in box))
            shape = self._models()[1](rgb, full_rect)
            points = np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], dtype=np.float64)
            faces.append(Face(box=box, score=score, landmarks=five_points_from_68(points, self.keypoints)))
        return sorted(faces, key=lambda face: face.area, reverse=True)


# dlib releases the GIL but its detector and predictor are not safe to share between threads (concurrent calls
# gave different faces, and once heap corruption), and loading a pair costs ~0.5-1 s of CPU (the 68-point predictor
# is a 100 MB file). So a thread holds one pair while it lives, shared by every dlib detector it runs, and the pair
# of a thread that has ended goes back to a pool for the next new thread: the Detector's decoding workers are new
# threads on every call, and each loaded its own pair before.
# predictor path -> [(detector, predictor)] released by ended threads
_IDLE_MODELS: dict[str, list[tuple[Any, Any]]] = {}
_THREAD_MODELS = threading.local()


class _HeldModels:
    """One thread's (detector, predictor); back to the pool when the thread ends and its locals are released."""

    def __init__(self, key, pair):
        self.key, self.pair = key, pair

    def __del__(self, idle=_IDLE_MODELS):  # bound at definition: module globals may be gone at interpreter exit
        idle.setdefault(self.key, []).append(self.pair)  # atomic under the GIL: no lock in a finaliser


def _thread_models(dlib, predictor_path):
    """The calling thread's (HOG detector, shape predictor): its own, a pooled pair, or a newly loaded one."""
    held = getattr(_THREAD_MODELS, "held", None)
    if held is None:
        held = _THREAD_MODELS.held = {}
    if predictor_path not in held:
        try:
            pair = _IDLE_MODELS.get(predictor_path, []).pop()
        except IndexError:
            pair = (_frontal_face_detector(dlib), dlib.shape_predictor(predictor_path))
        held[predictor_path] = _HeldModels(predictor_path, pair)
    return held[predictor_path].pair


def _frontal_face_detector(dlib):
    """dlib's HOG frontal face detector, read from the copy an earlier process saved in the package's cache.

    `get_frontal_face_detector()` rebuilds the detector from dlib's built-in data on every call, ~0.3 s of CPU
    per process and per worker thread (a fixed cost every rank of a data-parallel preprocess pays again);
    dlib reads its own saved file of it in ~1 ms, and the loaded detector finds the same boxes and scores.
    The copy is named after dlib's version, written to a temporary name and renamed (ranks may race), and
    one that does not load is rebuilt; where the cache cannot be written it is built each time.
    """
    # the package's cache folder, data.cache_root() (this module sits below data, so it reads the variable itself)
    root = Path(os.environ.get("DEEPFAKE_HF_CACHE") or os.path.join("~", ".cache", "deepfake_hf")).expanduser()
    path = root / "dlib" / f"frontal_face_detector-{dlib.__version__}.svm"
    if path.is_file():
        try:
            return dlib.fhog_object_detector(str(path))
        except RuntimeError:  # unreadable or damaged copy: rebuilt below
            pass
    detector = dlib.get_frontal_face_detector()
    temporary = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        detector.save(str(temporary))
        os.replace(temporary, path)
    except (OSError, RuntimeError):  # a read-only cache: nothing saved
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
    return detector


def _dlib_model_path(filename):
    # `import face_recognition_models` needs pkg_resources, gone from recent setuptools: locate the files instead.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise FaceDependencyError("dlib landmark models are missing: pip install 'deepfake-hf[faces]'")
    path = os.path.join(os.path.dirname(spec.origin), "models", filename)
    if not os.path.isfile(path):
        raise FaceDependencyError(f"dlib model file {filename} not found in {os.path.dirname(path)}; "
                                  "reinstall the faces extra")
    return path


# Five key points from the 68-point layout (0-based). DeepfakeBench's preprocessing takes single
# landmarks: 37 and 44 (upper eyelids), 30 (nose tip), 49 and 55 (next to the mouth corners); matching
# them keeps crops interchangeable with its released face frames. "centres" is the ArcFace convention
# (eye centres, exact mouth corners 48 and 54).
KEYPOINT_CONVENTIONS = ("deepfakebench", "centres")


def five_points_from_68(points: Any, convention: str = "deepfakebench") -> np.ndarray:
    """The five alignment points (left eye, right eye, nose, left mouth, right mouth) from 68 landmarks."""
    points = np.asarray(points, dtype=np.float64)
    if convention == "deepfakebench":
        return points[[37, 44, 30, 49, 55]].copy()
    if convention == "centres":
        return np.stack([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]])
    raise FaceError(f"keypoints: {convention!r} is not one of {', '.join(KEYPOINT_CONVENTIONS)}.")


def dlib_available() -> bool:
    """Whether dlib and its landmark models are installed (without importing them)."""
    find = importlib.util.find_spec
    return find("dlib") is not None and find("face_recognition_models") is not None
