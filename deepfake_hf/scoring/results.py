"""`FileResult`: what scoring one file gives, written as JSON, JSON lines or CSV, and counted.

A result's fields, in their order, are the keys of `predict`'s JSON objects and the columns of its CSV;
`frame_scores` (per sampled frame, on request) is written only when the run asked for it. Nothing else
lists the fields: `RESULT_COLUMNS` and `csv_columns` are read from the dataclass.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import IO, Any

from deepfake_hf.errors import DeepfakeHFError

STREAM_FORMATS = ("jsonl", "csv", "json")  # what `ResultWriter` writes (predict's `table` is predict's own)


class ResultFormatError(DeepfakeHFError, ValueError):
    """A result that cannot be read or written as asked: unknown fields, or a format that is not one of ours."""


@dataclass
class FileResult:
    """One file scored by a `Detector` (or one that could not be scored: `error` set, `label` None).

    - `path`: the file (or "<image N>" / "<array N>" for an in-memory input); `kind`: "image" or "video"
      (None when unknown); `label`: "real" or "fake" by the model's threshold;
    - `fake_probability`: the calibrated probability (temperature applied) that the file is fake;
    - `frames`: frames sampled (1 for a still); `frames_scored`: frames whose crops were scored;
      `frames_with_faces`: frames in which a face was found (None with face detection off);
    - `faces`: people found (tracked across video frames; None with face detection off, 0 when nobody was
      found and whole frames were scored); `face_found`: False when a face detector was on and found nobody;
    - `note`: what the score rests on when that is not the normal case; `error`: the problem, one line;
    - `frame_scores` (on request): per sampled frame, the fake probability of the person whose score is the
      file's (None where that person was not seen), so `fake_probability` aggregates them.
    """

    path: str
    kind: str | None = None
    label: str | None = None
    fake_probability: float | None = None
    frames: int | None = None
    frames_scored: int | None = None
    frames_with_faces: int | None = None
    faces: int | None = None
    face_found: bool | None = None
    note: str | None = None
    error: str | None = None
    frame_scores: list[float | None] | None = None

    def to_dict(self, frame_scores: bool | None = None) -> dict[str, Any]:
        """The result as a JSON object in field order; `frame_scores` is a key when asked for (None: when this
        result holds frame scores)."""
        data = {field.name: getattr(self, field.name) for field in fields(self)}
        if not (self.frame_scores is not None if frame_scores is None else frame_scores):
            del data["frame_scores"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileResult:
        """A result from its JSON object (`to_dict`), e.g. a row of a part file being merged or resumed."""
        unknown = sorted(set(data) - set(FIELD_NAMES))
        if unknown:
            raise ResultFormatError(f"result: unknown field(s) {', '.join(map(repr, unknown))}; "
                                    f"a result has {', '.join(FIELD_NAMES)}")
        return cls(**data)

    def csv_row(self, frame_scores: bool = False) -> dict[str, Any]:
        """The result as a CSV row (`csv_columns(frame_scores)`): None is empty, the probability has 6 decimals,
        frame scores are a JSON list rounded to 6 decimals."""
        row = {key: "" if value is None else value for key, value in self.to_dict(frame_scores).items()}
        if self.fake_probability is not None:
            row["fake_probability"] = f"{self.fake_probability:.6f}"
        if frame_scores and self.frame_scores is not None:
            row["frame_scores"] = json.dumps([None if v is None else round(v, 6) for v in self.frame_scores])
        return row


FIELD_NAMES = tuple(field.name for field in fields(FileResult))
RESULT_COLUMNS = tuple(name for name in FIELD_NAMES if name != "frame_scores")  # always written


def csv_columns(frame_scores: bool = False) -> list[str]:
    """The CSV header: every field, `frame_scores` last and only when asked for."""
    return [*RESULT_COLUMNS, *(["frame_scores"] if frame_scores else [])]


# ------------------------------------------------------------------------------------------ counts
def new_counts() -> dict[str, int]:
    return {"files": 0, "scored": 0, "failed": 0, "fake": 0, "real": 0, "no_face": 0}


def count(counts: dict[str, int], result: FileResult) -> None:
    """Add one result to `summarize`'s counts (streamed runs count as they write)."""
    counts["files"] += 1
    if result.error is not None:
        counts["failed"] += 1
        return
    counts["scored"] += 1
    counts["fake"] += result.label == "fake"
    counts["real"] += result.label == "real"
    counts["no_face"] += result.face_found is False


def summarize(results: Iterable[FileResult]) -> dict[str, int]:
    """Counts for a batch: {"files", "scored", "failed", "fake", "real", "no_face"}."""
    counts = new_counts()
    for result in results:
        count(counts, result)
    return counts


# ------------------------------------------------------------------------------------------ writer
class ResultWriter:
    """Results written one by one to an open text file as "jsonl", "json" or "csv", so memory does not grow with
    their number; `close()` ends the document and returns the counts. `model` is named in the JSON document."""

    def __init__(self, handle: IO[str], fmt: str, frame_scores: bool = False, model: object = None):
        if fmt not in STREAM_FORMATS:
            raise ResultFormatError(f"format: {fmt!r} is not one of {', '.join(STREAM_FORMATS)}.")
        self.handle, self.fmt, self.frame_scores = handle, fmt, bool(frame_scores)
        self.counts = new_counts()
        self._csv = None
        if fmt == "json":
            handle.write('{"model": ' + json.dumps(None if model is None else str(model)) + ', "results": [')
        elif fmt == "csv":
            from deepfake_hf.runtime.outputs import SafeCsvWriter

            self._csv = SafeCsvWriter(handle, fieldnames=csv_columns(self.frame_scores), lineterminator="\n")
            self._csv.writeheader()

    def write(self, result: FileResult) -> None:
        first = self.counts["files"] == 0
        count(self.counts, result)
        if self.fmt == "jsonl":
            self.handle.write(json.dumps(result.to_dict(self.frame_scores)) + "\n")
        elif self.fmt == "json":
            self.handle.write(("" if first else ",") + "\n  " + json.dumps(result.to_dict(self.frame_scores)))
        else:
            assert self._csv is not None  # made in __init__ for the csv format
            self._csv.writerow(result.csv_row(self.frame_scores))

    def close(self) -> dict[str, int]:
        if self.fmt == "json":
            self.handle.write('\n], "summary": ' + json.dumps(self.counts) + "}\n")
        return self.counts


__all__ = ["FIELD_NAMES", "RESULT_COLUMNS", "STREAM_FORMATS", "FileResult", "ResultFormatError", "ResultWriter",
           "csv_columns", "summarize"]
