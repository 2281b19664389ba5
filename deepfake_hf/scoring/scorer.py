"""The one scorer: how a file becomes a calibrated fake probability, for every command that scores.

`predict` (through `scoring.detector.Detector`, which runs the scorer's steps in background workers),
`evaluate`, `calibrate`, `explain`, saved probes (`probes.ProbeScorer`) and the Gradio app all score
through a `Scorer`, so the same file gets the same number everywhere:

1. frames (`Scorer.read`): a still is one frame; a video (or animated image) gives `num_frames` frames
   spread evenly over it (`media.read_video_frames`, i.e. `media.sample_frame_indices`; DeepfakeBench's
   frames with its face mode).
2. face policy (`Scorer.plan`): with a face detector, every face of every frame is found, faces are
   tracked across frames (`faces.track_faces`) and each is cropped (`crop`: "align" = DeepfakeBench
   5-point alignment, "margin" = box plus margin); frames without a face are left out when other
   frames have one; when no frame has a face, whole frames are scored and the plan's `note` says so.
   Without a detector (`faces="none"`) whole frames are scored. A model's config records the input it
   was trained on (`configuration_deepfake.INPUT_KEYS`: `face_preprocessing` "deepfakebench", "dlib" or
   "none", the crop and its geometry, the frame count); `set_policy` is the one place that reads it for
   every door (predict, evaluate, calibrate, the Detector, the app and the face-aware pipeline in
   `pipeline_deepfake.py`): an option given wins, else the recorded value (`resolve_faces` for the face
   mode, with None and "auto" taking the recorded one; `recorded_crop` for the crop), else the default.
   Every door's own face default is None, so a model recording nothing is scored as given at every door.
3. model inputs (`Scorer.preprocess`) and batched forward passes (`Scorer.forward`, `Batcher`): crops of
   several files share a batch.
4. calibrated probability (`Scorer.probabilities`): a deepfake-hf detector's logits are divided by its
   calibration temperature and shifted by -logit(threshold) so 0.5 is its decision point (what
   `pipeline` shows); the shift is undone here, giving the calibrated probability itself, compared with
   the threshold for the label. A stock classifier (a native export) has the shift folded into its head:
   its softmax is reported as is.
5. verdict (`Scorer.decide`): each person's frame probabilities are aggregated (`aggregation`: "mean" or
   the DFDC "confident" strategy; by default the model config's `video_aggregation`); the file's score is the
   most suspicious person's, among people seen in at least
   a quarter of the frames with faces (or the longest-tracked one), so a one-frame false detection does
   not decide a video. The verdict's per-frame scores are that person's (None where they are not seen),
   so the file's score is the aggregate of its frame scores.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_hf.configuration_deepfake import (
    AGGREGATIONS,
    DEFAULT_AGGREGATION,
    DEFAULT_CONFIDENT_FRACTION,
    DEFAULT_CONFIDENT_THRESHOLD,
    DEFAULT_NUM_FRAMES,
    DEFAULT_THRESHOLD,
)
from deepfake_hf.defaults import DEFAULT_CROP, FACE_MARGIN, FACE_SCALE, FACE_SIZE
from deepfake_hf.errors import AnalysisCancelled, DeepfakeHFError, one_line  # AnalysisCancelled: media raises it too
from deepfake_hf.faces import FACE_CROPS
from deepfake_hf.media import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    MediaError,
    is_animated,
    is_url,
    media_kind,
    open_image,
)
from deepfake_hf.scoring import hub

MIN_TRACK_SHARE = 0.25
_POOL_LOCK = threading.Lock()  # one face worker pool per scorer, though several threads plan at once
HUB_LOAD_KEYS = ("revision", "token", "trust_remote_code", "local_files_only", "cache_dir")
# The headline for a file in which a face detector found nobody: a face-trained model's score of a
# whole image is outside what it learned, so it must not read like a verdict.
NO_FACE_NOTE = "no face found: scored the whole image, which this detector was not trained on"
NO_FACE_VIDEO_NOTE = "no face found in any frame: scored whole frames, which this detector was not trained on"


class ModelLoadError(DeepfakeHFError, OSError):
    """A model folder or Hub id that cannot be loaded; one line naming it and the reason."""


class ScoringOptionError(DeepfakeHFError, ValueError):
    """A scorer option that is out of range or does not fit the model (an aggregation, a crop, no "fake" label)."""


# ------------------------------------------------------------------------------------------ loading
def load_classifier(path_or_id: str | os.PathLike, **load_kwargs: Any) -> tuple[Any, Any]:
    """(model in eval mode, image processor) of a saved image classifier: a deepfake-hf detector or a native export.

    The folder's own processor is used; a detector saved without one gets its backbone's matching processor.
    `load_kwargs` go to the model's `from_pretrained` (e.g. `attn_implementation`); the Hub options among them
    (`HUB_LOAD_KEYS`) also go to the processor's. A Hub id is loaded from the local cache alone when
    HF_HUB_OFFLINE is set or the Hub does not answer within `hub.HUB_CHECK_TIMEOUT_S`: a model not cached then
    fails at once, in one line, instead of after a minute of retries.
    """
    reason = hub.offline_reason(path_or_id, local_files_only=bool(load_kwargs.get("local_files_only")))
    try:
        with hub.offline(reason is not None):
            return _load_classifier(path_or_id, load_kwargs)
    except ModelLoadError:
        message = reason and hub.not_cached_message(str(path_or_id), reason, revision=load_kwargs.get("revision"),
                                                    cache_dir=load_kwargs.get("cache_dir"))
        if message:
            raise ModelLoadError(message) from None
        raise


def _load_classifier(path_or_id, load_kwargs):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from deepfake_hf import register
    from deepfake_hf.safety import UnsafeFileError, check_model_source

    register()
    # None would let transformers ask "run the custom code? [y/N]" on stdin; False refuses instead. This package's
    # own folders load through the classes registered above, which need no remote code.
    if load_kwargs.get("trust_remote_code") is None:
        load_kwargs["trust_remote_code"] = False
    hub_kwargs = {key: value for key, value in load_kwargs.items() if key in HUB_LOAD_KEYS}
    try:
        check_model_source(path_or_id, **hub_kwargs)  # absurd sizes and broken headers: refused before building
    except UnsafeFileError as error:
        raise ModelLoadError(str(error)) from None
    try:
        model = AutoModelForImageClassification.from_pretrained(path_or_id, **load_kwargs).eval()
    except Exception as error:  # noqa: BLE001 - transformers' and torch's messages run to many lines: say it in one
        raise ModelLoadError(_load_problem(path_or_id, error)) from None
    try:
        processor = AutoImageProcessor.from_pretrained(path_or_id, **hub_kwargs)
    except (OSError, ValueError) as error:
        if not hasattr(model, "matching_image_processor"):
            raise ModelLoadError(_load_problem(path_or_id, error)) from None
        processor = model.matching_image_processor()
    return model, processor


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
        return (f"{path_or_id}: holds custom model code{listed} that would run on this machine; refused. Only "
                "--trust-remote-code (predict, evaluate, calibrate, explain; trust_remote_code=True in Python) "
                "runs it: use that only if you trust its author")
    if isinstance(error, (FileNotFoundError, OSError)) and not Path(str(path_or_id)).exists() and (
            "/" not in str(path_or_id) or str(path_or_id).startswith((".", "/"))):
        return f"{path_or_id}: no such model folder (and not a Hub id of the form org/name)"
    return f"{path_or_id}: cannot load a model ({one_line(text, limit=300)})"


def resolve_faces(faces, config):
    """The face mode to run: `faces` as asked, except that None ("the model's") and "auto" take the face
    preprocessing the model's config records (`face_preprocessing`); with none recorded, None is "none".
    Every door passes None unless its caller names a mode, so this is the one default they all share."""
    from deepfake_hf.faces import prefer_recorded

    return prefer_recorded(faces, getattr(config, "face_preprocessing", None))


def recorded_crop(config: Any, crop: str | None = None, face_size: int | None = None,
                  face_scale: float | None = None, margin: float | None = None) -> tuple[str, int, float, float]:
    """(crop, face size, face scale, margin): each as asked, else as the model's config records it
    (`face_crop`, `face_size`, `face_scale`, `face_margin`), else the package default."""

    def pick(asked, key, default):
        if asked is not None:
            return asked
        recorded = getattr(config, key, None)
        return default if recorded is None else recorded

    return (pick(crop, "face_crop", DEFAULT_CROP), int(pick(face_size, "face_size", FACE_SIZE)),
            float(pick(face_scale, "face_scale", FACE_SCALE)), float(pick(margin, "face_margin", FACE_MARGIN)))


def fake_label_index(config: Any) -> int:
    """Index of the "fake" label in a classifier's config; `ScoringOptionError` when it has none."""
    labels = {str(name).lower(): int(index) for index, name in config.id2label.items()}
    if "fake" not in labels:
        raise ScoringOptionError(f"model: no 'fake' label in id2label {dict(config.id2label)}; not a deepfake detector")
    return labels["fake"]


def fake_margins(logits, fake_index):
    """logit(fake) - logsumexp(other logits), row by row: the fake log-odds of any classifier's output."""
    import torch

    other = torch.cat([logits[:, :fake_index], logits[:, fake_index + 1 :]], dim=1)
    return logits[:, fake_index] - torch.logsumexp(other, dim=1)


def _logit(p):
    return math.log(p) - math.log1p(-p)


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


# ------------------------------------------------------------------------------------------ results
@dataclass
class FacePlan:
    """What of a file's frames the model scores.

    `crops[i]` is the model input image of `owners[i] = (frame index, person index)`; `faces` is the number
    of people tracked (None: face detection off; 0: nobody found, whole frames scored); `frames_with_faces`
    counts frames with a face (None when detection is off); `note` says what the score rests on when that
    is not the normal case.
    """

    frames: int
    crops: list
    owners: list
    faces: int | None
    frames_with_faces: int | None
    note: str | None


@dataclass
class Verdict:
    """A file's score: the most suspicious person's aggregated probability.

    `frame_crops[f]` is the index (into the plan's crops) of that person's crop in frame `f`, or None where
    they are not seen; `frame_scores[f]` is its calibrated probability, so `probability` aggregates the
    non-None `frame_scores`.
    """

    probability: float
    person: int
    frame_crops: list
    frame_scores: list


class PendingScores:
    """One file's model inputs waiting in a `Batcher`: `margins[i]` is filled when input i is scored."""

    def __init__(self, inputs):
        self.inputs = list(inputs)
        self.margins = [None] * len(self.inputs)
        self.unscored = len(self.inputs)


class Batcher:
    """Scores the inputs of several files in shared batches of `batch_size`."""

    def __init__(self, scorer, batch_size=None):
        self.scorer = scorer
        self.batch_size = int(batch_size or scorer.batch_size)
        self.queue = []  # (PendingScores, input index) not yet scored

    def add(self, pending):
        """Queue a file's inputs and score every full batch."""
        self.queue.extend((pending, index) for index in range(len(pending.inputs)))
        while len(self.queue) >= self.batch_size:
            self._score(self.queue[: self.batch_size])
            del self.queue[: self.batch_size]

    def flush(self):
        """Score what is left (the last partial batch)."""
        if self.queue:
            self._score(self.queue)
            self.queue = []

    def _score(self, batch):
        margins = self.scorer.forward([pending.inputs[index] for pending, index in batch])
        for (pending, index), margin in zip(batch, margins):
            pending.margins[index] = float(margin)
            pending.unscored -= 1
            pending.inputs[index] = None  # free memory early


# ------------------------------------------------------------------------------------------ the scorer
def default_batch_size(device):
    """Crops per model call when the caller sets none: 8 on a CPU, 32 on a GPU.

    On 2 CPU cores a ViT-B/16 forward runs fastest at batch 8 (7.30-7.42 img/s against 6.99-7.08 at 16),
    and the Detector at batch 8 keeps up with transformers' pipeline where batch 16 fell 3-5% behind it
    (benchmarks/results/inference_textures_cpu.json). A GPU wants larger batches to stay busy.
    """
    return 32 if getattr(device, "type", str(device)) == "cuda" else 8


class Scorer:
    """A deepfake detector (any image classifier with a "fake" label) with its face policy, frame sampling,
    batching and calibration: see the module docstring for each step."""

    # Face detection in worker processes (faces.workers.FacePool): how many (0: in the calling thread; None: the
    # thread budget, runtime.threads.face_worker_budget(), for a mode whose frames are independent, so that one
    # video's frames are spread over the processes, else in-thread, where threads planning several files at once
    # already use the cores: benchmarks/results/face_workers_cpu.json), and the pool, started by the first plan()
    # that finds faces.
    face_workers: int | None = None
    face_pool: Any = None

    def __init__(self, model: Any, image_processor: Any, faces: Any = None, num_frames: int | None = None,
                 aggregation: str | None = None, batch_size: int | None = None, device: Any = None,
                 crop: str | None = None, face_size: int | None = None, face_scale: float | None = None,
                 margin: float | None = None, name: str | None = None):
        import torch

        config = model.config
        try:
            self.fake_index = fake_label_index(config)
        except ScoringOptionError as error:  # not a detector: the model is the problem, named when known
            if name is None:
                raise
            raise ModelLoadError(f"{name}: {error}") from None
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.eval().to(self.device)
        self.image_processor = image_processor
        self.name = name
        self.threshold = float(getattr(config, "threshold", DEFAULT_THRESHOLD))
        self.temperature = float(getattr(config, "calibration_temperature", 1.0))
        # A deepfake-hf detector centres its logits on the threshold; a stock classifier has it in its head.
        self.centre = _logit(self.threshold) if getattr(config, "model_type", None) == "deepfake_detector" else 0.0
        self.set_policy(config, faces=faces, num_frames=num_frames, aggregation=aggregation, batch_size=batch_size,
                        crop=crop, face_size=face_size, face_scale=face_scale, margin=margin)

    def set_policy(self, config: Any = None, faces: Any = None, num_frames: int | None = None,
                   aggregation: str | None = None, batch_size: int | None = None, crop: str | None = None,
                   face_size: int | None = None, face_scale: float | None = None,
                   margin: float | None = None) -> None:
        """Frame sampling, face, crop and aggregation options; unset ones come from the model's config (what it
        records about its input: `configuration_deepfake.INPUT_KEYS`), else the package defaults (the batch
        size from the device: `default_batch_size`). This is the one place a door's input policy is resolved."""
        from deepfake_hf.faces import face_mode, frame_sampling_of

        batch_size = default_batch_size(self.device) if batch_size is None else batch_size
        self.num_frames = int(num_frames or getattr(config, "num_frames", None) or DEFAULT_NUM_FRAMES)
        # `video_aggregation` is the saved config.json key (renaming it would change every saved model folder)
        self.aggregation = aggregation or getattr(config, "video_aggregation", DEFAULT_AGGREGATION)
        if self.aggregation not in AGGREGATIONS:
            raise ScoringOptionError(f"aggregation: {self.aggregation!r} is not one of {', '.join(AGGREGATIONS)}.")
        self.confident_threshold = float(getattr(config, "confident_threshold", DEFAULT_CONFIDENT_THRESHOLD))
        self.confident_fraction = float(getattr(config, "confident_fraction", DEFAULT_CONFIDENT_FRACTION))
        if self.num_frames < 1 or batch_size < 1:
            raise ScoringOptionError("num_frames and batch_size must be >= 1")
        crop_asked = crop is not None
        crop, face_size, face_scale, margin = recorded_crop(config, crop, face_size, face_scale, margin)
        if crop not in FACE_CROPS:
            raise ScoringOptionError(f"crop: {crop!r} is not one of {', '.join(FACE_CROPS)}.")
        faces = resolve_faces(faces, config)
        if isinstance(faces, str):
            mode = face_mode(faces)
            if mode.finds_faces and crop not in mode.crops and not crop_asked:
                crop = mode.crops[0]  # a recorded crop that a mode asked for instead does not allow
            if mode.finds_faces and crop not in mode.crops:
                raise ScoringOptionError(f"crop: {crop!r} does not apply to faces {mode.name!r} "
                                         f"(its crops: {', '.join(mode.crops)}).")
            self.face_detector = mode.build(size=face_size, scale=face_scale)
        else:
            self.face_detector = faces  # a detector object
        # The frames a face mode's crops were cut from: DeepfakeBench's own frame numbers with its faces.
        self.frame_sampling = frame_sampling_of(self.face_detector)
        self.crop, self.face_size, self.face_scale, self.margin = crop, face_size, face_scale, margin
        self.batch_size = int(batch_size)

    @classmethod
    def from_pretrained(cls, path_or_id: str | os.PathLike, **kwargs: Any) -> Scorer:
        """Load a saved detector folder or Hub id (and its image processor).

        Loading options (`HUB_LOAD_KEYS`, `attn_implementation`) go to `from_pretrained`; the rest to `Scorer(...)`.
        """
        load_kwargs = {key: kwargs.pop(key) for key in (*HUB_LOAD_KEYS, "attn_implementation") if key in kwargs}
        model, processor = load_classifier(path_or_id, **load_kwargs)
        return cls(model, processor, name=str(path_or_id), **kwargs)

    # ------------------------------------------------------------------------------------- 1. frames
    def read(self, source: Any, name: str | None = None, tick: Callable[[], None] | None = None,
             cancel: Any = None) -> tuple[list, str]:
        """(frames, kind) of a file path, PIL image or array: one frame for a still, `num_frames` for a video.

        Raises `MediaError` (one line) for a file that cannot be read. `tick()` is called per decoded video frame;
        `cancel` (a threading.Event) is polled while decoding, raising `AnalysisCancelled` once set.
        """
        name = name or str(source)
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
            from deepfake_hf.media import read_video_frames

            return read_video_frames(source, self.num_frames, on_frame=tick, sampling=self.frame_sampling,
                                     cancel=cancel), kind
        return [open_image(source)], "image"

    # -------------------------------------------------------------------------------- 2. face policy
    def plan(self, frames: list, cancel: Any = None, find_faces: bool = True) -> FacePlan:
        """The `FacePlan` of a file's frames: one crop per tracked face per frame, or whole frames (also
        with `find_faces=False`, for frames that are face crops already)."""
        from deepfake_hf.faces import crop_face, detect_video, finds_faces, track_faces

        whole_frames = [(index, 0) for index in range(len(frames))]
        if not finds_faces(self.face_detector) or not find_faces:
            return FacePlan(len(frames), list(frames), whole_frames, None, None, None)
        detections = []
        pool = self._face_pool()
        # A video's frames together: the detector follows faces between key frames (faces.detect_video).
        source = detect_video(self.face_detector, frames) if pool is None else \
            pool.detect_video(self.face_detector, frames, cancel)
        try:
            for faces in source:
                if cancel is not None and cancel.is_set():
                    raise AnalysisCancelled("cancelled")
                detections.append(faces)
        finally:  # a cancelled file hands its face workers back now, not when the traceback is dropped
            getattr(source, "close", lambda: None)()
        if not any(detections):
            return FacePlan(len(frames), list(frames), whole_frames, 0, 0,
                            NO_FACE_VIDEO_NOTE if len(frames) > 1 else NO_FACE_NOTE)
        tracks = track_faces(detections)
        crops, owners = [], []
        for person, track in enumerate(tracks):
            for frame_index, face_index in sorted(track.items()):
                face = detections[frame_index][face_index]
                crops.append(crop_face(frames[frame_index], face, crop=self.crop, size=self.face_size,
                                       scale=self.face_scale, margin=self.margin))
                owners.append((frame_index, person))
        with_faces = sum(1 for faces in detections if faces)
        note: str | None = None
        if with_faces < len(frames):
            note = (f"faces found in {with_faces} of {len(frames)} sampled frames; "
                    f"only those {with_faces} were scored")
        return FacePlan(len(frames), crops, owners, len(tracks), with_faces, note)

    def _face_pool(self) -> Any:
        """The face worker pool (started on first use, shared by the threads that plan), or None for in-thread."""
        if self.face_pool is None:
            from deepfake_hf.faces.workers import FacePool, pool_size

            size = pool_size(self.face_detector, self.face_workers)
            if size < 1:
                return None

            with _POOL_LOCK:
                if self.face_pool is None:
                    self.face_pool = FacePool(size)
        return self.face_pool

    def close(self) -> None:
        """Stop the face worker processes, if any were started (a later plan() starts new ones)."""
        pool, self.face_pool = self.face_pool, None
        if pool is not None:
            pool.close()

    # --------------------------------------------------------------------------- 3. inputs and batches
    def preprocess(self, images: list) -> list:
        """One model input per PIL image (the processor's pixel values)."""
        if not images:
            return []
        return list(self.image_processor(images=[image.convert("RGB") for image in images],
                                         return_tensors="pt")["pixel_values"])

    def forward(self, inputs: list) -> np.ndarray:
        """Output margins (threshold-centred, temperature-scaled fake log-odds, as the model outputs) of one batch."""
        import torch

        dtype = next(self.model.parameters()).dtype
        with torch.inference_mode():
            pixel_values = torch.stack(list(inputs)).to(self.device, dtype=dtype)
            logits = self.model(pixel_values=pixel_values).logits.float()
            return fake_margins(logits, self.fake_index).double().cpu().numpy()

    def margins(self, images: list, batch_size: int | None = None) -> np.ndarray:
        """Output margins of PIL images, scored as they are (no face policy), in batches."""
        batch_size = int(batch_size or self.batch_size)
        out = [self.forward(self.preprocess(images[start:start + batch_size]))
               for start in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros(0)

    # ---------------------------------------------------------------------------- 4. probabilities
    def probabilities(self, margins: Any) -> np.ndarray:
        """Calibrated fake probabilities from output margins: the threshold centring undone."""
        return sigmoid(np.asarray(margins, dtype=np.float64) + self.centre)

    def raw_margins(self, margins: Any) -> np.ndarray:
        """Uncalibrated head margins (temperature 1, threshold 0.5), for fitting a new calibration."""
        return (np.asarray(margins, dtype=np.float64) + self.centre) * self.temperature

    def label(self, probability: float) -> str:
        return "fake" if probability >= self.threshold else "real"

    # ------------------------------------------------------------------------------------ 5. verdict
    def aggregate_scores(self, probabilities: Iterable[float]) -> float:
        """One score from frame probabilities: their mean, or the "confident" strategy."""
        import torch

        from deepfake_hf.modeling_deepfake import confident_mean

        values = torch.tensor(list(probabilities), dtype=torch.float64)[None]
        if self.aggregation == "confident":
            return float(confident_mean(values, self.confident_threshold, self.confident_fraction)[0])
        return float(values.mean())

    def decide(self, plan: FacePlan, margins: Any) -> Verdict:
        """The file's `Verdict` from the output margins of the plan's crops (in the plan's order)."""
        probabilities = self.probabilities(margins).tolist()
        crops_of: dict[Any, list[int]] = {}  # person -> crop indices, in frame order
        for index, (_, person) in enumerate(plan.owners):
            crops_of.setdefault(person, []).append(index)
        longest = max(len(indices) for indices in crops_of.values())
        frames_with_faces = len({frame for frame, _ in plan.owners})
        best = None
        for person, indices in crops_of.items():
            if len(indices) < longest and len(indices) < MIN_TRACK_SHARE * frames_with_faces:
                continue  # too briefly seen to decide the file
            score = self.aggregate_scores(probabilities[i] for i in indices)
            if best is None or score > best[0]:
                best = (score, person)
        assert best is not None  # the longest-tracked person always qualifies
        score, person = best
        frame_crops: list[int | None] = [None] * plan.frames
        for index in crops_of[person]:
            frame_crops[plan.owners[index][0]] = index
        frame_scores = [None if index is None else probabilities[index] for index in frame_crops]
        return Verdict(score, person, frame_crops, frame_scores)

    # ------------------------------------------------------------------------------------ one file
    def score_file(self, source: Any, name: str | None = None) -> tuple[FacePlan, Verdict]:
        """A file's (FacePlan, Verdict), all steps in this thread; raises MediaError for an unreadable file."""
        frames, _ = self.read(source, name)
        plan = self.plan(frames)
        return plan, self.decide(plan, self.margins(plan.crops))


__all__ = [
    "AGGREGATIONS",
    "NO_FACE_NOTE",
    "NO_FACE_VIDEO_NOTE",
    "AnalysisCancelled",
    "Batcher",
    "FacePlan",
    "ModelLoadError",
    "PendingScores",
    "Scorer",
    "ScoringOptionError",
    "Verdict",
    "default_batch_size",
    "fake_label_index",
    "fake_margins",
    "load_classifier",
    "recorded_crop",
    "resolve_faces",
    "sigmoid",
]
