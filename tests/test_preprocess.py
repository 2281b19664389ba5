"""deepfake_hf.data.preprocess: face crops in DeepfakeBench's layout, a manifest train/evaluate read, resume, and
2-process runs (torchrun) that give the single-process output exactly."""

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from deepfake_hf.data.preprocess import PreprocessError, preprocess
from deepfake_hf.faces import Face, dlib_available
from tests.conftest import PROJECT_ROOT, write_image
from tests.media_samples import level_index, write_video


class CentreFace:
    """A face detector stub: one face with five key points in the middle of every frame (none on tiny ones)."""

    name = "stub"

    def detect(self, image):
        width, height = image.size
        if min(width, height) < 40:
            return []
        x, y = width / 2, height / 2
        points = np.array([[x - 8, y - 6], [x + 8, y - 6], [x, y + 2], [x - 6, y + 10], [x + 6, y + 10]])
        return [Face(box=(x - 16, y - 16, x + 16, y + 16), score=1.0, landmarks=points)]


def make_source(root):
    """real/ and fake/Deepfakes/ with videos, stills, a frame folder, a broken file and a faceless still."""
    write_video(root / "real" / "000.mp4", frames=12, size=(64, 48))
    write_image(root / "real" / "still.png", size=(64, 64), seed=1)
    write_video(root / "fake" / "Deepfakes" / "000_001.mp4", frames=12, size=(64, 48))
    for frame in range(5):
        write_image(root / "fake" / "Deepfakes" / "002_003" / f"{frame:03d}.png", size=(64, 64), seed=10 + frame)
    (root / "fake" / "broken.mp4").write_bytes(b"not a video")
    write_image(root / "fake" / "tiny.png", size=(24, 24), seed=2)  # too small for the stub: no face
    return root


def read_manifest(out):
    with open(out / "manifest.csv", newline="") as handle:
        return list(csv.reader(handle))


def test_layout_frame_numbers_manifest_and_json(tmp_path):
    from deepfake_hf.data.datasets import load_source
    from deepfake_hf.media import sample_frame_indices

    source = make_source(tmp_path / "ffpp")
    out = tmp_path / "crops"
    summary = preprocess([source], out, faces=CentreFace(), num_frames=4, size=64, progress=False)
    assert summary["videos"] == 4 and summary["skipped"] == 2
    assert {item["path"] for item in summary["skipped_files"]} == {str(source / "fake" / "broken.mp4"),
                                                                   str(source / "fake" / "tiny.png")}
    rows = read_manifest(out)
    assert rows[0] == ["path", "label", "group", "method", "frame"]
    videos = {row[2] for row in rows[1:]}
    assert videos == {"ffpp/real/frames/000", "ffpp/real/frames/still", "ffpp/Deepfakes/frames/000_001",
                      "ffpp/Deepfakes/frames/002_003"}
    assert summary["crops"] == len(rows) - 1 == 4 + 1 + 4 + 4
    numbers = {}
    for path, label, group, _, frame in rows[1:]:
        crop = out / path
        assert crop.parent == out / group and crop.name == f"{int(frame):03d}.png"
        assert Image.open(crop).size == (64, 64)
        assert label == ("real" if group.startswith("ffpp/real") else "fake")
        numbers.setdefault(group, []).append(int(frame))
    # a video's crops are named by frame number in the video (DeepfakeBench's `019.png`), not by sample position:
    # the frames of the generated clips are flat grey at a level that encodes their index
    assert numbers["ffpp/real/frames/000"] == sample_frame_indices(12, 4) == [0, 4, 7, 11]
    for number in numbers["ffpp/real/frames/000"]:
        centre = Image.open(out / "ffpp" / "real" / "frames" / "000" / f"{number:03d}.png").crop((28, 28, 36, 36))
        assert level_index(centre) == number
    assert numbers["ffpp/Deepfakes/frames/002_003"] == sample_frame_indices(5, 4) and numbers[
        "ffpp/real/frames/still"] == [0]
    # the stub's flat crops hold no face dlib could find again: no landmarks, and the summary says so
    assert not list(out.rglob("*.npy"))
    if dlib_available():
        assert summary["landmarks"] == {"predictor": "shape_predictor_68_face_landmarks.dat", "points": 68}
        assert summary["frames_without_landmarks"] == summary["crops"]

    dataset = load_source(str(out / "manifest.csv"))
    assert len(dataset) == summary["crops"] and set(dataset["label"]) == {0, 1}
    bench = load_source(str(out / "ffpp.json") + "#test", num_frames=0)
    assert len(bench) == summary["crops"]
    assert sorted(zip(bench["path"], bench["frame"])) == sorted((str(out / row[0]), int(row[4])) for row in rows[1:])


def test_refuses_what_it_cannot_do(tmp_path):
    source = make_source(tmp_path / "src")
    with pytest.raises(PreprocessError, match="faces"):
        preprocess([source], tmp_path / "a", faces="none", progress=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("user file")
    with pytest.raises(FileExistsError, match="--overwrite"):
        preprocess([source], tmp_path / "busy", faces=CentreFace(), num_frames=2, size=48, progress=False)
    preprocess([source], tmp_path / "busy", faces=CentreFace(), num_frames=2, size=48, overwrite=True,
               progress=False)
    assert (tmp_path / "busy" / "mine.txt").read_text() == "user file"


def test_resume_after_a_kill_finishes_with_the_same_output_and_no_repeated_work(tmp_path, monkeypatch):
    import deepfake_hf.data.preprocess as module

    source = make_source(tmp_path / "src")
    clean = tmp_path / "clean"
    preprocess([source], clean, faces=CentreFace(), num_frames=3, size=48, progress=False)

    calls = []
    real_crop = module._crop_video

    def crop_then_die(item, *args):
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed while working on the fourth video
        calls.append(item["source"])
        return real_crop(item, *args)

    monkeypatch.setattr(module, "_crop_video", crop_then_die)
    with pytest.raises(KeyboardInterrupt):
        preprocess([source], tmp_path / "resumed", faces=CentreFace(), num_frames=3, size=48, progress=False)
    first = list(calls)
    calls.clear()
    monkeypatch.setattr(module, "_crop_video", lambda item, *args: (calls.append(item["source"]),
                                                                    real_crop(item, *args))[1])
    preprocess([source], tmp_path / "resumed", faces=CentreFace(), num_frames=3, size=48, resume=True,
               progress=False)
    assert not set(first) & set(calls) and len(first) == 3  # nothing done twice
    assert read_manifest(tmp_path / "resumed") == read_manifest(clean)
    for row in read_manifest(clean)[1:]:
        assert (tmp_path / "resumed" / row[0]).read_bytes() == (clean / row[0]).read_bytes()


RUN_PREPROCESS = """
import json, sys
from deepfake_hf.data.preprocess import preprocess
from tests.test_preprocess import CentreFace
summary = preprocess([sys.argv[1]], sys.argv[2], faces=CentreFace(), num_frames=3, size=48, progress=False)
print(json.dumps({**summary, "torch_imported": "torch" in sys.modules}))
"""


def json_objects(text):
    """Every JSON object printed in `text`: two ranks printing at once may put both on one line."""
    decoder, found, start = json.JSONDecoder(), [], text.find("{")
    while start != -1:
        value, end = decoder.raw_decode(text, start)
        found.append(value)
        start = text.find("{", end)
    return found


def test_json_objects_reads_objects_printed_on_one_line():
    assert json_objects('log\n{"a": 1}{"b": {"c": 2}}\n\n{"d": 3}\n') == [{"a": 1}, {"b": {"c": 2}}, {"d": 3}]


@pytest.mark.slow
def test_two_processes_under_torchrun_give_the_single_process_output(tmp_path):
    source = make_source(tmp_path / "src")
    for extra in range(3):  # more videos than ranks, an odd count
        write_video(source / "real" / f"{extra + 10:03d}.mp4", frames=8, size=(64, 48))
    script = tmp_path / "run.py"
    script.write_text(RUN_PREPROCESS)
    env = {"PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    import os

    env = {**os.environ, **env}
    single = subprocess.run([sys.executable, str(script), str(source), str(tmp_path / "one")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    torchrun = shutil.which("torchrun") or str(PROJECT_ROOT.parent / "venv" / "bin" / "torchrun")
    double = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script),
                             str(source), str(tmp_path / "two")], env=env, capture_output=True, text=True,
                            timeout=300)
    assert double.returncode == 0, double.stderr[-3000:]
    assert torchrun  # (the module form above is what torchrun runs)
    assert read_manifest(tmp_path / "two") == read_manifest(tmp_path / "one")
    for row in read_manifest(tmp_path / "one")[1:]:
        assert (tmp_path / "two" / row[0]).read_bytes() == (tmp_path / "one" / row[0]).read_bytes()
    assert json.loads((tmp_path / "two" / "summary.json").read_text()) == json.loads(
        (tmp_path / "one" / "summary.json").read_text())
    # the ranks meet without torch (its import cost each rank ~1.8 s of CPU); both print the summary
    printed = json_objects(double.stdout)
    assert len(printed) == 2 and not any(summary["torch_imported"] for summary in printed)
    assert not list((tmp_path / "two").glob("*.part-*"))
