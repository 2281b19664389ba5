"""Loading and publishing never run a folder's own code, never prompt, and refuse broken or absurd files in one line.

Issue 19: foreign `auto_map` entries (finding 6), local paths on the card and in the recipe (7), transformers'
"run the custom code? [y/N]" prompt (8), broken safetensors headers (10), links in the vendored package (11),
absurd config sizes (13), the --dry-run listing (15b) and the push-space help (20c).
"""

import builtins
import json
import os
import shutil
import struct
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import write_image

# A module that leaves a marker file when imported: proof that a folder's code ran.
MARKER_CODE = """
import pathlib
pathlib.Path({marker!r}).write_text("ran")
from transformers import PretrainedConfig, PreTrainedModel, ViTImageProcessor
class EvilConfig(PretrainedConfig):
    model_type = "evil_model"
class EvilModel(PreTrainedModel):
    config_class = EvilConfig
class EvilProcessor(ViTImageProcessor):
    pass
"""


@pytest.fixture(scope="module")
def stock_dir(tmp_path_factory):
    """A stock transformers checkpoint (ViTForImageClassification) with a processor."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    from tests.conftest import TRANSFORMER

    folder = tmp_path_factory.mktemp("stock") / "model"
    torch.manual_seed(0)
    config = ViTConfig(**TRANSFORMER, id2label={0: "real", 1: "fake"}, label2id={"real": 0, "fake": 1})
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def custom_code_folder(folder, marker):
    """A model folder whose config.json names its own code (evil.py), which would write `marker` if run."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({
        "model_type": "evil_model", "id2label": {"0": "real", "1": "fake"},
        "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModelForImageClassification": "evil.EvilModel"}}))
    (folder / "evil.py").write_text(MARKER_CODE.format(marker=str(marker)))
    return folder


def copy_with(source, target, config=None, files=None):
    """A copy of the folder `source` with config.json keys replaced and files overwritten."""
    shutil.copytree(source, target)
    if config:
        data = json.loads((target / "config.json").read_text())
        for key, value in config.items():
            node = data
            *parents, last = key.split(".")
            for parent in parents:
                node = node[parent]
            node[last] = value
        (target / "config.json").write_text(json.dumps(data))
    for name, content in (files or {}).items():
        (target / name).write_bytes(content)
    return target


def cli(*args):
    from deepfake_hf.cli import main

    return main([str(arg) for arg in args])


def one_error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def no_prompt(monkeypatch):
    """Fails the test if transformers asks on stdin; answers "y" as `echo y |` would, to show what would run."""
    asked = []

    def answer(prompt=""):
        asked.append(prompt)
        return "y"

    monkeypatch.setattr(builtins, "input", answer)
    yield asked
    assert not asked, f"transformers prompted: {asked[0][-80:]!r}"


# --------------------------------------------------------------------------------------- 8: remote code
@pytest.mark.parametrize("loader", ["load_classifier", "load_scorer", "Detector", "load_encoder", "from_backbone"])
def test_loaders_refuse_custom_code_without_prompting(loader, tmp_path, no_prompt):
    from deepfake_hf.errors import DeepfakeHFError

    marker = tmp_path / "ran"
    folder = custom_code_folder(tmp_path / "custom", marker)
    with pytest.raises((DeepfakeHFError, ValueError)) as error:
        if loader == "load_classifier":
            from deepfake_hf.scoring.scorer import load_classifier

            load_classifier(str(folder))
        elif loader == "load_scorer":
            from deepfake_hf.evaluation.probes import load_scorer

            load_scorer(str(folder), faces="none")
        elif loader == "Detector":
            from deepfake_hf.scoring.detector import Detector

            Detector.from_pretrained(str(folder), faces="none", progress=False)
        elif loader == "load_encoder":
            from deepfake_hf.evaluation.probes import load_encoder

            load_encoder(str(folder))
        else:
            from deepfake_hf import DeepfakeDetectorForImageClassification

            DeepfakeDetectorForImageClassification.from_backbone(str(folder))
    assert "custom" in str(error.value) and "code" in str(error.value) and "\n" not in str(error.value)
    assert not marker.exists()


@pytest.mark.parametrize("command", ["evaluate", "calibrate", "explain"])
def test_trust_remote_code_option_reaches_the_loader(command, tmp_path, no_prompt):
    """--trust-remote-code on evaluate, calibrate and explain is what lets a folder's own code run (and only it)."""
    from deepfake_hf.cli import build_parser
    from deepfake_hf.evaluation.evaluate import load_model
    from deepfake_hf.scoring.explain import load_for_explain

    arguments = {"evaluate": ["evaluate", "m", "data", "--out", "o"], "calibrate": ["calibrate", "m", "data"],
                 "explain": ["explain", "m", "x.png", "--out", "o.png"]}[command]
    parser = build_parser()
    assert parser.parse_args(arguments).trust_remote_code is False
    assert parser.parse_args([*arguments, "--trust-remote-code"]).trust_remote_code is True
    load = load_for_explain if command == "explain" else load_model
    for trusted in (False, True):
        marker = tmp_path / f"ran-{trusted}"
        folder = custom_code_folder(tmp_path / f"custom-{trusted}", marker)
        try:
            load(str(folder), trust_remote_code=trusted)
        except Exception:  # noqa: BLE001 - the stand-in model is not a detector; only whether its code ran counts
            pass
        assert marker.exists() is trusted


def test_own_folders_still_load_without_the_flag(tiny_model_dir, no_prompt):
    from deepfake_hf.scoring.scorer import load_classifier

    model, processor = load_classifier(str(tiny_model_dir))
    assert type(model).__name__ == "DeepfakeDetectorForImageClassification"
    assert type(processor).__name__ == "ViTImageProcessor"


def test_processor_auto_map_of_a_detector_is_not_followed_when_scoring(tiny_model_dir, tmp_path, no_prompt):
    """A processor config naming code: scoring uses the transformers class it names, and nothing runs."""
    from deepfake_hf.scoring.scorer import load_classifier

    marker = tmp_path / "ran"
    folder = copy_with(tiny_model_dir, tmp_path / "model")
    settings = json.loads((folder / "preprocessor_config.json").read_text())
    settings["auto_map"] = {"AutoImageProcessor": "evilproc.EvilProcessor"}
    (folder / "preprocessor_config.json").write_text(json.dumps(settings))
    (folder / "evilproc.py").write_text(MARKER_CODE.format(marker=str(marker)))
    _, processor = load_classifier(str(folder))
    assert type(processor).__name__ == "ViTImageProcessor" and not marker.exists()


COMMANDS = {
    "evaluate": ["evaluate", "{model}", "{data}", "--out", "{tmp}/eval", "--faces", "none"],
    "calibrate": ["calibrate", "{model}", "{data}", "--faces", "none"],
    "explain": ["explain", "{model}", "{image}", "--out", "{tmp}/heat.png", "--faces", "none"],
    "predict": ["predict", "{model}", "{image}", "--faces", "none"],
    "convert": ["convert", "{model}", "--out", "{tmp}/converted"],
}


@pytest.mark.slow  # one fresh process per command, with "y" on stdin as `echo y | deepfake-hf ...` gives
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_cli_with_y_on_stdin_never_prompts_nor_runs_custom_code(command, tmp_path):
    marker = tmp_path / "ran"
    folder = custom_code_folder(tmp_path / "custom", marker)
    data = tmp_path / "data"
    image = write_image(data / "real" / "a.png", size=(32, 32), seed=1)
    write_image(data / "fake" / "b.png", size=(32, 32), seed=2)
    args = [part.format(model=folder, data=data, image=image, tmp=tmp_path) for part in COMMANDS[command]]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    result = subprocess.run([sys.executable, "-m", "deepfake_hf.cli", *args], input="y\n", capture_output=True,
                            text=True, env=env, timeout=300, check=False)
    assert "[y/N]" not in result.stdout + result.stderr
    assert not marker.exists(), "the folder's code ran"
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(f"deepfake-hf {command}: error: {folder}") and "custom" in lines[0]


@pytest.mark.slow  # fresh process
def test_cli_own_folder_needs_no_flag_in_a_fresh_process(tiny_model_dir, tmp_path):
    image = write_image(tmp_path / "a.png", size=(32, 32))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    result = subprocess.run([sys.executable, "-m", "deepfake_hf.cli", "predict", str(tiny_model_dir), str(image),
                             "--faces", "none", "--format", "json"], input="y\n", capture_output=True, text=True,
                            env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[y/N]" not in result.stdout + result.stderr
    (scored,) = json.loads(result.stdout)["results"]
    assert scored["label"] in ("real", "fake") and 0 <= scored["fake_probability"] <= 1


# -------------------------------------------------------------------------------- 6: foreign auto_map
def test_push_neither_runs_nor_publishes_foreign_auto_map(tiny_model_dir, tmp_path, no_prompt):
    from deepfake_hf.publish.hub import assemble_model_repo

    marker = tmp_path / "ran"
    folder = copy_with(tiny_model_dir, tmp_path / "model")
    settings = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {**settings, "auto_map": {"AutoImageProcessor": "evilproc.EvilProcessor"}}))
    config = json.loads((folder / "config.json").read_text())
    own = dict(config["auto_map"])
    config["auto_map"]["AutoModel"] = "evil.EvilModel"
    (folder / "config.json").write_text(json.dumps(config))
    for name in ("evilproc.py", "evil.py"):
        (folder / name).write_text(MARKER_CODE.format(marker=str(marker)))
    image = write_image(tmp_path / "example.png", size=(40, 40), seed=4)
    skipped = []
    out = assemble_model_repo(folder, tmp_path / "out", "alice/x", example_image=image, skipped=skipped)
    assert not marker.exists()
    published = json.loads((out / "preprocessor_config.json").read_text())
    assert "auto_map" not in published
    assert {key: published[key] for key in settings} == settings  # the same preprocessing, without the code
    assert json.loads((out / "config.json").read_text())["auto_map"] == own
    assert not (out / "evil.py").exists() and not (out / "evilproc.py").exists()
    assert any(line.startswith("preprocessor_config.json: auto_map") and "evilproc.EvilProcessor" in line
               for line in skipped), skipped
    assert any(line.startswith("config.json: auto_map") and "AutoModel: evil.EvilModel" in line for line in skipped)
    assert "widget" in (out / "README.md").read_text()


def test_push_refuses_a_processor_only_its_own_code_builds(tiny_model_dir, tmp_path, capsys, no_prompt):
    marker = tmp_path / "ran"
    folder = copy_with(tiny_model_dir, tmp_path / "model")
    (folder / "preprocessor_config.json").write_text(json.dumps(
        {"image_processor_type": "EvilProcessor", "auto_map": {"AutoImageProcessor": "evilproc.EvilProcessor"}}))
    (folder / "evilproc.py").write_text(MARKER_CODE.format(marker=str(marker)))
    assert cli("push", folder, "--repo-id", "alice/x", "--dry-run", tmp_path / "out") == 1
    line = one_error_line(capsys)
    assert "preprocessor_config.json" in line and "'EvilProcessor'" in line
    assert not marker.exists()


def test_stock_checkpoint_loses_its_auto_map_and_unknown_model_types_are_refused(stock_dir, tmp_path, capsys,
                                                                                  no_prompt):
    from deepfake_hf.publish.hub import assemble_model_repo

    folder = copy_with(stock_dir, tmp_path / "stock", config={"auto_map": {"AutoModelForImageClassification":
                                                                           "evil.EvilModel"}})
    image = write_image(tmp_path / "example.png", size=(40, 40), seed=4)
    skipped = []
    out = assemble_model_repo(folder, tmp_path / "out", "alice/x", example_image=image, skipped=skipped)
    assert "auto_map" not in json.loads((out / "config.json").read_text())
    assert any("evil.EvilModel" in line for line in skipped)

    custom = custom_code_folder(tmp_path / "custom", tmp_path / "ran")
    capsys.readouterr()  # the example's loading progress
    assert cli("push", custom, "--repo-id", "alice/x", "--dry-run", tmp_path / "out2") == 1
    line = one_error_line(capsys)
    assert "'evil_model' is not a transformers model" in line and not (tmp_path / "ran").exists()


# ---------------------------------------------------------------------------- 7: no local paths published
def test_published_card_recipe_and_metadata_carry_no_local_paths(tiny_model_dir, tmp_path):
    from deepfake_hf.publish.hub import assemble_model_repo

    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run / "model")
    (run / "data").mkdir()
    recipe = {"name": "my-recipe", "model": {"backbone": str(tmp_path / "weights" / "vit-local")},
              "data": {"train": [str(run / "data" / "train.csv"), str(tmp_path / "elsewhere" / "ffpp")],
                       "val": str(tmp_path / "elsewhere" / "val.csv")},
              "training": {"learning_rate": 0.001}}
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    out = assemble_model_repo(run, tmp_path / "out", "alice/x")
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".md", ".json", ".yaml"):
            assert str(tmp_path) not in path.read_text(), path
    published = yaml.safe_load((out / "recipe.yaml").read_text())
    assert published["data"]["train"] == ["data/train.csv", "ffpp"] and published["data"]["val"] == "val.csv"
    assert published["model"]["backbone"] == "vit-local" and published["training"] == recipe["training"]
    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert "base_model" not in front  # a local folder (here one that no longer exists) is not a base model
    assert "`data/train.csv`" in card or "data/train.csv" in card


@pytest.mark.parametrize("backbone, expected", [
    ("google/vit-base-patch16-224-in21k", "google/vit-base-patch16-224-in21k"),
    ("/models/google/vit", None),
    ("~/models/vit", None),
    ("../weights/vit", None),
    ("runs/vit", None),  # names a folder that exists beside the run: a local path, not a Hub id
])
def test_base_model_is_only_a_hub_id(backbone, expected, tiny_model_dir, tmp_path, monkeypatch):
    from deepfake_hf.publish.model_card import render_model_card

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "vit").mkdir(parents=True)
    card = render_model_card(tiny_model_dir, recipe={"name": "my-recipe", "model": {"backbone": backbone}})
    assert card.data.to_dict().get("base_model") == expected


# ----------------------------------------------------------------------- 10: broken safetensors headers
def _header_file(header_bytes, claimed=None, data=b""):
    length = len(header_bytes) if claimed is None else claimed
    return struct.pack("<Q", length) + header_bytes + data


BROKEN_HEADERS = {
    "longer than the file": (_header_file(b"{}", claimed=10**6), "more than the file"),
    "16 GiB claimed": (_header_file(b"{}", claimed=16 * 2**30), "more than the file"),
    "invalid JSON": (_header_file(b'{"a": [1, 2'), "not valid JSON"),
    "deeply nested": (_header_file(b"[" * 200000 + b"]" * 200000), "nested too deeply"),
    "not an object": (_header_file(b"[1, 2, 3]"), "not a JSON object"),
    "bad shape": (_header_file(json.dumps({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}).encode()),
                  "shape"),
    "offsets past the end": (_header_file(json.dumps({"w": {"dtype": "F32", "shape": [4],
                                                            "data_offsets": [0, 16]}}).encode()), "data offsets"),
    "too short": (b"\x01\x02", "too short"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_HEADERS))
def test_push_refuses_broken_safetensors_headers_in_one_line(case, stock_dir, tmp_path, capsys):
    content, expected = BROKEN_HEADERS[case]
    folder = copy_with(stock_dir, tmp_path / "stock", files={"model.safetensors": content})
    started = time.perf_counter()
    assert cli("push", folder, "--repo-id", "alice/x", "--dry-run", tmp_path / "out") == 1
    line = one_error_line(capsys)
    assert time.perf_counter() - started < 5
    assert str(folder / "model.safetensors") in line and expected in line, line


def test_header_ceiling_applies_even_when_the_file_is_that_large(tmp_path):
    from deepfake_hf.safety import MAX_HEADER_BYTES, UnsafeFileError, safetensors_header

    path = tmp_path / "big.safetensors"
    with open(path, "wb") as handle:  # sparse: the claimed header fits the file but not the ceiling
        handle.write(struct.pack("<Q", MAX_HEADER_BYTES + 1))
        handle.truncate(MAX_HEADER_BYTES + 64)
    with pytest.raises(UnsafeFileError, match="MB ceiling"):
        safetensors_header(path)


def test_parameter_count_reads_valid_headers(stock_dir):
    import torch
    from transformers import ViTForImageClassification

    from deepfake_hf.publish.model_card import count_parameters

    model = ViTForImageClassification.from_pretrained(stock_dir)
    assert count_parameters(stock_dir) == sum(tensor.numel() for tensor in model.state_dict().values()
                                              if isinstance(tensor, torch.Tensor))


# ------------------------------------------------------------------------------- 13: absurd config sizes
ABSURD = [("num_hidden_layers", 5000), ("num_labels", 10**6), ("hidden_size", 10**6), ("image_size", 10**6),
          ("intermediate_size", 300000)]  # values whose building, should the check regress, fails or fits in memory


@pytest.mark.parametrize("key, value", ABSURD)
def test_absurd_stock_config_is_refused_before_building(key, value, stock_dir, tmp_path, capsys):
    folder = copy_with(stock_dir, tmp_path / "stock", config={key: value})
    if key == "num_labels":  # what a config carrying num_labels alone looks like
        data = json.loads((folder / "config.json").read_text())
        data.pop("id2label"), data.pop("label2id")
        (folder / "config.json").write_text(json.dumps(data))
    image = write_image(tmp_path / "a.png", size=(32, 32))
    for command in (["predict", folder, image, "--faces", "none"],
                    ["push", folder, "--repo-id", "alice/x", "--dry-run", tmp_path / "out"]):
        started = time.perf_counter()
        assert cli(*command) == 1
        line = one_error_line(capsys)
        assert time.perf_counter() - started < 5, command[0]
        assert f"{key} = {value}" in line and "config.json" in line, line


@pytest.mark.parametrize("key, value", [("backbone_config.num_hidden_layers", 10**6),
                                        ("backbone_config.num_labels", 10**8), ("num_frames", 10**7),
                                        ("image_size", 10**7), ("backbone_config.hidden_size", 2**20)])
def test_absurd_detector_config_is_refused_everywhere_it_loads(key, value, tiny_model_dir, tmp_path):
    """10**8 labels would allocate ~9 GB and 10**6 layers run for minutes: each is refused in milliseconds."""
    from deepfake_hf import DeepfakeDetectorConfig
    from deepfake_hf.errors import DeepfakeHFError
    from deepfake_hf.evaluation.probes import load_encoder
    from deepfake_hf.publish.export import export_native
    from deepfake_hf.scoring.scorer import load_classifier

    folder = copy_with(tiny_model_dir, tmp_path / "model", config={key: value})
    name = key.split(".")[-1]
    loaders = {"config": lambda: DeepfakeDetectorConfig.from_pretrained(folder),
               "load_classifier": lambda: load_classifier(str(folder)),
               "load_encoder": lambda: load_encoder(folder),
               "export": lambda: export_native(folder, tmp_path / "native")}
    for what, load in loaders.items():
        started = time.perf_counter()
        with pytest.raises((DeepfakeHFError, ValueError)) as error:
            load()
        assert time.perf_counter() - started < 2, what
        assert f"{name} = {value}" in str(error.value) and "\n" not in str(error.value), (what, error.value)


def test_absurd_backbone_checkpoint_is_refused_by_from_backbone(stock_dir, tmp_path):
    from deepfake_hf import DeepfakeDetectorForImageClassification

    folder = copy_with(stock_dir, tmp_path / "stock", config={"num_hidden_layers": 10**6})
    started = time.perf_counter()
    with pytest.raises(ValueError, match="num_hidden_layers = 1000000"):
        DeepfakeDetectorForImageClassification.from_backbone(str(folder))
    assert time.perf_counter() - started < 2


def test_ceilings_leave_real_models_alone():
    """The largest published vision configs pass (ViT-22B, EVA-CLIP-18B widths, 21k labels, 4k inputs)."""
    from deepfake_hf.configuration_deepfake import config_size_problem

    assert config_size_problem({"num_hidden_layers": 48, "hidden_size": 6144, "intermediate_size": 24576,
                                "num_attention_heads": 48, "image_size": 4096, "patch_size": 14,
                                "id2label": {str(i): f"c{i}" for i in range(21843)},
                                "vision_config": {"depths": [3, 3, 27, 3], "hidden_sizes": [256, 512, 1024, 2048]},
                                "text_config": {"vocab_size": 250002}}) is None


def test_convert_refuses_absurd_classifier_config(stock_dir, tmp_path, capsys):
    folder = copy_with(stock_dir, tmp_path / "stock", config={"num_hidden_layers": 10**6})
    started = time.perf_counter()
    assert cli("convert", folder, "--from", "classifier", "--out", tmp_path / "out") == 1
    line = one_error_line(capsys)
    assert time.perf_counter() - started < 5 and "num_hidden_layers = 1000000" in line


# ------------------------------------------------------------------------- 11, 15b, 20c: Space and listing
def test_vendored_package_skips_links(tmp_path):
    from deepfake_hf.publish.hub import _vendor_package

    package = tmp_path / "package"
    package.mkdir()
    (package / "__init__.py").write_text("# the package\n")
    secret = tmp_path / "elsewhere" / "secret.py"
    secret.parent.mkdir()
    secret.write_text("TOKEN = 'hf_private'\n")
    (package / "linked.py").symlink_to(secret)
    out = tmp_path / "space"
    out.mkdir()
    skipped = []
    _vendor_package(out, skipped, package=package)
    assert (out / "deepfake_hf" / "__init__.py").read_text() == "# the package\n"
    assert not (out / "deepfake_hf" / "linked.py").exists()
    assert skipped == ["deepfake_hf/linked.py: a link, not one of the package's own files; not published"]


def test_vendored_package_copies_subpackages_and_skips_linked_folders(tmp_path):
    from deepfake_hf.publish.hub import _vendor_package

    package = tmp_path / "package"
    (package / "faces" / "modes").mkdir(parents=True)
    (package / "__init__.py").write_text("# the package\n")
    (package / "faces" / "__init__.py").write_text("# faces\n")
    (package / "faces" / "modes" / "__init__.py").write_text("")
    (package / "faces" / "modes" / "dlib.py").write_text("MODE = 'dlib'\n")
    (package / "faces" / "__pycache__").mkdir()
    (package / "faces" / "__pycache__" / "x.cpython-312.pyc").write_bytes(b"\0")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "__init__.py").write_text("TOKEN = 'hf_private'\n")
    (package / "linked").symlink_to(elsewhere, target_is_directory=True)
    out = tmp_path / "space"
    out.mkdir()
    skipped = []
    _vendor_package(out, skipped, package=package)
    copied = sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())
    assert copied == ["deepfake_hf/__init__.py", "deepfake_hf/faces/__init__.py",
                      "deepfake_hf/faces/modes/__init__.py", "deepfake_hf/faces/modes/dlib.py"]
    assert skipped == ["deepfake_hf/linked: a link, not one of the package's own files; not published"]


def test_dry_run_listing_shows_only_what_this_command_wrote(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli("push", tiny_model_dir, "--repo-id", "alice/x", "--dry-run", out) == 0
    first = capsys.readouterr().out
    (out / "my-notes.txt").write_text("mine")
    (out / "drafts").mkdir()
    (out / "drafts" / "card.md").write_text("mine")
    assert cli("push", tiny_model_dir, "--repo-id", "alice/x", "--dry-run", out, "--overwrite") == 0
    listing = capsys.readouterr().out
    assert "my-notes.txt" not in listing and "drafts/card.md" not in listing
    listed = [line.strip() for line in listing.splitlines()[1:] if not line.strip().startswith("skipped")]
    assert listed == [line.strip() for line in first.splitlines()[1:]]
    assert f"dry run: {len(listed)} files" in listing
    assert {"config.json", "model.safetensors", "README.md"} <= set(listed)


def test_push_space_help_names_the_extras_the_space_installs(capsys):
    from deepfake_hf.publish.hub import SPACE_EXTRAS

    with pytest.raises(SystemExit):
        cli("push-space", "--help")
    text = " ".join(capsys.readouterr().out.split())
    named = text.split("requirements.txt with its dependencies (")[1].split(" extras)")[0]
    assert sorted(named.replace(" and ", ", ").split(", ")) == sorted(SPACE_EXTRAS)
