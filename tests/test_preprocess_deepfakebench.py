"""`deepfake-hf preprocess` as a drop-in for DeepfakeBench's preprocessing: crops named by frame number, all
landmark points of each crop found again in it (DeepfakeBench's .npy), and a dataset JSON that DeepfakeBench's
loader reads to the same entries, frames and landmarks.

The loader below is written from DeepfakeBench's documented behaviour (SCLBD/DeepfakeBench@8a4a7bf,
training/dataset/abstract_dataset.py, as ../shared/REFERENCE.md records it), not copied: per video of a split,
the frame paths sorted by the number in the file name, the first `frame_num` of them, labels through its
label_dict (every "*real" label is 0), and a frame's landmarks read from its path with `frames` -> `landmarks`
and `.png` -> `.npy` (zeros of (81, 2) when that file is missing).
"""

import functools
import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_hf.data.preprocess import PreprocessError, landmark_path, preprocess
from deepfake_hf.errors import DeepfakeHFError
from deepfake_hf.faces import dlib_available
from deepfake_hf.media import sample_frame_indices
from tests.test_preprocess import CentreFace, read_manifest

needs_dlib = pytest.mark.skipif(not dlib_available(), reason="dlib / face_recognition_models not installed")
REFERENCE = Path(__file__).parent / "data" / "deepfakebench" / "reference.json"


def write_face_video(path, frames=12, size=(320, 240), step=(6, 2)):
    """An H.264 clip of a real face (skimage's astronaut) drifting over a textured background."""
    av = pytest.importorskip("av")
    data = pytest.importorskip("skimage.data")
    face = Image.fromarray(data.astronaut()).crop((120, 0, 400, 300)).resize((120, 130))
    rng = np.random.default_rng(0)
    background = Image.fromarray(rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8))
    background = background.resize(size, Image.BILINEAR)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(10), options={"crf": "4", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for index in range(frames):
            frame = background.copy()
            frame.paste(face, (60 + step[0] * index, 40 + step[1] * index))
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def face_source(root):
    """real/ and fake/FaceSwap/ with generated face videos (12 and 10 frames)."""
    write_face_video(root / "real" / "000.mp4", frames=12)
    write_face_video(root / "fake" / "FaceSwap" / "000_003.mp4", frames=10, step=(-4, 3))
    return root


def deepfakebench_loader(json_path, dataset, split, frame_num, label_dict):
    """[(video, label, frame path, landmarks)] as DeepfakeBench's loader reads a dataset JSON (frame mode).

    A path that starts with "." is opened as it is, from the current folder, as DeepfakeBench opens it; other
    relative paths from the JSON's folder, as the package reads them (DeepfakeBench would put its rgb_dir and a
    Windows separator before them)."""
    base = Path(json_path).parent
    data = json.loads(Path(json_path).read_text())
    entries = []
    for by_split in data[dataset].values():
        for video, info in by_split[split].items():
            frames = sorted(info["frames"], key=lambda path: int(path.replace("\\", "/").split("/")[-1].split(".")[0]))
            total = len(frames)
            if frame_num < total:  # it sets the total to frame_num first: the step is 1, the first frames are read
                total = frame_num
                step = total // frame_num
                frames = [frames[i] for i in range(0, total, step)][:frame_num]
            for frame in frames:
                landmark_file = Path(frame.replace("frames", "landmarks").replace(".png", ".npy"))
                landmark_file = landmark_file if frame.startswith(".") else base / landmark_file
                landmarks = np.load(landmark_file) if landmark_file.exists() else np.zeros((81, 2))
                entries.append((info["label"] + "_" + video, label_dict[info["label"]], frame, landmarks))
    return entries


@functools.cache
def dlib_models(predictor_file):
    import dlib

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(predictor_file)


def redetected(crop_file, predictor_file=None):
    """dlib's detector and predictor run in a saved crop the way DeepfakeBench runs them: on its BGR copy,
    upsampled once, in the first box; every point as integers."""
    from deepfake_hf.faces.dlib import _dlib_model_path

    detector, predictor = dlib_models(predictor_file or _dlib_model_path("shape_predictor_68_face_landmarks.dat"))
    bgr = np.ascontiguousarray(np.asarray(Image.open(crop_file).convert("RGB"))[..., ::-1])
    boxes = detector(bgr, 1)
    if not len(boxes):
        return None
    shape = predictor(bgr, boxes[0])
    return np.array([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)])


@needs_dlib
@pytest.mark.parametrize("faces", ["dlib", "deepfakebench"])
def test_crops_named_by_frame_number_with_their_landmarks_and_a_json_deepfakebench_reads(tmp_path, faces):
    from deepfake_hf.data.datasets import load_source
    from deepfake_hf.faces import aligned_template

    source = face_source(tmp_path / "gen")
    out = tmp_path / "crops"
    summary = preprocess([source], out, faces=faces, num_frames=5, dataset="gen", progress=False)
    assert summary["videos"] == 2 and summary["skipped"] == 0 and summary["frames_without_face"] == 0
    assert summary["landmarks"] == {"predictor": "shape_predictor_68_face_landmarks.dat", "points": 68}
    sampling = "deepfakebench" if faces == "deepfakebench" else "even"
    expected = {"gen/real/frames/000": sample_frame_indices(12, 5, sampling=sampling),
                "gen/FaceSwap/frames/000_003": sample_frame_indices(10, 5, sampling=sampling)}
    rows = read_manifest(out)[1:]
    numbers = {}
    for path, _, group, _, frame in rows:
        numbers.setdefault(group, []).append(int(frame))
        assert path == f"{group}/{int(frame):03d}.png"
    # the frames DeepfakeBench's preprocessing takes (linspace, rounded down) differ from the even rule's here
    assert numbers == expected and (faces == "dlib") == (expected["gen/real/frames/000"] == [0, 3, 5, 8, 11])

    with_landmarks = 0
    for path, *_ in rows:
        npy = out / landmark_path(path)
        assert npy == out / path.replace("/frames/", "/landmarks/").replace(".png", ".npy")
        again = redetected(out / path)
        if again is None:
            assert not npy.exists()
            continue
        points = np.load(npy)
        assert points.shape == (68, 2) and points.dtype == np.int64 and np.array_equal(points, again)
        # crop pixels: the 68-point layout's eye, nose and mouth points sit on the aligned template there
        assert np.abs(points[[37, 44, 30, 49, 55]] - aligned_template(256, 1.3)).max() < 20
        with_landmarks += 1
    assert with_landmarks == len(rows) - summary["frames_without_landmarks"] and with_landmarks >= len(rows) - 1

    # DeepfakeBench's loader over the JSON: the manifest's videos, labels, frames and landmarks
    label_dict = {"gen_real": 0, "gen_FaceSwap": 1}
    read = deepfakebench_loader(out / "gen.json", "gen", "test", 32, label_dict)
    assert sorted((frame, label) for _, label, frame, _ in read) == sorted(
        (path, int(label == "fake")) for path, label, *_ in rows)
    assert {video for video, *_ in read} == {"gen_real_000", "gen_FaceSwap_000_003"}
    for _, _, frame, landmarks in read:
        npy = out / landmark_path(frame)
        assert np.array_equal(landmarks, np.load(npy) if npy.exists() else np.zeros((81, 2)))
    # with fewer frames than a video has, DeepfakeBench reads its first ones by number; so does the package
    first = deepfakebench_loader(out / "gen.json", "gen", "test", 2, label_dict)
    package = load_source(str(out / "gen.json") + "#test", num_frames=2)
    assert sorted(str(out / frame) for _, _, frame, _ in first) == sorted(package["path"])
    assert sorted(package["frame"]) == sorted(n for group in expected.values() for n in group[:2])
    # and the package's reader of DeepfakeBench JSON round-trips the whole file to the manifest's entries
    everything = load_source(str(out / "gen.json") + "#test", num_frames=0)
    assert sorted(zip(everything["path"], everything["frame"], everything["label"], everything["group"])) == sorted(
        (str(out / path), int(frame), int(label == "fake"), str(out / group)) for path, label, group, _, frame in rows)


@needs_dlib
def test_landmarks_model_sets_the_points_written_and_is_checked(tmp_path):
    from deepfake_hf.faces.dlib import _dlib_model_path

    source = tmp_path / "gen"
    write_face_video(source / "real" / "000.mp4", frames=6)
    five = _dlib_model_path("shape_predictor_5_face_landmarks.dat")  # stands in for the 81-point file
    out = tmp_path / "crops"
    summary = preprocess([source], out, faces="dlib", num_frames=3, dataset="gen", landmarks_model=five,
                         progress=False)
    assert summary["landmarks"] == {"predictor": "shape_predictor_5_face_landmarks.dat", "points": 5}
    npys = sorted(out.rglob("*.npy"))
    assert npys and all(np.load(npy).shape == (5, 2) for npy in npys)
    for npy in npys:
        crop = Path(str(npy).replace(os.sep + "landmarks" + os.sep, os.sep + "frames" + os.sep)).with_suffix(".png")
        assert np.array_equal(np.load(npy), redetected(crop, five))

    with pytest.raises(PreprocessError, match="--landmarks-model: .*missing.dat: no such file"):
        preprocess([source], tmp_path / "a", faces="dlib", landmarks_model=tmp_path / "missing.dat", progress=False)
    (tmp_path / "notes.dat").write_text("not a model")
    with pytest.raises(DeepfakeHFError, match="--landmarks-model: .*notes.dat is not a dlib shape predictor"):
        preprocess([source], tmp_path / "b", faces="dlib", landmarks_model=tmp_path / "notes.dat", progress=False)
    # DeepfakeBench places its key points with the same predictor: they need the 68-point layout
    with pytest.raises(DeepfakeHFError, match="--landmarks-model: .* places 5 points"):
        preprocess([source], tmp_path / "c", faces="deepfakebench", landmarks_model=five, progress=False)
    with pytest.raises(PreprocessError, match="--landmarks-model: not used with --no-landmarks"):
        preprocess([source], tmp_path / "d", faces="dlib", landmarks=False, landmarks_model=five, progress=False)
    assert not any((tmp_path / name).exists() for name in "abcd")
    summary = preprocess([source], tmp_path / "none", faces="dlib", num_frames=3, landmarks=False, progress=False)
    assert summary["landmarks"] is None and summary["crops"] == 3 and not list((tmp_path / "none").rglob("*.npy"))


@needs_dlib
def test_json_prefix_gives_the_paths_deepfakebench_opens_from_where_it_runs(tmp_path, monkeypatch):
    source = tmp_path / "gen"
    write_face_video(source / "fake" / "FaceSwap" / "000_003.mp4", frames=6)
    bench = tmp_path / "DeepfakeBench"
    out = bench / "datasets" / "crops"
    summary = preprocess([source], out, faces="dlib", num_frames=3, dataset="gen", json_prefix="./datasets/crops/",
                         progress=False)
    monkeypatch.chdir(bench)
    read = deepfakebench_loader(out / "gen.json", "gen", "test", 32, {"gen_FaceSwap": 1})
    assert len(read) == summary["crops"] == 3
    for _, label, frame, landmarks in read:
        assert frame.startswith("./datasets/crops/gen/FaceSwap/frames/000_003/") and Path(frame).is_file()
        assert label == 1 and landmarks.shape == (68, 2)
        assert np.array_equal(landmarks, np.load(out / landmark_path(frame[len("./datasets/crops/"):])))
    with pytest.raises(PreprocessError, match="--json-prefix: .* contains 'frames'"):
        preprocess([source], tmp_path / "x", faces="dlib", json_prefix="./frames-cache/", progress=False)


@needs_dlib
def test_cli_landmarks_model(tmp_path, capsys):
    from deepfake_hf.cli import main
    from deepfake_hf.faces.dlib import _dlib_model_path

    source = tmp_path / "gen"
    write_face_video(source / "real" / "000.mp4", frames=4)
    model = _dlib_model_path("shape_predictor_68_face_landmarks.dat")
    code = main(["preprocess", str(source), "--out", str(tmp_path / "out"), "--frames", "2", "--faces", "dlib",
                 "--landmarks-model", model, "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["landmarks"]["points"] == 68 and summary["crops"] == 2
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.png")) == ["000.png", "003.png"]


def test_frame_names_are_the_frames_deepfakebench_takes_from_real_videos(tmp_path, shared_media):
    """The shared clips, with DeepfakeBench's frame sampling: crops carry the numbers its preprocessing gave."""
    reference = json.loads(REFERENCE.read_text())
    video = "videos/ffpp/original/004.mp4"
    frames = reference["videos"][video]["frames"]

    class CentreFaceDeepfakeBenchFrames(CentreFace):
        frame_sampling = "deepfakebench"

    source = tmp_path / "src"
    (source / "real").mkdir(parents=True)
    (source / "real" / "004.mp4").symlink_to(shared_media / video)
    summary = preprocess([source], tmp_path / "out", faces=CentreFaceDeepfakeBenchFrames(), num_frames=32,
                         dataset="ff", progress=False)
    assert summary["crops"] == 32
    names = sorted((tmp_path / "out" / "ff" / "real" / "frames" / "004").glob("*.png"))
    assert [int(path.stem) for path in names] == frames and names[1].name == f"{frames[1]:03d}.png"



RUN_DLIB_PREPROCESS = """
import sys
from deepfake_hf.data.preprocess import preprocess
preprocess([sys.argv[1]], sys.argv[2], faces="dlib", num_frames=3, dataset="gen", progress=False)
"""


@needs_dlib
@pytest.mark.slow
def test_two_processes_under_torchrun_write_the_same_crops_and_landmarks(tmp_path):
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    source = face_source(tmp_path / "gen")
    for extra in range(2):
        write_face_video(source / "real" / f"{extra + 10:03d}.mp4", frames=6, step=(3 * extra, 2))
    script = tmp_path / "run.py"
    script.write_text(RUN_DLIB_PREPROCESS)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    for name, launcher in (("one", []), ("two", ["-m", "torch.distributed.run", "--nproc_per_node", "2"])):
        run = subprocess.run([sys.executable, *launcher, str(script), str(source), str(tmp_path / name)], env=env,
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]

    def written(folder):
        return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*")
                if path.is_file() and path.suffix in (".png", ".npy", ".json", ".csv")}

    one, two = written(tmp_path / "one"), written(tmp_path / "two")
    assert one == two and sum(name.endswith(".npy") for name in one) >= 12
