"""--label-map NAME=real|fake on the commands that read data (evaluate, calibrate, probe, train)."""

import json

import pytest

from deepfake_hf.cli import main
from deepfake_hf.data.datasets import DataSourceError, parse_label_map

from .conftest import tiny_detector, write_image


@pytest.fixture(scope="module")
def ffpp_like(tmp_path_factory):
    """FaceForensics++ folder names: original/ (real) and Deepfakes/ (fake), no real/ or fake/."""
    root = tmp_path_factory.mktemp("ffpp")
    for i in range(4):
        write_image(root / "original" / f"{i}.png", size=(32, 32), seed=i)
        write_image(root / "Deepfakes" / f"{i}.png", size=(32, 32), seed=100 + i)
    return root


MAP = ["--label-map", "original=real", "--label-map", "Deepfakes=fake"]


def test_parse_label_map():
    assert parse_label_map(["original=real", "Deepfakes=FAKE", "NT=1", "youtube = 0"]) == {
        "original": "real", "Deepfakes": "fake", "NT": "fake", "youtube": "real"}
    assert parse_label_map([]) == {} and parse_label_map(["a=real", "a=0"]) == {"a": "real"}
    for item, words in [("original", "expected NAME=real"), ("=real", "expected NAME=real"),
                        ("original=maybe", "'maybe' is not real or fake")]:
        with pytest.raises(DataSourceError, match=words) as caught:
            parse_label_map([item])
        assert "\n" not in str(caught.value)
    with pytest.raises(DataSourceError, match="mapped to both real and fake"):
        parse_label_map(["a=real", "a=fake"])


def test_evaluate_reads_mapped_folders(tiny_model_dir, ffpp_like, tmp_path, capsys):
    # Without a map the folder is not a source, and the error says how to map it.
    assert main(["evaluate", "--faces", "none", str(tiny_model_dir), str(ffpp_like), "--out", str(tmp_path / "none"),
                 "--no-plots"]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the model-loading progress bar
    assert error.startswith("deepfake-hf evaluate: error: ") and "--label-map NAME=real|fake" in error
    out = tmp_path / "mapped"
    assert main(["evaluate", "--faces", "none", str(tiny_model_dir), str(ffpp_like), "--out", str(out), "--no-plots",
                 "--bootstrap", "0", *MAP]) == 0
    entry = json.loads((out / "metrics.json").read_text())["test_sets"][ffpp_like.name]
    assert entry["frame"]["n"] == 8 and entry["frame"]["n_real"] == 4
    assert list(entry["per_method"]) == ["Deepfakes"]  # a mapped folder names its method


def test_bad_label_map_is_a_one_line_usage_error(tiny_model_dir, ffpp_like, tmp_path, capsys):
    for command in (["evaluate", "--faces", "none", str(tiny_model_dir), str(ffpp_like), "--out", str(tmp_path / "x")],
                    ["calibrate", str(tiny_model_dir), str(ffpp_like)],
                    ["probe", str(ffpp_like), "--backbone", str(tiny_model_dir), "--out", str(tmp_path / "p")],
                    ["train", "quickstart", "--dry-run"]):
        assert main([*command, "--label-map", "original=genuine"]) == 1, command
        error = capsys.readouterr().err.strip()
        assert error.endswith("--label-map 'original=genuine': 'genuine' is not real or fake (or 0/1)"), error
        assert len(error.splitlines()) == 1
    assert not (tmp_path / "x").exists() and not (tmp_path / "p").exists()


def test_calibrate_reads_mapped_folders(tmp_path, ffpp_like, capsys):
    model = tmp_path / "model"
    tiny_detector("vit", seed=4).save_pretrained(model)
    assert main(["calibrate", "--faces", "none", str(model), str(ffpp_like), *MAP]) == 0
    assert json.loads((model / "calibration.json").read_text())["n"] == 8


def test_probe_reads_mapped_folders(tiny_model_dir, ffpp_like, tmp_path):
    out = tmp_path / "probe"
    assert main(["probe", "--faces", "none", str(ffpp_like), "--backbone", str(tiny_model_dir), "--folds", "2",
                 "--bootstrap", "0", "--no-plots", "--out", str(out), *MAP]) == 0
    entry = json.loads((out / "metrics.json").read_text())["test_sets"]
    assert next(iter(entry.values()))["frame"]["n"] == 8


def test_train_adds_the_map_to_the_recipe(monkeypatch, tmp_path):
    from deepfake_hf.training import train as training

    seen = {}

    def fake_train(recipe, output_dir, **kwargs):
        seen["label_map"] = recipe.data.label_map
        return {"output_dir": str(output_dir)}

    monkeypatch.setattr(training, "train", fake_train)
    assert main(["train", "quickstart", "--out", str(tmp_path / "run"), *MAP]) == 0
    assert seen["label_map"] == {"original": "real", "Deepfakes": "fake"}
