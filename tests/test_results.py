"""scoring.results.FileResult: the one result type of a scored file, and its JSON/CSV writers."""

import csv
import io
import json
from dataclasses import fields

import pytest

from deepfake_hf.errors import DeepfakeHFError
from deepfake_hf.scoring.predict import format_results
from deepfake_hf.scoring.results import (
    RESULT_COLUMNS,
    FileResult,
    ResultWriter,
    csv_columns,
    summarize,
)

SCORED = FileResult("a.mp4", "video", "fake", 0.8123456789, 4, 3, 3, 1, True, "faces found in 3 of 4 sampled frames",
                    None, [0.9, None, 0.7000004, 0.8])
FAILED = FileResult("b.png", "image", error="not a readable image")


def test_columns_are_the_fields_in_order():
    names = [field.name for field in fields(FileResult)]
    assert list(RESULT_COLUMNS) == [name for name in names if name != "frame_scores"]
    assert csv_columns(False) == list(RESULT_COLUMNS) and csv_columns(True) == [*RESULT_COLUMNS, "frame_scores"]
    assert list(SCORED.to_dict()) == names  # JSON keys: the fields, in order


def test_json_round_trip_and_frame_scores_only_when_asked():
    for result in (SCORED, FAILED):
        assert FileResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    assert "frame_scores" not in SCORED.to_dict(frame_scores=False)
    assert FAILED.to_dict(frame_scores=True)["frame_scores"] is None  # asked for, none for a failed file
    assert "frame_scores" not in FAILED.to_dict()  # None: written when the result holds them
    with pytest.raises(DeepfakeHFError, match="unknown field"):
        FileResult.from_dict({**FAILED.to_dict(), "score": 1})


def test_csv_row_formats_numbers_and_empties():
    row = SCORED.csv_row(frame_scores=True)
    assert row["fake_probability"] == "0.812346" and row["frame_scores"] == "[0.9, null, 0.7, 0.8]"
    assert FAILED.csv_row()["label"] == "" and "frame_scores" not in FAILED.csv_row()


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
@pytest.mark.parametrize("frame_scores", [False, True])
def test_streamed_writer_gives_the_same_results_as_the_in_memory_text(fmt, frame_scores):
    buffer = io.StringIO()
    writer = ResultWriter(buffer, fmt, frame_scores=frame_scores, model="m")
    for result in (SCORED, FAILED):
        writer.write(result)
    counts = writer.close()
    assert counts == summarize([SCORED, FAILED]) == {"files": 2, "scored": 1, "failed": 1, "fake": 1, "real": 0,
                                                      "no_face": 0}
    text = buffer.getvalue()
    expected = format_results([SCORED, FAILED], fmt, model="m", frame_scores=frame_scores)
    if fmt == "json":  # the streamed document puts the summary last: same content
        assert json.loads(text) == json.loads(expected)
    else:
        assert text == expected
    if fmt == "csv":
        header = next(csv.reader(io.StringIO(text)))
        assert header == csv_columns(frame_scores)


def test_writer_refuses_a_format_it_does_not_write():
    with pytest.raises(DeepfakeHFError, match="table"):
        ResultWriter(io.StringIO(), "table")
