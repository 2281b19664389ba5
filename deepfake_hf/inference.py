"""`Detector`: batched, face-aware real/fake scoring of images and videos.

    detector = Detector.from_pretrained("my-detector", faces="dlib")
    for result in detector(["clip.mp4", "photo.jpg"]):
        print(result["path"], result["label"], result["fake_probability"])

Files are decoded, searched for faces and preprocessed in background threads while the model scores
the crops of earlier files; crops from several files share a batch. Each file gives one result dict:

- `path`, `kind` ("image" or "video"), `label` ("real"/"fake", or None on error),
- `fake_probability`: the calibrated probability (the model's temperature applied) that the file is
  fake; the label is "fake" when it reaches the model's threshold,
- `frames`: frames sampled from the file (1 for a still image); `frames_scored`: frames whose crops
  were scored; `frames_with_faces`: frames in which a face was found (None when face detection is off),
- `faces`: people found (tracked across video frames; None when face detection is off, 0 when it found
  nobody and whole frames were scored),
- `face_found`: False when a face detector was on and found nobody (the score then rests on whole
  frames, which a face-trained detector never saw; `note` says so first), else True or None,
- `note`: what the result rests on when that is not the normal case (no face found, frames without faces),
- `error`: None, or a one-line "PATH: problem" for a file that could not be scored,
- `frame_scores` (on request): per sampled frame, the highest fake probability among its faces
  (None for a frame without a face while others had faces).

With faces, each person is scored on their own and the file's score is the most suspicious
person's; a person must appear in at least a quarter of the frames with faces (or be the
longest-tracked one) so a one-frame false detection does not decide a video. Frames without a face
are left out when other frames have one; only when no frame has a face are whole frames scored.
"""

import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .configuration_deepfake import (
    AGGREGATIONS,
    DEFAULT_AGGREGATION,
    DEFAULT_CONFIDENT_FRACTION,
    DEFAULT_CONFIDENT_THRESHOLD,
    DEFAULT_NUM_FRAMES,
    DEFAULT_THRESHOLD,
)
from .data import FACE_CROPS
from .errors import DeepfakeHFError, one_line
from .media import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    MediaError,
    is_animated,
    is_url,
    list_media_files,
    media_kind,
    open_image,
    read_video_frames,
)

MIN_TRACK_SHARE = 0.25
# The headline for a file in which a face detector found nobody: a face-trained model's score of a
# whole image is outside what it learned, so it must not read like a verdict.
NO_FACE_NOTE = "no face found: scored the whole image, which this detector was not trained on"
NO_FACE_VIDEO_NOTE = "no face found in any frame: scored whole frames, which this detector was not trained on"


class AnalysisCancelled(DeepfakeHFError):
    """Scoring stopped because the caller's cancel event was set (e.g. a request's time limit ran out)."""


class Detector:
    """Scores images and videos with a deepfake detector (any image-classification model with a "fake" label)."""

    def __init__(self, model, image_processor, faces="none", num_frames=None, aggregate=None, batch_size=16,
                 device=None, crop="align", face_size=256, face_scale=1.3, margin=0.3, workers=2, progress=None):
        import torch

        from .faces import get_face_detector

        config = model.config
        self.fake_index = fake_label_index(config)
        self.model = model.eval()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        self.image_processor = image_processor
        self.threshold = float(getattr(config, "threshold", DEFAULT_THRESHOLD))
        self.num_frames = int(num_frames or getattr(config, "num_frames", DEFAULT_NUM_FRAMES))
        self.aggregate = aggregate or getattr(config, "video_aggregation", DEFAULT_AGGREGATION)
        if self.aggregate not in AGGREGATIONS:
            raise ValueError(f"aggregate: {self.aggregate!r} is not one of {', '.join(AGGREGATIONS)}.")
        self.confident_threshold = float(getattr(config, "confident_threshold", DEFAULT_CONFIDENT_THRESHOLD))
        self.confident_fraction = float(getattr(config, "confident_fraction", DEFAULT_CONFIDENT_FRACTION))
        if self.num_frames < 1 or batch_size < 1:
            raise ValueError("num_frames and batch_size must be >= 1")
        if crop not in FACE_CROPS:
            raise ValueError(f"crop: {crop!r} is not one of {', '.join(FACE_CROPS)}.")
        self.face_detector = get_face_detector(faces)
        self.crop, self.face_size, self.face_scale, self.margin = crop, face_size, face_scale, margin
        self.batch_size = batch_size
        self.workers = max(1, int(workers))
        self.progress = progress

    @classmethod
    def from_pretrained(cls, path_or_id, faces="none", num_frames=None, aggregate=None, batch_size=16, device=None,
                        **kwargs):
        """Load a saved detector folder or Hub id (and its image processor).

        Loading options (`revision`, `token`, `trust_remote_code`, `local_files_only`, `cache_dir`)
        go to `from_pretrained`; the rest to `Detector(...)`.
        """
        load_kwargs = {key: kwargs.pop(key) for key in HUB_LOAD_KEYS if key in kwargs}
        model, processor = load_classifier(path_or_id, **load_kwargs)
        return cls(model, processor, faces=faces, num_frames=num_frames, aggregate=aggregate,
                   batch_size=batch_size, device=device, **kwargs)

    # ------------------------------------------------------------------------------------------ scoring
    def __call__(self, inputs, frame_scores=False, cancel=None):
        """Score paths (files or folders), PIL images, numpy arrays, or a list of them: one dict per file.

        `cancel`: a threading.Event; once set, decoding and scoring stop within a frame or a batch and
        `AnalysisCancelled` is raised, so an abandoned request frees its worker.
        """
        return list(self.iter_results(inputs, frame_scores=frame_scores, cancel=cancel))

    def iter_results(self, inputs, frame_scores=False, cancel=None):
        """Like `__call__`, yielding each result as soon as its file is scored (input order kept)."""
        import torch
        from tqdm.auto import tqdm

        items = self._items(inputs)
        # Progress in frames, so one long video moves the bar too: each file is budgeted its expected
        # frame count (num_frames for videos, 1 for images), ticked as frames decode and topped up when done.
        budget = [self.num_frames if media_kind(name) == "video" else 1 for name, _ in items]
        bar = tqdm(total=sum(budget), unit="frame", desc=f"scoring {len(items)} files",
                   disable=self._progress_disabled(items))
        ticks = [0] * len(items)
        lock = threading.Lock()

        def ticker(position):
            def tick():
                if cancel is not None and cancel.is_set():
                    raise AnalysisCancelled("cancelled")
                with lock:
                    if ticks[position] < budget[position]:
                        ticks[position] += 1
                        bar.update(1)

            return tick

        pending = deque()  # files prepared (or failed), in input order, waiting for their scores
        queue = []  # (file record, crop index) not yet scored
        with ThreadPoolExecutor(self.workers, thread_name_prefix="deepfake-hf") as pool, torch.inference_mode():
            futures = deque()
            source = iter(enumerate(items))
            # Keep every worker busy and the workers a full batch ahead of the model (counted in
            # expected crops, so a few videos do not hold thousands of frames); with a fixed number
            # of files in flight the model waited for each batch of images to be decoded.
            def refill():
                while len(futures) < 2 * self.workers or sum(budget[p] for p, _ in futures) < 2 * self.batch_size:
                    position, (name, item) = next(source, (None, (None, None)))
                    if position is None:
                        return
                    futures.append((position, pool.submit(self._prepare, name, item, ticker(position), cancel)))

            refill()
            while futures or pending:
                if cancel is not None and cancel.is_set():
                    for _, future in futures:
                        future.cancel()
                    raise AnalysisCancelled("the analysis was cancelled")
                if futures:
                    position, future = futures.popleft()
                    record = future.result()
                    record["position"] = position
                    refill()
                    pending.append(record)
                    for index in range(len(record.get("crops", ()))):
                        queue.append((record, index))
                    while len(queue) >= self.batch_size:
                        self._score(queue[: self.batch_size])
                        del queue[: self.batch_size]
                elif queue:  # no more files coming: score the last partial batch
                    self._score(queue)
                    queue = []
                elif pending[0]["unscored"]:
                    raise RuntimeError("internal error: a file has crops that were never queued")
                # Hand out every leading file whose crops are all scored.
                while pending and pending[0]["unscored"] == 0:
                    record = pending.popleft()
                    with lock:
                        bar.update(budget[record["position"]] - ticks[record["position"]])
                        ticks[record["position"]] = budget[record["position"]]
                    yield self._finish(record, frame_scores)
        bar.close()

    def _progress_disabled(self, items):
        if self.progress is not None:
            return not self.progress
        # Auto: only on a terminal, and only when there is more than a moment of work.
        long_work = len(items) > 1 or any(media_kind(name) == "video" for name, _ in items)
        return None if long_work else True

    def _items(self, inputs):
        """(display name, source) pairs; folders expanded to their media files."""
        if isinstance(inputs, (str, os.PathLike)) or not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        items = []
        for position, item in enumerate(inputs):
            if isinstance(item, (str, os.PathLike)):
                if is_url(item):
                    items.append((str(item), item))
                elif Path(item).is_dir():
                    items.extend((str(path), path) for path in list_media_files([item]))
                else:
                    items.append((str(item), item))
            else:
                kind = "array" if isinstance(item, np.ndarray) else "image"
                items.append((getattr(item, "filename", "") or f"<{kind} {position}>", item))
        return items

    # ---------------------------------------------------------------------------------- worker threads
    def _prepare(self, name, source, tick=None, cancel=None):
        """Decode, find faces, crop, preprocess (runs in a worker thread). Never raises for a bad file."""
        kind = media_kind(source) if isinstance(source, (str, os.PathLike)) and not is_url(source) else None
        record = {"path": name, "kind": kind, "frames": 0, "faces": None, "frames_with_faces": None, "note": None,
                  "error": None, "crops": [], "owners": [], "unscored": 0, "scores": None}
        try:
            frames, record["kind"] = self._load(name, source, tick)
            crops, owners, faces, with_faces, note = self._crops(frames, cancel)
            pixel_values = self.image_processor(images=crops, return_tensors="pt")["pixel_values"]
        except AnalysisCancelled:
            record["error"] = f"{name}: cancelled"
            return record
        except MediaError as error:
            record["error"] = str(error)
            return record
        except Exception as error:  # an unexpected failure on one file must not stop the batch
            message = one_line(error, 300)
            record["error"] = f"{name}: {type(error).__name__}: {message}"
            return record
        record.update(frames=len(frames), faces=faces, frames_with_faces=with_faces, note=note,
                      crops=list(pixel_values), owners=owners,
                      unscored=len(owners), scores=[None] * len(owners))
        return record

    def _load(self, name, source, tick=None):
        if not isinstance(source, (str, os.PathLike)):
            return [open_image(source)], "image"
        if is_url(source):
            raise MediaError(name, "URLs are not supported; download the file and pass its path")
        kind = media_kind(source)
        if kind is None:
            suffix = Path(source).suffix or "(none)"
            if not Path(source).exists():
                raise MediaError(name, "no such file")
            raise MediaError(name, f"unsupported file type {suffix}; expected an image "
                                   f"({' '.join(IMAGE_EXTENSIONS)}) or a video ({' '.join(VIDEO_EXTENSIONS)})")
        if kind == "video" or is_animated(source):
            return read_video_frames(source, self.num_frames, on_frame=tick), kind
        return [open_image(source)], "image"

    def _crops(self, frames, cancel=None):
        """Model inputs for the frames: face crops (one per face) or whole frames.

        Returns (crops, owners, faces, frames with faces, note) where owners[i] = (frame index, person index).
        """
        from .faces import crop_face, track_faces

        whole_frames = [(index, 0) for index in range(len(frames))]
        if self.face_detector.name == "none":
            return frames, whole_frames, None, None, None
        detections = []
        for frame in frames:
            if cancel is not None and cancel.is_set():
                raise AnalysisCancelled("cancelled")
            detections.append(self.face_detector.detect(frame))
        if not any(detections):
            return frames, whole_frames, 0, 0, NO_FACE_VIDEO_NOTE if len(frames) > 1 else NO_FACE_NOTE
        tracks = track_faces(detections)
        crops, owners = [], []
        for person, track in enumerate(tracks):
            for frame_index, face_index in sorted(track.items()):
                face = detections[frame_index][face_index]
                crops.append(crop_face(frames[frame_index], face, crop=self.crop, size=self.face_size,
                                       scale=self.face_scale, margin=self.margin))
                owners.append((frame_index, person))
        with_faces = sum(1 for faces in detections if faces)
        note = None
        if with_faces < len(frames):
            note = (f"faces found in {with_faces} of {len(frames)} sampled frames; "
                    f"only those {with_faces} were scored")
        return crops, owners, len(tracks), with_faces, note

    # ------------------------------------------------------------------------------------- main thread
    def _score(self, batch):
        import torch

        pixel_values = torch.stack([record["crops"][index] for record, index in batch]).to(self.device)
        dtype = next(self.model.parameters()).dtype
        logits = self.model(pixel_values=pixel_values.to(dtype)).logits.float()
        probabilities = self._fake_probability(logits).cpu().tolist()
        for (record, index), probability in zip(batch, probabilities):
            record["scores"][index] = probability
            record["unscored"] -= 1
            record["crops"][index] = None  # free memory early

    def _fake_probability(self, logits):
        """Calibrated fake probability from the model's logits.

        A deepfake-hf model's logits are temperature-scaled and shifted by logit(threshold) so 0.5 is
        its decision point; the shift is undone here to report the calibrated probability itself.
        """
        import torch

        from .modeling_deepfake import logit

        margin = fake_margins(logits, self.fake_index)
        if getattr(self.model.config, "model_type", None) == "deepfake_detector":
            margin = margin + logit(self.threshold)
        return torch.sigmoid(margin)

    def _aggregate(self, probabilities):
        import torch

        from .modeling_deepfake import confident_mean

        values = torch.tensor(probabilities, dtype=torch.float64)[None]
        if self.aggregate == "confident":
            return float(confident_mean(values, self.confident_threshold, self.confident_fraction)[0])
        return float(values.mean())

    def _finish(self, record, frame_scores):
        ok = record["error"] is None
        if not ok and record["error"].startswith(f"{record['path']}: "):  # the `path` field already names the file
            record["error"] = record["error"][len(record["path"]) + 2:]
        face_found = None if record["faces"] is None or not ok else record["faces"] > 0
        result = {"path": record["path"], "kind": record["kind"], "label": None, "fake_probability": None,
                  "frames": record["frames"] if ok else None,
                  "frames_scored": len({frame for frame, _ in record["owners"]}) if ok else None,
                  "frames_with_faces": record["frames_with_faces"] if ok else None,
                  "faces": record["faces"], "face_found": face_found, "note": record["note"], "error": record["error"]}
        if ok:
            per_person = {}
            for (frame_index, person), score in zip(record["owners"], record["scores"]):
                per_person.setdefault(person, []).append(score)
            longest = max(len(scores) for scores in per_person.values())
            frames_with_faces = len({frame for frame, _ in record["owners"]})
            eligible = [scores for scores in per_person.values()
                        if len(scores) == longest or len(scores) >= MIN_TRACK_SHARE * frames_with_faces]
            probability = max(self._aggregate(scores) for scores in eligible)
            result["fake_probability"] = probability
            result["label"] = "fake" if probability >= self.threshold else "real"
            if frame_scores:
                best = [None] * record["frames"]
                for (frame_index, _), score in zip(record["owners"], record["scores"]):
                    best[frame_index] = score if best[frame_index] is None else max(best[frame_index], score)
                result["frame_scores"] = best
        elif frame_scores:
            result["frame_scores"] = None
        return result


HUB_LOAD_KEYS = ("revision", "token", "trust_remote_code", "local_files_only", "cache_dir")


def load_classifier(path_or_id, **load_kwargs):
    """(model in eval mode, image processor) of a saved image classifier: a deepfake-hf detector or a native export.

    The folder's own processor is used; a detector saved without one gets its backbone's matching processor.
    `load_kwargs` go to the model's `from_pretrained` (e.g. `attn_implementation`); the Hub options among them
    (`HUB_LOAD_KEYS`) also go to the processor's.
    """
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from . import register

    register()
    try:
        model = AutoModelForImageClassification.from_pretrained(path_or_id, **load_kwargs).eval()
    except Exception as error:  # transformers' and torch's messages run to many lines: say it in one
        raise ModelLoadError(_load_problem(path_or_id, error)) from None
    hub_kwargs = {key: value for key, value in load_kwargs.items() if key in HUB_LOAD_KEYS}
    try:
        processor = AutoImageProcessor.from_pretrained(path_or_id, **hub_kwargs)
    except (OSError, ValueError):
        if not hasattr(model, "matching_image_processor"):
            raise
        processor = model.matching_image_processor()
    return model, processor


class ModelLoadError(DeepfakeHFError, OSError):
    """A model folder or Hub id that cannot be loaded; one line naming it and the reason."""


def _load_problem(path_or_id, error):
    """One line saying why `from_pretrained` failed, for the common cases a user can act on."""
    import pickle

    text = one_line(error)
    if isinstance(error, pickle.UnpicklingError) or "Weights only load failed" in text:
        return (f"{path_or_id}: its checkpoint is a pickle that holds more than weights; deepfake-hf loads only "
                "safetensors or plain state dicts (torch.load(weights_only=True)) and never unpickles objects. "
                "Re-save it with save_pretrained (safetensors) where you trust it")
    if "contains custom code" in text or "trust_remote_code" in text:
        files = sorted(p.name for p in Path(str(path_or_id)).glob("*.py")) if Path(str(path_or_id)).is_dir() else []
        listed = f" ({', '.join(files)})" if files else ""
        return (f"{path_or_id}: holds custom model code{listed} that would run on this machine; refused. Pass "
                "--trust-remote-code (trust_remote_code=True) only if you trust its author")
    if isinstance(error, (FileNotFoundError, OSError)) and not Path(str(path_or_id)).exists() and (
            "/" not in str(path_or_id) or str(path_or_id).startswith((".", "/"))):
        return f"{path_or_id}: no such model folder (and not a Hub id of the form org/name)"
    return f"{path_or_id}: cannot load a model ({one_line(text, limit=300)})"


def fake_label_index(config):
    """Index of the "fake" label in a classifier's config; ValueError when it has none."""
    labels = {str(name).lower(): int(index) for index, name in config.id2label.items()}
    if "fake" not in labels:
        raise ValueError(f"model: no 'fake' label in id2label {dict(config.id2label)}; not a deepfake detector")
    return labels["fake"]


def fake_margins(logits, fake_index):
    """logit(fake) - logsumexp(other logits), row by row: the fake log-odds of any classifier's output."""
    import torch

    other = torch.cat([logits[:, :fake_index], logits[:, fake_index + 1 :]], dim=1)
    return logits[:, fake_index] - torch.logsumexp(other, dim=1)


def summarize(results):
    """Counts for a batch: {"files", "scored", "failed", "fake", "real", "no_face"}."""
    scored = [result for result in results if result["error"] is None]
    return {
        "files": len(results),
        "scored": len(scored),
        "failed": len(results) - len(scored),
        "fake": sum(result["label"] == "fake" for result in scored),
        "real": sum(result["label"] == "real" for result in scored),
        "no_face": sum(result.get("face_found") is False for result in scored),
    }


def expand_inputs(inputs):
    """Files, folders (searched recursively for media files) and URLs (kept, to be refused per input)."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    expanded = []
    for item in inputs:
        expanded.extend([item] if is_url(item) else list_media_files([item]))
    if not expanded:
        raise FileNotFoundError(f"no image or video files found in {', '.join(map(str, inputs))}")
    return expanded


def predict(model, inputs, faces="auto", crop="align", num_frames=None, aggregate=None, fmt="table",
            frame_scores=False, batch_size=16, device=None, trust_remote_code=False, progress=None):
    """What `deepfake-hf predict` does: (formatted text, result dicts). Bad files are results with `error`."""
    if fmt not in ("table", "json", "csv"):
        raise ValueError(f"format: {fmt!r} is not one of table, json, csv.")
    files = expand_inputs(inputs)
    if not os.path.exists(model) and str(model).count("/") != 1:
        raise FileNotFoundError(f"{model}: no such model folder (and not a Hub id of the form org/name)")
    try:
        detector = Detector.from_pretrained(model, faces=faces, crop=crop, num_frames=num_frames,
                                            aggregate=aggregate, batch_size=batch_size, device=device,
                                            trust_remote_code=trust_remote_code, progress=progress)
    except ValueError as error:  # e.g. a classifier without a "fake" label
        raise ModelLoadError(f"{model}: {one_line(error)}") from None
    results = detector(files, frame_scores=frame_scores)
    return format_results(results, fmt, model=model), results


RESULT_COLUMNS = ("path", "kind", "label", "fake_probability", "frames", "frames_scored", "frames_with_faces",
                  "faces", "face_found", "note", "error")


def format_results(results, fmt="table", model=None):
    """Results as text: "table" for people, "json" or "csv" for machines."""
    if fmt == "json":
        import json

        return json.dumps({"model": None if model is None else str(model), "summary": summarize(results),
                           "results": results}, indent=2) + "\n"
    if fmt == "csv":
        import csv
        import io
        import json

        buffer = io.StringIO()
        columns = list(RESULT_COLUMNS) + (["frame_scores"] if any("frame_scores" in r for r in results) else [])
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for result in results:
            row = {key: "" if result.get(key) is None else result.get(key) for key in columns}
            if result.get("fake_probability") is not None:
                row["fake_probability"] = f"{result['fake_probability']:.6f}"
            if result.get("frame_scores") is not None:
                row["frame_scores"] = json.dumps([None if v is None else round(v, 6) for v in result["frame_scores"]])
            writer.writerow(row)
        return buffer.getvalue()
    if fmt != "table":
        raise ValueError(f"format: {fmt!r} is not one of table, json, csv.")
    return _table(results)


def _table(results):
    root = os.path.commonpath([os.path.dirname(r["path"]) for r in results]) if results and all(
        os.path.isabs(r["path"]) for r in results) else ""
    rows = [("FILE", "KIND", "LABEL", "P(FAKE)", "FRAMES", "FACES", "NOTE")]
    for result in results:
        name = os.path.relpath(result["path"], root) if root else result["path"]
        if result["error"] is not None:
            rows.append((name, result["kind"] or "-", "ERROR", "-", "-", "-", result["error"]))
            continue
        faces = "-" if result["faces"] is None else str(result["faces"])
        # the headline of a face detector's whole-image guess is that no face was found, not the label
        label = result["label"] if result.get("face_found") is not False else f"NO FACE ({result['label']}?)"
        frames = str(result["frames"])
        if result.get("frames_scored") is not None and result["frames_scored"] != result["frames"]:
            frames = f"{result['frames_scored']}/{result['frames']}"
        rows.append((name, result["kind"], label, f"{result['fake_probability']:.3f}", frames, faces,
                     result["note"] or ""))
    widths = [min(60, max(len(row[i]) for row in rows)) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths)) + ("  " + row[-1] if row[-1] else "")
             for row in rows]
    counts = summarize(results)
    no_face = f", {counts['no_face']} with no face" if counts["no_face"] else ""
    lines.append(f"{counts['files']} files: {counts['scored']} scored ({counts['fake']} fake, {counts['real']} real"
                 f"{no_face}), {counts['failed']} failed")
    if any(result["frames_scored"] != result["frames"] for result in results if result["error"] is None):
        lines.append("FRAMES: scored/sampled where frames without a face were left out")
    return "\n".join(line.rstrip() for line in lines) + "\n"


__all__ = ["Detector", "expand_inputs", "format_results", "predict", "summarize"]
