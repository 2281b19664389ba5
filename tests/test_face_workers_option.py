"""`--face-workers N`: one option for predict, evaluate, calibrate and preprocess, reaching the scorer (or
preprocess's pool) unchanged; no worker process is started here (faces none, or the pool size spied on)."""

from __future__ import annotations

import shutil

import pytest

from deepfake_hf import cli
from deepfake_hf.cli import main

from .conftest import write_image

COMMANDS = ("predict", "evaluate", "calibrate", "preprocess")


def _parser(command):
    return cli.build_parser()._subparsers._group_actions[0].choices[command]


def test_every_scoring_command_has_the_one_face_workers_option():
    helps = set()
    for command in COMMANDS:
        action = next(a for a in _parser(command)._actions if "--face-workers" in a.option_strings)
        helps.add((action.help, action.default, action.metavar))
        assert "--face-workers N" in _parser(command).format_help()
    assert len(helps) == 1 and next(iter(helps))[1] is None  # None: the package's default rule


@pytest.mark.parametrize("value, text", [("-1", "-1 must be >= 0"), ("two", "'two' is not an integer")])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_face_workers_value_is_one_error_line(command, value, text, tmp_path, capsys):
    argv = {"predict": ["model", "input"], "evaluate": ["model", "data", "--out", str(tmp_path / "o")],
            "calibrate": ["model", "data"], "preprocess": ["data", "--out", str(tmp_path / "o")]}[command]
    with pytest.raises(SystemExit) as stopped:
        main([command, *argv, "--face-workers", value])
    assert stopped.value.code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert errors == [f"deepfake-hf {command}: error: argument --face-workers: {text}"]
    assert not (tmp_path / "o").exists()


@pytest.fixture
def seen_face_workers(monkeypatch):
    """Every value set on any Scorer's `face_workers` (the Detector, evaluate and calibrate set it there)."""
    from deepfake_hf.scoring.scorer import Scorer

    seen: list = []

    def set_value(scorer, value):
        seen.append(value)
        scorer.__dict__["face_workers"] = value

    monkeypatch.setattr(Scorer, "face_workers",
                        property(lambda scorer: scorer.__dict__.get("face_workers"), set_value), raising=False)
    return seen


def _real_fake(folder):
    for label in ("real", "fake"):
        for index in range(2):
            write_image(folder / label / f"{index}.png", seed=index + (10 if label == "fake" else 0))
    return folder


def test_face_workers_reaches_the_scorer_of_predict_evaluate_and_calibrate(tiny_model_dir, tmp_path,
                                                                            seen_face_workers, capsys):
    data = _real_fake(tmp_path / "data")
    assert main(["predict", str(tiny_model_dir), str(data / "real"), "--faces", "none", "--face-workers", "3"]) == 0
    assert seen_face_workers == [3]
    assert main(["evaluate", str(tiny_model_dir), str(data), "--faces", "none", "--out", str(tmp_path / "eval"),
                 "--bootstrap", "0", "--no-plots", "--face-workers", "0"]) == 0
    assert seen_face_workers == [3, 0]
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")  # calibrate writes into the model's config
    assert main(["calibrate", str(model), str(data), "--faces", "none", "--face-workers", "2"]) == 0
    assert seen_face_workers == [3, 0, 2]
    # without the option nothing is set: the scorer keeps its default rule (faces.workers.pool_size)
    assert main(["predict", str(tiny_model_dir), str(data / "real"), "--faces", "none"]) == 0
    assert seen_face_workers == [3, 0, 2]


def test_face_workers_sizes_preprocess_pool(tmp_path, monkeypatch):
    from deepfake_hf import faces
    from deepfake_hf.faces import workers

    if not faces.dlib_available():
        pytest.skip("dlib (the faces extra) is not installed")
    asked = []

    def no_pool(detector, face_workers=None):
        asked.append(face_workers)
        return 0  # in-process: no worker is started

    monkeypatch.setattr(workers, "pool_size", no_pool)
    data = _real_fake(tmp_path / "data")
    for option, expected in ((["--face-workers", "2"], 2), ([], None)):
        main(["preprocess", str(data), "--out", str(tmp_path / f"crops{expected}"), "--faces", "dlib",
              "--no-landmarks", "--frames", "1", *option])
        assert asked.pop() == expected
