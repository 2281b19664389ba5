"""The "deepfakebench-fast" face mode: the exact mode's coarse pyramid levels first, the same faces."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_hf.faces import face_mode, get_face_detector, recorded_face_modes

pytest.importorskip("dlib")
pytest.importorskip("cv2")


def face_frame(size, faces, seed=0):
    """A frame of blurred noise with scikit-image's astronaut pasted at (height, centre x, centre y) fractions."""
    data = pytest.importorskip("skimage.data")
    face = Image.fromarray(data.astronaut()).crop((120, 0, 400, 300))
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, size=(size[1] // 24 + 1, size[0] // 24 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(low).resize(size, Image.BILINEAR)
    for height, x, y in faces:
        pasted = face.resize((round(height * face.width / face.height), height), Image.BILINEAR)
        image.paste(pasted, (round(x * size[0] - pasted.width / 2), round(y * size[1] - pasted.height / 2)))
    return image


def same_faces(first, second):
    return len(first) == len(second) and all(
        a.box == b.box and np.array_equal(a.landmarks, b.landmarks) for a, b in zip(first, second))


def test_fast_mode_is_its_own_name_and_never_recorded():
    fast = get_face_detector("deepfakebench-fast")
    assert fast.coarse_first and not get_face_detector("deepfakebench").coarse_first
    assert "deepfakebench" in recorded_face_modes() and "deepfakebench-fast" not in recorded_face_modes()
    assert fast.frame_sampling == "deepfakebench" and fast.crops == ("align",)
    # worker processes rebuild it from its name and options
    rebuilt = face_mode(fast.name)(**fast.worker_options())
    assert type(rebuilt) is type(fast) and rebuilt.coarse_first


def test_coarse_scan_gives_the_full_scans_boxes_and_scores():
    import dlib

    from deepfake_hf.faces.deepfakebench import coarse_face_boxes, coarse_levels

    rgb = np.asarray(face_frame((640, 480), [(330, 0.4, 0.5)]))
    detector = dlib.get_frontal_face_detector()
    skip = coarse_levels(640, 480)
    assert skip > 0
    coarse = coarse_face_boxes(detector, rgb, skip, margin=0)
    assert coarse is not None and list(coarse) == list(detector(rgb, 1))


@pytest.mark.parametrize("size, faces, coarse_settles", [
    pytest.param((1920, 1080), [(700, 0.3, 0.5), (160, 0.8, 0.3), (130, 0.85, 0.75)], True,
                 marks=pytest.mark.slow),  # several faces, large and small, at 1080p (1.5 s)
    ((1280, 720), [(520, 0.35, 0.5), (120, 0.8, 0.3)], True),  # a large and a small face: the coarse levels settle it
    ((640, 480), [(330, 0.5, 0.5)], True),
    ((640, 480), [(110, 0.25, 0.5), (100, 0.75, 0.5)], False),  # small faces only: the whole frame is scanned
    ((640, 480), [], False),  # no face: scanned whole, dropped by both
])
def test_fast_mode_finds_what_the_exact_mode_finds(size, faces, coarse_settles):
    image = face_frame(size, faces)
    exact, fast = get_face_detector("deepfakebench"), get_face_detector("deepfakebench-fast")
    found, found_fast = exact.detect(image), fast.detect(image)
    assert same_faces(found, found_fast)
    assert bool(found) == bool(faces)
    assert fast.full_frame_scans == (0 if coarse_settles else 1)


def test_margin_keeps_a_face_at_the_edge_of_the_skipped_levels_exact():
    """A face whose best box lies just below the coarse levels: dlib's overlap test lets that smaller, better
    box suppress the coarse scan's larger one, so the coarse answer alone would be wrong (this frame was found
    by a sweep of face sizes); the mode scans the whole frame instead."""
    import dlib

    from deepfake_hf.faces.deepfakebench import coarse_face_boxes, coarse_levels

    image = face_frame((640, 480), [(132, 0.5, 0.5)], seed=132)
    rgb = np.asarray(image)
    detector = dlib.get_frontal_face_detector()
    coarse = coarse_face_boxes(detector, rgb, coarse_levels(640, 480), margin=0)
    full = list(detector(rgb, 1))
    assert coarse and full and max(coarse, key=lambda r: r.area()) != max(full, key=lambda r: r.area())
    assert coarse_face_boxes(detector, rgb, coarse_levels(640, 480)) is None  # the default margin refuses it
    exact, fast = get_face_detector("deepfakebench"), get_face_detector("deepfakebench-fast")
    assert same_faces(exact.detect(image), fast.detect(image))
    assert fast.full_frame_scans == 1


@pytest.mark.slow
def test_fast_mode_matches_the_exact_mode_on_the_shared_videos(shared_media):
    from deepfake_hf.cli.bench.exact_faces import compare_frame, video_frames

    exact, fast = get_face_detector("deepfakebench"), get_face_detector("deepfakebench-fast")
    videos = sorted(Path(shared_media, "videos").rglob("*.mp4"))
    assert videos
    for video in videos:
        for number, image in video_frames(video, every=60):
            row = compare_frame(exact, fast, image, "exact" if number % 2 else "fast")
            assert row["same_boxes"] and row["faces_exact"] == row["faces_fast"], (video.name, number, row)


def test_bench_exact_faces_checks_its_options(tmp_path, capsys):
    from deepfake_hf.cli import main

    assert main(["bench", "exact-faces", "--every", "0", "--out", str(tmp_path / "x.json")]) != 0
    assert "--every: 0" in capsys.readouterr().err
    assert main(["bench", "exact-faces", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "x.json")]) != 0
    assert "missing.mp4: no such file" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_bench_exact_faces_compares_both_modes_on_a_clip(tmp_path):
    import json

    pytest.importorskip("av")
    from deepfake_hf.cli.bench.exact_faces import run_exact_faces_benchmark
    from deepfake_hf.cli.bench.measure import write_face_video

    clip = write_face_video(tmp_path / "clip.mp4", seconds=1, size=(320, 240))
    results = run_exact_faces_benchmark(tmp_path / "r.json", (clip,), every=5, generated=False)
    assert json.loads((tmp_path / "r.json").read_text())["benchmark"] == "exact-faces"
    summary = results["all"]
    assert summary["frames"] == 5 and summary["identical_percent"] == 100.0 and not results["mismatches"]
    assert summary["frames_kept_exact"] == summary["frames_kept_fast"] > 0
    assert summary["cpu_s_exact"] > 0 and summary["cpu_s_fast"] > 0
    assert set(results["load_average_1_5_15min"]) == {"before", "after"}
