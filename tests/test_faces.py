"""faces/: similarity alignment (DeepfakeBench convention), crops, tracking, dlib on real faces."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from deepfake_hf.errors import DeepfakeHFError
from deepfake_hf.faces import (
    ARCFACE_TEMPLATE,
    Face,
    FaceError,
    NoFaceDetector,
    align_face,
    aligned_template,
    alignment_matrix,
    box_iou,
    crop_face,
    detect_video,
    dlib_available,
    face_mode_names,
    five_points_from_68,
    get_face_detector,
    margin_crop,
    similarity_transform,
    track_faces,
)

from .conftest import PROJECT_ROOT
from .media_samples import drifting_face_frames, real_video_frames

needs_dlib = pytest.mark.skipif(not dlib_available(), reason="dlib / face_recognition_models not installed")
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


def apply(matrix, points):
    return np.asarray(points) @ matrix[:, :2].T + matrix[:, 2]


def test_similarity_transform_recovers_known_transform():
    rng = np.random.default_rng(0)
    source = rng.uniform(0, 100, size=(5, 2))
    angle, scale, shift = 0.4, 1.7, np.array([12.0, -30.0])
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    target = source @ (scale * rotation).T + shift
    matrix = similarity_transform(source, target)
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_similarity_transform_never_reflects():
    source = np.array([[0, 0], [3, 0], [0, 1], [2, 2.0]])
    mirrored = source * [-1, 1]
    matrix = similarity_transform(source, mirrored)
    # The best proper similarity, not the mirror: a rotation matrix (orthogonal, det +1) times a scale.
    linear = matrix[:, :2]
    scale = math.sqrt(abs(np.linalg.det(linear)))
    np.testing.assert_allclose(linear @ linear.T, scale**2 * np.eye(2), atol=1e-9)
    assert np.linalg.det(linear) > 0


def test_aligned_template_scale_and_centre():
    # float32, as DeepfakeBench computes it: equal to the float64 geometry within float32 rounding
    np.testing.assert_allclose(aligned_template(112, 1.0), ARCFACE_TEMPLATE, rtol=0, atol=1e-5)
    enlarged = aligned_template(256, 1.3)
    centre = np.array([128.0, 128.0])
    # Enlarging the field of view by 1.3 shrinks the face by 1.3 around the crop centre.
    np.testing.assert_allclose(enlarged - centre, (ARCFACE_TEMPLATE * 256 / 112 - centre) / 1.3, rtol=0, atol=1e-4)


def test_align_face_puts_landmarks_on_the_template():
    # A 400x300 image with five dots where a rotated, scaled face's key points are.
    angle, scale, shift = 0.3, 1.6, np.array([140.0, 60.0])
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    landmarks = ARCFACE_TEMPLATE @ (scale * rotation).T + shift
    image = Image.new("RGB", (400, 300))
    draw = ImageDraw.Draw(image)
    for x, y in landmarks:
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=(255, 255, 255))
    crop = align_face(image, Face(box=(0, 0, 1, 1), landmarks=landmarks))
    assert crop.size == (256, 256)
    pixels = np.asarray(crop.convert("L"))
    for x, y in aligned_template(256, 1.3):
        assert pixels[int(round(y)), int(round(x))] > 200  # each dot lands on its template position
    assert (pixels > 128).mean() < 0.02  # and nothing else is bright


def test_align_face_needs_landmarks():
    with pytest.raises(ValueError, match="no landmarks"):
        align_face(Image.new("RGB", (64, 64)), Face(box=(0, 0, 10, 10)))


def test_margin_crop_grows_box_and_clips():
    image = Image.new("RGB", (200, 100))
    assert margin_crop(image, Face(box=(50, 20, 150, 80)), margin=0.3).size == (160, 96)  # 30% each side, clipped
    assert margin_crop(image, Face(box=(80, 30, 120, 70)), margin=0.25).size == (60, 60)
    assert margin_crop(image, Face(box=(80, 30, 120, 70)), size=64).size == (64, 64)
    # crop_face falls back to the margin crop when there are no landmarks
    assert crop_face(image, Face(box=(80, 30, 120, 70)), crop="align", size=32).size == (32, 32)


def test_five_points_conventions():
    points = np.arange(136, dtype=np.float64).reshape(68, 2)
    np.testing.assert_array_equal(five_points_from_68(points)[:, 0], points[[37, 44, 30, 49, 55], 0])
    centres = five_points_from_68(points, "centres")
    np.testing.assert_allclose(centres[0], points[36:42].mean(0))
    with pytest.raises(ValueError, match="keypoints"):
        five_points_from_68(points, "other")


def test_get_face_detector_names():
    assert get_face_detector("none").detect(Image.new("RGB", (32, 32))) == []
    assert get_face_detector("auto").name == ("dlib" if dlib_available() else "none")
    with pytest.raises(ValueError, match="faces: 'mtcnn'"):
        get_face_detector("mtcnn")


def test_track_faces_links_by_overlap():
    left, right = (0, 0, 10, 10), (50, 0, 60, 10)
    frames = [
        [Face(box=left), Face(box=right)],
        [Face(box=(51, 0, 61, 10)), Face(box=(1, 0, 11, 10))],  # order swapped, boxes moved a little
        [Face(box=(2, 1, 12, 11))],  # the right person is gone
        [Face(box=(100, 50, 110, 60))],  # someone new
    ]
    tracks = track_faces(frames)
    assert tracks == [{0: 0, 1: 1, 2: 0}, {0: 1, 1: 0}, {3: 0}]
    assert box_iou(left, left) == 1.0 and box_iou(left, right) == 0.0


@needs_dlib
def test_dlib_finds_the_astronaut():
    data = pytest.importorskip("skimage.data")
    image = Image.fromarray(data.astronaut())
    faces = get_face_detector("dlib").detect(image)
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0].box
    assert faces[0].landmarks.shape == (5, 2)
    assert all(x0 - 5 <= x <= x1 + 5 and y0 - 5 <= y <= y1 + 5 for x, y in faces[0].landmarks)
    # The same face found on a 4x upscaled copy (detected at reduced size, boxes mapped back).
    big = image.resize((2048, 2048))
    big_faces = get_face_detector("dlib").detect(big)
    assert len(big_faces) == 1
    big_box, box = np.array(big_faces[0].box) / 4, np.array(faces[0].box)
    np.testing.assert_allclose((big_box[:2] + big_box[2:]) / 2, (box[:2] + box[2:]) / 2, atol=10)
    assert 0.8 < (big_box[2] - big_box[0]) / (box[2] - box[0]) < 1.25


@needs_dlib
def test_dlib_detector_is_read_from_its_cached_copy_with_the_same_results(tmp_path, monkeypatch):
    import dlib

    from deepfake_hf.faces.dlib import _frontal_face_detector

    data = pytest.importorskip("skimage.data")
    pixels = np.asarray(Image.fromarray(data.astronaut()).resize((400, 400)))
    monkeypatch.setenv("DEEPFAKE_HF_CACHE", str(tmp_path))
    built = _frontal_face_detector(dlib)  # built from dlib's data, saved to the cache
    saved = tmp_path / "dlib" / f"frontal_face_detector-{dlib.__version__}.svm"
    assert saved.is_file() and not list(saved.parent.glob("*.tmp"))
    monkeypatch.setattr(dlib, "get_frontal_face_detector", lambda: pytest.fail("rebuilt instead of read"))
    cached = _frontal_face_detector(dlib)

    def found(detector):
        rects, scores, kinds = detector.run(pixels, 1, -0.5)
        return [(r.left(), r.top(), r.right(), r.bottom()) for r in rects], list(scores), list(kinds)

    assert found(cached) == found(built) and found(built)[0]
    saved.write_bytes(b"damaged")  # a copy that does not load is rebuilt and replaced
    monkeypatch.undo()
    monkeypatch.setenv("DEEPFAKE_HF_CACHE", str(tmp_path))
    assert found(_frontal_face_detector(dlib)) == found(built)
    assert saved.stat().st_size > 1000


# ----------------------------------------------------------------------------------------- real media
@needs_dlib
def test_alignment_reproduces_deepfakebench_crops(shared_media):
    """Re-aligning DeepfakeBench-style released face crops is (nearly) the identity transform."""
    detector = get_face_detector("dlib")
    paths = sorted((shared_media / "faces").rglob("*.png"))[::4]
    assert paths
    for path in paths:
        image = Image.open(path)
        faces = detector.detect(image)
        assert faces, path
        matrix = alignment_matrix(faces[0].landmarks, size=image.width)
        assert abs(math.sqrt(np.linalg.det(matrix[:, :2])) - 1) < 0.03, path
        assert np.abs(matrix[:, 2]).max() < 8, path


@needs_dlib
@pytest.mark.slow  # decodes the shared real media (10-20 s): outside the 90 s fast subset
def test_dlib_on_real_videos_and_contact_sheet(shared_media):
    detector = get_face_detector("dlib")
    videos = sorted((shared_media / "videos").rglob("*.mp4"))
    assert videos
    sheet_tiles = []
    for path in videos:
        frames = real_video_frames(path, 8)
        found = 0
        for index, frame in enumerate(frames):
            faces = detector.detect(frame)
            if not faces:
                continue
            found += 1
            crop = align_face(frame, faces[0])
            assert crop.size == (256, 256)
            inside = apply(alignment_matrix(faces[0].landmarks), faces[0].landmarks)
            assert (inside > 0).all() and (inside < 256).all(), path
            # centred: the landmarks' centroid is near the middle of the crop
            assert np.abs(inside.mean(0) - 128).max() < 40, path
            if index in (0, 4):
                sheet_tiles.append(crop)
        assert found >= 0.9 * len(frames), f"{path}: faces in {found}/{len(frames)} frames"
    ARTIFACTS.mkdir(exist_ok=True)
    columns = 8
    rows = math.ceil(len(sheet_tiles) / columns)
    sheet = Image.new("RGB", (128 * columns, 128 * rows))
    for i, tile in enumerate(sheet_tiles):
        sheet.paste(tile.resize((128, 128)), (128 * (i % columns), 128 * (i // columns)))
    sheet.save(ARTIFACTS / "aligned_faces.png")
    assert Path(ARTIFACTS / "aligned_faces.png").stat().st_size > 10_000


@needs_dlib
@pytest.mark.slow  # dlib on many frames in threads (~10 s)
def test_dlib_detector_is_safe_across_threads(shared_media):
    """Workers share one detector object; results must not depend on thread interleaving."""
    from concurrent.futures import ThreadPoolExecutor

    videos = sorted((shared_media / "videos").rglob("*.mp4"))[:2]
    frames = [frame.resize((frame.width // 2, frame.height // 2)) for path in videos
              for frame in real_video_frames(path, 8)]
    detector = get_face_detector("dlib")
    sequential = [[face.box for face in detector.detect(frame)] for frame in frames]
    with ThreadPoolExecutor(2) as pool:
        for _ in range(2):
            threaded = [[face.box for face in faces] for faces in pool.map(detector.detect, frames)]
            assert threaded == sequential


# ------------------------------------------------------------------------------------------ detect_video
def test_detect_video_falls_back_to_detect_per_frame():
    class OnlyDetect:
        name = "only-detect"
        calls = 0

        def detect(self, image):
            self.calls += 1
            return [Face(box=(0, 0, image.width, image.height))]

    detector = OnlyDetect()
    frames = [Image.new("RGB", (10 + i, 10)) for i in range(3)]
    results = detect_video(detector, frames)
    assert detector.calls == 0  # lazy: a caller may stop (cancel) between frames
    assert [faces[0].box for faces in results] == [(0, 0, 10, 10), (0, 0, 11, 10), (0, 0, 12, 10)]
    assert detector.calls == 3
    assert list(detect_video(NoFaceDetector(), frames)) == [[], [], []]


def moving_face_frames(count=12, size=(1280, 720), step=(24, 6), gap=(6, 7)):
    """A real face (astronaut) drifting across a textured 720p frame; absent in the `gap` frames."""
    return drifting_face_frames(count, size, (240, 260), (200, 200), step, gap)


def assert_same_faces(per_frame, video, context):
    """The same faces per frame; where found both ways, boxes overlap and landmarks agree closely."""
    errors = []
    for index, (expected, found) in enumerate(zip(per_frame, video, strict=True)):
        assert len(found) == len(expected), f"{context} frame {index}: {len(found)} faces vs {len(expected)}"
        for a, b in zip(expected, found):
            width = a.box[2] - a.box[0]
            assert box_iou(a.box, b.box) >= 0.6, f"{context} frame {index}: boxes {a.box} vs {b.box}"
            error = np.abs(a.landmarks - b.landmarks).max() / width
            assert error <= 0.06, f"{context} frame {index}: landmarks differ by {error:.1%} of the face width"
            errors.append(error)
    assert errors and np.mean(errors) <= 0.015, f"{context}: mean landmark difference {np.mean(errors):.2%}"


@needs_dlib
def test_detect_video_matches_per_frame_detection_on_a_moving_face(monkeypatch):
    frames = moving_face_frames()
    detector = get_face_detector("dlib", keyframe_interval=8)
    per_frame = [detector.detect(frame) for frame in frames]
    assert [len(faces) for faces in per_frame] == [1] * 6 + [0, 0] + [1] * 4  # the clip is what it claims
    searched = []
    whole_frame_search = type(detector)._search
    monkeypatch.setattr(detector, "_search", lambda small: searched.append(1) or whole_frame_search(detector, small))
    video = list(detector.detect_video(frames))
    assert_same_faces(per_frame, video, "generated clip")
    # whole-frame searches: frame 0 (key), 6 (face lost), 7 (nobody to follow), 8 (key); the rest followed
    assert len(searched) == 4
    # interval 1 is per-frame detection exactly
    searched.clear()
    exact = list(detect_video(get_face_detector("dlib", keyframe_interval=1), frames[:3]))
    assert ([[face.box for face in faces] for faces in exact]
            == [[face.box for face in faces] for faces in per_frame[:3]])


@needs_dlib
def test_detect_video_is_safe_across_threads():
    """Two videos followed at once in two threads give what each gives alone (state is per call, models per thread)."""
    from concurrent.futures import ThreadPoolExecutor

    clips = [moving_face_frames(6, gap=()), moving_face_frames(6, step=(-20, 4), gap=())]
    detector = get_face_detector("dlib")
    alone = [[[face.box for face in faces] for faces in detector.detect_video(frames)] for frames in clips]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(
            lambda frames: [[face.box for face in faces] for faces in detector.detect_video(frames)], clips))
    assert together == alone


@needs_dlib
def test_dlib_models_are_never_shared_by_live_threads_and_outlive_ended_ones(monkeypatch):
    """Each thread gets its own detector and predictor (dlib's are not thread-safe); a thread that has ended hands
    its pair on, so the Detector's new worker threads on every call do not load the 100 MB predictor again."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import dlib

    detector = get_face_detector("dlib")
    barrier = threading.Barrier(2)

    def models_of_two_live_threads():
        def models(_):
            pair = detector._models()
            barrier.wait(timeout=60)  # both threads hold theirs at the same time
            return tuple(map(id, pair))

        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(models, range(2)))

    first = models_of_two_live_threads()
    main = tuple(map(id, detector._models()))
    assert len({*first, main}) == 3 and len({model for pair in first for model in pair} | set(main)) == 6
    monkeypatch.setattr(dlib, "shape_predictor", lambda path: pytest.fail("loaded again"))
    monkeypatch.setattr(dlib, "get_frontal_face_detector", lambda: pytest.fail("built again"))
    second = models_of_two_live_threads()
    assert len({*second, main}) == 3


@needs_dlib
def test_detect_video_options_are_checked():
    for options in ({"keyframe_interval": 0}, {"track_margin": 0}):
        with pytest.raises(FaceError, match="keyframe_interval") as raised:
            get_face_detector("dlib", **options)
        assert isinstance(raised.value, DeepfakeHFError) and isinstance(raised.value, ValueError)


@needs_dlib
@pytest.mark.parametrize("name", ["videos/ffpp/original/004.mp4",  # 720p
                                  # 1080p: decoding it alone takes ~3 s of CPU
                                  pytest.param("videos/ffpp/Face2Face/750_743.mp4", marks=pytest.mark.slow)])
def test_detect_video_matches_per_frame_detection_on_real_clips(shared_media, name):
    detector = get_face_detector("dlib")
    frames = real_video_frames(shared_media / name, 16)
    per_frame = [detector.detect(frame) for frame in frames]
    assert sum(map(bool, per_frame)) >= 15, name
    assert_same_faces(per_frame, list(detect_video(detector, frames)), name)


# ------------------------------------------------------------------------------ DeepfakeBench face mode
DEEPFAKEBENCH_REFERENCE = Path(__file__).parent / "data" / "deepfakebench"


def bilinear_cv2_convention(pixels, inverse, size):
    """Reference resampling written from cv2.warpAffine's definition: dst(x, y) = src(inverse @ (x, y, 1)),
    pixel centres at integer coordinates, bilinear, zero outside."""
    height, width = pixels.shape[:2]
    out = np.zeros((size[1], size[0], pixels.shape[2]))
    for y in range(size[1]):
        for x in range(size[0]):
            sx, sy = inverse[:2] @ (x, y, 1.0)
            x0, y0 = math.floor(sx), math.floor(sy)
            for yy, wy in ((y0, 1 - (sy - y0)), (y0 + 1, sy - y0)):
                for xx, wx in ((x0, 1 - (sx - x0)), (x0 + 1, sx - x0)):
                    if 0 <= xx < width and 0 <= yy < height:
                        out[y, x] += wx * wy * pixels[yy, xx]
    return out


def test_warp_affine_uses_the_cv2_pixel_centre_convention():
    from deepfake_hf.faces import warp_affine

    rng = np.random.default_rng(0)
    pixels = (rng.random((20, 24, 3)) * 255).astype(np.uint8)
    angle, scale = 0.4, 1.7
    matrix = np.array([[scale * math.cos(angle), -scale * math.sin(angle), 3.3],
                       [scale * math.sin(angle), scale * math.cos(angle), -7.6]])
    out = np.asarray(warp_affine(Image.fromarray(pixels), matrix, (30, 26)), dtype=np.float64)
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))
    expected = bilinear_cv2_convention(pixels.astype(np.float64), inverse, (30, 26))
    assert np.abs(out - expected).max() <= 0.5 + 1e-6  # rounding only
    # a 2x enlargement puts crop pixel (2k, 2k) exactly on source pixel (k, k)
    doubled = np.asarray(warp_affine(pixels, np.array([[2.0, 0, 0], [0, 2.0, 0]]), (48, 40)))
    np.testing.assert_array_equal(doubled[::2, ::2], pixels)


def test_deepfakebench_face_mode_needs_aligned_crops_and_is_named():
    assert "deepfakebench" in face_mode_names()
    from deepfake_hf.data.datasets import DataSourceError, load_source

    with pytest.raises(DataSourceError, match="does not apply"):
        load_source("unused", faces="deepfakebench", face_crop="margin")


@needs_dlib
def test_deepfakebench_detector_keeps_only_the_largest_face():
    data = pytest.importorskip("skimage.data")
    image = Image.fromarray(data.astronaut())
    small = image.resize((image.width * 3 // 4, image.height * 3 // 4))
    canvas = Image.new("RGB", (image.width + small.width, image.height))
    canvas.paste(small, (0, 0))
    canvas.paste(image, (small.width, 0))
    detector = get_face_detector("deepfakebench")
    assert detector.name == "deepfakebench"
    assert len(detector._models()[0](np.asarray(canvas), 1)) == 2  # dlib itself sees both faces
    (face,) = detector.detect(canvas)
    assert face.box[0] >= small.width  # the larger one only
    (alone,) = detector.detect(image)
    np.testing.assert_allclose(face.landmarks - (small.width, 0), alone.landmarks, atol=6.0)  # same face


def test_deepfakebench_frame_numbers_match_its_preprocessing(shared_media):
    """The frames DeepfakeBench's preprocessing took from each shared video (recorded in reference.json)."""
    from deepfake_hf.media import sample_frame_indices, video_info

    reference = json.loads((DEEPFAKEBENCH_REFERENCE / "reference.json").read_text())
    for video, entry in reference["videos"].items():
        assert video_info(shared_media / video)["frames"] == entry["frame_count"], video
        assert sample_frame_indices(entry["frame_count"], 32, sampling="deepfakebench") == entry["frames"], video
        # the package's even rule rounds to the nearest frame instead: it differs somewhere on these videos
    assert any(sample_frame_indices(e["frame_count"], 32) != e["frames"] for e in reference["videos"].values())


@needs_dlib
@pytest.mark.slow  # full-resolution dlib at 2x upsampling on 1080p frames: ~10 s
def test_deepfakebench_face_mode_reproduces_its_crops(shared_media):
    """PSNR >= 40 dB against crops made by DeepfakeBench's own code (tests/data/deepfakebench/README.md)."""
    from deepfake_hf.media import read_video_frames

    reference = json.loads((DEEPFAKEBENCH_REFERENCE / "reference.json").read_text())
    detector = get_face_detector("deepfakebench")
    checked = 0
    for video, entry in reference["videos"].items():
        for frame, name in entry.get("reference_crops", {}).items():
            frames = read_video_frames(shared_media / video, 32, sampling="deepfakebench")
            image = frames[entry["frames"].index(int(frame))]
            (face,) = detector.detect(image)
            ours = np.asarray(align_face(image, face), dtype=np.float64)
            theirs = np.asarray(Image.open(DEEPFAKEBENCH_REFERENCE / name).convert("RGB"), dtype=np.float64)
            mse = ((ours - theirs) ** 2).mean()
            psnr = 10 * math.log10(255**2 / mse) if mse else math.inf
            assert psnr >= 40, (video, frame, psnr)
            print(f"{video} frame {frame}: PSNR {psnr:.1f} dB, max difference {np.abs(ours - theirs).max():g}")
            checked += 1
    assert checked >= 5
