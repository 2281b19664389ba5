"""faces/workers.py: face detection in worker processes gives the in-thread results, in order, and never leaks."""

import importlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from PIL import Image

from deepfake_hf.errors import AnalysisCancelled, DeepfakeHFError
from deepfake_hf.faces import Face, detect_video, dlib_available, get_face_detector
from deepfake_hf.faces.workers import AHEAD, FacePool
from deepfake_hf.runtime.threads import FACE_WORKERS_VARIABLE, face_worker_budget, thread_budget

from .conftest import PROJECT_ROOT, tiny_detector, write_image
from .media_samples import astronaut_face, drifting_face_frames, real_video_frames

needs_dlib = pytest.mark.skipif(not dlib_available(), reason="dlib / face_recognition_models not installed")


def face_frames(count=8, size=(640, 360), gap=(5,)):
    """A real face (astronaut) drifting over a textured frame, absent in the `gap` frames; one frame with two faces."""
    frames = drifting_face_frames(count, size, (150, 160), (100, 80), (16, 4), gap)
    if count > 2:
        frames[2].paste(astronaut_face((150, 160)).resize((120, 128)), (460, 60))
    return frames


def same_faces(expected, found):
    """Bit-identical faces: boxes, scores and landmarks, frame by frame."""
    assert len(found) == len(expected)
    for index, (a, b) in enumerate(zip(expected, found)):
        assert len(a) == len(b), f"frame {index}"
        for x, y in zip(a, b):
            assert x.box == y.box and x.score == y.score, f"frame {index}"
            assert np.array_equal(x.landmarks, y.landmarks), f"frame {index}"


def gone(pid, timeout=10.0):
    """Whether process `pid` has exited (and been reaped, or is a zombie) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def pool():
    with FacePool(2) as shared:
        yield shared


# ----------------------------------------------------------------------------------------------- budget
def test_face_worker_budget_follows_the_thread_budget_and_the_variable(monkeypatch):
    monkeypatch.delenv(FACE_WORKERS_VARIABLE, raising=False)
    assert face_worker_budget() == (thread_budget() if thread_budget() > 1 else 0)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(os.cpu_count() or 1))
    assert face_worker_budget() == 0  # one core per rank: in-thread
    monkeypatch.setenv(FACE_WORKERS_VARIABLE, "3")
    assert face_worker_budget() == 3
    monkeypatch.setenv(FACE_WORKERS_VARIABLE, "many")
    with pytest.raises(DeepfakeHFError, match=FACE_WORKERS_VARIABLE):
        face_worker_budget()


# ----------------------------------------------------------------------------------------------- results
@pytest.mark.slow  # starts worker processes
@needs_dlib
@pytest.mark.parametrize("name", ["dlib", "deepfakebench"])
def test_workers_give_the_in_thread_faces(pool, name):
    frames = face_frames()
    detector = get_face_detector(name)
    expected = list(detect_video(detector, frames))
    assert [len(faces) for faces in expected][5] == 0 and any(expected)
    same_faces(expected, list(pool.detect_video(detector, frames)))
    if name == "deepfakebench":  # the workers' stage times reach the parent's copy of the mode
        assert detector.stage_times["detection"][2] == 2 * len(frames)


@pytest.mark.slow  # starts worker processes
@needs_dlib
def test_workers_keep_a_tracking_video_in_one_process_and_threads_share_the_pool(pool):
    frames = face_frames(count=10)
    detector = get_face_detector("dlib", keyframe_interval=4, min_score=0.2)
    assert not detector.independent_frames and get_face_detector("deepfakebench").independent_frames
    expected = list(detect_video(detector, frames))
    results = [None] * 3

    def run(slot):
        results[slot] = list(pool.detect_video(detector, frames))

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for result in results:
        same_faces(expected, result)


@pytest.mark.slow  # starts worker processes
@needs_dlib
def test_workers_match_on_real_clips(pool, shared_media):
    video = sorted((shared_media / "videos").rglob("*.mp4"))[0]
    frames = real_video_frames(video, 4)
    for name in ("dlib", "deepfakebench"):
        detector = get_face_detector(name)
        same_faces(list(detect_video(detector, frames)), list(pool.detect_video(detector, frames)))


def test_detectors_that_cannot_be_rebuilt_run_in_the_calling_thread():
    class Custom:  # any object with detect(): not a registered mode, so not rebuilt in a worker
        name = "custom"

        def detect(self, image):
            return [Face(box=(0, 0, image.width, image.height), landmarks=np.zeros((5, 2)))]

    with FacePool(2) as empty:
        found = list(empty.detect_video(Custom(), [Image.new("RGB", (8, 6))] * 2))
        assert [face.box for faces in found for face in faces] == [(0, 0, 8, 6)] * 2
        assert empty.pids == []  # no process was started for it


@pytest.mark.slow  # starts worker processes
def test_a_mode_the_worker_cannot_build_falls_back_to_the_thread(tmp_path, monkeypatch):
    # A mode registered from a folder only this process knows: the worker cannot import it.
    from deepfake_hf import faces

    (tmp_path / "test_only_box.py").write_text(textwrap.dedent("""
        from deepfake_hf.faces.base import Face, FaceMode, register

        @register
        class OnlyHere(FaceMode):
            name = "only-here"

            def detect(self, image):
                return [Face(box=(1, 2, 3, 4))]
    """))
    from deepfake_hf.faces import base

    importlib.invalidate_caches()
    monkeypatch.setattr(faces, "__path__", [*faces.__path__, str(tmp_path)])
    monkeypatch.setattr(base, "_MODES", dict(base._MODES))  # what it registers goes when the test ends
    monkeypatch.delitem(sys.modules, f"{faces.__name__}.test_only_box", raising=False)
    mode = get_face_detector("only-here")
    with FacePool(1) as single:
        assert [f.box for f in next(iter(single.detect_video(mode, [Image.new("RGB", (8, 8))])))] == [(1, 2, 3, 4)]
        assert len(single.pids) == 1  # it asked a worker once, which said it could not build the mode
        assert list(single.detect_video(mode, [Image.new("RGB", (8, 8))]))[0][0].box == (1, 2, 3, 4)
    sys.modules.pop(f"{faces.__name__}.test_only_box", None)
    if hasattr(faces, "test_only_box"):
        delattr(faces, "test_only_box")


@pytest.mark.slow  # starts worker processes
def test_workers_that_cannot_start_leave_detection_to_the_thread(monkeypatch):
    from deepfake_hf.faces import workers

    monkeypatch.setattr(workers.sys, "executable", "/bin/false")  # every worker exits at once
    mode = get_face_detector("none")
    detected = []
    monkeypatch.setattr(type(mode), "worker_options", lambda self: {})
    monkeypatch.setattr(type(mode), "detect_video", lambda self, frames: (detected.append(1) or [] for _ in frames))
    with FacePool(1) as broken:
        assert list(broken.detect_video(mode, [Image.new("RGB", (8, 8))] * 2)) == [[], []]
    assert detected == [1, 1]


# ----------------------------------------------------------------------------------------------- the scorer
@pytest.mark.slow  # starts worker processes
@needs_dlib
def test_detector_results_and_crops_are_identical_with_and_without_workers(tmp_path):
    from deepfake_hf.scoring.detector import Detector

    frames = face_frames(count=6)
    video = tmp_path / "face.mp4"
    write_frames(video, frames)
    photo = tmp_path / "photo.png"
    frames[2].save(photo)
    noise = write_image(tmp_path / "noise.png", size=(64, 64))
    model = tiny_detector("vit")
    processor = model.matching_image_processor()
    results, crops = {}, {}
    for workers in (0, 2):
        with Detector(model, processor, faces="dlib", num_frames=6, progress=False, face_workers=workers) as run:
            results[workers] = run([video, photo, noise], frame_scores=True)
            plan = run.scorer.plan(real_video_frames(video, 6))
            crops[workers] = [np.asarray(crop) for crop in plan.crops]
            assert (run.scorer.face_pool is not None) == (workers > 0)
            pids = run.scorer.face_pool.pids if workers else []
        assert all(gone(pid) for pid in pids)  # a closed Detector ends its workers
    assert results[0] == results[2]
    assert results[0][0].faces and results[0][1].faces == 2
    assert len(crops[0]) == len(crops[2]) > 0
    assert all(np.array_equal(a, b) for a, b in zip(crops[0], crops[2]))


@pytest.mark.slow  # starts worker processes
@needs_dlib
def test_by_default_workers_take_modes_with_independent_frames_only(monkeypatch):
    from deepfake_hf.scoring.detector import Detector
    from deepfake_hf.scoring.scorer import Scorer

    monkeypatch.setenv(FACE_WORKERS_VARIABLE, "1")
    model = tiny_detector("vit")
    processor = model.matching_image_processor()
    frames = face_frames(count=2)
    for name, pooled in (("dlib", False), ("deepfakebench", True)):
        scorer = Scorer(model, processor, faces=name)
        try:
            scorer.plan(frames)
            assert (scorer.face_pool is not None) == pooled, name  # evaluate, calibrate: one file at a time
        finally:
            scorer.close()
    assert Detector(model, processor, faces="dlib", progress=False).scorer.face_workers is None  # the scorer's rule
    assert Detector(model, processor, faces="dlib", progress=False, face_workers=2).scorer.face_workers == 2
    with pytest.raises(DeepfakeHFError, match="face_workers"):
        Detector(model, processor, faces="dlib", progress=False, face_workers=-1)


@pytest.mark.slow  # starts worker processes
@needs_dlib
def test_preprocess_writes_the_same_crops_with_workers(tmp_path, monkeypatch):
    from deepfake_hf.data.preprocess import preprocess

    video = tmp_path / "in" / "fake" / "face.mp4"  # a folder with real/ and fake/
    video.parent.mkdir(parents=True)
    (tmp_path / "in" / "real").mkdir()
    write_frames(video, face_frames(count=6))
    outputs, pooled = {}, []
    original = FacePool.detect_video
    monkeypatch.setattr(FacePool, "detect_video",
                        lambda self, *args: pooled.append(self.size) or original(self, *args))
    for workers in ("0", "2"):
        monkeypatch.setenv(FACE_WORKERS_VARIABLE, workers)
        out = tmp_path / f"out{workers}"
        summary = preprocess([tmp_path / "in"], out, faces="deepfakebench", num_frames=6, dataset="gen", progress=False,
                             landmarks=False)
        outputs[workers] = (summary, {path.relative_to(out).as_posix(): path.read_bytes()
                                      for path in sorted(out.rglob("*.png"))})
    assert outputs["0"][0]["crops"] > 0 and pooled == [2]  # the second run's one video went through 2 workers
    assert outputs["0"] == outputs["2"]


def write_frames(path, frames, fps=10):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "1", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# ----------------------------------------------------------------------------------------------- cancel, leaks
@pytest.mark.slow  # starts worker processes
@needs_dlib
def test_cancel_stops_within_a_frame_and_the_pool_stays_usable():
    detector = get_face_detector("deepfakebench")
    frames = face_frames(count=8, size=(1280, 720))
    cancel = threading.Event()
    with FacePool(1) as single:
        stream = single.detect_video(detector, frames, cancel)
        next(stream)
        # set while the caller waits for frame 1, with frame 2 queued behind it in the worker
        threading.Timer(0.1, cancel.set).start()
        started = time.monotonic()
        with pytest.raises(AnalysisCancelled):
            list(stream)
        assert time.monotonic() - started < 0.1 + 0.5  # no waiting for the frame in hand
        expected = list(detect_video(detector, frames[:3]))
        same_faces(expected, list(single.detect_video(detector, frames[:3])))  # the abandoned answers were skipped
        (worker,) = single._workers
        assert worker.discarded <= 1  # only the frame in hand was finished: the queued one was dropped


@pytest.mark.slow  # starts worker processes
@needs_dlib
def test_an_abandoned_detector_request_stops_its_workers_within_a_frame(tmp_path):
    from deepfake_hf.scoring.detector import Detector

    video = tmp_path / "face.mp4"
    write_frames(video, face_frames(count=8, size=(1280, 720)))
    model = tiny_detector("vit")
    cancel = threading.Event()
    with Detector(model, model.matching_image_processor(), faces="deepfakebench", num_frames=8, progress=False,
                  face_workers=1) as detector:
        detector.scorer.plan(face_frames(count=1))  # start the worker, untimed
        threading.Timer(1.0, cancel.set).start()  # the app's time limit running out mid-video
        started = time.monotonic()
        try:  # the Detector raises, or (its last file) hands the file back failed as cancelled
            results = detector([video], cancel=cancel)
        except AnalysisCancelled:
            results = None
        assert results is None or results[0].error == "cancelled", results
        assert time.monotonic() - started < 1.0 + 1.0
        (worker,) = detector.scorer.face_pool._workers
        worker.settle()
        # the frame in hand, and at most the one queued behind it (the abort may land after the worker took it)
        assert worker.discarded <= AHEAD


CTRL_C = """
import sys, threading
from PIL import Image
sys.path.insert(0, sys.argv[1])
from tests.test_face_workers import face_frames
from deepfake_hf.faces import get_face_detector
from deepfake_hf.faces.workers import FacePool

pool = FacePool(2)
frames = face_frames(count=40, size=(1280, 720))
stream = pool.detect_video(get_face_detector("deepfakebench"), frames)
next(stream)
print(" ".join(map(str, pool.pids)), flush=True)
list(stream)
"""


@pytest.mark.slow  # starts worker processes
@needs_dlib
def test_ctrl_c_ends_the_workers():
    process = subprocess.Popen([sys.executable, "-c", CTRL_C, str(PROJECT_ROOT)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    pids = [int(pid) for pid in process.stdout.readline().split()]
    assert pids, process.stderr.read()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert "KeyboardInterrupt" in err
    assert all(gone(pid) for pid in pids)
