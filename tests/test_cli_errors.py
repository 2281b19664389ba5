"""The command line's error walk: every registered command, run in process through main(argv) with bad options
and bad inputs (a missing file, a folder where a file is needed, a file that is not an image, an unknown choice,
a bad number), says what is wrong in exactly one stderr line and exits 1.

Three outcomes, by design:
- "error": the command's own check or the package's DeepfakeHFError (or a user-input OSError): main() prints
  `deepfake-hf COMMAND: error: ...` as the one line and returns 1.
- "usage": argparse rejects the command line before anything runs. argparse's own exit code for that is 2, but
  this CLI keeps 2 for "some inputs failed", so its parser exits 1 (SystemExit(1)); argparse prints the usage
  above the one `error:` line, and that error line is the last one.
- "partial": predict scores every input it can and reports each one it could not as one `error: PATH: ...`
  line; with only bad inputs that is exit 2 ("some inputs failed"), never a traceback.

Progress bars (tqdm's `... 40/40 [00:00<...]`, e.g. transformers' "Loading weights") are not messages and are
left out before counting lines. Cases that need a model folder are marked slow.
"""

from __future__ import annotations

import re

import pytest

from deepfake_hf import cli
from deepfake_hf.cli import main

from .conftest import write_image

SLOW = pytest.mark.slow
# (command, case, argv with {placeholders}, outcome, text the error line holds, marks)
# Placeholders: {missing} a path that does not exist, {folder} an empty folder, {text_png} a text file named
# .png, {text_txt} a .txt file, {file} a small text file, {out} a fresh output path, {model} a saved tiny
# detector, {image} a real PNG.
CASES = [
    ("quickstart", "out-is-a-file", ["--out", "{file}"], "error", "exists and is not a folder", ()),
    ("quickstart", "bad-number", ["--seed", "abc"], "usage", "invalid int value: 'abc'", ()),
    ("quickstart", "unknown-option", ["--frobnicate"], "usage", "unrecognized arguments: --frobnicate", ()),
    ("quickstart", "unknown-recipe-key", ["--out", "{out}", "--set", "training.nope=1"], "error", "nope",
     (SLOW,)),
    ("train", "missing-file", ["{missing}.yaml"], "error", "no such recipe file", ()),
    ("train", "folder-not-file", ["{folder}"], "error", "no such recipe file", ()),
    ("train", "not-a-recipe", ["{text_png}"], "error", "a recipe is a mapping", ()),
    ("train", "bad-number", ["quickstart", "--dry-run", "--set", "training.learning_rate=abc"], "error",
     "training.learning_rate: expected float", ()),
    ("train", "missing-argument", [], "usage", "required: recipe", ()),
    ("train", "unknown-choice", ["quickstart", "--dry-run", "--label-map", "x=maybe"], "error",
     "is not real or fake", ()),
    ("export", "missing-file", ["{missing}", "--native", "--out", "{out}"], "error", "not a readable detector", ()),
    ("export", "file-not-folder", ["{file}", "--native", "--out", "{out}"], "error", "not a readable detector", ()),
    ("export", "folder-without-model", ["{folder}", "--native", "--out", "{out}"], "error", "folder",
     ()),
    ("export", "missing-option", ["{missing}", "--out", "{out}"], "usage", "required: --native", ()),
    ("convert", "missing-file", ["{missing}", "--out", "{out}"], "error", "no such file or folder", ()),
    ("convert", "folder-without-weights", ["{folder}", "--out", "{out}"], "error", "no weight file", ()),
    ("convert", "not-weights", ["{text_txt}", "--out", "{out}"], "error", "refused", ()),
    ("convert", "unknown-choice", ["{file}", "--out", "{out}", "--from", "bogus"], "usage", "invalid choice", ()),
    ("convert", "missing-out", ["{file}"], "error", "SOURCE and --out are required", ()),
    ("preprocess", "missing-file", ["{missing}", "--out", "{out}"], "error", "no such file or folder", ()),
    ("preprocess", "empty-folder", ["{folder}", "--out", "{out}"], "error", "no real/ or fake/ folders", ()),
    ("preprocess", "not-a-data-source", ["{text_png}", "--out", "{out}"], "error", "not a data source", ()),
    ("preprocess", "unknown-choice", ["{folder}", "--out", "{out}", "--faces", "bogus"], "usage",
     "invalid choice: 'bogus'", ()),
    ("preprocess", "bad-number", ["{folder}", "--out", "{out}", "--size", "0"], "usage", "0 must be >= 1", ()),
    ("preprocess", "not-a-number", ["{folder}", "--out", "{out}", "--frames", "abc"], "usage",
     "'abc' is not an integer", ()),
    ("evaluate", "missing-model", ["{missing}", "{missing}", "--out", "{out}"], "error", "not a model folder", ()),
    ("evaluate", "folder-without-model", ["{folder}", "{folder}", "--out", "{out}"], "error", "not a model folder",
     ()),
    ("evaluate", "bad-perturbation", ["{missing}", "{missing}", "--out", "{out}", "--perturb", "jpeg:500"], "error",
     "500 out of range for jpeg", ()),
    ("evaluate", "unknown-perturbation", ["{missing}", "{missing}", "--out", "{out}", "--perturb", "bogus:1"],
     "error", "expected KIND:V1,V2", ()),
    ("evaluate", "unknown-choice", ["{missing}", "{missing}", "--out", "{out}", "--aggregation", "bogus"], "usage",
     "invalid choice: 'bogus'", ()),
    ("evaluate", "bad-number", ["{missing}", "{missing}", "--out", "{out}", "--bootstrap", "abc"], "usage",
     "invalid int value", ()),
    ("evaluate", "missing-data", ["{model}", "{missing}", "--out", "{out}"], "error", "no such file", (SLOW,)),
    ("evaluate", "not-a-data-source", ["{model}", "{text_png}", "--out", "{out}"], "error", "not a data source",
     (SLOW,)),
    ("calibrate", "missing-model", ["{missing}", "{missing}"], "error", "not a model folder", ()),
    ("calibrate", "folder-without-model", ["{folder}", "{folder}"], "error", "not a model folder", ()),
    ("calibrate", "unknown-choice", ["{missing}", "{missing}", "--method", "bogus"], "usage",
     "invalid choice: 'bogus'", ()),
    ("calibrate", "bad-number", ["{missing}", "{missing}", "--target-fpr", "abc"], "usage", "invalid float value",
     ()),
    ("calibrate", "missing-target", ["{missing}", "{missing}", "--method", "fpr"], "error", "--target-fpr", ()),
    ("calibrate", "missing-data", ["{model}", "{missing}"], "error", "no such file", (SLOW,)),
    ("push", "missing-folder", ["{missing}", "--repo-id", "me/model", "--dry-run", "{out}"], "error",
     "no config.json", ()),
    ("push", "file-not-folder", ["{file}", "--repo-id", "me/model", "--dry-run", "{out}"], "error", "no config.json",
     ()),
    ("push", "missing-option", ["{missing}", "--dry-run", "{out}"], "usage", "required: --repo-id", ()),
    ("push", "missing-example", ["{model}", "--repo-id", "me/model", "--dry-run", "{out}", "--example",
                                 "{missing}.png"], "error", "no such file", (SLOW,)),
    ("push", "folder-as-example", ["{model}", "--repo-id", "me/model", "--dry-run", "{out}", "--example",
                                   "{folder}"], "error", "is a directory", (SLOW,)),
    ("push", "example-not-an-image", ["{model}", "--repo-id", "me/model", "--dry-run", "{out}", "--example",
                                      "{text_png}"], "error", "not a readable image", (SLOW,)),
    ("push-space", "out-is-a-file", ["--model", "me/model", "--space-id", "me/space", "--dry-run", "{file}"], "error",
     "exists and is not a folder", ()),
    ("push-space", "missing-option", ["--space-id", "me/space", "--dry-run", "{out}"], "usage", "required: --model",
     ()),
    ("push-space", "unknown-option", ["--model", "me/model", "--space-id", "me/space", "--bogus"], "usage",
     "unrecognized arguments: --bogus", ()),
    ("probe", "missing-file", ["{missing}", "--backbone", "{missing}", "--out", "{out}"], "error",
     "no such file or folder", ()),
    ("probe", "out-is-a-file", ["{missing}", "--backbone", "{missing}", "--out", "{file}"], "error",
     "exists and is not a folder", ()),
    ("probe", "empty-folder", ["{folder}", "--backbone", "{missing}", "--out", "{out}"], "error",
     "no real/ or fake/ folders", ()),
    ("probe", "not-a-data-source", ["{text_png}", "--backbone", "{missing}", "--out", "{out}"], "error",
     "not a data source", ()),
    ("probe", "unknown-choice", ["{missing}", "--backbone", "{missing}", "--out", "{out}", "--classifier", "bogus"],
     "usage", "invalid choice: 'bogus'", ()),
    ("probe", "bad-number", ["{missing}", "--backbone", "{missing}", "--out", "{out}", "--folds", "abc"], "usage",
     "invalid int value", ()),
    ("explain", "missing-model", ["{missing}", "{image}", "--out", "{out}.png"], "error", "not a model folder", ()),
    ("explain", "unknown-choice", ["{missing}", "{image}", "--out", "{out}.png", "--method", "bogus"], "usage",
     "invalid choice: 'bogus'", ()),
    ("explain", "missing-image", ["{model}", "{missing}.png", "--out", "{out}.png"], "error", "no such file",
     (SLOW,)),
    ("explain", "folder-as-image", ["{model}", "{folder}", "--out", "{out}.png"], "error", "is a directory",
     (SLOW,)),
    ("explain", "not-an-image", ["{model}", "{text_png}", "--out", "{out}.png"], "error", "not a readable image",
     (SLOW,)),
    ("explain", "out-exists", ["{model}", "{image}", "--out", "{folder}"], "error", "exists", (SLOW,)),
    ("predict", "missing-model", ["{missing}", "{image}"], "error", "no such model folder", ()),
    ("predict", "folder-without-model", ["{folder}", "{image}"], "error", "cannot load a model", ()),
    ("predict", "unknown-choice", ["{missing}", "{image}", "--format", "bogus"], "usage", "invalid choice: 'bogus'",
     ()),
    ("predict", "bad-number", ["{missing}", "{image}", "--batch-size", "0"], "usage", "0 must be >= 1", ()),
    ("predict", "not-a-number", ["{missing}", "{image}", "--frames", "abc"], "usage", "'abc' is not an integer", ()),
    ("predict", "resume-without-out", ["{model}", "{image}", "--resume"], "error", "--resume continues a run",
     (SLOW,)),
    ("predict", "out-exists", ["{model}", "{image}", "--out", "{file}"], "error", "exists (pass --overwrite", (SLOW,)),
    ("predict", "folder-without-media", ["{model}", "{folder}"], "error", "no image or video files found", (SLOW,)),
    ("predict", "missing-file", ["{model}", "{missing}.png"], "partial", "no such file", (SLOW,)),
    ("predict", "not-an-image", ["{model}", "{text_png}"], "partial", "not a readable image", (SLOW,)),
    ("predict", "not-media", ["{model}", "{text_txt}"], "partial", "unsupported file type .txt", (SLOW,)),
    ("bench", "missing-out", ["startup"], "error", "--out FILE is required", ()),
    ("bench", "unknown-kind", ["bogus"], "usage", "invalid choice: 'bogus'", ()),
    ("bench", "unknown-choice", ["video", "--model", "bogus", "--out", "{out}"], "usage", "invalid choice: 'bogus'",
     ()),
    ("bench", "bad-number", ["startup", "--repeats", "abc", "--out", "{out}"], "usage", "invalid int value", ()),
    ("bench", "unknown-model", ["inference", "--models", "bogus", "--out", "{out}"], "error",
     "--models: bogus: expected a comma list", ()),
    ("bench", "unknown-method", ["training", "--methods", "bogus", "--out", "{out}"], "error",
     "--methods: bogus: expected a comma list", ()),
    ("bench", "missing-clip", ["video", "{missing}.mp4", "--out", "{out}"], "error", "no such file", ()),
    ("bench", "folder-as-clip", ["video", "{folder}", "--out", "{out}"], "error", "is a directory", ()),
    ("bench", "unknown-face-mode", ["video", "--faces", "none,bogus", "--out", "{out}"], "error",
     "--faces: bogus", ()),
]


def case_params():
    return [pytest.param(command, argv, outcome, text, id=f"{command}-{case}", marks=marks)
            for command, case, argv, outcome, text, marks in CASES]


@pytest.fixture
def places(tmp_path, request):
    """The paths the cases' placeholders stand for; a model folder only for the cases that name one."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "text.png").write_text("not an image\n")
    (tmp_path / "text.txt").write_text("not media\n")
    (tmp_path / "a-file").write_text("a file\n")
    write_image(tmp_path / "image.png", size=(40, 40))
    argv = request.node.callspec.params.get("argv", [])
    needs_model = any("{model}" in arg for arg in argv)
    return {"missing": str(tmp_path / "missing"), "folder": str(tmp_path / "empty"),
            "text_png": str(tmp_path / "text.png"), "text_txt": str(tmp_path / "text.txt"),
            "file": str(tmp_path / "a-file"), "out": str(tmp_path / "out"), "image": str(tmp_path / "image.png"),
            "model": str(request.getfixturevalue("tiny_model_dir")) if needs_model else None}


PROGRESS_BAR = re.compile(r"\d+%\|.*\|\s*\d+/\d+ \[")


def messages(stderr: str) -> list[str]:
    """stderr's lines without progress bars (tqdm redraws with \\r; its bars are not messages)."""
    return [line for line in re.split(r"[\r\n]+", stderr) if line.strip() and not PROGRESS_BAR.search(line)]


def run(argv: list[str], capsys) -> tuple[int, list[str]]:
    """main(argv) in this process: (exit code, stderr messages); a usage error's SystemExit gives its code."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as stopped:
        code = stopped.code
    return code, messages(capsys.readouterr().err)


def test_every_registered_command_is_walked():
    walked = {command for command, *_ in CASES}
    assert walked == {command.name for command in cli.commands()}
    for command in walked:
        outcomes = {outcome for name, _, _, outcome, _, _ in CASES if name == command}
        assert {"error", "usage"} <= outcomes, command  # a bad input and a bad option for each


@pytest.mark.parametrize("command,argv,outcome,text", case_params())
def test_bad_options_and_inputs_are_one_stderr_line(command, argv, outcome, text, places, capsys):
    code, lines = run([command, *(arg.format(**places) for arg in argv)], capsys)
    assert not any("Traceback" in line for line in lines), lines
    if outcome == "usage":  # argparse: the usage, then one error line; exit 1 (this CLI keeps 2 for partial runs)
        assert code == 1, (code, lines)
        assert lines[0].startswith("usage: deepfake-hf"), lines
        errors = [line for line in lines if ": error: " in line]
        assert errors == [lines[-1]] and lines[-1].startswith("deepfake-hf"), lines
    elif outcome == "partial":  # predict: each input it could not score is one line; only bad inputs: exit 2
        assert code == 2, (code, lines)
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
    else:
        assert code == 1, (code, lines)
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"deepfake-hf {command}: error: "), lines
    assert text in lines[-1], lines
