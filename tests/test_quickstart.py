"""`deepfake-hf quickstart` end to end (a reduced run through --set; the full run is measured in the README)."""

import json

import pytest

from deepfake_hf.cli import main
from tests.conftest import pipeline_scores

REDUCED = ["--set", "data.sbi={crops_per_photo: 8, crops_per_face: 1}", "--set", "training.num_train_epochs=1"]


@pytest.mark.slow  # fresh process
def test_quickstart_trains_evaluates_and_exports_offline(tmp_path, capsys):
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out), "--json", *REDUCED]) == 0
    summary = json.loads(capsys.readouterr().out)  # --json: stdout holds only the summary

    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert 0.0 <= metrics["auroc"] <= 1.0 and 0.0 <= metrics["accuracy"] <= 1.0
    frame = metrics["test_sets"]["sbi-heldout"]["frame"]
    assert frame["auroc"] == metrics["auroc"] == summary["heldout_auroc"]
    assert frame["n_real"] == frame["n_fake"] > 0

    # Held-out identities: no test identity was seen in training or validation.
    def groups(split):
        return {line.split(",")[2] for line in (out / "data" / f"{split}.csv").read_text().splitlines()[1:]}
    assert not groups("test") & (groups("train") | groups("validation"))

    card = (out / "model" / "README.md").read_text()
    assert "pipeline" in card
    assert set(summary["sample_prediction"]) == {"real", "fake"}
    scores = pipeline_scores(out / "model", summary["sample"], trust_remote_code=True)  # fresh process
    assert abs(scores["fake"] - summary["sample_prediction"]["fake"]) < 1e-3
    for key in ("model", "metrics", "data", "model_card"):
        assert str(out) in summary[key]


def test_quickstart_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("user file")
    assert main(["quickstart", "--out", str(tmp_path)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "user file"
