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
- `frame_scores` (on request): per sampled frame, the fake probability of the person whose score is the
  file's (None for a frame in which that person was not found), so `fake_probability` aggregates them.

With faces, each person is scored on their own and the file's score is the most suspicious
person's; a person must appear in at least a quarter of the frames with faces (or be the
longest-tracked one) so a one-frame false detection does not decide a video. Frames without a face
are left out when other frames have one; only when no frame has a face are whole frames scored.
All of that is `scoring.Scorer`'s (the one scorer `evaluate`, `calibrate` and `explain` use too);
the Detector runs its steps in threads.
"""

import contextlib
import itertools
import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from deepfake_hf.errors import DeepfakeHFError, one_line
from deepfake_hf.media import MediaError, is_url, iter_media_files, media_kind, not_regular_file
from deepfake_hf.scoring.scorer import (  # noqa: F401 - re-exported: callers import these from here
    AGGREGATIONS,
    HUB_LOAD_KEYS,
    MIN_TRACK_SHARE,
    NO_FACE_NOTE,
    NO_FACE_VIDEO_NOTE,
    AnalysisCancelled,
    Batcher,
    ModelLoadError,
    PendingScores,
    Scorer,
    fake_label_index,
    fake_margins,
    load_classifier,
)


class Detector:
    """Scores images and videos with a deepfake detector (any image-classification model with a "fake" label).

    `model` is a model (with `image_processor` and the scorer options) or a ready `scoring.Scorer`
    (e.g. a saved probe, `probes.load_probe`); the scoring itself is the scorer's, the threads are the Detector's.
    """

    def __init__(self, model, image_processor=None, faces=None, num_frames=None, aggregate=None, batch_size=None,
                 device=None, crop="align", face_size=256, face_scale=1.3, margin=0.3, workers=2, progress=None):
        if isinstance(model, Scorer):
            self.scorer = model
        else:
            self.scorer = Scorer(model, image_processor, faces=faces, num_frames=num_frames, aggregate=aggregate,
                                 batch_size=batch_size, device=device, crop=crop, face_size=face_size,
                                 face_scale=face_scale, margin=margin)
        self.workers = max(1, int(workers))
        self.progress = progress

    @classmethod
    def from_pretrained(cls, path_or_id, faces=None, num_frames=None, aggregate=None, batch_size=None, device=None,
                        **kwargs):
        """Load a saved detector folder or Hub id (and its image processor), or a saved probe folder.

        Loading options (`revision`, `token`, `trust_remote_code`, `local_files_only`, `cache_dir`)
        go to `from_pretrained`; `workers` and `progress` to the Detector; the rest to `scoring.Scorer`.
        """
        from deepfake_hf.evaluation.probes import load_scorer

        threads = {key: kwargs.pop(key) for key in ("workers", "progress") if key in kwargs}
        scorer = load_scorer(path_or_id, faces=faces, num_frames=num_frames, aggregate=aggregate,
                             batch_size=batch_size, device=device, **kwargs)
        return cls(scorer, **threads)

    # The scorer's settings, read (and batch_size set) through the Detector as before.
    model = property(lambda self: self.scorer.model)
    image_processor = property(lambda self: self.scorer.image_processor)
    device = property(lambda self: self.scorer.device)
    fake_index = property(lambda self: self.scorer.fake_index)
    threshold = property(lambda self: self.scorer.threshold)
    num_frames = property(lambda self: self.scorer.num_frames)
    aggregate = property(lambda self: self.scorer.aggregate)
    face_detector = property(lambda self: self.scorer.face_detector)
    crop = property(lambda self: self.scorer.crop)
    face_size = property(lambda self: self.scorer.face_size)
    face_scale = property(lambda self: self.scorer.face_scale)
    margin = property(lambda self: self.scorer.margin)

    @property
    def batch_size(self):
        return self.scorer.batch_size

    @batch_size.setter
    def batch_size(self, value):
        self.scorer.batch_size = int(value)

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

        counted = self._countable(inputs)
        items = self._items(inputs)  # lazy: a folder of millions of files is read as it is scored
        # Progress in frames, so one long video moves the bar too: each file is budgeted its expected
        # frame count (num_frames for videos, 1 for images), ticked as frames decode and topped up when done.
        # Budgets and ticks live only while a file is in flight, so memory does not grow with the input count.
        budget, ticks = {}, {}
        total = None if counted is None else sum(self._budget(name) for name, _ in counted)
        desc = f"scoring {len(counted)} files" if counted is not None else "scoring"
        bar = tqdm(total=total, unit="frame", desc=desc, disable=self._progress_disabled(counted))
        lock = threading.Lock()

        def ticker(position):
            def tick():
                if cancel is not None and cancel.is_set():
                    raise AnalysisCancelled("cancelled")
                with lock:
                    if position in ticks and ticks[position] < budget[position]:
                        ticks[position] += 1
                        bar.update(1)

            return tick

        pending = deque()  # files prepared (or failed), in input order, waiting for their scores
        batcher = Batcher(self.scorer)
        # Set when this generator stops early (Ctrl-C, an error, the caller closing it): the workers then give
        # up within a frame instead of finishing every file in flight, which made Ctrl-C take 20 s and more.
        stop = _Stop(cancel)
        cancel = stop
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
                    budget[position], ticks[position] = self._budget(name), 0
                    futures.append((position, pool.submit(self._prepare, name, item, ticker(position), cancel)))

            try:
                refill()
                while futures or pending:
                    if cancel.is_set():
                        raise AnalysisCancelled("the analysis was cancelled")
                    if futures:
                        position, future = futures.popleft()
                        record = future.result()
                        record["position"] = position
                        refill()
                        pending.append(record)
                        batcher.add(record["scores"])
                    elif batcher.queue:  # no more files coming: score the last partial batch
                        batcher.flush()
                    elif pending[0]["scores"].unscored:
                        raise RuntimeError("internal error: a file has crops that were never queued")
                    # Hand out every leading file whose crops are all scored.
                    while pending and pending[0]["scores"].unscored == 0:
                        record = pending.popleft()
                        with lock:
                            bar.update(budget.pop(record["position"]) - ticks.pop(record["position"]))
                        yield self._finish(record, frame_scores)
            except BaseException:  # KeyboardInterrupt and GeneratorExit too
                stop.set()
                for _, future in futures:
                    future.cancel()
                bar.close()
                raise
        bar.close()

    def _budget(self, name):
        return self.num_frames if media_kind(name) == "video" else 1

    def _progress_disabled(self, counted):
        if self.progress is not None:
            return not self.progress
        # Auto: only on a terminal, and only when there is more than a moment of work.
        long_work = counted is None or len(counted) > 1 or any(media_kind(name) == "video" for name, _ in counted)
        return None if long_work else True

    @staticmethod
    def _single(inputs):
        return isinstance(inputs, (str, os.PathLike)) or not isinstance(inputs, (list, tuple, Iterator))

    def _countable(self, inputs):
        """The items when they can be listed without walking folders or draining an iterator, else None."""
        listed = [inputs] if self._single(inputs) else inputs
        if isinstance(listed, Iterator) or any(isinstance(item, (str, os.PathLike)) and not is_url(item)
                                               and Path(item).is_dir() for item in listed):
            return None
        return list(self._items(listed))

    def _items(self, inputs):
        """(display name, source) pairs, lazily; folders expanded to their media files as they are walked."""
        if self._single(inputs):
            inputs = [inputs]
        for position, item in enumerate(inputs):
            if isinstance(item, (str, os.PathLike)):
                if is_url(item):
                    yield str(item), item
                elif Path(item).is_dir():
                    for source in iter_listed([item]):
                        yield (source.path if isinstance(source, MediaError) else str(source)), source
                else:
                    yield str(item), item
            elif isinstance(item, MediaError):  # found by a folder listing, not listable (expand_inputs)
                yield item.path, item
            else:
                kind = "array" if isinstance(item, np.ndarray) else "image"
                yield getattr(item, "filename", "") or f"<{kind} {position}>", item

    # ---------------------------------------------------------------------------------- worker threads
    def _prepare(self, name, source, tick=None, cancel=None):
        """The scorer's frames, face plan and model inputs (runs in a worker thread). Never raises for a bad file."""
        if isinstance(source, MediaError):
            return {"path": name, "kind": media_kind(name), "plan": None, "error": str(source),
                    "scores": PendingScores([])}
        path = isinstance(source, (str, os.PathLike)) and not is_url(source)
        kind = media_kind(source) if path else None
        record = {"path": name, "kind": kind, "plan": None, "error": None, "scores": PendingScores([])}
        try:
            special = not_regular_file(source) if path else None
            if special:  # a FIFO would block its reader until someone writes to it
                raise MediaError(name, special)
            frames, record["kind"] = self.scorer.read(source, name, tick, cancel=cancel)
            plan = self.scorer.plan(frames, cancel)
            inputs = self.scorer.preprocess(plan.crops)
        except AnalysisCancelled:
            record["error"] = f"{name}: cancelled"
            return record
        except MediaError as error:
            record["error"] = str(error)
            return record
        except Exception as error:  # an unexpected failure on one file must not stop the batch
            message = " ".join(str(error).split())[:300]
            record["error"] = f"{name}: {type(error).__name__}: {message}"
            return record
        plan.crops = None  # the inputs hold what the model needs
        record.update(plan=plan, scores=PendingScores(inputs))
        return record

    # ------------------------------------------------------------------------------------- main thread
    def _finish(self, record, frame_scores):
        ok = record["error"] is None
        if not ok and record["error"].startswith(f"{record['path']}: "):  # the `path` field already names the file
            record["error"] = record["error"][len(record["path"]) + 2:]
        plan = record["plan"]
        face_found = None if not ok or plan.faces is None else plan.faces > 0
        result = {"path": record["path"], "kind": record["kind"], "label": None, "fake_probability": None,
                  "frames": plan.frames if ok else None,
                  "frames_scored": len({frame for frame, _ in plan.owners}) if ok else None,
                  "frames_with_faces": plan.frames_with_faces if ok else None,
                  "faces": plan.faces if ok else None, "face_found": face_found,
                  "note": plan.note if ok else None, "error": record["error"]}
        if ok:
            verdict = self.scorer.decide(plan, record["scores"].margins)
            result["fake_probability"] = verdict.probability
            result["label"] = self.scorer.label(verdict.probability)
            if frame_scores:
                result["frame_scores"] = verdict.frame_scores
        elif frame_scores:
            result["frame_scores"] = None
        return result


class _Stop:
    """The caller's cancel event (if any) or'ed with the Detector's own stop flag; what the workers check."""

    def __init__(self, outer=None):
        self.outer = outer
        self.event = threading.Event()

    def is_set(self):
        return self.event.is_set() or (self.outer is not None and self.outer.is_set())

    def set(self):
        self.event.set()


def iter_listed(inputs):
    """`media.iter_media_files(inputs)` with each entry the listing could not list (a looping link to a folder,
    an unreadable folder, a FIFO) in its place as a `MediaError`, so it becomes a failed result, not a silence."""
    skipped = []
    for path in iter_media_files(inputs, skipped=skipped):
        while skipped:
            yield MediaError(*skipped.pop(0))
        yield path
    while skipped:
        yield MediaError(*skipped.pop(0))


def summarize(results):
    """Counts for a batch: {"files", "scored", "failed", "fake", "real", "no_face"}."""
    counts = _new_counts()
    for result in results:
        _count(counts, result)
    return counts


def _new_counts():
    return {"files": 0, "scored": 0, "failed": 0, "fake": 0, "real": 0, "no_face": 0}


def expand_inputs(inputs):
    """Files, folders (searched recursively for media files) and URLs (kept, to be refused per input), lazily.

    Raises FileNotFoundError when nothing at all is found (checked on the first file, not by listing all)."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = list(inputs)

    def walk():
        for item in inputs:
            if is_url(item):
                yield item
            else:
                yield from iter_listed([item])

    files = walk()
    first = next(files, None)
    if first is None:
        raise FileNotFoundError(f"no image or video files found in {', '.join(map(str, inputs))}")
    return itertools.chain([first], files)


STREAM_FORMATS = ("jsonl", "csv", "json")
# How long predict waits for the Hub to answer before loading a Hub id from the local cache only: without
# this, an unreachable host cost a minute of retries (12 multi-line messages) before the one-line error.
HUB_CHECK_TIMEOUT_S = 5.0


class PredictError(DeepfakeHFError, ValueError):
    """A predict run that cannot start as asked (a format, --resume without --out, an unreachable Hub)."""


class PredictInterrupted(KeyboardInterrupt):
    """Ctrl-C during `predict`, carrying what was done: `results` (the result dicts so far, unstreamed runs) and
    `text` (them formatted), or `counts` of a streamed run whose results so far are in `out`; `resumable`
    tells whether `--resume` continues it."""

    def __init__(self, results=None, text=None, counts=None, out=None, resumable=False):
        super().__init__("interrupted")
        self.results, self.text, self.counts, self.out, self.resumable = results, text, counts, out, resumable

    @property
    def done(self):
        return self.counts["files"] if self.counts is not None else len(self.results or ())


def predict(model, inputs, faces="auto", crop="align", num_frames=None, aggregate=None, fmt="table",
            frame_scores=False, batch_size=None, device=None, trust_remote_code=False, progress=None, out=None,
            resume=False, on_result=None):
    """What `deepfake-hf predict` does.

    Without `out`, or for a table: (formatted text, result dicts), the text also written to `out` if given.
    With `out` and a machine format (jsonl, csv or json): results are written as they are produced and
    (None, counts) is returned, so memory does not grow with the number of
    inputs. Under torchrun / accelerate launch each rank scores its shard into its own part file and rank 0
    merges them into `out` in input order (the single-process output, row for row); `resume` skips the
    inputs a killed run already wrote. `on_result(result)` is called for each result as it is written.
    Bad files are results with `error`.
    """
    from deepfake_hf.runtime.distributed import current_ranks

    if fmt not in ("table", *STREAM_FORMATS):  # jsonl also prints to stdout
        raise PredictError(f"format: {fmt!r} is not one of table, {', '.join(STREAM_FORMATS)}.")
    ranks = current_ranks()
    streamed = out is not None and fmt in STREAM_FORMATS
    if not streamed and (ranks.world_size > 1 or resume):
        raise PredictError(f"{'--resume' if resume else 'a data-parallel run'} needs --out FILE and --format "
                           f"{' or '.join(STREAM_FORMATS)}: the results are streamed to that file")
    files = expand_inputs(inputs)
    local = os.path.exists(model)
    if not local and (str(model).count("/") != 1 or str(model).startswith((".", "/", "~"))):
        raise FileNotFoundError(f"{model}: no such model folder (and not a Hub id of the form org/name)")
    offline_reason = None if local else _hub_offline_reason()
    try:
        with _hub_offline(offline_reason is not None):
            detector = Detector.from_pretrained(model, faces=faces, crop=crop, num_frames=num_frames,
                                                aggregate=aggregate, batch_size=batch_size, device=device,
                                                trust_remote_code=trust_remote_code, progress=progress)
    except ModelLoadError:
        if offline_reason and not _in_hub_cache(str(model)):
            raise ModelLoadError(f"{model}: not in the local Hugging Face cache, and {offline_reason}") from None
        raise
    except ValueError as error:  # e.g. a classifier without a "fake" label
        raise ModelLoadError(f"{model}: {one_line(error)}") from None
    if not streamed:  # a table is for people: built in memory, printed or written at the end
        results = []
        try:
            results.extend(detector.iter_results(files, frame_scores=frame_scores))
        except KeyboardInterrupt:
            # iter_results stops its workers on the way out; what was scored is still worth showing
            text = format_results(results, fmt, model=model)
            if out is not None:
                Path(out).write_text(text, encoding="utf-8")
            raise PredictInterrupted(results=results, text=text, out=out) from None
        text = format_results(results, fmt, model=model)
        if out is not None:
            Path(out).write_text(text, encoding="utf-8")
        return text, results
    return None, _stream_predictions(detector, files, out, fmt, model, ranks, resume, frame_scores, on_result)


def _hub_offline_reason():
    """Why a Hub id must be loaded from the local cache only: HF_HUB_OFFLINE is set, or the endpoint does not
    answer within HUB_CHECK_TIMEOUT_S (then a cached model still loads and a missing one fails at once, in one
    line, instead of after a minute of retries); None when the Hub answers."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set, so nothing is downloaded"
    problem = hub_unreachable(constants.ENDPOINT)
    if problem is None:
        return None
    return (f"the Hub at {constants.ENDPOINT} does not answer ({problem}); check the network or HF_ENDPOINT, or "
            "give a local model folder")


@contextlib.contextmanager
def _hub_offline(enabled):
    """huggingface_hub's offline mode for the block. Passing local_files_only is not enough: transformers'
    PEFT adapter lookup drops it and retried an unreachable host for a minute."""
    from huggingface_hub import constants

    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = previous or enabled
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def hub_unreachable(endpoint, timeout=HUB_CHECK_TIMEOUT_S):
    """Why `endpoint` gives no HTTP answer within `timeout` seconds (refused, timed out, unknown host), or
    None when it answers at all: any status, or a TLS error, shows a host is there (loading then says more)."""
    import socket
    import ssl
    import urllib.error
    import urllib.request

    request = urllib.request.Request(endpoint.rstrip("/") + "/", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, ssl.SSLError):
            return None
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return f"no answer within {timeout:g} s"
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused"
        if isinstance(reason, socket.gaierror):
            return "unknown host"
        return one_line(reason, 120)


def _in_hub_cache(model_id):
    """True when the Hugging Face cache holds a config.json of `model_id` (so a load error is not a missing model)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - a malformed id: treat as not cached
        return False


def _stream_predictions(detector, files, out, fmt, model, ranks, resume, frame_scores, on_result):
    """Score this rank's shard into its part file; rank 0 then writes `out`. Returns the run's summary counts."""
    from deepfake_hf.runtime.distributed import PartWriter, barrier, iter_parts, remove_parts, shard

    created = [folder for folder in Path(out).absolute().parents if not folder.exists()]
    part = PartWriter(out, ranks, resume=resume)
    try:
        with part:
            mine = shard(files, ranks)
            done = sum(1 for _ in itertools.islice(mine, part.done))  # written before an interruption: skipped
            if done < part.done:
                raise PredictError(f"--resume: {part.path.name} holds more results than there are inputs; "
                                   "were the inputs changed? Start again without --resume")
            in_flight = deque()  # global indices of the inputs the detector has taken, in order

            def paths():
                for index, path in mine:
                    in_flight.append(index)
                    yield path

            for result in detector.iter_results(paths(), frame_scores=frame_scores):  # results keep input order
                part.write(in_flight.popleft(), result)
                if on_result is not None:
                    on_result(result)
    except KeyboardInterrupt:
        # The part file is what --resume continues from: kept. Alone, the results so far are also written
        # to `out` in its format; under a launcher the other ranks' parts are not ours to wait for.
        counts = _write_merged(out, fmt, model, iter_parts(out, 1), frame_scores) if ranks.world_size == 1 else None
        raise PredictInterrupted(counts=counts, out=out, resumable=True) from None
    except Exception:
        if not resume:  # a run that fails leaves nothing it created; a resumed part is earlier work: kept
            part.path.unlink(missing_ok=True)
            for folder in created:
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        raise
    barrier(ranks)
    counts = None
    if ranks.is_main:
        counts = _write_merged(out, fmt, model, iter_parts(out, ranks.world_size), frame_scores)
        remove_parts(out, ranks.world_size)
    barrier(ranks)
    return counts if counts is not None else {"rank": ranks.rank}


def _write_merged(out, fmt, model, rows, frame_scores):
    """The merged results in `fmt`, written row by row; returns the summary counts."""
    import json

    from deepfake_hf.runtime.outputs import SafeCsvWriter

    counts = _new_counts()
    temporary = Path(f"{out}.writing")
    with open(temporary, "w", encoding="utf-8", newline="") as handle:
        writer = None
        if fmt == "json":
            handle.write('{"model": %s, "results": [' % json.dumps(None if model is None else str(model)))
        for position, (_, result) in enumerate(rows):
            _count(counts, result)
            if fmt == "jsonl":
                handle.write(json.dumps(result) + "\n")
            elif fmt == "json":
                handle.write(("," if position else "") + "\n  " + json.dumps(result))
            else:
                if writer is None:
                    writer = SafeCsvWriter(handle, fieldnames=_csv_columns(frame_scores), lineterminator="\n")
                    writer.writeheader()
                writer.writerow(_csv_row(result, writer.fieldnames))
        if fmt == "json":
            handle.write('\n], "summary": %s}\n' % json.dumps(counts))
        elif fmt == "csv" and writer is None:
            handle.write(",".join(_csv_columns(frame_scores)) + "\n")
    os.replace(temporary, out)
    return counts


def _count(counts, result):
    """Add one result to `summarize`'s counts (streamed runs count as they write)."""
    counts["files"] += 1
    if result["error"] is not None:
        counts["failed"] += 1
        return
    counts["scored"] += 1
    counts["fake"] += result["label"] == "fake"
    counts["real"] += result["label"] == "real"
    counts["no_face"] += result.get("face_found") is False


RESULT_COLUMNS = ("path", "kind", "label", "fake_probability", "frames", "frames_scored", "frames_with_faces",
                  "faces", "face_found", "note", "error")


def format_results(results, fmt="table", model=None):
    """Results as text: "table" for people, "json", "jsonl" or "csv" for machines."""
    import json

    if fmt == "json":
        return json.dumps({"model": None if model is None else str(model), "summary": summarize(results),
                           "results": results}, indent=2) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(result) + "\n" for result in results)
    if fmt == "csv":
        import io

        from deepfake_hf.runtime.outputs import SafeCsvWriter

        buffer = io.StringIO()
        columns = _csv_columns(any("frame_scores" in r for r in results))
        writer = SafeCsvWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for result in results:
            writer.writerow(_csv_row(result, columns))
        return buffer.getvalue()
    if fmt != "table":
        raise ValueError(f"format: {fmt!r} is not one of table, json, jsonl, csv.")
    return _table(results)


def _csv_columns(frame_scores):
    return list(RESULT_COLUMNS) + (["frame_scores"] if frame_scores else [])


def _csv_row(result, columns):
    import json

    row = {key: "" if result.get(key) is None else result.get(key) for key in columns}
    if result.get("fake_probability") is not None:
        row["fake_probability"] = f"{result['fake_probability']:.6f}"
    if result.get("frame_scores") is not None:
        row["frame_scores"] = json.dumps([None if v is None else round(v, 6) for v in result["frame_scores"]])
    return row


TABLE_PATH_WIDTH = 60


def shorten_path(path, width=TABLE_PATH_WIDTH):
    """`path` cut to `width` characters in the middle ("clips/2024/.../0001.mp4"), keeping its start and as
    much of its end (the file name) as fits, so a long path cannot push the table's columns out of line."""
    if len(path) <= width:
        return path
    keep = width - 3
    tail = min(keep, max(keep * 2 // 3, len(os.path.basename(path))))
    return path[: keep - tail] + "..." + path[len(path) - tail:]


def _table(results):
    from deepfake_hf.runtime.outputs import counted

    root = os.path.commonpath([os.path.dirname(r["path"]) for r in results]) if results and all(
        os.path.isabs(r["path"]) for r in results) else ""
    rows = [("FILE", "KIND", "LABEL", "P(FAKE)", "FRAMES", "FACES", "NOTE")]
    for result in results:
        name = shorten_path(os.path.relpath(result["path"], root) if root else result["path"])
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
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths)) + ("  " + row[-1] if row[-1] else "")
             for row in rows]
    counts = summarize(results)
    no_face = f", {counts['no_face']} with no face" if counts["no_face"] else ""
    lines.append(f"{counted(counts['files'], 'file')}: {counts['scored']} scored ({counts['fake']} fake, "
                 f"{counts['real']} real{no_face}), {counts['failed']} failed")
    if any(result["frames_scored"] != result["frames"] for result in results if result["error"] is None):
        lines.append("FRAMES: scored/sampled where frames without a face were left out")
    return "\n".join(line.rstrip() for line in lines) + "\n"


__all__ = ["Detector", "expand_inputs", "format_results", "predict", "summarize"]
