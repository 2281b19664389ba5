"""The command line: one error line per bad input, shared option names, removed old spellings, the command
registry (a new command is one new file), module layering, light --help."""

import ast
import json
import sys
import textwrap
from pathlib import Path

import pytest

from deepfake_hf import cli
from deepfake_hf.cli import main

PACKAGE = Path(cli.__file__).parents[1]


def bad_inputs(tmp):
    """{subcommand: argv} whose input is wrong in a way each command finds before loading any model."""
    missing = str(tmp / "missing")
    a_file = tmp / "a-file"
    a_file.write_text("not a folder")
    return {
        "quickstart": ["quickstart", "--out", str(a_file)],
        "train": ["train", str(tmp / "no-such-recipe.yaml")],
        "export": ["export", missing, "--native", "--out", str(tmp / "out")],
        "convert": ["convert", missing, "--out", str(tmp / "out")],
        "evaluate": ["evaluate", missing, missing, "--out", str(tmp / "out"), "--perturb", "jpeg:500"],
        "calibrate": ["calibrate", missing, missing],
        "push": ["push", missing, "--repo-id", "me/model", "--dry-run", str(tmp / "out")],
        "preprocess": ["preprocess", missing, "--out", str(tmp / "crops")],
        "push-space": ["push-space", "--model", "me/model", "--space-id", "me/space", "--dry-run", str(a_file)],
        "probe": ["probe", missing, "--backbone", missing, "--out", str(a_file)],
        "explain": ["explain", missing, missing, "--out", str(tmp / "out.png")],
        "predict": ["predict", missing, missing],
        "bench": ["bench", "startup"],
    }


def test_every_subcommand_is_covered(tmp_path):
    parser = cli.build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)
    assert commands == set(bad_inputs(tmp_path)) == {command.name for command in cli.commands()}


@pytest.mark.parametrize("command", sorted(bad_inputs(Path("/tmp"))))
def test_bad_input_is_one_stderr_line_and_exit_1(command, tmp_path, capsys):
    argv = bad_inputs(tmp_path)[command]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"deepfake-hf {command}: error: "), err
    assert "Traceback" not in err[0]


def options_of(command):
    parser = cli.build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    if command == "bench":
        sub = sub._subparsers._group_actions[0].choices["startup"]
    return {option: action for action in sub._actions for option in action.option_strings}


@pytest.mark.parametrize("command,shared", [
    ("predict", ["--faces", "--crop", "--frames", "--aggregation", "--out", "--overwrite"]),
    ("evaluate", ["--faces", "--crop", "--frames", "--aggregation", "--out", "--overwrite", "--json"]),
    ("calibrate", ["--faces", "--crop", "--frames", "--json"]),
    ("probe", ["--faces", "--frames", "--out", "--overwrite", "--json"]),
    ("train", ["--out", "--json"]),
    ("quickstart", ["--out", "--overwrite", "--json"]),
    ("export", ["--out", "--overwrite"]),
    ("convert", ["--out", "--overwrite"]),
    ("explain", ["--faces", "--crop", "--out", "--overwrite"]),
    ("bench", ["--out", "--json"]),
])
def test_shared_options_have_one_name_and_default(command, shared):
    from deepfake_hf.faces import face_mode_names

    options = options_of(command)
    assert set(shared) <= set(options), set(shared) - set(options)
    if "--faces" in shared:
        # a command scoring with a model leaves the face mode to the model (resolve_faces); one without reads "auto"
        expected = "auto" if command in ("preprocess", "probe") else None
        assert options["--faces"].default == expected and tuple(options["--faces"].choices) == face_mode_names()
    if "--frames" in shared:
        assert options["--frames"].default is None  # the model's (or the config default)
    if "--json" in shared:
        assert options["--json"].nargs == 0  # a switch


@pytest.mark.parametrize("argv,old", [
    (["predict", "m", "x.png", "--output", "r.csv"], "--output"),
    (["predict", "m", "x.png", "--aggregate", "confident"], "--aggregate"),
    (["evaluate", "m", "d", "--out", "o", "--num-frames", "4"], "--num-frames"),
    (["calibrate", "m", "d", "--num-frames", "4"], "--num-frames"),
    (["probe", "d", "--backbone", "b", "--out", "o", "--num-frames", "4"], "--num-frames"),
    (["train", "quickstart", "--output-dir", "runs/x"], "--output-dir"),
    (["bench", "startup", "--json", "old.json"], "old.json"),
])
def test_removed_old_spellings_are_usage_errors(argv, old, capsys):
    """The deprecated aliases are gone (the package was never released): argparse names the option, exit 1."""
    with pytest.raises(SystemExit) as stopped:
        cli.build_parser().parse_args(argv)
    assert stopped.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("deepfake-hf") and "unrecognized arguments" in err[-1] and old in err[-1]


def test_new_spellings_print_no_note(capsys):
    args = cli.build_parser().parse_args(["evaluate", "m", "d", "--out", "o", "--frames", "4", "--aggregation",
                                          "confident"])
    assert (args.frames, args.aggregation, args.faces) == (4, "confident", None)
    assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["evaluate", "m", "d", "--out", "o", "--aggregation", "median"])
    assert "invalid choice" in capsys.readouterr().err


def test_bench_writes_out_and_json_switch_prints_json(tmp_path, monkeypatch, capsys):
    from deepfake_hf.cli.bench import measure as benchmark

    def fake_startup(json_path, repeats):
        Path(json_path).write_text("{}")
        print("progress")
        return {"json_path": str(json_path), "repeats": repeats}

    monkeypatch.setattr(benchmark, "run_startup_benchmark", fake_startup)
    plain = tmp_path / "plain.json"
    assert main(["bench", "startup", "--out", str(plain), "--repeats", "1"]) == 0
    captured = capsys.readouterr()
    assert plain.is_file() and "progress" in captured.out and captured.err == ""
    new = tmp_path / "new.json"
    assert main(["bench", "startup", "--out", str(new), "--json", "--repeats", "2"]) == 0
    captured = capsys.readouterr()
    assert new.is_file() and json.loads(captured.out) == {"json_path": str(new), "repeats": 2}
    assert "progress" in captured.err  # stdout holds only the JSON


@pytest.mark.parametrize("rank,printed", [("0", True), ("1", False)])
def test_only_rank_0_prints_the_results_of_evaluate_and_preprocess(rank, printed, monkeypatch, capsys):
    """Under torchrun every rank returns the result; printing it on each gave the table once per rank."""
    from deepfake_hf.data import preprocess
    from deepfake_hf.evaluation import evaluate as evaluation

    result = {"test_sets": {"set": {"frame": {"n": 4, "auroc": 0.5}, "video": None}}, "notes": {"set": "a note"}}
    monkeypatch.setattr(evaluation, "evaluate_model", lambda *args, **kwargs: result)
    summary = {"videos": 1, "crops": 2, "frames_without_face": 1, "skipped": 0}
    monkeypatch.setattr(preprocess, "preprocess", lambda *args, **kwargs: summary)
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["evaluate", "model", "data", "--out", "eval"]) == 0
    captured = capsys.readouterr()
    assert (captured.out.count("| test set |"), captured.err.count("a note")) == ((1, 1) if printed else (0, 0))
    assert main(["preprocess", "data", "--out", "crops"]) == 0
    out = capsys.readouterr().out
    assert ("1 video, 2 face crops, 1 frame without a face, 0 files skipped" in out) is printed


def test_interrupted_preprocess_says_how_to_resume(monkeypatch, capsys):
    from deepfake_hf.data import preprocess

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(preprocess, "preprocess", interrupted)
    assert main(["preprocess", "data", "--out", "crops"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        ("deepfake-hf preprocess: interrupted; the crops made so far are kept in crops; run the same command with "
         "--resume to continue")]


# ------------------------------------------------------------------------------------------- layering
def module_name(path):
    """`scoring.detector` for deepfake_hf/scoring/detector.py, `faces` for deepfake_hf/faces/__init__.py."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules():
    return {module_name(path): path for path in PACKAGE.rglob("*.py")
            if module_name(path) and (path.parent / "__init__.py").is_file()}


def imports_of(path, modules):
    """deepfake_hf modules a file imports, anywhere in it (inside functions too)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]) if package else ""
                module = ".".join(part for part in (base, node.module or "") if part)
            elif (node.module or "").startswith("deepfake_hf"):
                module = node.module.partition(".")[2]
            else:
                continue
            for alias in node.names:  # `from deepfake_hf.data import preprocess` imports a module
                name = f"{module}.{alias.name}" if module else alias.name
                found.add(name if name in modules else module)
        elif isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[2] for alias in node.names if alias.name.startswith("deepfake_hf."))
    return {name for name in found if name in modules and name != here}


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(module, stack):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target, stack + [target])
                if cycle:
                    return cycle
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module, [module])
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_imports_another_that_imports_it_back():
    modules = package_modules()
    graph = {name: imports_of(path, modules) for name, path in modules.items()}
    assert "scoring.scorer" in graph["scoring.detector"]  # the parser sees imports
    assert "data.datasets" in graph["data.preprocess"] and "runtime.outputs" in graph["data.preprocess"]
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"
    # the remote-code files import nothing else of the package
    assert graph["configuration_deepfake"] == set()
    assert graph["modeling_deepfake"] <= {"configuration_deepfake"}


HELP_OF_ONE_COMMAND = """
import contextlib, io, json, sys, time
start = time.perf_counter()
from deepfake_hf.cli import build_parser
with contextlib.redirect_stdout(io.StringIO()) as text, contextlib.suppress(SystemExit):
    build_parser().parse_args([*sys.argv[1:], "--help"])
print(json.dumps({"seconds": time.perf_counter() - start, "help": text.getvalue(),
                  "heavy": [name for name in ("torch", "transformers", "datasets") if name in sys.modules]}))
"""


def help_argvs():
    """Every registered command, and each kind of a command with its own subcommands (`bench video`)."""
    parser = cli.build_parser()
    argvs = []
    for command in cli.commands():
        argvs.append([command.name])
        sub = parser._subparsers._group_actions[0].choices[command.name]
        if sub._subparsers is not None:
            argvs.extend([command.name, kind] for kind in sub._subparsers._group_actions[0].choices)
    return argvs


@pytest.mark.slow  # a fresh interpreter per command: this one has torch imported already
def test_no_commands_help_imports_torch_or_transformers():
    """`deepfake-hf COMMAND --help` builds its text from deepfake_hf.defaults, never from the model's config,
    and takes under a second (imports included) for every command of the registry."""
    from tests.conftest import run_python

    argvs = help_argvs()
    assert {"predict", "evaluate", "calibrate", "train", "convert"} <= {argv[0] for argv in argvs}
    assert ["bench", "video"] in argvs
    slow, heavy = {}, {}
    for argv in argvs:
        result = json.loads(run_python(HELP_OF_ONE_COMMAND, *argv).stdout.strip().splitlines()[-1])
        assert f"usage: deepfake-hf {' '.join(argv)}" in result["help"]
        if result["heavy"]:
            heavy[" ".join(argv)] = result["heavy"]
        if result["seconds"] >= 1.0:
            slow[" ".join(argv)] = round(result["seconds"], 2)
    assert heavy == {}
    assert slow == {}


# ------------------------------------------------------------------------------------------- registry
TOY_COMMAND = """
from deepfake_hf.cli.base import EXIT_OK, Command
from deepfake_hf.cli.options import positive_int


class ToyCommand(Command):
    name = "toy-hello"
    help = "say hello a few times (a test's command)"

    def add_arguments(self, parser):
        parser.add_argument("--times", type=positive_int, default=1)

    def run(self, args):
        print("hello " * args.times)
        return EXIT_OK
"""


@pytest.fixture
def toy_command(tmp_path, monkeypatch):
    """A command written as one new module file on the cli package's path, and nothing else edited."""
    (tmp_path / "toy_hello.py").write_text(textwrap.dedent(TOY_COMMAND))
    monkeypatch.setattr(cli, "__path__", [*cli.__path__, str(tmp_path)])
    yield "toy-hello"
    sys.modules.pop("deepfake_hf.cli.toy_hello", None)


def test_a_command_is_one_new_file(toy_command, capsys):
    names = [command.name for command in cli.commands()]
    assert names[-1] == toy_command  # no `order`: after the built-in ones
    assert names[:-1] == ["quickstart", "train", "export", "convert", "preprocess", "evaluate", "calibrate", "push",
                          "push-space", "probe", "explain", "predict", "bench"]  # today's --help order
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])
    assert stopped.value.code == 0
    assert "toy-hello" in capsys.readouterr().out and "a test's command" in cli.build_parser().format_help()
    assert main([toy_command, "--times", "2"]) == 0
    assert capsys.readouterr().out.strip() == "hello hello"
    with pytest.raises(SystemExit) as stopped:  # its options go through the same usage errors
        main([toy_command, "--times", "0"])
    assert stopped.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "deepfake-hf toy-hello: error: argument --times: 0 must be >= 1"


def test_two_commands_with_one_name_are_refused(tmp_path, monkeypatch):
    (tmp_path / "another_predict.py").write_text(
        "from deepfake_hf.cli.base import Command\n\nclass Another(Command):\n    name = 'predict'\n")
    monkeypatch.setattr(cli, "__path__", [*cli.__path__, str(tmp_path)])
    try:
        with pytest.raises(RuntimeError, match="two commands are named 'predict'"):
            cli.commands()
    finally:
        sys.modules.pop("deepfake_hf.cli.another_predict", None)


def test_light_defaults_agree_with_the_models_config():
    from deepfake_hf import configuration_deepfake as config
    from deepfake_hf import defaults

    for name in ("AGGREGATIONS", "DEFAULT_AGGREGATION", "DEFAULT_THRESHOLD", "DEFAULT_NUM_FRAMES",
                 "DEFAULT_CONFIDENT_THRESHOLD", "DEFAULT_CONFIDENT_FRACTION"):
        assert getattr(defaults, name) == getattr(config, name), name
