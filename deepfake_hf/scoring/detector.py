"""`Detector`: batched, face-aware real/fake scoring of images and videos.

    detector = Detector.from_pretrained("my-detector", faces="dlib")
    for result in detector(["clip.mp4", "photo.jpg"]):
        print(result.path, result.label, result.fake_probability)

Files are decoded, searched for faces and preprocessed in background threads while the model scores
the crops of earlier files; crops from several files share a batch. Each file gives one
`results.FileResult` (its fields are described there); a file that cannot be scored gives a result with
`error` set, never an exception.

With faces, each person is scored on their own and the file's score is the most suspicious
person's; a person must appear in at least a quarter of the frames with faces (or be the
longest-tracked one) so a one-frame false detection does not decide a video. Frames without a face
are left out when other frames have one; only when no frame has a face are whole frames scored.
All of that is `scoring.Scorer`'s (the one scorer `evaluate`, `calibrate` and `explain` use too);
the Detector runs its steps in threads. Face detection (and landmarks) may run in `face_workers` processes
(`faces.workers.FacePool`), with the same results; by default (None) it does for a mode whose frames are
independent ("deepfakebench"), so one video's frames use every core of the thread budget, and in the threads
otherwise (they already detect two files at once: benchmarks/results/face_workers_cpu.json); `face_workers=0`
always detects in the threads. `close()` (or `with`) ends the processes.
`scoring.predict` writes its results for the command line.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_hf.errors import AnalysisCancelled
from deepfake_hf.media import MediaError, is_url, iter_media_files, media_kind, not_regular_file
from deepfake_hf.scoring.results import FileResult
from deepfake_hf.scoring.scorer import Batcher, PendingScores, Scorer, ScoringOptionError


class AsGiven(str):
    """A file path listed under a source marked `#crops` (a folder or manifest of ready-made face crops,
    `data.datasets.crops_marked`): scored as given, without the face policy, as `evaluate` scores such a source."""


class Detector:
    """Scores images and videos with a deepfake detector (any image-classification model with a "fake" label).

    `model` is a model (with `image_processor` and the scorer options) or a ready `scoring.Scorer`
    (e.g. a saved probe, `probes.load_probe`); the scoring itself is the scorer's, the threads are the Detector's.
    `face_workers`: face detection processes (None: the scorer's default, `Scorer.face_workers`; 0: in the threads).
    """

    def __init__(self, model: Any, image_processor: Any = None, faces: Any = None, num_frames: int | None = None,
                 aggregation: str | None = None, batch_size: int | None = None, device: Any = None,
                 crop: str | None = None, face_size: int | None = None, face_scale: float | None = None,
                 margin: float | None = None, workers: int = 2, progress: bool | None = None,
                 face_workers: int | None = None) -> None:
        if isinstance(model, Scorer):
            self.scorer = model
        else:
            self.scorer = Scorer(model, image_processor, faces=faces, num_frames=num_frames, aggregation=aggregation,
                                 batch_size=batch_size, device=device, crop=crop, face_size=face_size,
                                 face_scale=face_scale, margin=margin)
        if face_workers is not None:
            if int(face_workers) < 0:
                raise ScoringOptionError(f"face_workers: {face_workers} is not a number of processes (0 or more)")
            self.scorer.face_workers = int(face_workers)
        self.workers = max(1, int(workers))
        self.progress = progress

    def close(self) -> None:
        """Stop the face worker processes (`face_workers`); the Detector starts new ones if it is used again."""
        self.scorer.close()

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _threads(self) -> int:
        """Files prepared at once: `workers`, and at least one per face worker process so each has a file."""
        return max(self.workers, self.scorer.face_workers or 0)

    @classmethod
    def from_pretrained(cls, path_or_id: str | os.PathLike, faces: Any = None, num_frames: int | None = None,
                        aggregation: str | None = None, batch_size: int | None = None, device: Any = None,
                        **kwargs: Any) -> Detector:
        """Load a saved detector folder or Hub id (and its image processor), or a saved probe folder.

        Loading options (`revision`, `token`, `trust_remote_code`, `local_files_only`, `cache_dir`)
        go to `from_pretrained`; `workers`, `progress` and `face_workers` to the Detector; the rest to `scoring.Scorer`.
        """
        from deepfake_hf.evaluation.probes import load_scorer

        threads = {key: kwargs.pop(key) for key in ("workers", "progress", "face_workers") if key in kwargs}
        scorer = load_scorer(path_or_id, faces=faces, num_frames=num_frames, aggregation=aggregation,
                             batch_size=batch_size, device=device, **kwargs)
        return cls(scorer, **threads)

    # ------------------------------------------------------------------------------------------ scoring
    def __call__(self, inputs: Any, frame_scores: bool = False,
                 cancel: threading.Event | None = None) -> list[FileResult]:
        """Score paths (files or folders), PIL images, numpy arrays, or a list of them: one `FileResult` per file.

        `cancel`: a threading.Event; once set, decoding and scoring stop within a frame or a batch and
        `AnalysisCancelled` is raised, so an abandoned request frees its worker.
        """
        return list(self.iter_results(inputs, frame_scores=frame_scores, cancel=cancel))

    # Long: the progress budget, the worker pool, the batcher and the in-order hand-out share state that
    # splitting would pass around in half a dozen arguments.
    def iter_results(self, inputs: Any, frame_scores: bool = False,  # noqa: C901 - see the comment above
                     cancel: threading.Event | None = None) -> Iterator[FileResult]:
        """Like `__call__`, yielding each result as soon as its file is scored (input order kept)."""
        import torch
        from tqdm.auto import tqdm

        counted = self._countable(inputs)
        items = self._items(inputs)  # lazy: a folder of millions of files is read as it is scored
        # Progress in frames, so one long video moves the bar too: each file is budgeted its expected
        # frame count (num_frames for videos, 1 for images), ticked as frames decode and topped up when done.
        # Budgets and ticks live only while a file is in flight, so memory does not grow with the input count.
        budget: dict[int, int] = {}
        ticks: dict[int, int] = {}
        total = None if counted is None else sum(self._budget(name) for name, _ in counted)
        desc = f"scoring {len(counted)} files" if counted is not None else "scoring"
        bar = tqdm(total=total, unit="frame", desc=desc, disable=self._progress_disabled(counted))
        lock = threading.Lock()
        # Set when this generator stops early (Ctrl-C, an error, the caller closing it): the workers then give
        # up within a frame instead of finishing every file in flight, which made Ctrl-C take 20 s and more.
        stop = _Stop(cancel)

        def ticker(position):
            def tick():
                if stop.is_set():
                    raise AnalysisCancelled("cancelled")
                with lock:
                    if position in ticks and ticks[position] < budget[position]:
                        ticks[position] += 1
                        bar.update(1)

            return tick

        pending: deque[Any] = deque()  # files prepared (or failed), in input order, waiting for their scores
        batcher = Batcher(self.scorer)
        threads = self._threads()
        with ThreadPoolExecutor(threads, thread_name_prefix="deepfake-hf") as pool, torch.inference_mode():
            futures: deque[Any] = deque()
            source = iter(enumerate(items))
            # Keep every worker busy and the workers a full batch ahead of the model (counted in
            # expected crops, so a few videos do not hold thousands of frames); with a fixed number
            # of files in flight the model waited for each batch of images to be decoded.
            def refill():
                while (len(futures) < 2 * threads
                       or sum(budget[p] for p, _ in futures) < 2 * self.scorer.batch_size):
                    position, (name, item) = next(source, (None, (None, None)))
                    if position is None:
                        return
                    budget[position], ticks[position] = self._budget(name), 0
                    futures.append((position, pool.submit(self._prepare, name, item, ticker(position), stop)))

            try:
                refill()
                while futures or pending:
                    if stop.is_set():
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
        return self.scorer.num_frames if media_kind(name) == "video" else 1

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
                                               and (Path(item).is_dir() or _marked(item)) for item in listed):
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
                elif Path(item).is_dir() or _marked(item):
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
            plan = self.scorer.plan(frames, cancel, find_faces=not isinstance(source, AsGiven))
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
    def _finish(self, record: dict, frame_scores: bool) -> FileResult:
        error, path = record["error"], record["path"]
        if error is not None:
            if error.startswith(f"{path}: "):  # the `path` field already names the file
                error = error[len(path) + 2:]
            return FileResult(path, record["kind"], error=error, frame_scores=None)
        plan = record["plan"]
        verdict = self.scorer.decide(plan, record["scores"].margins)
        return FileResult(path, record["kind"], label=self.scorer.label(verdict.probability),
                          fake_probability=verdict.probability, frames=plan.frames,
                          frames_scored=len({frame for frame, _ in plan.owners}),
                          frames_with_faces=plan.frames_with_faces, faces=plan.faces,
                          face_found=None if plan.faces is None else plan.faces > 0, note=plan.note,
                          frame_scores=verdict.frame_scores if frame_scores else None)


class _Stop:
    """The caller's cancel event (if any) or'ed with the Detector's own stop flag; what the workers check."""

    def __init__(self, outer=None):
        self.outer = outer
        self.event = threading.Event()

    def is_set(self):
        return self.event.is_set() or (self.outer is not None and self.outer.is_set())

    def set(self):
        self.event.set()


def iter_listed(inputs: Iterable[str | os.PathLike]) -> Iterator[str | os.PathLike | MediaError]:
    """`media.iter_media_files(inputs)` with each entry the listing could not list (a looping link to a folder,
    an unreadable folder, a FIFO) in its place as a `MediaError`, so it becomes a failed result, not a silence.

    A folder or manifest marked `#crops` gives its files as `AsGiven` paths (scored without the face policy); a
    mark on something else is one failed entry."""
    from deepfake_hf.data.datasets import DataSourceError, marked_crops_paths

    unmarked: list[Any] = []  # listed together, so a file or folder given twice is listed once
    for item in inputs:
        if not _marked(item):
            unmarked.append(item)
            continue
        yield from _listed(unmarked)
        unmarked = []
        try:
            listed = marked_crops_paths(item)
        except (DataSourceError, OSError) as error:
            yield MediaError(str(item), str(error).removeprefix(f"{item}: "))
            continue
        for source in _listed(listed):
            yield source if isinstance(source, MediaError) else AsGiven(source)
    yield from _listed(unmarked)


def _listed(inputs):
    skipped: list[Any] = []
    for path in iter_media_files(inputs, skipped=skipped):
        while skipped:
            yield MediaError(*skipped.pop(0))
        yield path
    while skipped:
        yield MediaError(*skipped.pop(0))


def _marked(item: Any) -> bool:
    """Whether a path input carries the `#crops` mark (data.datasets.crops_marked: the one rule evaluate reads)."""
    from deepfake_hf.data.datasets import crops_marked

    return isinstance(item, (str, os.PathLike)) and not is_url(item) and crops_marked(item)


__all__ = ["AsGiven", "Detector", "iter_listed"]
