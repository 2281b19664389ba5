"""`predict`: what `deepfake-hf predict` does with a `Detector`'s results.

Inputs (files, folders, URLs to refuse) are expanded lazily; a model given as a Hub id is loaded from the
local cache only when the Hub does not answer (`scoring.hub`, as every load). Without `--out`, or for a table, the
results are formatted in memory (`format_results`); with `--out` and a machine format they are streamed
(`results.ResultWriter`): under torchrun / accelerate each rank writes a part file and rank 0 merges them in
input order, and `--resume` skips what a killed run already wrote.
"""

from __future__ import annotations

import io
import itertools
import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from deepfake_hf.defaults import MODEL_FACES
from deepfake_hf.errors import DeepfakeHFError, one_line
from deepfake_hf.media import is_url
from deepfake_hf.scoring.detector import Detector, iter_listed
from deepfake_hf.scoring.hub import is_hub_id
from deepfake_hf.scoring.results import STREAM_FORMATS, FileResult, ResultWriter, summarize
from deepfake_hf.scoring.scorer import ModelLoadError


def expand_inputs(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> Iterator[Any]:
    """Files, folders (searched recursively for media files) and URLs (kept, to be refused per input), lazily.

    Raises `NoInputsError` when nothing at all is found (checked on the first file, not by listing all)."""
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
        raise NoInputsError(f"no image or video files found in {', '.join(map(str, inputs))}")
    return itertools.chain([first], files)


class PredictError(DeepfakeHFError, ValueError):
    """A predict run that cannot start as asked (a format, --resume without --out)."""


class NoInputsError(DeepfakeHFError, FileNotFoundError):
    """No image or video among the inputs, or a model that is neither a folder nor a Hub id."""


class PredictInterrupted(KeyboardInterrupt):
    """Ctrl-C during `predict`, carrying what was done: `results` (the `FileResult`s so far, unstreamed runs) and
    `text` (them formatted), or `counts` of a streamed run whose results so far are in `out`; `resumable`
    tells whether `--resume` continues it."""

    def __init__(self, results: list[FileResult] | None = None, text: str | None = None,
                 counts: dict[str, int] | None = None, out: str | os.PathLike | None = None, resumable: bool = False):
        super().__init__("interrupted")
        self.results, self.text, self.counts, self.out, self.resumable = results, text, counts, out, resumable

    @property
    def done(self) -> int:
        return self.counts["files"] if self.counts is not None else len(self.results or ())


def predict(model: str | os.PathLike, inputs: str | os.PathLike | Iterable[str | os.PathLike],
            faces: Any = MODEL_FACES, crop: str | None = None, num_frames: int | None = None,
            aggregation: str | None = None,
            fmt: str = "table", frame_scores: bool = False, batch_size: int | None = None, device: Any = None,
            trust_remote_code: bool = False, progress: bool | None = None, out: str | os.PathLike | None = None,
            resume: bool = False, on_result: Callable[[FileResult], None] | None = None,
            face_workers: int | None = None) -> tuple[str, list[FileResult]] | tuple[None, dict[str, int]]:
    """What `deepfake-hf predict` does.

    Without `out`, or for a table: (formatted text, `FileResult`s), the text also written to `out` if given.
    With `out` and a machine format (jsonl, csv or json): results are written as they are produced and
    (None, counts) is returned, so memory does not grow with the number of
    inputs. Under torchrun / accelerate launch each rank scores its shard into its own part file and rank 0
    merges them into `out` in input order (the single-process output, row for row); `resume` skips the
    inputs a killed run already wrote. `on_result(result)` is called for each result as it is written.
    `face_workers`: face detection processes (the Detector's option; None: its default).
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
    if not os.path.exists(model) and not is_hub_id(model):
        raise NoInputsError(f"{model}: no such model folder (and not a Hub id of the form org/name)")
    try:  # a Hub id that is not cached fails at once when the Hub does not answer (scoring.hub)
        detector = Detector.from_pretrained(model, faces=faces, crop=crop, num_frames=num_frames,
                                            aggregation=aggregation, batch_size=batch_size, device=device,
                                            trust_remote_code=trust_remote_code, progress=progress,
                                            face_workers=face_workers)
    except DeepfakeHFError:  # a load error, or an option that does not fit (crop, aggregation): its own line
        raise
    except ValueError as error:  # a model's own config or weights that transformers refuses
        raise ModelLoadError(f"{model}: {one_line(error)}") from None
    if not streamed:  # a table is for people: built in memory, printed or written at the end
        results: list[FileResult] = []
        try:
            results.extend(detector.iter_results(files, frame_scores=frame_scores))
        except KeyboardInterrupt:
            # iter_results stops its workers on the way out; what was scored is still worth showing
            text = format_results(results, fmt, model=model, frame_scores=frame_scores)
            if out is not None:
                Path(out).write_text(text, encoding="utf-8")
            raise PredictInterrupted(results=results, text=text, out=out) from None
        text = format_results(results, fmt, model=model, frame_scores=frame_scores)
        if out is not None:
            Path(out).write_text(text, encoding="utf-8")
        return text, results
    return None, _stream_predictions(detector, files, out, fmt, model, ranks, resume, frame_scores, on_result)


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
                part.write(in_flight.popleft(), result.to_dict(frame_scores))
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
    """The merged results (part-file rows) in `fmt`, written row by row; returns the summary counts."""
    temporary = Path(f"{out}.writing")
    with open(temporary, "w", encoding="utf-8", newline="") as handle:
        writer = ResultWriter(handle, fmt, frame_scores=frame_scores, model=model)
        for _, row in rows:
            writer.write(FileResult.from_dict(row))
        counts = writer.close()
    os.replace(temporary, out)
    return counts


def format_results(results: list[FileResult], fmt: str = "table", model: object = None,
                   frame_scores: bool | None = None) -> str:
    """Results as text: "table" for people, "json", "jsonl" or "csv" for machines. `frame_scores`: whether they
    are written (None: when any result holds them)."""
    if frame_scores is None:
        frame_scores = any(result.frame_scores is not None for result in results)
    if fmt == "json":
        return json.dumps({"model": None if model is None else str(model), "summary": summarize(results),
                           "results": [result.to_dict(frame_scores) for result in results]}, indent=2) + "\n"
    if fmt in STREAM_FORMATS:
        buffer = io.StringIO()
        writer = ResultWriter(buffer, fmt, frame_scores=frame_scores, model=model)
        for result in results:
            writer.write(result)
        writer.close()
        return buffer.getvalue()
    if fmt != "table":
        raise PredictError(f"format: {fmt!r} is not one of table, {', '.join(STREAM_FORMATS)}.")
    return _table(results)


TABLE_PATH_WIDTH = 60


def shorten_path(path: str, width: int = TABLE_PATH_WIDTH) -> str:
    """`path` cut to `width` characters in the middle ("clips/2024/.../0001.mp4"), keeping its start and as
    much of its end (the file name) as fits, so a long path cannot push the table's columns out of line."""
    if len(path) <= width:
        return path
    keep = width - 3
    tail = min(keep, max(keep * 2 // 3, len(os.path.basename(path))))
    return path[: keep - tail] + "..." + path[len(path) - tail:]


def _table(results):
    from deepfake_hf.runtime.outputs import counted

    root = os.path.commonpath([os.path.dirname(r.path) for r in results]) if results and all(
        os.path.isabs(r.path) for r in results) else ""
    rows = [("FILE", "KIND", "LABEL", "P(FAKE)", "FRAMES", "FACES", "NOTE")]
    for result in results:
        name = shorten_path(os.path.relpath(result.path, root) if root else result.path)
        if result.error is not None:
            rows.append((name, result.kind or "-", "ERROR", "-", "-", "-", result.error))
            continue
        faces = "-" if result.faces is None else str(result.faces)
        # the headline of a face detector's whole-image guess is that no face was found, not the label
        label = result.label if result.face_found is not False else f"NO FACE ({result.label}?)"
        frames = str(result.frames)
        if result.frames_scored is not None and result.frames_scored != result.frames:
            frames = f"{result.frames_scored}/{result.frames}"
        rows.append((name, result.kind, label, f"{result.fake_probability:.3f}", frames, faces, result.note or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths)) + ("  " + row[-1] if row[-1] else "")
             for row in rows]
    counts = summarize(results)
    no_face = f", {counts['no_face']} with no face" if counts["no_face"] else ""
    lines.append(f"{counted(counts['files'], 'file')}: {counts['scored']} scored ({counts['fake']} fake, "
                 f"{counts['real']} real{no_face}), {counts['failed']} failed")
    if any(result.frames_scored != result.frames for result in results if result.error is None):
        lines.append("FRAMES: scored/sampled where frames without a face were left out")
    return "\n".join(line.rstrip() for line in lines) + "\n"


__all__ = ["NoInputsError", "PredictError", "PredictInterrupted", "expand_inputs", "format_results",
           "predict", "shorten_path"]
