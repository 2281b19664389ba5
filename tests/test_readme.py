"""Every code block of README.md runs as written, offline, so the README cannot rot.

The commands run in a scratch folder that holds what they name: tiny random models under the names
the README uses (`my-detector`, `MODEL`, `path/or/hub-id`), a tiny CLIP checkpoint in a local folder
called `openai/clip-vit-large-patch14` (transformers takes a local folder before the Hub), generated
images, videos and a DeepfakeBench JSON, published-detector checkpoints in their sources' layouts, and a
local fake Hub for `push`. Every command of every ```bash block must be run here or skipped with a
reason below; a new README command that is neither fails this test.
"""

import json
import re
import shlex
import shutil

import pytest
from PIL import Image

from tests.conftest import PROJECT_ROOT, TINY_BACKBONES, tiny_detector, write_image
from tests.media_samples import write_video

README = PROJECT_ROOT / "README.md"
# Commands not run here, each with the reason.
SKIPPED = {
    'pip install -e ".[dev]"': "installs the package: .ci/run does exactly this",
    "python -m pytest -q": "the test suite itself",
    "hf auth login": "interactive login to the real Hub; here HF_TOKEN talks to a local fake Hub",
    "torchrun --nproc_per_node 2 $(which deepfake-hf) train clip-l14-ln --out runs/clip-ln":
        "two processes; tests/test_distributed.py runs train under torchrun",
    "torchrun --nproc_per_node 8 $(which deepfake-hf) preprocess ffpp/ --out ffpp-crops --frames 32":
        "eight processes; tests/test_preprocess.py runs preprocess under torchrun with 2",
    "accelerate launch --multi_gpu --num_processes 8 $(which deepfake-hf) predict my-detector videos/ "
    "--format jsonl --out scores.jsonl":
        "eight processes; tests/test_scale_out.py runs predict under torchrun with 2 (accelerate "
        "launch --multi_gpu --num_processes 2 on CPU was checked by hand: the same 2 gloo ranks)",
    "torchrun --nproc_per_node 8 $(which deepfake-hf) evaluate MODEL 'ffpp-crops/manifest.csv#crops' --out eval-ffpp/":
        "eight processes; tests/test_scale_out.py runs evaluate under torchrun with 2",
}
# Extra arguments that keep a long README command short here (the command's own arguments are kept as written).
SHORTER = {
    "deepfake-hf quickstart --out quickstart-run": ["--set", "data.sbi={crops_per_photo: 8, crops_per_face: 1}",
                                                   "--set", "training.num_train_epochs=1"],
}


def code_blocks(text):
    """[(language, code)] of the fenced blocks."""
    return [(match.group(1), match.group(2)) for match in re.finditer(r"```(\w*)\n(.*?)```", text, re.S)]


def bash_commands(code):
    """The commands of a bash block: comments dropped, `\\` continuations joined, `a && b` split."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if not line or line.startswith("#"):
            continue
        commands.extend(part.strip() for part in line.split(" && "))
    return commands


def test_every_readme_command_is_run_or_skipped_with_a_reason():
    commands = [c for lang, code in code_blocks(README.read_text()) if lang == "bash" for c in bash_commands(code)]
    assert commands, "no bash blocks found"
    runnable = {c for c in commands if c not in SKIPPED}
    assert all(c.startswith(("deepfake-hf ", "python app.py ")) for c in runnable), sorted(runnable)
    stale = set(SKIPPED) - set(commands)
    assert not stale, f"skips for commands no longer in the README: {stale}"


# ------------------------------------------------------------------------------------------ the scratch folder
def build_world(root):
    """Everything the README's commands and code name, under `root`."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from tests.test_convert import make_classifier, make_deepfakebench, make_deepfakebench_xception, make_gend_clip

    for name in ("my-detector", "MODEL", "path/or/hub-id"):
        tiny_detector("vit", seed=len(name), num_frames=4).save_pretrained(root / name)

    # "openai/clip-vit-large-patch14", as a local folder: a tiny full CLIP with its processor
    torch.manual_seed(0)
    vision = {k: v for k, v in TINY_BACKBONES["clip_vision_model"].items() if k != "model_type"}
    text = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, vocab_size=99)
    clip_folder = root / "openai" / "clip-vit-large-patch14"
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(clip_folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(clip_folder)

    make_gend_clip(root / "GenD-CLIP")
    make_deepfakebench(root / "effort_best.pth", "effort")
    make_deepfakebench_xception(root / "xception_best.pth")
    make_classifier(root / "org" / "name", {0: "Real", 1: "Fake"})

    for name in ("face.jpg", "photo.jpg"):
        write_image(root / name, size=(64, 64), seed=len(name))
    write_video(root / "clip.mp4", frames=12, size=(64, 48))
    write_video(root / "videos" / "a.mp4", frames=10, size=(64, 48))
    write_image(root / "videos" / "still.png", size=(64, 64), seed=3)
    # test and validation folders of real faces (dlib finds them, as the default --faces auto will look for them)
    from skimage import data as skdata

    astronaut = Image.fromarray(skdata.astronaut()).convert("RGB")
    for folder in ("ffpp_test", "ffpp_val"):
        for label in ("real", "fake"):
            for index in range(4):
                shift = 8 * index + 40 * (label == "fake")
                face = astronaut.crop((100 + shift, 0 + shift, 340 + shift, 240 + shift)).resize((160, 160))
                (root / folder / label).mkdir(parents=True, exist_ok=True)
                face.save(root / folder / label / f"{index}.png")
    shutil.copytree(root / "ffpp_test", root / "ffpp")  # face photos for `preprocess ffpp/`
    # DeepfakeBench JSONs: frame folders of a few videos per class
    for name, splits in (("ff++/train.json", ("train",)), ("cdf.json", ("test",))):
        base = (root / name).parent
        tree = {}
        for label, label_name in ((0, "FF-real"), (1, "FF-DF")):
            videos = {}
            for video in range(6):
                frames = [write_image(base / "frames" / label_name / f"{video:03d}" / f"{frame}.png", size=(40, 40),
                                      seed=100 * label + 10 * video + frame) for frame in range(3)]
                videos[f"{video:03d}"] = {"label": label_name,
                                          "frames": [str(f.relative_to(base)) for f in frames]}
            tree[label_name] = {split: {"c23": videos} for split in splits}
        (root / name).write_text(json.dumps({"FF++": tree}))


@pytest.fixture
def world(tmp_path, monkeypatch):
    root = tmp_path / "readme"
    root.mkdir()
    build_world(root)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    from huggingface_hub import constants

    from tests.fake_hub import FakeHub

    with FakeHub(tokens={"hf_readme": "your-name"}) as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-file"))
        monkeypatch.setenv("HF_TOKEN", "hf_readme")
        yield hub


def run_command(command, root):
    from deepfake_hf.cli import main

    if command.startswith("python app.py "):
        return run_app(shlex.split(command)[2:], root)
    argv = shlex.split(command)[1:] + SHORTER.get(command, [])
    code = main(argv)
    assert code == 0, f"README command failed with exit code {code}: {command}"


def run_app(argv, root):
    import urllib.request

    from tests.app_server import running_app

    assert argv[0] == "--model"
    with running_app(root / argv[1], {"DEEPFAKE_HF_FACES": "none"}) as url:
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200


@pytest.mark.slow
def test_readme_runs_as_written(world, fake_hub, capsys):
    blocks = code_blocks(README.read_text())
    ran = []
    for lang, code in blocks:
        if lang == "python":
            exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
            ran.append("python block")
        elif lang == "bash":
            for command in bash_commands(code):
                if command in SKIPPED:
                    continue
                run_command(command, world)
                ran.append(command)
    out = capsys.readouterr().out
    assert "deepfake-hf" in out or ran
    # what the commands were meant to produce is there
    assert (world / "quickstart-run" / "eval" / "metrics.json").is_file()
    assert (world / "runs" / "clip-ln" / "model" / "config.json").is_file()
    assert json.loads((world / "eval" / "metrics.json").read_text())["test_sets"]
    assert "model.safetensors" in fake_hub.files("your-name/deepfake-detector")
    assert "app.py" in fake_hub.files("your-name/deepfake-demo", repo_type="space")
    assert (world / "results.json").is_file() and (world / "gend-detector" / "config.json").is_file()
    assert (world / "xception-detector" / "model.safetensors").is_file()
    assert (world / "ffpp-crops" / "manifest.csv").is_file() and (world / "scores.jsonl").is_file()
    assert len(ran) >= 15, ran
