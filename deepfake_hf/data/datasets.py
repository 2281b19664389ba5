"""Training and evaluation data as `datasets.Dataset`s, decoded once and cached as Arrow.

`load_source(spec)` reads one data source into a dataset with the columns

    image   datasets.Image   the frame or photo (a face crop when `faces` is not "none")
    label   int64            0 real, 1 fake
    path    string           the file the sample came from (the video file for video frames)
    group   string           what must stay on one side of a split: the video (file or frame folder,
                             full path), the photo itself, or a manifest's own `group` column
    method  string           manipulation method ("" when unknown), e.g. "Deepfakes"
    frame   int32            which frame of its video: the sample's position (0..num_frames-1) for
                             video files, the number in the file name for frame folders; -1 for stills

from any of:

- a folder with `real/` and `fake/` subfolders (or any names mapped by `label_map`, e.g.
  {"original": "real", "Deepfakes": "fake"}). Below a label folder, files directly inside are stills
  (each its own group) or videos; a subfolder of images is one video's frames (its group); deeper
  nesting (`fake/Deepfakes/000_003/0.png`) takes the first level as the method. A mapped label folder
  other than `real`/`fake` names the method itself.
- a CSV or JSON-lines manifest with `path,label[,group][,method][,frame]` (`video_id`/`video` are
  accepted for `group`); relative paths resolve against the manifest's folder; a path may be an
  image, a video or a folder of one video's frames; labels are real/fake/0/1 or names mapped by
  `label_map`.
- video files anywhere in those: `num_frames` frames spread evenly over the video (media.py), and
  face crops when `faces` names a detector (deepfake_hf.faces).
- DeepfakeBench's dataset JSON ({dataset: {label_name: {split: {[compression:] {video: {"label",
  "frames": [...]}}}}}}); labels ending in "real" are real, the rest fake (its `label_dict`), and
  `#train` / `#val` / `#test` after the file name picks one split. Every entry is kept (also entries
  whose frames share a folder), `\\` and `/` separators both work, and a video's frames are the first
  `num_frames` by frame number, as DeepfakeBench's loader reads them.
- `#crops` after a folder or manifest (`crops/manifest.csv#crops`) marks its images as ready-made face
  crops: like a DeepfakeBench JSON's frames, they are kept as given whatever `faces` says (`evaluate` scores
  them without its face policy; the report's "crops" says so).

The decoded rows are written once as an Arrow file under `cache_dir`, keyed by a hash of the source
files (path, size, modification time) and the options, so later epochs and runs read the cache.
Bad files are skipped with one warning line each and counted; only a source with nothing usable
left raises `DataSourceError`.

`split_by_group` makes train/validation[/test] splits that never cut a group, and keeps a
FaceForensics++-style fake "A_B" with the real videos "A" and "B" (union-find over video names).
"""

import csv
import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepfake_hf.defaults import FACE_SIZE
from deepfake_hf.errors import DeepfakeHFError, one_line
from deepfake_hf.faces import FACE_CROPS
from deepfake_hf.media import DEEPFAKEBENCH_FRAMES, FRAME_SAMPLINGS, not_regular_file
from deepfake_hf.runtime.outputs import read_csv_cell

logger = logging.getLogger(__name__)

LABEL_NAMES = ("real", "fake")
COLUMNS = ("image", "label", "path", "group", "method", "frame")
MANIFEST_EXTENSIONS = (".csv", ".jsonl", ".ndjson")
DEEPFAKEBENCH_EXTENSIONS = (".json",)
DEEPFAKEBENCH_SPLITS = ("train", "val", "test")
# What a user appends to a folder or manifest whose images are face crops already ("crops/manifest.csv#crops"):
# they are scored as given, like a DeepfakeBench JSON's frames, never searched for faces again.
CROPS_MARK = "#crops"
# Bump when the rows written for the same inputs change, so stale caches are not reused.
# 2: video files shorter than num_frames give each frame once (no repeats); 3: aligned crops resampled with
# cv2's pixel-centre convention (faces.warp_affine), animated images give their frames; 4: aligned crops by
# cv2.warpAffine itself
CACHE_VERSION = 4
_GROUP_ALIASES = ("group", "video_id", "video")
# Stored formats whose bytes can be kept as they are (no re-encoding, so no change to compression traces).
_KEEP_BYTES_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")


class DataSourceError(DeepfakeHFError, ValueError):
    """A data source that cannot be used at all; str() is one line naming the source and the problem."""


def features():
    """The `datasets.Features` every source produces (so sources concatenate)."""
    import datasets

    return datasets.Features(
        {
            "image": datasets.Image(),
            "label": datasets.Value("int64"),
            "path": datasets.Value("string"),
            "group": datasets.Value("string"),
            "method": datasets.Value("string"),
            "frame": datasets.Value("int32"),
        }
    )


def cache_root():
    """`$DEEPFAKE_HF_CACHE`, by default `~/.cache/deepfake_hf`: decoded datasets and probe features live below."""
    return Path(os.environ.get("DEEPFAKE_HF_CACHE") or os.path.join("~", ".cache", "deepfake_hf")).expanduser()


def default_cache_dir():
    """`$DEEPFAKE_HF_CACHE/datasets`, by default `~/.cache/deepfake_hf/datasets`."""
    return cache_root() / "datasets"


# ------------------------------------------------------------------------------------------- labels
def _normalise_label_map(label_map):
    """{name: 0|1} from a user map whose values are "real"/"fake"/0/1; "real" and "fake" always map."""
    mapping = {"real": 0, "fake": 1}
    for name, value in (label_map or {}).items():
        parsed = _plain_label(value)
        if parsed is None:
            raise DataSourceError(f"label_map: {name!r} maps to {value!r}; use real, fake, 0 or 1")
        mapping[str(name)] = parsed
    return mapping


def parse_label_map(items):
    """{name: "real"|"fake"} from NAME=real|fake strings (the CLI's repeatable --label-map).

    NAME is a folder or manifest label name (e.g. original=real, Deepfakes=fake); 0 and 1 are accepted
    for real and fake. Raises `DataSourceError` (one line) for a malformed item or a name given twice
    with different labels.
    """
    mapping = {}
    for item in items or ():
        name, sep, value = str(item).rpartition("=")
        name = name.strip()
        if not sep or not name:
            raise DataSourceError(f"--label-map {item!r}: expected NAME=real or NAME=fake, e.g. original=real")
        label = _plain_label(value)
        if label is None:
            raise DataSourceError(f"--label-map {item!r}: {value.strip()!r} is not real or fake (or 0/1)")
        if name in mapping and mapping[name] != LABEL_NAMES[label]:
            raise DataSourceError(f"--label-map {name}: mapped to both {mapping[name]} and {LABEL_NAMES[label]}")
        mapping[name] = LABEL_NAMES[label]
    return mapping


def _plain_label(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value) if value in (0, 1) else None
    text = str(value).strip().lower()
    return {"real": 0, "fake": 1, "0": 0, "1": 1}.get(text)


def _parse_label(value, label_map):
    """0/1 from a manifest or folder label, or None when it is not one we know."""
    key = str(value).strip()
    if key in label_map:
        return label_map[key]
    lowered = {name.lower(): label for name, label in label_map.items()}
    if key.lower() in lowered:
        return lowered[key.lower()]
    return _plain_label(value)


# ------------------------------------------------------------------------------------------- entries
@dataclass
class _Entry:
    """One file to decode: a still, a frame of a frame folder, or a video (expanded into frames)."""

    path: str
    kind: str  # "image" | "video"
    label: int
    group: str
    method: str = ""
    frame: int = -1


@dataclass
class _Collected:
    entries: list
    problems: list  # (path, problem) found before decoding (manifest rows, missing files)
    inputs: list  # files whose content defines the source (hashed for the cache key)
    ignored: int = 0  # files that are not media (skipped silently, counted)


def _media_kind(path):
    from deepfake_hf.media import media_kind

    return media_kind(path)


def _frame_number(path, position):
    """A frame folder's file "012.png" is frame 12; other names count in sorted order."""
    stem = Path(path).stem
    digits = re.findall(r"\d+", stem)
    return int(digits[-1]) if digits else position


def _sample_evenly(items, num_frames, frame_sampling="even"):
    """`num_frames` of `items` spread evenly (media's one sampling rule), or all of them when fewer.

    With `frame_sampling="deepfakebench"` the first `num_frames`, as DeepfakeBench's loader reads a
    folder of frames (its preprocessing already spread them over the video)."""
    from deepfake_hf.media import sample_frame_indices

    if not num_frames:
        return list(items)
    if frame_sampling == DEEPFAKEBENCH_FRAMES:
        return list(items)[:num_frames]
    return [items[i] for i in sample_frame_indices(len(items), num_frames)]


def _frame_folder_entries(folder_files, label, group, method, num_frames, frame_sampling="even"):
    """Entries for the images of one video's frame folder (by frame number), `num_frames` of them (`_sample_evenly`)."""
    ordered = sorted(folder_files, key=lambda p: (_frame_number(p, 0), str(p)))
    return [
        _Entry(str(path), "image", label, group, method, _frame_number(path, position))
        for position, path in _sample_evenly(list(enumerate(ordered)), num_frames, frame_sampling)
    ]


def _collect_folder(root, label_map, num_frames, frame_sampling="even"):
    """real/ and fake/ (or mapped) folders -> entries; see the module docstring for the layout rules."""
    label_dirs = []
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            label = _parse_label(child.name, label_map)  # real/fake, 0/1 or a mapped name
            if label is not None:
                label_dirs.append((child, label))
    if not label_dirs:
        found = ", ".join(sorted(c.name for c in root.iterdir() if c.is_dir())) or "none"
        raise DataSourceError(
            f"{root}: no real/ or fake/ folders (subfolders: {found}); map folder names to labels with "
            "--label-map NAME=real|fake (label_map={'original': 'real', 'Deepfakes': 'fake'} in Python)"
        )
    from deepfake_hf.media import MediaError, check_file, list_media_files

    entries, problems, inputs, not_media = [], [], [], []
    for label_dir, label in label_dirs:
        folder_method = "" if label_dir.name.lower() in LABEL_NAMES else label_dir.name
        frame_folders = {}  # folder -> (method, [image files])
        skipped = []  # a looping link, an unreadable folder, a FIFO: reported and counted, never dropped silently
        for path in list_media_files([label_dir], not_media=not_media, skipped=skipped):
            if not path.is_file():  # a folder named like media, a broken or looping link: say which
                try:
                    check_file(path)
                except MediaError as error:
                    problems.append((error.path, error.problem))
                    continue
            kind = _media_kind(path)
            inputs.append(path)
            parts = path.relative_to(label_dir).parts
            method = folder_method or (parts[0] if len(parts) >= 2 and (kind == "video" or len(parts) >= 3) else "")
            if kind == "video":
                entries.append(_Entry(str(path), "video", label, str(path), method))
            elif len(parts) == 1:
                entries.append(_Entry(str(path), "image", label, str(path), method))
            else:
                frame_folders.setdefault(path.parent, (method, []))[1].append(path)
        for folder, (method, files) in frame_folders.items():
            entries.extend(_frame_folder_entries(files, label, str(folder), method, num_frames, frame_sampling))
        problems.extend((str(path), problem) for path, problem in skipped)
    return _Collected(entries, problems, inputs, len(not_media))


def _read_manifest_rows(manifest):
    """Rows of a CSV (header line) or JSON-lines manifest as dicts, with their line numbers."""
    if manifest.suffix.lower() == ".csv":
        with open(manifest, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fields = [name.strip() for name in (reader.fieldnames or [])]
            # read_csv_cell: a manifest this package wrote had formula-like cells quoted (outputs.csv_cell)
            rows = [(number + 2, {k.strip(): read_csv_cell(v) for k, v in row.items() if k is not None})
                    for number, row in enumerate(reader)]
        return fields, rows
    rows, fields = [], set()
    with open(manifest, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                rows.append((number, {"__error__": f"not valid JSON ({error.msg})"}))
                continue
            if not isinstance(row, dict):
                rows.append((number, {"__error__": "not a JSON object"}))
                continue
            fields.update(row)
            rows.append((number, row))
    return sorted(fields), rows


def _manifest_row_path(row, manifest):
    """A manifest row's `path` as a Path (relative ones are relative to the manifest's folder), None when empty."""
    text = str(row.get("path") or "").strip()
    if not text:
        return None
    path = Path(text).expanduser()
    return path if path.is_absolute() else manifest.parent / path


def _collect_manifest(manifest, label_map, num_frames, frame_sampling="even"):
    fields, rows = _read_manifest_rows(manifest)
    missing = [name for name in ("path", "label") if name not in fields]
    if missing and rows:
        raise DataSourceError(
            f"{manifest}: missing column(s) {', '.join(missing)} (a manifest needs path,label[,group][,method])"
        )
    group_field = next((name for name in _GROUP_ALIASES if name in fields), None)
    entries, problems, inputs = [], [], [manifest]
    for number, row in rows:
        where = f"{manifest}:{number}"
        if "__error__" in row:
            problems.append((where, row["__error__"]))
            continue
        path = _manifest_row_path(row, manifest)
        if path is None:
            problems.append((where, "empty path"))
            continue
        label = _parse_label(row.get("label", ""), label_map)
        if label is None:
            problems.append((str(path), f"unknown label {row.get('label')!r} on {where} (use real, fake, 0 or 1)"))
            continue
        group = str(row.get(group_field) or "").strip() if group_field else ""
        method = str(row.get("method") or "").strip()
        special = not_regular_file(path)
        if special:  # opening a FIFO would wait for a writer for ever
            problems.append((str(path), f"{special} on {where}"))
            continue
        if path.is_dir():  # a folder of one video's frames
            frames = sorted(p for p in path.iterdir() if not p.name.startswith(".") and _media_kind(p) == "image")
            refused = {p: not_regular_file(p) for p in frames}
            problems.extend((str(p), problem) for p, problem in refused.items() if problem)
            frames = [p for p in frames if not refused[p]]
            if not frames:
                problems.append((str(path), f"folder has no images on {where}"))
                continue
            chosen = _frame_folder_entries(frames, label, group or str(path), method, num_frames, frame_sampling)
            entries.extend(chosen)
            inputs.extend(Path(entry.path) for entry in chosen)
            continue
        kind = _media_kind(path)
        if kind is None:
            problems.append((str(path), f"unsupported file type on {where}"))
            continue
        inputs.append(path)
        frame = row.get("frame")
        try:
            frame = int(frame) if frame not in (None, "") else -1
        except (TypeError, ValueError):
            frame = -1
        entries.append(_Entry(str(path), kind, label, group or str(path), method, frame))
    return _Collected(entries, problems, inputs)


def _deepfakebench_label(name, label_map):
    parsed = _parse_label(name, label_map)
    if parsed is not None:
        return parsed
    # DeepfakeBench's label_dict maps every "*real" label (FF-real, DFD_real, CelebDFv1_real...) to 0.
    return 0 if str(name).lower().endswith("real") else 1


def _deepfakebench_frame_path(text, base):
    """A frame path from the JSON as a Path: Windows `\\` separators become `/`; relative ones join `base`."""
    path = Path(str(text).replace("\\", "/"))
    return path if path.is_absolute() else base / path


def _deepfakebench_frames(frames, num_frames):
    """The frames DeepfakeBench reads for one video: sorted by frame number, then the first `num_frames`.

    Its loader sorts the list by the number in the file name and, in frame mode, steps through it with
    `step = frame_num // frame_num` = 1 (it overwrites the total with `frame_num` first), so it reads the
    first `num_frames` frames, not frames spread over the video. We read the same ones.
    """
    ordered = sorted(enumerate(frames), key=lambda item: (_frame_number(item[1], item[0]), str(item[1])))
    return ordered[:num_frames] if num_frames else ordered


def _collect_deepfakebench(json_path, split, label_map, num_frames, compression, root):
    try:
        with open(json_path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise DataSourceError(f"{json_path}: not a readable DeepfakeBench JSON ({error})") from None
    if not isinstance(data, dict) or not data:
        raise DataSourceError(f"{json_path}: expected {{dataset: {{label: {{split: {{video: ...}}}}}}}}")
    base = Path(root) if root else json_path.parent
    splits = [split] if split else list(DEEPFAKEBENCH_SPLITS)
    videos_found, problems = _deepfakebench_videos(json_path, data, splits, label_map, compression, base)

    # A video's group is its frame folder (full path), unless several entries share that folder; then
    # the folder plus the video's name, so they stay separate videos in video metrics and splits.
    folder_count = {}
    for *_, frames in videos_found:
        folder_count[frames[0].parent] = folder_count.get(frames[0].parent, 0) + 1
    entries, inputs = [], [json_path]
    for label_name, video_name, label, frames in videos_found:
        folder = frames[0].parent
        group = str(folder) if folder_count[folder] == 1 else f"{folder}/{video_name}"
        for position, path in _deepfakebench_frames(frames, num_frames):
            entries.append(_Entry(str(path), "image", label, group, str(label_name), _frame_number(path, position)))
            inputs.append(path)
    return _Collected(entries, problems, inputs)


def _deepfakebench_videos(json_path, data, splits, label_map, compression, base):
    """([(label name, video name, label, frame paths)], [(where, problem)]) of the videos in `splits` of a
    DeepfakeBench JSON's `data`."""
    videos_found, problems = [], []
    seen = set()  # DeepfakeBench lists some videos (DFD) under every split: read such a video once
    for dataset_name, labels in data.items():
        if not isinstance(labels, dict):
            raise DataSourceError(f"{json_path}: {dataset_name!r} is not a mapping of label names")
        for label_name, by_split in labels.items():
            if not isinstance(by_split, dict):
                continue
            for split_name in splits:
                videos = by_split.get(split_name) or {}
                # FaceForensics++ files add a compression level (c23, c40, raw) between split and video.
                if videos and all(key in ("c23", "c40", "raw") for key in videos):
                    videos = videos.get(compression) or {}
                for video_name, info in videos.items():
                    where = f"{json_path}:{dataset_name}/{label_name}/{video_name}"
                    if not isinstance(info, dict) or not isinstance(info.get("frames"), list):
                        problems.append((where, "no frames list"))
                        continue
                    # The entry's identity, not its folder: entries whose frames share one folder are
                    # different videos and are all kept.
                    identity = (dataset_name, label_name, video_name, tuple(map(str, info["frames"])))
                    if identity in seen:
                        continue
                    seen.add(identity)
                    label = _deepfakebench_label(info.get("label", label_name), label_map)
                    frames = [_deepfakebench_frame_path(p, base) for p in info["frames"]]
                    if not frames:
                        problems.append((where, "empty frames list"))
                        continue
                    videos_found.append((label_name, video_name, label, frames))
    return videos_found, problems


def crops_marked(spec: str | os.PathLike) -> bool:
    """Whether a source spec ends in `#crops` (its images are ready-made face crops, scored as given), unless a
    file or folder of that very name exists."""
    text = os.fspath(spec)
    return text.endswith(CROPS_MARK) and not Path(text).expanduser().exists()


def marked_crops_paths(spec: str | os.PathLike) -> list[Path]:
    """The paths a source marked `#crops` (`crops_marked`) names, for a door that scores files one by one
    (predict, the Detector): the folder itself, or the `path` column of a CSV / JSON-lines manifest resolved
    against its folder (a row's folder of frames is listed as a folder: each picture is a file there). Raises
    `DataSourceError` for a source that is neither, or a manifest without a `path` column."""
    path = Path(os.fspath(spec)[:-len(CROPS_MARK)]).expanduser()
    if not path.exists():
        raise DataSourceError(f"{spec}: no such file or folder")
    if path.is_dir():
        return [path]
    if path.suffix.lower() not in MANIFEST_EXTENSIONS:
        raise DataSourceError(f"{spec}: {CROPS_MARK} marks a folder or a manifest "
                              f"({', '.join(MANIFEST_EXTENSIONS)}) of face crops, not {path.suffix or 'this file'}")
    fields, rows = _read_manifest_rows(path)
    if rows and "path" not in fields:
        raise DataSourceError(f"{spec}: no path column (a manifest needs path,label[,group][,method])")
    listed = (_manifest_row_path(row, path) for _, row in rows)
    return [item for item in listed if item is not None]


def _split_spec(spec):
    """"file.json#test" -> (Path("file.json"), "test"); anything else -> (Path(spec), None); a `#crops` mark
    (`crops_marked`) is left out of the path."""
    text = os.fspath(spec)
    if crops_marked(text):
        text = text[:-len(CROPS_MARK)]
    if "#" in text:
        head, _, tail = text.rpartition("#")
        if tail in DEEPFAKEBENCH_SPLITS and head.lower().endswith(DEEPFAKEBENCH_EXTENSIONS):
            return Path(head).expanduser(), tail
    return Path(text).expanduser(), None


def _collect(spec, label_map, num_frames, compression, root, default_split=None, frame_sampling="even"):
    path, split = _split_spec(spec)
    if not path.exists():
        raise DataSourceError(f"{path}: no such file or folder")
    special = not_regular_file(path)
    if special:  # reading a FIFO as a manifest would wait for a writer for ever
        raise DataSourceError(f"{path}: {special}; give a folder, a .csv/.jsonl manifest or a DeepfakeBench .json")
    if path.is_dir():
        return "folder", _collect_folder(path, label_map, num_frames, frame_sampling)
    suffix = path.suffix.lower()
    if suffix in MANIFEST_EXTENSIONS:
        return "manifest", _collect_manifest(path, label_map, num_frames, frame_sampling)
    if suffix in DEEPFAKEBENCH_EXTENSIONS:
        if split is None and default_split is not None:
            # Reading every split of a benchmark file would mix training videos into a test set.
            logger.warning("%s: no #train/#val/#test given; reading the %r split (append #SPLIT to choose)",
                           path, default_split)
            split = default_split
        return "deepfakebench", _collect_deepfakebench(path, split, label_map, num_frames, compression, root)
    raise DataSourceError(
        f"{path}: not a data source (expected a folder with real/ and fake/, a .csv/.jsonl manifest, "
        "or a DeepfakeBench .json)"
    )


# ------------------------------------------------------------------------------------------- decoding
class _FaceCropper:
    """The most prominent face of a frame, aligned (DeepfakeBench) or margin-cropped (DFDC winner)."""

    def __init__(self, detector_name, crop, size):
        from deepfake_hf.faces import get_face_detector

        self.detector = get_face_detector(detector_name)
        self.crop, self.size = crop, size

    def __call__(self, image, faces=None):
        from deepfake_hf.faces import crop_face, most_prominent

        faces = self.detector.detect(image) if faces is None else faces
        if not faces:
            return None
        return crop_face(image, most_prominent(faces), crop=self.crop, size=self.size)


def _png_bytes(image):
    buffer = io.BytesIO()
    # Lossless either way; level 1 encodes full-HD frames ~3x faster than the default for ~10% more bytes.
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _still_bytes(path, image):
    """The file's own bytes when decoding it changed nothing (RGB, upright, common format), else PNG."""
    from PIL import Image

    try:
        with Image.open(path) as original:
            exif_orientation = original.getexif().get(0x0112, 1)
            unchanged = (original.format in _KEEP_BYTES_FORMATS and original.mode == "RGB"
                         and exif_orientation in (None, 1) and getattr(original, "n_frames", 1) == 1)
    except Exception:  # noqa: BLE001 - it opened a moment ago; fall back to re-encoding
        unchanged = False
    return Path(path).read_bytes() if unchanged else _png_bytes(image)


def _decode_entry(entry, num_frames, frame_sampling, cropper, counts):
    """Rows for one entry; raises MediaError for an unusable file."""
    from deepfake_hf.faces import detect_video
    from deepfake_hf.media import is_animated, open_image, read_video_frames

    # An animated still (GIF, WebP, APNG) gives its frames, as predict reads it (media.read_video_frames).
    if entry.kind == "video" or (entry.frame < 0 and is_animated(entry.path)):
        frames = list(enumerate(read_video_frames(entry.path, num_frames=num_frames or 32, sampling=frame_sampling)))
    else:
        frames = [(entry.frame, open_image(entry.path))]
    rows = []
    # the frames of a video as one video: faces.detect_video follows a face instead of searching every frame
    detections = iter(detect_video(cropper.detector, [image for _, image in frames])) if cropper is not None else None
    for index, image in frames:
        if cropper is not None:
            face = cropper(image, next(detections))
            if face is None:
                counts["frames_without_face"] += 1
                continue
            data = _png_bytes(face)
        elif entry.kind == "image":
            data = _still_bytes(entry.path, image)
        else:
            data = _png_bytes(image)
        rows.append({"image": {"bytes": data, "path": None}, "label": entry.label, "path": entry.path,
                     "group": entry.group, "method": entry.method, "frame": int(index)})
    return rows


def _decode(collected, num_frames, frame_sampling, faces, face_crop, face_size, writer, verbose):
    """Decode every entry into `writer`; returns the counts for the report."""
    from tqdm.auto import tqdm

    from deepfake_hf.media import MediaError

    counts = {"files": len(collected.entries) + len(collected.problems), "rows": 0, "skipped": 0,
              "frames_without_face": 0, "files_without_face": 0, "ignored_non_media": collected.ignored}
    for path, problem in collected.problems:
        logger.warning("skipping %s: %s", path, problem)
        counts["skipped"] += 1
    from deepfake_hf.faces import face_mode

    cropper = _FaceCropper(faces, face_crop, face_size) if face_mode(faces).finds_faces else None
    for entry in tqdm(collected.entries, desc="decoding", unit="file", disable=not verbose or None, leave=False):
        try:
            rows = _decode_entry(entry, num_frames, frame_sampling, cropper, counts)
        except MediaError as error:
            logger.warning("skipping %s", error)
            counts["skipped"] += 1
            continue
        except (OSError, ValueError, RuntimeError) as error:  # e.g. a face detector failing on one frame
            logger.warning("skipping %s: %s: %s", entry.path, type(error).__name__, one_line(error, 300))
            counts["skipped"] += 1
            continue
        if not rows:
            # Every frame lacked a face: nothing of this file is usable.
            logger.warning("skipping %s: no face found in any frame", entry.path)
            counts["files_without_face"] += 1
            counts["skipped"] += 1
            continue
        for row in rows:
            writer(row)
        counts["rows"] += len(rows)
    return counts


# ------------------------------------------------------------------------------------------- caching
def _cache_key(kind, spec, collected, options):
    digest = hashlib.sha256()
    digest.update(json.dumps({"version": CACHE_VERSION, "kind": kind, "spec": os.path.abspath(os.fspath(spec)),
                              "options": options}, sort_keys=True).encode())
    for path in collected.inputs:
        try:
            stat = os.stat(path)
            digest.update(f"{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{os.path.abspath(path)}\0missing\n".encode())
    for entry in collected.entries:
        digest.update(f"{entry.path}\0{entry.label}\0{entry.group}\0{entry.method}\0{entry.frame}\n".encode())
    for path, problem in collected.problems:
        digest.update(f"{path}\0{problem}\n".encode())
    return digest.hexdigest()[:24]


def _write_arrow(collected, arrow_path, decode_options, verbose):
    from datasets.arrow_writer import ArrowWriter

    schema = features()
    writer = ArrowWriter(features=schema, path=str(arrow_path), writer_batch_size=256)
    try:
        counts = _decode(collected, writer=lambda row: writer.write(schema.encode_example(row)),
                         verbose=verbose, **decode_options)
        writer.finalize()
    finally:
        writer.close()
    return counts


def load_source(spec, label_map=None, faces="none", num_frames=32, cache_dir=None, *, face_crop="align",
                face_size=FACE_SIZE, compression="c23", root=None, default_split=None, verbose=True,
                return_report=False, frame_sampling=None):
    """Read one data source into a `datasets.Dataset` (columns: image, label, path, group, method, frame).

    Args:
        spec: a folder with real/ and fake/ (or mapped) subfolders, a .csv/.jsonl manifest, or a
            DeepfakeBench .json (append `#train`, `#val` or `#test` to read one split); `#crops` after a
            folder or manifest marks its images as face crops already, kept as given (as a JSON's frames).
        label_map: folder or label names -> "real"/"fake"/0/1, e.g. {"original": "real", "Deepfakes": "fake"}.
        faces: "none" keeps whole frames; "dlib" crops the most prominent face of every frame
            (frames without one are dropped and counted); "deepfakebench" crops as DeepfakeBench's
            preprocessing does (largest face, full-resolution dlib; faces.DeepfakeBenchFaceDetector) from
            the frames it takes; "auto" is "dlib" when installed, else "none".
        num_frames: frames per video (video files, frame folders, DeepfakeBench videos); 0/None: all
            frames of frame folders (video files then give 32).
        cache_dir: where decoded rows are cached (default `default_cache_dir()`); False: no cache.
        face_crop: "align" (5-point similarity alignment, DeepfakeBench) or "margin" (30% margin box).
        face_size: side of the face crops in pixels.
        compression: FaceForensics++ compression level to read from a DeepfakeBench JSON.
        root: base folder for relative frame paths in a DeepfakeBench JSON (default: the JSON's folder).
        default_split: the split read from a DeepfakeBench JSON whose spec names none (a warning says
            so); None reads every split. `evaluate` passes "test".
        verbose: print the class-balance table and show progress.
        return_report: also return the report dict (kind, crops, counts, balance, cache path).
        frame_sampling: which frames of a video: "even" (media.sample_frame_indices) or "deepfakebench"
            (a video file's `linspace(0, n-1, num_frames)` rounded down, a frame folder's first `num_frames`
            by frame number); default "deepfakebench" with faces="deepfakebench".

    Raises:
        DataSourceError: the source is missing or malformed, or no usable sample remains.
    """
    import datasets

    from deepfake_hf.faces import NO_FACES, face_mode, face_mode_names

    if faces not in face_mode_names():
        raise DataSourceError(f"faces: {faces!r} is not one of {', '.join(face_mode_names())}")
    if face_crop not in FACE_CROPS:
        raise DataSourceError(f"face_crop: {face_crop!r} is not one of {', '.join(FACE_CROPS)}")
    # Resolved ("auto") before hashing, so a cache of whole frames is not reused once dlib is installed.
    mode = face_mode(faces)
    if mode.finds_faces and face_crop not in mode.crops:
        raise DataSourceError(f"face_crop: {face_crop!r} does not apply to faces={mode.name!r} "
                              f"(its crops: {', '.join(mode.crops)})")
    frame_sampling = frame_sampling or mode.frame_sampling
    if frame_sampling not in FRAME_SAMPLINGS:
        raise DataSourceError(f"frame_sampling: {frame_sampling!r} is not one of {', '.join(FRAME_SAMPLINGS)}")
    if mode.name != faces and not mode.finds_faces:
        logger.warning("faces=%r: no face detector installed (pip install 'deepfake-hf[faces]'); using whole frames",
                       faces)
    faces = mode.name
    label_map = _normalise_label_map(label_map)
    kind, collected = _collect(spec, label_map, num_frames, compression, root, default_split, frame_sampling)
    crops = kind == "deepfakebench" or crops_marked(spec)
    if crops and mode.finds_faces:
        # Its frames are already face crops (DeepfakeBench trains on its JSON's as they are); finding and
        # aligning a face inside a crop again would zoom out a second time.
        what = "DeepfakeBench frames are aligned" if kind == "deepfakebench" else "marked #crops: its images are"
        logger.info("%s: %s face crops already; faces=%r not applied", spec, what, faces)
        faces = NO_FACES
    decode_options = {"num_frames": num_frames, "frame_sampling": frame_sampling, "faces": faces,
                      "face_crop": face_crop, "face_size": face_size}
    name = os.fspath(spec)

    if cache_dir is False:
        rows = []
        counts = _decode(collected, writer=rows.append, verbose=verbose, **decode_options)
        dataset = datasets.Dataset.from_list(rows, features=features()) if rows else None
        cache_path, cached = None, False
    else:
        key = _cache_key(kind, spec, collected, {**decode_options, "label_map": sorted(label_map.items()),
                                                 "compression": compression})
        cache_path = Path(cache_dir or default_cache_dir()) / key
        cached = (cache_path / "report.json").is_file() and (cache_path / "data.arrow").is_file()
        if not cached:
            counts = _build_cache(collected, cache_path, decode_options, name, verbose)
        report = json.loads((cache_path / "report.json").read_text())
        counts = report["counts"]
        dataset = datasets.Dataset.from_file(str(cache_path / "data.arrow")) if counts["rows"] else None

    if dataset is None or len(dataset) == 0:
        raise DataSourceError(
            f"{name}: no usable samples ({counts['files']} files found, {counts['skipped']} skipped as unreadable"
            + (", no face found" if counts.get("files_without_face") else "") + ")"
        )
    report = {"source": name, "kind": kind, "crops": crops, "cache": str(cache_path) if cache_path else None,
              "from_cache": cached, "counts": counts, "balance": class_balance(dataset)}
    if verbose:
        _print_load_report(report)
    return (dataset, report) if return_report else dataset


def _build_cache(collected, cache_path, decode_options, name, verbose):
    """Decode into a private temporary folder, then move it into place (safe with parallel processes)."""
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{cache_path.name}-{uuid.uuid4().hex[:6]}-", dir=cache_path.parent))
    try:
        counts = _write_arrow(collected, staging / "data.arrow", decode_options, verbose)
        (staging / "report.json").write_text(json.dumps({"source": name, "counts": counts}, indent=2))
        try:
            os.rename(staging, cache_path)
        except OSError:
            if not (cache_path / "report.json").is_file():  # not another process finishing first
                shutil.rmtree(cache_path, ignore_errors=True)
                os.rename(staging, cache_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts


# ------------------------------------------------------------------------------------------- reports
def class_balance(dataset):
    """{"rows", "real", "fake", "fake_fraction", "groups", "methods": {method: rows}} of one dataset."""
    labels = np.asarray(dataset["label"], dtype=np.int64) if len(dataset) else np.zeros(0, np.int64)
    groups = dataset["group"] if len(dataset) else []
    methods = {}
    for method in dataset["method"] if len(dataset) else []:
        methods[method or "-"] = methods.get(method or "-", 0) + 1
    n_fake = int(labels.sum())
    return {
        "rows": len(labels),
        "real": int(len(labels) - n_fake),
        "fake": n_fake,
        "fake_fraction": round(n_fake / len(labels), 4) if len(labels) else None,
        "groups": len(set(groups)),
        "methods": dict(sorted(methods.items())),
    }


def _table(rows, header):
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).rjust(width) if i else str(cell).ljust(width) for i, (cell, width) in
                       enumerate(zip(row, widths))) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _balance_row(name, balance):
    fraction = balance["fake_fraction"]
    return [name, balance["rows"], balance["real"], balance["fake"],
            "-" if fraction is None else f"{100 * fraction:.1f}%", balance["groups"]]


def _print_load_report(report):
    counts = report["counts"]
    origin = "cache" if report["from_cache"] else "decoded"
    print(f"{report['source']} ({report['kind']}, {origin}): {counts['rows']} rows from {counts['files']} files, "
          f"{counts['skipped']} skipped" + (f", {counts['frames_without_face']} frames without a face dropped"
                                           if counts.get("frames_without_face") else ""))
    print(_table([_balance_row("all", report["balance"])], ["source", "rows", "real", "fake", "fake%", "groups"]))


def split_report(splits, verbose=True):
    """Class balance per split ({split: class_balance}); prints a short table when `verbose`."""
    report = {name: class_balance(split) for name, split in splits.items()}
    if verbose:
        print(_table([_balance_row(name, balance) for name, balance in report.items()],
                     ["split", "rows", "real", "fake", "fake%", "groups"]))
    return report


# ------------------------------------------------------------------------------------------- splits
class _UnionFind:
    def __init__(self, size):
        self.parent = list(range(size))

    def find(self, item):
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def _group_name(group):
    """The video name of a group key: "/x/Deepfakes/000_003.mp4" -> "000_003"."""
    name = group.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    stem, dot, suffix = name.rpartition(".")
    return stem if dot and stem and len(suffix) <= 5 else name


def linked_groups(groups, link_ids=True):
    """Component id per unique group: groups with the same video name (one source video under several
    method folders) are joined, and a FaceForensics++-style fake "A_B" joins the groups named "A" and "B"
    (the target and source videos it was made from). Returns {group: component}."""
    unique = sorted(set(groups))
    index = {group: i for i, group in enumerate(unique)}
    by_name = {}
    for group in unique:
        by_name.setdefault(_group_name(group), []).append(index[group])
    sets = _UnionFind(len(unique))
    for members in by_name.values():
        for member in members[1:]:
            sets.union(members[0], member)
    if link_ids:
        for name, members in by_name.items():
            parts = name.split("_")
            if len(parts) < 2:
                continue
            for part in parts:
                for other in by_name.get(part, ()):
                    sets.union(members[0], other)
    return {group: sets.find(index[group]) for group in unique}


def split_by_group(dataset, val_fraction, test_fraction=0.0, seed=0, link_ids=True, verbose=True):
    """Split into train / validation [/ test] so that no group (video, photo, manifest group) and no
    linked FaceForensics++ fake/real pair straddles two splits, with each split near its share of rows
    of each class. Returns a `datasets.DatasetDict`; prints the split table when `verbose`."""
    import datasets

    if not 0.0 <= val_fraction < 1.0 or not 0.0 <= test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
        raise DataSourceError(f"val_fraction={val_fraction}, test_fraction={test_fraction}: each in [0, 1), "
                              "sum below 1")
    columns = dataset.select_columns(["group", "label"])
    groups, labels = columns["group"], np.asarray(columns["label"], dtype=np.int64)
    component_of = linked_groups(groups, link_ids=link_ids)
    row_components = np.asarray([component_of[group] for group in groups])
    components = np.unique(row_components)

    names = ["train", "validation"] + (["test"] if test_fraction > 0 else [])
    fractions = np.asarray([1.0 - val_fraction - test_fraction, val_fraction]
                           + ([test_fraction] if test_fraction > 0 else []))
    wanted = [name for name, fraction in zip(names, fractions) if fraction > 0]
    if len(components) < len(wanted):
        raise DataSourceError(f"cannot split {len(components)} independent group(s) into {', '.join(wanted)}; "
                         "add data or lower the fractions")
    per_component = {c: np.bincount(labels[row_components == c], minlength=2) for c in components}
    targets = fractions[:, None] * np.bincount(labels, minlength=2)[None, :]  # rows per split and class
    filled = np.zeros_like(targets)
    order = np.random.default_rng(seed).permutation(components)
    # Largest components first (they are the hard ones to place), random order among equals.
    order = sorted(order, key=lambda c: -per_component[c].sum())
    assignment = {}
    for component in order:
        counts = per_component[component]
        # Greedy proportional allocation: the split whose remaining share of these classes is largest.
        deficit = ((targets - filled) / np.maximum(targets, 1e-9)) * counts[None, :]
        score = np.where(fractions > 0, deficit.sum(1), -np.inf)
        empty = [i for i in range(len(names)) if fractions[i] > 0 and filled[i].sum() == 0]
        remaining = len(order) - len(assignment)
        if empty and remaining <= len(empty):
            choice = empty[0]  # keep every requested split non-empty
        else:
            choice = int(np.argmax(score))
        assignment[component] = choice
        filled[choice] += counts
    split_of_row = np.asarray([assignment[c] for c in row_components])
    result = datasets.DatasetDict(
        {name: dataset.select(np.flatnonzero(split_of_row == i)) for i, name in enumerate(names)}
    )
    if verbose:
        split_report(result)
    return result


__all__ = [
    "COLUMNS",
    "CROPS_MARK",
    "DataSourceError",
    "class_balance",
    "crops_marked",
    "default_cache_dir",
    "features",
    "linked_groups",
    "load_source",
    "marked_crops_paths",
    "split_by_group",
    "split_report",
]
