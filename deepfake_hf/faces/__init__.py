"""Face detection, 5-point alignment and crops.

A face detector is anything with `detect(image) -> list[Face]`; one may also have
`detect_video(frames)` (an iterator of per-frame lists) for the frames of one video, which
`detect_video(detector, frames)` uses when present. Backends:

- `"dlib"` (the `faces` extra): dlib's HOG frontal face detector run on a downscaled copy of the
  frame (boxes mapped back), then the 68-point shape predictor on the full-resolution frame, reduced
  to five key points the way DeepfakeBench does (or the ArcFace eye-centre convention).
- `"deepfakebench"` (the `faces` extra): DeepfakeBench's preprocessing exactly (SCLBD/DeepfakeBench,
  preprocessing/preprocess.py): dlib's HOG detector on the full-resolution frame upsampled once, the
  largest face only, and the frame is kept only when dlib finds a face again in its aligned crop.
  40-80x slower than `"dlib"` (no downscaling, no tracking), for models trained on DeepfakeBench's crops.
- `"none"`: finds nothing; callers score the whole frame.
- `"auto"`: dlib when it is installed, else `"none"` (a model whose config names a face mode,
  `face_preprocessing`, gets that one: see scoring.Scorer).

`align_face` is the DeepfakeBench convention: the five points are mapped onto the ArcFace
112x112 template by a least-squares similarity transform, the field of view is enlarged by
`scale` (1.3) around the template centre, and the crop is `size` x `size` (256). `margin_crop`
is the DFDC winner's plain box crop with a relative margin (30%).
"""

import contextlib
import importlib.util
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepfake_hf.defaults import DEFAULT_CROP, FACE_MARGIN, FACE_SCALE, FACE_SIZE
from deepfake_hf.errors import DeepfakeHFError


class FaceError(DeepfakeHFError, ValueError):
    """A bad face option or a face without what the operation needs."""


class FaceDependencyError(DeepfakeHFError, ImportError):
    """dlib or its landmark models are not installed (the `faces` extra)."""


# insightface's 5-point template for 96x112 crops: left eye, right eye, nose tip, left mouth corner,
# right mouth corner, in image coordinates (x right, y down). Moved 8 px right it is the ArcFace 112x112 one.
INSIGHTFACE_TEMPLATE = ((30.2946, 51.6963), (65.5318, 51.5014), (48.0252, 71.7366), (33.5493, 92.3655),
                        (62.7299, 92.2041))
ARCFACE_X_SHIFT = 8.0
ARCFACE_TEMPLATE = np.array(INSIGHTFACE_TEMPLATE, dtype=np.float64) + (ARCFACE_X_SHIFT, 0.0)
FACE_DETECTORS = ("auto", "dlib", "deepfakebench", "none")


@dataclass
class Face:
    """A detected face: `box` (x0, y0, x1, y1) in pixels, detector `score`, `landmarks` (5, 2) or None."""

    box: tuple
    score: float = 1.0
    landmarks: np.ndarray | None = field(default=None, repr=False)

    @property
    def area(self):
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def box_iou(a, b):
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# ------------------------------------------------------------------------------------------ detectors
class NoFaceDetector:
    """Finds no faces: the whole frame is scored."""

    name = "none"

    def detect(self, image):
        return []

    def detect_video(self, frames):
        return ([] for _ in frames)


class DlibFaceDetector:
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

    def __init__(self, detect_size=640, min_score=0.1, keypoints="deepfakebench", keyframe_interval=8,
                 track_margin=0.75):
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

    def _models(self):
        """This thread's (HOG detector, shape predictor): see _thread_models."""
        return _thread_models(self._dlib, self._predictor_path)

    def detect(self, image):
        """Faces in a PIL image (RGB), largest first."""
        rgb, small, factor = self._scaled(image)
        return self._faces(rgb, self._search(small), factor)

    def detect_video(self, frames):
        """Yield the faces of each frame (PIL images of one video, in order), like `detect` per frame."""
        tracks = []  # (box in detection pixels, upsampling that found it) per face of the previous frame
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


class DeepfakeBenchFaceDetector(DlibFaceDetector):
    """DeepfakeBench's face preprocessing, step for step, so converted DeepfakeBench and GenD models see
    the crops they were trained on.

    Per frame: dlib's HOG detector on the full-resolution RGB frame with one 2x upsampling, the largest
    box (ties: the first dlib reports), the 68-point predictor in that box, key points 37, 44, 30, 49, 55;
    then the frame counts only if the detector finds a face again in the aligned `size` crop at `scale`
    (DeepfakeBench drops the frame otherwise). No downscaling, no tracking, no score filtering: exact
    rather than fast (0.64 s a 720p frame against 16 ms for `"dlib"`, 1.4-1.8 s a 1080p frame, measured
    side by side on 2 busy CPU cores). DeepfakeBench uses dlib's 81-point
    predictor, whose first 68 points follow the 68-point layout; the 68-point model stands in for it.
    """

    name = "deepfakebench"

    def __init__(self, size=FACE_SIZE, scale=FACE_SCALE):
        try:
            super().__init__(detect_size=None, min_score=float("-inf"), keypoints="deepfakebench", keyframe_interval=1)
        except FaceDependencyError as error:  # the usual cause: a converted model asks for this mode by default
            raise FaceDependencyError(f"face mode 'deepfakebench': {error} (or --faces none for inputs that are "
                                      "already aligned face crops)") from None
        self.size, self.scale = size, scale
        # {stage: [wall seconds, CPU seconds of the calling thread, calls]}: what `deepfake-hf bench video`
        # reports per stage (frame to array, detection, landmarks, warp, re-detection in the crop)
        self.stage_times = {}
        self._stage_lock = threading.Lock()

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

    def detect(self, image):
        """The largest face of a PIL image (RGB) as a one-element list, or [] (none, or lost in its crop)."""
        with self._stage("to_array"):
            rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        detector, predictor = self._models()
        with self._stage("detection"):
            rects = detector(rgb, 1)
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
            found_again = len(detector(crop, 1))
        return [face] if found_again else []

    def detect_video(self, frames):
        return (self.detect(frame) for frame in frames)


def frame_sampling_of(detector):
    """The video frames a face mode's crops come from (media.sample_frame_indices' `sampling`): DeepfakeBench's
    own for its face mode (a detector object or its name), the package's even rule for every other."""
    name = detector if isinstance(detector, str) else getattr(detector, "name", None)
    return "deepfakebench" if name == "deepfakebench" else "even"


def detect_video(detector, frames):
    """The faces of each frame of one video (an iterator of lists, one per frame, in order).

    Uses the detector's own `detect_video(frames)` where it has one (dlib: key frames plus windows
    around the faces it follows), else `detect` per frame, so any object with `detect(image)` works.
    """
    method = getattr(detector, "detect_video", None)
    if method is not None:
        return iter(method(frames))
    return (detector.detect(frame) for frame in frames)


# dlib releases the GIL but its detector and predictor are not safe to share between threads (concurrent calls
# gave different faces, and once heap corruption), and loading a pair costs ~0.5-1 s of CPU (the 68-point predictor
# is a 100 MB file). So a thread holds one pair while it lives, shared by every dlib detector it runs, and the pair
# of a thread that has ended goes back to a pool for the next new thread: the Detector's decoding workers are new
# threads on every call, and each loaded its own pair before.
_IDLE_MODELS = {}  # predictor path -> [(detector, predictor)] released by ended threads
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
        raise FaceDependencyError(f"dlib model file {filename} not found in {os.path.dirname(path)}; reinstall the faces extra")
    return path


# Five key points from the 68-point layout (0-based). DeepfakeBench's preprocessing takes single
# landmarks: 37 and 44 (upper eyelids), 30 (nose tip), 49 and 55 (next to the mouth corners); matching
# them keeps crops interchangeable with its released face frames. "centres" is the ArcFace convention
# (eye centres, exact mouth corners 48 and 54).
KEYPOINT_CONVENTIONS = ("deepfakebench", "centres")


def five_points_from_68(points, convention="deepfakebench"):
    """The five alignment points (left eye, right eye, nose, left mouth, right mouth) from 68 landmarks."""
    points = np.asarray(points, dtype=np.float64)
    if convention == "deepfakebench":
        return points[[37, 44, 30, 49, 55]].copy()
    if convention == "centres":
        return np.stack([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]])
    raise FaceError(f"keypoints: {convention!r} is not one of {', '.join(KEYPOINT_CONVENTIONS)}.")


def dlib_available():
    find = importlib.util.find_spec
    return find("dlib") is not None and find("face_recognition_models") is not None


def get_face_detector(name="auto", **options):
    """A detector by name: "auto" (dlib when installed, else none), "dlib", "deepfakebench" or "none"."""
    if not isinstance(name, str):
        return name  # already a detector object
    if name not in FACE_DETECTORS:
        raise FaceError(f"faces: {name!r} is not one of {', '.join(FACE_DETECTORS)}.")
    if name == "none" or (name == "auto" and not dlib_available()):
        return NoFaceDetector()
    if name == "deepfakebench":
        return DeepfakeBenchFaceDetector(**options)
    return DlibFaceDetector(**options)


# ------------------------------------------------------------------------------------------ alignment
def similarity_transform(source, target):
    """The 2x3 similarity (rotation, uniform scale, translation) best mapping `source` points onto `target`.

    Least squares (Umeyama, PAMI 1991, eqs. 38-43): centre both point sets, the rotation comes from the SVD
    of their cross-covariance (no reflections), the scale from the ratio of explained to source variance.
    The equations are evaluated in that order and in the inputs' precision (float32 key points and template,
    as DeepfakeBench passes them to scikit-image), so the matrix matches its alignment to the last bit.
    """
    source, target = np.asarray(source), np.asarray(target)
    if not np.issubdtype(source.dtype, np.floating):
        source = source.astype(np.float64)
    if not np.issubdtype(target.dtype, np.floating):
        target = target.astype(np.float64)
    dim = source.shape[1]
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - source_mean, target - target_mean
    covariance = dst.T @ src / len(source)
    sign = np.ones(dim, dtype=np.float64)
    if np.linalg.det(covariance) < 0:
        sign[-1] = -1
    u, singular, vt = np.linalg.svd(covariance)
    rank = np.count_nonzero(singular > singular.max() * max(covariance.shape) * np.finfo(float).eps)
    if rank == dim - 1:  # collinear points: the rotation is fixed up to the null direction's sign
        flip = np.ones(dim, dtype=np.float64)
        flip[-1] = 1.0 if np.linalg.det(u) * np.linalg.det(vt) > 0 else -1.0
        rotation = u @ np.diag(flip) @ vt
    else:
        rotation = u @ np.diag(sign) @ vt
    variance = src.var(axis=0).sum()
    scale = 1.0 / variance * (singular @ sign) if variance > 0 else 1.0
    translation = target_mean - scale * (rotation @ source_mean.T)
    return np.hstack([rotation * scale, translation[:, None]]).astype(np.float64)


def aligned_template(size=FACE_SIZE, scale=FACE_SCALE):
    """Where the five points land in an aligned `size` crop: the ArcFace template scaled to `size`,
    shrunk by `scale` around the crop centre so the crop shows `scale` times more around the face.

    Computed step by step in float32, as DeepfakeBench's `img_align_crop` does, so the alignment matrix (and
    hence every crop pixel) is the one its preprocessing gets from the same landmarks.
    """
    template = np.array(INSIGHTFACE_TEMPLATE, dtype=np.float32)
    template[:, 0] += ARCFACE_X_SHIFT
    template[:, 0] = template[:, 0] * size / 112
    template[:, 1] = template[:, 1] * size / 112
    margin = size * (scale - 1) / 2.0
    template += margin
    template *= size / (size + 2 * margin)
    return template


def alignment_matrix(landmarks, size=FACE_SIZE, scale=FACE_SCALE):
    """2x3 matrix mapping image coordinates into the aligned crop."""
    return similarity_transform(np.asarray(landmarks, dtype=np.float32), aligned_template(size, scale))


def _import_cv2():
    try:
        import cv2
    except ImportError:
        raise FaceDependencyError("aligned face crops need OpenCV: pip install 'deepfake-hf[faces]'") from None
    return cv2


def warp_affine(image, matrix, size):
    """Resample `image` (PIL or HxWx3 uint8 array) through the 2x3 image->crop `matrix` into a `size` (w, h) crop.

    `cv2.warpAffine` (bilinear, zeros outside the image), the call DeepfakeBench's crops were made with: the
    same matrix gives the same crop, bit for bit (PIL's affine transform puts pixel centres at +0.5 and
    interpolates differently: ~40 dB off on textured images).
    """
    from PIL import Image

    cv2 = _import_cv2()
    if isinstance(image, Image.Image):
        image = image if image.mode == "RGB" else image.convert("RGB")  # convert() copies even an RGB image
    pixels = np.asarray(image)
    crop = cv2.warpAffine(np.ascontiguousarray(pixels), np.asarray(matrix, dtype=np.float64), tuple(int(v) for v in size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return Image.fromarray(crop)


def align_face(image, face, size=FACE_SIZE, scale=FACE_SCALE):
    """DeepfakeBench-style aligned face crop (`size` x `size`) of a PIL image or RGB array; needs the face's five landmarks."""
    if face.landmarks is None:
        raise FaceError("align_face: this face has no landmarks; use margin_crop or a detector with landmarks")
    return warp_affine(image, alignment_matrix(face.landmarks, size, scale), (size, size))


def margin_crop(image, face, margin=FACE_MARGIN, size=None):
    """The face box grown by `margin` of its size on every side, clipped to the image, resized to `size` (square)."""
    from PIL import Image

    x0, y0, x1, y1 = face.box
    width, height = x1 - x0, y1 - y0
    box = (
        max(0, math.floor(x0 - margin * width)),
        max(0, math.floor(y0 - margin * height)),
        min(image.width, math.ceil(x1 + margin * width)),
        min(image.height, math.ceil(y1 + margin * height)),
    )
    crop = image.convert("RGB").crop(box)
    if size is not None:
        crop = crop.resize((size, size), Image.Resampling.BILINEAR)
    return crop


def crop_face(image, face, crop=DEFAULT_CROP, size=FACE_SIZE, scale=FACE_SCALE, margin=FACE_MARGIN):
    """`align_face` when the face has landmarks and `crop == "align"`, else `margin_crop`."""
    if crop == "align" and face.landmarks is not None:
        return align_face(image, face, size=size, scale=scale)
    return margin_crop(image, face, margin=margin, size=size)


def most_prominent(faces):
    """The face a one-face crop takes: the largest box, weighted by the detector's confidence."""
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) * max(f.score, 1e-3))


def track_faces(faces_per_frame, min_iou=0.3):
    """Link faces across frames by box overlap: a list of tracks, each a {frame index: face index} dict.

    Each face joins the track whose latest box overlaps it most (IoU >= `min_iou`), largest faces
    first; a face that matches no track starts a new one.
    """
    tracks, last_box = [], []
    for frame_index, faces in enumerate(faces_per_frame):
        taken = set()
        order = sorted(range(len(faces)), key=lambda i: faces[i].area, reverse=True)
        for face_index in order:
            box = faces[face_index].box
            best, best_iou = None, min_iou
            for track_index, previous in enumerate(last_box):
                if track_index in taken:
                    continue
                iou = box_iou(box, previous)
                if iou >= best_iou:
                    best, best_iou = track_index, iou
            if best is None:
                tracks.append({})
                last_box.append(box)
                best = len(tracks) - 1
            tracks[best][frame_index] = face_index
            last_box[best] = box
            taken.add(best)
    return tracks


__all__ = [
    "ARCFACE_TEMPLATE",
    "DeepfakeBenchFaceDetector",
    "DlibFaceDetector",
    "Face",
    "FaceDependencyError",
    "FaceError",
    "NoFaceDetector",
    "align_face",
    "aligned_template",
    "alignment_matrix",
    "box_iou",
    "crop_face",
    "detect_video",
    "five_points_from_68",
    "frame_sampling_of",
    "get_face_detector",
    "margin_crop",
    "most_prominent",
    "similarity_transform",
    "track_faces",
]
