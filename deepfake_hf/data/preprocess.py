"""`deepfake-hf preprocess`: videos and images -> aligned face crops, laid out as DeepfakeBench lays them out.

    DIR/<dataset>/<method>/frames/<video>/<NNN>.png      the aligned 256x256 face crop of frame NNN of the video
    DIR/<dataset>/<method>/landmarks/<video>/<NNN>.npy   every landmark point of that crop, found again in it
    DIR/manifest.csv                                     path,label,group,method,frame: what `train`/`evaluate` read
    DIR/<dataset>.json                                   the same in DeepfakeBench's dataset JSON format
    DIR/summary.json                                     counts, skipped files, the landmark predictor used

This is DeepfakeBench's own output (SCLBD/DeepfakeBench, preprocessing/preprocess.py), so its loader reads the
JSON as it reads its released ones: a crop is named by its frame number in the video (`019.png`), and its
landmarks lie where the loader looks for them (the crop's path with `frames` -> `landmarks`, `.png` -> `.npy`):
an (N, 2) integer array of all N points of the shape predictor (68 with dlib's public model, 81 with
DeepfakeBench's own `--landmarks-model`), placed by dlib in the crop itself as DeepfakeBench does
(`CropLandmarks`). A crop in which dlib finds no face again has no `.npy` (DeepfakeBench's loader then reads
zeros); without dlib installed no `.npy` is written (summary.json says so).

The inputs are data sources as `data.load_source` reads them (a folder with real/ and fake/ or mapped
folders, a CSV/JSONL manifest, a DeepfakeBench JSON), so labels, methods and video groups follow the same
rules. Frames are sampled with the package's one sampler (DeepfakeBench's frames with `faces="deepfakebench"`);
the most prominent face of each frame is aligned the DeepfakeBench way (five points onto the ArcFace template,
scale 1.3) or cut with a margin. Decoding and face detection are what cost most on CPUs, so the work runs
data-parallel under torchrun / accelerate launch (see `distributed`): rank r takes videos r, r+N, ...; rank 0
writes the merged manifest, which is identical to a single-process run's. `resume=True` skips the videos a
killed run already finished.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_hf.defaults import DEFAULT_CROP, DEFAULT_NUM_FRAMES, FACE_SCALE, FACE_SIZE
from deepfake_hf.errors import DeepfakeHFError
from deepfake_hf.faces import FACE_CROPS
from deepfake_hf.runtime.distributed import PartWriter, barrier, current_ranks, iter_parts, remove_parts, shard
from deepfake_hf.runtime.outputs import SafeCsvWriter, owned_output_dir, prepare_output_dir, undone_on_failure

logger = logging.getLogger(__name__)
MANIFEST = "manifest.csv"
MANIFEST_COLUMNS = ("path", "label", "group", "method", "frame")


class PreprocessError(DeepfakeHFError):
    """A preprocess run that cannot go on (no inputs, two videos that would share one crop folder)."""


def _videos(sources, label_map, num_frames):
    """One work item per video, frame folder or still: (source path, kind, label, group, method, frames).

    Entries of one frame folder (or one video file) share a group and arrive together from the collector."""
    from deepfake_hf.data.datasets import _collect, _normalise_label_map

    label_map = _normalise_label_map(label_map)
    for spec in sources:
        _, collected = _collect(str(spec), label_map, num_frames, None, None, default_split="test")
        for path, problem in collected.problems:
            yield {"source": str(path), "problem": problem}
        current = None
        for entry in collected.entries:
            key = (entry.group, entry.kind)
            if current is not None and current["key"] == key and entry.kind == "image" and entry.frame >= 0:
                current["frames"].append((entry.frame, entry.path))
                continue
            if current is not None:
                yield current
            current = {"key": key, "source": entry.group if entry.frame >= 0 else entry.path, "kind": entry.kind,
                       "label": entry.label, "group": entry.group, "method": entry.method,
                       "frames": [(entry.frame, entry.path)]}
        if current is not None:
            yield current


def _crop_folder(item, dataset):
    """(method, DATASET/METHOD/frames/VIDEO): where a work item's crops go."""
    method = item["method"] or ("real" if item["label"] == 0 else "fake")
    frame_folder = item["kind"] == "image" and item["frames"][0][0] >= 0
    video = Path(item["group"]).name if frame_folder else Path(item["group"]).stem
    return method, Path(dataset) / method / "frames" / video


def landmark_path(crop: str) -> str:
    """Where DeepfakeBench's loader looks for a crop's landmarks: its path (as the JSON gives it) with every
    `frames` made `landmarks` and `.png` made `.npy` (training/dataset/abstract_dataset.py). Written there,
    they are found whatever the dataset, method and video are called."""
    return crop.replace("frames", "landmarks").replace(".png", ".npy")


def _one_folder_each(items, dataset):
    """`items`, refusing the first that would share its crop folder with an earlier one: every rank sees every
    item, so all stop there alike, before cropping more (the merge would refuse the run at its very end)."""
    seen = {}
    for item in items:
        if "kind" in item:
            folder = _crop_folder(item, dataset)[1].as_posix()
            if folder in seen:
                raise PreprocessError(f"{item['source']} and {seen[folder]} would share the crop folder {folder}; "
                                      "give them different video ids (group) or preprocess them into separate folders")
            seen[folder] = item["source"]
        yield item


def _crop_video(item, out, dataset, detector, landmarks, num_frames, crop, size, scale, pool=None):
    """Write the crops (and their landmarks) of one work item; returns its manifest record."""
    from deepfake_hf.faces import crop_face, detect_video, frame_sampling_of, most_prominent
    from deepfake_hf.media import MediaError, open_image, read_numbered_video_frames

    method, folder = _crop_folder(item, dataset)
    record = {"source": item["source"], "label": item["label"], "method": method, "video": folder.as_posix(),
              "frames": [], "frames_without_face": 0, "frames_without_landmarks": 0, "problem": None}
    try:
        if item["kind"] == "video":
            frames = read_numbered_video_frames(item["source"], num_frames, sampling=frame_sampling_of(detector))
        else:
            frames = [(max(frame, 0), open_image(path)) for frame, path in item["frames"]]
    except MediaError as error:
        record["problem"] = error.problem
        return record
    (out / folder).mkdir(parents=True, exist_ok=True)
    # A video's (or frame folder's) frames together: the detector follows faces between key frames.
    images = [image for _, image in frames]
    found = detect_video(detector, images) if pool is None else pool.detect_video(detector, images)
    for (number, image), faces in zip(frames, found):
        if not faces:
            record["frames_without_face"] += 1
            continue
        name = (folder / f"{number:03d}.png").as_posix()
        face_crop = crop_face(image, most_prominent(faces), crop=crop, size=size, scale=scale)
        face_crop.save(out / name, compress_level=1)
        points = landmarks(face_crop) if landmarks is not None else None
        if points is not None:
            (out / landmark_path(name)).parent.mkdir(parents=True, exist_ok=True)
            np.save(out / landmark_path(name), points)
        elif landmarks is not None:
            record["frames_without_landmarks"] += 1
        record["frames"].append({"frame": int(number), "crop": name})
    if not record["frames"]:
        record["problem"] = "no face found in any frame"
    return record


def _face_detector(faces, size, scale, landmarks_model):
    """The detector of a face mode name, for crops of `size` at `scale` (a detector object is used as is)."""
    from deepfake_hf.faces import DeepfakeBenchFaceDetector, face_mode

    if not isinstance(faces, str):
        return faces
    mode = face_mode(faces)
    if landmarks_model is not None and issubclass(mode, DeepfakeBenchFaceDetector):
        # DeepfakeBench places its key points with the predictor it saves the landmarks of
        return mode(size=size, scale=scale, landmarks_model=landmarks_model)
    return mode.build(size, scale)


def _crop_landmarks(landmarks_model):
    """The `CropLandmarks` of the predictor asked for (dlib's 68-point one by default); None without dlib."""
    from deepfake_hf.faces import dlib_available
    from deepfake_hf.faces.deepfakebench import CropLandmarks

    if landmarks_model is None and not dlib_available():
        logger.warning("dlib is not installed: the crops get no landmarks (pip install 'deepfake-hf[faces]')")
        return None
    if landmarks_model is not None and not Path(landmarks_model).is_file():
        raise PreprocessError(f"--landmarks-model: {landmarks_model}: no such file")
    return CropLandmarks(landmarks_model)


# A failed run leaves nothing it created; an interrupted one (or a resumed one) keeps its crops for --resume.
@undone_on_failure(keep_on_interrupt=True, unless="resume")
def preprocess(sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
               faces: str | Any = "dlib", num_frames: int = DEFAULT_NUM_FRAMES, crop: str = DEFAULT_CROP,
               size: int = FACE_SIZE, scale: float = FACE_SCALE, dataset: str | None = None, split: str = "test",
               label_map: dict | None = None, overwrite: bool = False, resume: bool = False,
               progress: bool | None = None, landmarks: bool = True,
               landmarks_model: str | os.PathLike[str] | None = None, json_prefix: str = "",
               face_workers: int | None = None) -> dict:
    """Crop the faces of `sources` into `out_dir` (see the module docstring); returns the summary dict.

    `faces` is a face mode name or a detector object; `landmarks_model` a dlib shape predictor file for the
    crops' landmarks (DeepfakeBench's 81-point one; default dlib's 68-point one); `landmarks=False` writes
    none (finding them costs about as much as a frame's detection in the "dlib" mode). `json_prefix` goes
    before every frame path in the DeepfakeBench JSON (default: paths relative to `out_dir`, as the package
    reads them; DeepfakeBench opens the paths that start with "." from the folder it runs in, e.g.
    "./datasets/crops/"). `face_workers`: face detection processes (0: in this process; None: the default of
    `faces.workers.pool_size`). Runs as one rank of a
    torchrun / accelerate launch when started by one; every rank returns the summary.
    """
    from tqdm.auto import tqdm

    from deepfake_hf.faces import finds_faces
    from deepfake_hf.faces.workers import FacePool, pool_size

    if "frames" in json_prefix or ".png" in json_prefix:
        # DeepfakeBench finds a crop's landmarks by rewriting these in the whole path: it would look elsewhere
        raise PreprocessError(f"--json-prefix: {json_prefix!r} contains 'frames' or '.png', which DeepfakeBench's "
                              "loader rewrites to find the landmarks; choose a folder named otherwise")
    if crop not in FACE_CROPS:
        raise PreprocessError(f"crop: {crop!r} is not one of {', '.join(FACE_CROPS)}")
    sources = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    if not sources:
        raise PreprocessError("no inputs given")
    dataset = dataset or Path(str(sources[0]).split("#")[0]).stem or "dataset"
    detector = _face_detector(faces, size, scale, landmarks_model)
    if not finds_faces(detector):
        raise PreprocessError("faces: preprocess crops faces; install the faces extra (pip install -e \".[faces]\") "
                              "or choose --faces dlib")
    if not landmarks and landmarks_model is not None:
        raise PreprocessError("--landmarks-model: not used with --no-landmarks; give one of them")
    crop_landmarks = _crop_landmarks(landmarks_model) if landmarks else None
    # one video's frames over several processes for a mode whose frames are independent (faces.workers)
    workers = pool_size(detector, face_workers)
    pool = FacePool(workers) if workers else None
    ranks = current_ranks()
    out = Path(out_dir)
    owner = None
    if ranks.is_main:
        if resume:
            prepare_output_dir(out, overwrite=True)
        else:
            owner = owned_output_dir(out, overwrite)
            owner.__enter__()
    barrier(ranks)
    try:
        with PartWriter(out / MANIFEST, ranks, resume=resume) as part:
            items = shard(_one_folder_each(_videos(sources, label_map, num_frames), dataset), ranks)
            bar = tqdm(desc=f"preprocess (rank {ranks.rank}/{ranks.world_size})", unit="video",
                       disable=(not progress) if progress is not None else None)
            for position, (index, item) in enumerate(items):
                if position < part.done:  # finished before a kill: its crops and line are there
                    continue
                if "problem" in item and "kind" not in item:
                    record = {"source": item["source"], "problem": item["problem"], "frames": []}
                else:
                    record = _crop_video(item, out, dataset, detector, crop_landmarks, num_frames, crop, size,
                                         scale, pool)
                part.write(index, record)
                bar.update(1)
            bar.close()
        barrier(ranks)
        summary = _merge(out, dataset, split, ranks, crop_landmarks, json_prefix) if ranks.is_main else None
        barrier(ranks)
    finally:
        if pool is not None:
            pool.close()
        if owner is not None:
            owner.__exit__(None, None, None)
    if summary is None:
        summary = json.loads((out / "summary.json").read_text())
    return summary


def _merge(out, dataset, split, ranks, landmarks, json_prefix=""):
    """Rank 0: the part files, in input order, become manifest.csv, DATASET.json and summary.json."""
    summary = {"videos": 0, "crops": 0, "frames_without_face": 0, "frames_without_landmarks": 0, "skipped": 0,
               "skipped_files": [],
               "landmarks": None if landmarks is None else {"predictor": Path(landmarks.predictor_path).name,
                                                            "points": landmarks.points}}
    tree, seen = {}, {}
    with open(out / MANIFEST, "w", newline="", encoding="utf-8") as handle:
        writer = SafeCsvWriter(handle)
        writer.writerow(MANIFEST_COLUMNS)
        for _, record in iter_parts(out / MANIFEST, ranks.world_size):
            summary["frames_without_face"] += record.get("frames_without_face", 0)
            summary["frames_without_landmarks"] += record.get("frames_without_landmarks", 0)
            if record.get("problem"):
                logger.warning("skipping %s: %s", record["source"], record["problem"])
                summary["skipped"] += 1
                summary["skipped_files"].append({"path": record["source"], "problem": record["problem"]})
                continue
            if record["video"] in seen:
                raise PreprocessError(f"{record['source']} and {seen[record['video']]} would share the crop folder "
                                      f"{record['video']}; rename one or preprocess them into separate folders")
            seen[record["video"]] = record["source"]
            summary["videos"] += 1
            label = "real" if record["label"] == 0 else "fake"
            for frame in record["frames"]:
                writer.writerow([frame["crop"], label, record["video"], record["method"], frame["frame"]])
                summary["crops"] += 1
            label_name = f"{dataset}_real" if record["label"] == 0 else f"{dataset}_{record['method']}"
            tree.setdefault(label_name, {}).setdefault(split, {})[Path(record["video"]).name] = {
                "label": label_name, "frames": [json_prefix + frame["crop"] for frame in record["frames"]]}
    (out / f"{dataset}.json").write_text(json.dumps({dataset: tree}, indent=1))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    remove_parts(out / MANIFEST, ranks.world_size)
    return summary


__all__ = ["PreprocessError", "landmark_path", "preprocess"]
