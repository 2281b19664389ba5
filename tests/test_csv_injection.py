"""CSV cells that a spreadsheet would run as formulas are written as text (OWASP's rule), and the CSVs this
package reads back (a preprocess manifest) give the original values."""

import csv
import io

import pytest

from deepfake_hf.runtime.outputs import SafeCsvWriter, csv_cell, read_csv_cell
from deepfake_hf.scoring.predict import format_results
from deepfake_hf.scoring.results import FileResult

FORMULA_NAMES = ['=HYPERLINK("http://x","y").png', "=1+2.png", "+SUM(1;2).png", "@SUM(1+1).png", "-2+3.png",
                 "\tx.png", "\rx.png"]


@pytest.mark.parametrize("name", FORMULA_NAMES)
def test_formula_cells_are_quoted_and_read_back(name):
    assert csv_cell(name) == "'" + name
    assert read_csv_cell(csv_cell(name)) == name


@pytest.mark.parametrize("value", ["plain.png", "a=b.png", 0.5, -1, None, 3])
def test_other_cells_unchanged(value):
    assert csv_cell(value) == value


def test_quote_cell_round_trips():
    assert read_csv_cell(csv_cell("'=x.png")) == "'=x.png"


def result(path):
    return FileResult.from_dict({"path": path, "kind": "image", "label": "fake", "fake_probability": 0.75,
                                 "frames": 1, "frames_scored": 1, "frames_with_faces": 0, "faces": 0,
                                 "face_found": False, "note": "-note", "error": None})


def test_predict_csv_has_no_live_formula():
    text = format_results([result(name) for name in FORMULA_NAMES], fmt="csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["path"] for row in rows] == ["'" + name for name in FORMULA_NAMES]
    assert all(row["note"] == "'-note" for row in rows)
    assert all(row["fake_probability"] == "0.750000" for row in rows)


def test_manifest_written_safely_reads_back(tmp_path):
    """A manifest with formula-like paths, written as preprocess writes it, loads with the real paths."""
    from deepfake_hf.data.datasets import load_source
    from tests.conftest import write_image

    names = ["=1+2.png", "@x.png", "-y.png", "plain.png"]
    for index, name in enumerate(names):
        write_image(tmp_path / name, size=(40, 40), seed=index)
    manifest = tmp_path / "manifest.csv"
    with open(manifest, "w", newline="") as handle:
        writer = SafeCsvWriter(handle)
        writer.writerow(["path", "label"])
        writer.writerows([[name, "fake" if index % 2 else "real"] for index, name in enumerate(names)])
    assert "'=1+2.png" in manifest.read_text()
    dataset = load_source(manifest)
    assert sorted(dataset["path"]) == sorted(str(tmp_path / name) for name in names)
