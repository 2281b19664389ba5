"""`deepfake-hf preprocess`: videos and images -> aligned face crops in DeepfakeBench's layout.

    DIR/<dataset>/<method>/<video>/<frame>.png   the aligned 256x256 face crop of one sampled frame
    DIR/<dataset>/<method>/<video>/<frame>.npy   its five key points (eyes, nose, mouth corners) in crop pixels
    DIR/manifest.csv                             path,label,group,method,frame: what `train`/`evaluate` read
    DIR/<dataset>.json                           the same in DeepfakeBench's dataset JSON format
    DIR/summary.json                             counts: videos, crops, frames without a face, skipped files

The inputs are data sources as `data.load_source` reads them (a folder with real/ and fake/ or mapped
folders, a CSV/JSONL manifest, a DeepfakeBench JSON), so labels, methods and video groups follow the same
rules. Frames are sampled with the package's one sampler; the most prominent face of each frame is aligned
the DeepfakeBench way (five points onto the ArcFace template, scale 1.3) or cut with a margin. Decoding
and face detection are what cost most on CPUs, so the work runs data-parallel under torchrun / accelerate
launch (see `distributed`): rank r takes videos r, r+N, ...; rank 0 writes the merged manifest, which is
identical to a single-process run's. `resume=True` skips the videos a killed run already finished.
"""

import json
import logging
from pathlib import Path

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
    """(method, DATASET/METHOD/VIDEO): where a work item's crops go."""
    method = item["method"] or ("real" if item["label"] == 0 else "fake")
    frame_folder = item["kind"] == "image" and item["frames"][0][0] >= 0
    video = Path(item["group"]).name if frame_folder else Path(item["group"]).stem
    return method, Path(dataset) / method / video


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


def _crop_video(item, out, dataset, detector, num_frames, crop, size, scale):
    """Write the crops of one work item; returns its manifest record."""
    from deepfake_hf.faces import aligned_points, aligns, crop_face, frame_sampling_of, most_prominent
    from deepfake_hf.media import MediaError, open_image, read_video_frames

    method, folder = _crop_folder(item, dataset)
    record = {"source": item["source"], "label": item["label"], "method": method, "video": folder.as_posix(),
              "frames": [], "frames_without_face": 0, "problem": None}
    try:
        if item["kind"] == "video":
            frames = list(enumerate(read_video_frames(item["source"], num_frames=num_frames,
                                                      sampling=frame_sampling_of(detector))))
        else:
            frames = [(max(frame, 0), open_image(path)) for frame, path in item["frames"]]
    except MediaError as error:
        record["problem"] = error.problem
        return record
    from deepfake_hf.faces import detect_video

    (out / folder).mkdir(parents=True, exist_ok=True)
    # A video's (or frame folder's) frames together: the detector follows faces between key frames.
    for (index, image), faces in zip(frames, detect_video(detector, [image for _, image in frames])):
        if not faces:
            record["frames_without_face"] += 1
            continue
        face = most_prominent(faces)
        name = folder / f"{index:03d}.png"
        crop_face(image, face, crop=crop, size=size, scale=scale).save(out / name, compress_level=1)
        if aligns(face, crop):  # an aligned crop keeps its five key points beside it, as DeepfakeBench's do
            np.save(out / name.with_suffix(".npy"), aligned_points(face.landmarks, size, scale))
        record["frames"].append({"frame": int(index), "crop": name.as_posix()})
    if not record["frames"]:
        record["problem"] = "no face found in any frame"
    return record


# A failed run leaves nothing it created; an interrupted one (or a resumed one) keeps its crops for --resume.
@undone_on_failure(keep_on_interrupt=True, unless="resume")
def preprocess(sources, out_dir, faces="dlib", num_frames=DEFAULT_NUM_FRAMES, crop=DEFAULT_CROP, size=FACE_SIZE,
               scale=FACE_SCALE, dataset=None,
               split="test", label_map=None, overwrite=False, resume=False, progress=None):
    """Crop the faces of `sources` into `out_dir` (see the module docstring); returns the summary dict.

    Runs as one rank of a torchrun / accelerate launch when started by one; every rank returns the summary.
    """
    from tqdm.auto import tqdm

    from deepfake_hf.faces import finds_faces, get_face_detector

    if crop not in FACE_CROPS:
        raise PreprocessError(f"crop: {crop!r} is not one of {', '.join(FACE_CROPS)}")
    sources = [sources] if isinstance(sources, (str, Path)) else list(sources)
    if not sources:
        raise PreprocessError("no inputs given")
    dataset = dataset or Path(str(sources[0]).split("#")[0]).stem or "dataset"
    detector = get_face_detector(faces)
    if not finds_faces(detector):
        raise PreprocessError("faces: preprocess crops faces; install the faces extra (pip install -e \".[faces]\") "
                              "or choose --faces dlib")
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
                    record = _crop_video(item, out, dataset, detector, num_frames, crop, size, scale)
                part.write(index, record)
                bar.update(1)
            bar.close()
        barrier(ranks)
        summary = _merge(out, dataset, split, ranks) if ranks.is_main else None
        barrier(ranks)
    finally:
        if owner is not None:
            owner.__exit__(None, None, None)
    if summary is None:
        summary = json.loads((out / "summary.json").read_text())
    return summary


def _merge(out, dataset, split, ranks):
    """Rank 0: the part files, in input order, become manifest.csv, DATASET.json and summary.json."""
    summary = {"videos": 0, "crops": 0, "frames_without_face": 0, "skipped": 0, "skipped_files": []}
    tree, seen = {}, {}
    with open(out / MANIFEST, "w", newline="", encoding="utf-8") as handle:
        writer = SafeCsvWriter(handle)
        writer.writerow(MANIFEST_COLUMNS)
        for _, record in iter_parts(out / MANIFEST, ranks.world_size):
            summary["frames_without_face"] += record.get("frames_without_face", 0)
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
                "label": label_name, "frames": [frame["crop"] for frame in record["frames"]]}
    (out / f"{dataset}.json").write_text(json.dumps({dataset: tree}, indent=1))
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    remove_parts(out / MANIFEST, ranks.world_size)
    return summary


__all__ = ["PreprocessError", "preprocess"]
