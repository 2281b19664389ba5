"""Publishing through a local fake Hub: push, load back in a fresh process, error paths, Spaces."""

import json
import shutil
import socket
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_python, tiny_detector, write_image
from tests.fake_hub import FakeHub
from tests.media_samples import write_video

pytestmark = pytest.mark.slow  # the fake Hub is an HTTP server; some tests also start fresh processes

METRICS = {"model": "m", "test_sets": {"FF++": {"frame": {"auroc": 0.6125, "eer": 0.4, "n": 8, "n_real": 4,
                                                          "n_fake": 4}, "video": None}}}


@pytest.fixture(scope="module")
def hub():
    with FakeHub(tokens={"hf_alice": "alice", "hf_bob": "bob", "hf_alice_read": "alice"}, orgs={"alice": ["alice-lab"]},
                 read_only_tokens={"hf_alice_read"}) as running:
        yield running


@pytest.fixture
def hub_env(hub, monkeypatch, tmp_path):
    """This process talks to the fake Hub as alice (huggingface_hub reads these constants at import)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the fake Hub speaks legacy LFS, not Xet
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-file"))
    monkeypatch.setenv("HF_TOKEN", "hf_alice")
    return hub


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished run: model/, recipe.yaml, eval/metrics.json and a plot."""
    run = tmp_path_factory.mktemp("run")
    tiny_detector("vit", seed=3).save_pretrained(run / "model")
    (run / "eval").mkdir()
    (run / "eval" / "metrics.json").write_text(json.dumps(METRICS))
    write_image(run / "eval" / "roc.png", size=(20, 20))
    (run / "recipe.yaml").write_text(yaml.safe_dump({"name": "vit-in21k", "tuning": {"method": "full"}}))
    return run


# In a fresh process: scores of the Hub repo argv[1] for an image (and a video) through transformers' pipelines.
HUB_SCORES = """
import json, sys
from transformers import pipeline
options = json.loads(sys.argv[2])
scores = {"image": pipeline("image-classification", model=sys.argv[1], **options)(sys.argv[3])}
if len(sys.argv) > 4:
    scores["video"] = pipeline("video-classification", model=sys.argv[1], **options)(sys.argv[4])
print(json.dumps(scores))
"""


def as_dict(rows):
    return {row["label"]: row["score"] for row in rows}


def push(*args):
    from deepfake_hf.cli import main

    return main(["push", *map(str, args)])


def fresh_env(hub, tmp_path):
    return {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "hf_alice",
            "HF_HOME": str(tmp_path / "hf-home")}


def test_push_then_pipeline_from_fake_hub_in_fresh_process(hub_env, run_dir, tmp_path, capsys):
    from transformers import pipeline

    assert push(run_dir, "--repo-id", "alice/detector") == 0
    assert push(run_dir, "--repo-id", "alice/detector-native", "--native") == 0
    out = capsys.readouterr().out
    assert "pushed" in out and "alice/detector" in out

    custom = hub_env.files("alice/detector")
    assert {"config.json", "model.safetensors", "configuration_deepfake.py", "modeling_deepfake.py",
            "preprocessor_config.json", "README.md", "metrics.json", "plots/roc.png", "recipe.yaml",
            "handler.py", "requirements.txt"} <= set(custom)
    assert "auto_map" in json.loads(custom["config.json"])
    card = custom["README.md"].decode()
    assert "0.6125" in card and "trust_remote_code=True" in card
    native = hub_env.files("alice/detector-native")
    assert not any(name.endswith(".py") for name in native if name != "handler.py")  # the endpoint handler only
    assert "handler.py" in native and "requirements.txt" in native
    assert json.loads(native["config.json"])["architectures"] == ["ViTForImageClassification"]
    assert "trust_remote_code" not in native["README.md"].decode()

    image = write_image(tmp_path / "face.png", seed=5)
    video = write_video(tmp_path / "clip.mp4", frames=6)
    local_image = as_dict(pipeline("image-classification", model=str(run_dir / "model"))(str(image)))
    local_video = as_dict(pipeline("video-classification", model=str(run_dir / "model"))(str(video)))
    env = fresh_env(hub_env, tmp_path)
    remote_code = run_python(HUB_SCORES, "alice/detector", json.dumps({"trust_remote_code": True}), image, video,
                             env=env)
    native_scores = run_python(HUB_SCORES, "alice/detector-native", "{}", image, env=env)
    remote_code = json.loads(remote_code.stdout.strip().splitlines()[-1])
    native_scores = json.loads(native_scores.stdout.strip().splitlines()[-1])
    for scores, local in ((remote_code["image"], local_image), (native_scores["image"], local_image),
                          (remote_code["video"], local_video)):
        scores = as_dict(scores)
        assert scores.keys() == {"real", "fake"}
        for label, score in local.items():
            assert scores[label] == pytest.approx(score, abs=1e-5)
    assert any(path.startswith("/alice/detector-native/resolve/") for _, path in hub_env.requests)


def test_dry_run_writes_exactly_the_uploaded_folder(hub_env, run_dir, tmp_path):
    from deepfake_hf.publish.hub import repo_files

    assert push(run_dir, "--repo-id", "alice/dry", "--dry-run", tmp_path / "out") == 0
    written = {name: (tmp_path / "out" / name).read_bytes() for name in repo_files(tmp_path / "out")}
    assert ("model", "alice/dry") not in hub_env.repos  # the dry run uploaded nothing
    assert push(run_dir, "--repo-id", "alice/dry") == 0
    uploaded = hub_env.files("alice/dry")
    uploaded.pop(".gitattributes")
    assert set(uploaded) == set(written)
    for name in ("README.md", "config.json", "metrics.json", "model.safetensors", "modeling_deepfake.py"):
        assert uploaded[name] == written[name], name
    # a second dry run into the same folder refuses without --overwrite
    assert push(run_dir, "--repo-id", "alice/dry", "--dry-run", tmp_path / "out") == 1


def test_overwrite_replaces_only_what_the_command_wrote(hub_env, run_dir, tmp_path):
    out = tmp_path / "out"
    image = write_image(tmp_path / "example.jpg", size=(40, 40), seed=9)
    assert push(run_dir, "--repo-id", "alice/dry", "--dry-run", out, "--example", image) == 0
    assert (out / "example.png").is_file()
    (out / "my-notes.txt").write_text("mine")
    (out / "plots" / "my-plot.png").write_bytes(b"also mine")
    assert push(run_dir, "--repo-id", "alice/dry", "--dry-run", out, "--overwrite") == 0
    assert (out / "my-notes.txt").read_text() == "mine" and (out / "plots" / "my-plot.png").read_bytes() == b"also mine"
    assert not (out / "example.png").exists()  # its own output from the earlier run, now stale, is gone
    assert (out / "config.json").is_file() and (out / "plots" / "roc.png").is_file()


def test_push_skips_links_leaving_the_run_and_publishes_no_local_paths(hub_env, run_dir, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    outside = write_image(tmp_path / "elsewhere" / "private.png", size=(12, 12), seed=1)
    (run / "eval" / "roc.png").unlink()
    (run / "eval" / "roc.png").symlink_to(outside)
    (run / "eval" / "det.png").symlink_to(run / "eval" / "kept.png")  # a link inside the run is fine
    write_image(run / "eval" / "kept.png", size=(12, 12), seed=2)
    metrics = {**METRICS, "model": str(run / "model"), "data": [str(tmp_path / "datasets" / "ffpp" / "test.csv")],
               "test_sets": {"FF++": {**METRICS["test_sets"]["FF++"], "source": str(run / "eval" / "scores.csv")}}}
    (run / "eval" / "metrics.json").write_text(json.dumps(metrics))
    assert push(run, "--repo-id", "alice/links", "--dry-run", tmp_path / "out") == 0
    listing = capsys.readouterr().out
    assert "skipped eval/roc.png: a link to a file outside run/; not published" in listing
    assert not (tmp_path / "out" / "plots" / "roc.png").exists()
    assert (tmp_path / "out" / "plots" / "det.png").read_bytes() == (run / "eval" / "kept.png").read_bytes()
    published = (tmp_path / "out" / "metrics.json").read_text()
    assert str(tmp_path) not in published
    published = json.loads(published)
    assert published["model"] == "model" and published["data"] == ["test.csv"]
    assert published["test_sets"]["FF++"]["source"] == "eval/scores.csv"
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file() and path.suffix in (".md", ".json", ".yaml"):
            assert str(tmp_path) not in path.read_text(), path
    assert push(run, "--repo-id", "alice/links") == 0
    assert "plots/roc.png" not in hub_env.files("alice/links")
    assert ".deepfake-hf-outputs.json" not in hub_env.files("alice/links")


def test_widget_example_output_is_the_models_own_score(hub_env, run_dir, tmp_path):
    from transformers import pipeline

    image = write_image(tmp_path / "example.jpg", size=(40, 40), seed=9)
    assert push(run_dir, "--repo-id", "alice/widget", "--dry-run", tmp_path / "out", "--example", image) == 0
    front = yaml.safe_load((tmp_path / "out" / "README.md").read_text().split("---")[1])
    (widget,) = front["widget"]
    assert widget["src"] == f"{hub_env.url}/alice/widget/resolve/main/example.png"
    scores = pipeline("image-classification", model=str(run_dir / "model"))(str(tmp_path / "out" / "example.png"))
    assert {row["label"]: row["score"] for row in widget["output"]} == pytest.approx(
        {row["label"]: row["score"] for row in scores}, abs=1e-4)


def test_push_example_never_fetches_or_runs_code_a_processor_auto_map_names(hub_env, run_dir, tmp_path, capsys):
    """A processor config whose auto_map points at code in another Hub repo: scoring the --example must not
    download or run it, and the published folder must not name it."""
    import shutil

    from huggingface_hub import HfApi

    marker = tmp_path / "ran"
    code = (f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
            "from transformers import ViTImageProcessor\nclass EvilProcessor(ViTImageProcessor):\n    pass\n")
    api = HfApi(endpoint=hub_env.url, token="hf_alice")
    api.create_repo("alice/evil-code", exist_ok=True)
    api.upload_file(path_or_fileobj=code.encode(), path_in_repo="evilproc.py", repo_id="alice/evil-code")
    model = tmp_path / "model"
    shutil.copytree(run_dir / "model", model)
    settings = json.loads((model / "preprocessor_config.json").read_text())
    settings["auto_map"] = {"AutoImageProcessor": "alice/evil-code--evilproc.EvilProcessor"}
    (model / "preprocessor_config.json").write_text(json.dumps(settings))
    image = write_image(tmp_path / "example.jpg", size=(40, 40), seed=9)
    capsys.readouterr()

    assert push(model, "--repo-id", "alice/example-safe", "--example", image) == 0
    assert not marker.exists(), "the code named by auto_map ran"
    assert not any("/alice/evil-code/resolve/" in path for _, path in hub_env.requests)
    published = hub_env.files("alice/example-safe")
    assert "auto_map" not in json.loads(published["preprocessor_config.json"])
    assert "skipped preprocessor_config.json: auto_map entries (AutoImageProcessor: alice/evil-code--evilproc" \
        in capsys.readouterr().err


def test_private_branch_and_pull_request(hub_env, run_dir, capsys):
    assert push(run_dir, "--repo-id", "alice/private-det", "--private", "--revision", "dev") == 0
    repo = hub_env.repos[("model", "alice/private-det")]
    assert repo.private
    assert "model.safetensors" in hub_env.files("alice/private-det", revision="dev")
    assert set(hub_env.files("alice/private-det")) == {".gitattributes"}  # main untouched

    capsys.readouterr()
    assert push(run_dir, "--repo-id", "alice/private-det", "--create-pr") == 0
    out = capsys.readouterr().out
    assert "pull request: " in out and "/discussions/1" in out
    assert "model.safetensors" in hub_env.files("alice/private-det", revision="refs/pr/1")
    assert set(hub_env.files("alice/private-det")) == {".gitattributes"}

    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    with pytest.raises(RepositoryNotFoundError):  # private: invisible without alice's token
        HfApi(endpoint=hub_env.url, token=False).model_info("alice/private-det")


def test_clear_one_line_errors(hub_env, run_dir, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN")
    assert push(run_dir, "--repo-id", "alice/x") == 1
    assert "no Hugging Face token" in capsys.readouterr().err

    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    assert push(run_dir, "--repo-id", "alice/x") == 1
    err = capsys.readouterr().err
    assert "401" in err and "invalid or expired" in err and len(err.strip().splitlines()) == 1

    monkeypatch.setenv("HF_TOKEN", "hf_alice_read")  # a read-only token: the Hub answers 403
    assert push(run_dir, "--repo-id", "alice/x") == 1
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if "deepfake-hf push: error:" in line]  # progress bars aside
    assert "permission denied (403 Forbidden)" in line and "read-only" in line

    monkeypatch.setenv("HF_TOKEN", "hf_alice")
    hub_env.create_repo("bob/theirs")
    assert push(run_dir, "--repo-id", "bob/theirs") == 1
    err = capsys.readouterr().err
    assert "belongs to 'bob'" in err and len(err.strip().splitlines()) == 1
    assert set(hub_env.files("bob/theirs")) == {".gitattributes"}


def test_network_failures_are_retried_then_reported(hub_env, run_dir):
    from deepfake_hf.publish.hub import HubError, push_model

    commits_before = sum(1 for method, path in hub_env.requests if path.endswith("/commit/main"))
    hub_env.fail("commit", 503, times=1)  # one transient failure: retried, then the push succeeds
    result = push_model(run_dir / "model", "alice/retried", retry_wait=0)
    assert "model.safetensors" in result["files"]
    commits = sum(1 for method, path in hub_env.requests if path.endswith("/commit/main")) - commits_before
    assert commits == 2 and "model.safetensors" in hub_env.files("alice/retried")

    with socket.socket() as probe:  # a port nobody listens on: the network is "down"
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(HubError) as error:
        push_model(run_dir / "model", "alice/down", endpoint=closed, retries=2, retry_wait=0)
    message = str(error.value)
    assert "cannot reach the Hub" in message and closed in message and "after 2 attempts" in message
    assert "\n" not in message


def test_push_space(hub_env, tmp_path):
    from deepfake_hf import __version__
    from deepfake_hf.cli import main

    assert main(["push-space", "--model", "alice/detector-space-model", "--space-id", "alice/demo",
                 "--dry-run", str(tmp_path / "space")]) == 0
    front = yaml.safe_load((tmp_path / "space" / "README.md").read_text().split("---")[1])
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py"
    assert front["models"] == ["alice/detector-space-model"]
    requirements = (tmp_path / "space" / "requirements.txt").read_text().splitlines()
    names = {line.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower() for line in requirements}
    # the package is vendored (it may not be on any index the Space reaches); its dependencies and the
    # extras the app needs (video decoding, faces) are listed; gradio comes from the card's sdk_version
    assert not any(line.startswith("deepfake-hf") for line in requirements)
    assert {"torch", "transformers", "av", "dlib-bin", "face-recognition-models", "matplotlib"} <= names
    assert "gradio" not in names and "pytest" not in names
    vendored = tmp_path / "space" / "deepfake_hf"
    import deepfake_hf

    package = Path(deepfake_hf.__file__).parent
    # every module of the package, subpackages included (the Space imports them all)
    modules = {str(path.relative_to(package)) for path in package.rglob("*.py") if path.name != "app.py"
               and all((folder / "__init__.py").is_file() for folder in path.relative_to(package).parents
                       for folder in [package / folder])}
    assert {str(path.relative_to(vendored)) for path in vendored.rglob("*.py")} == modules
    assert f'__version__ = "{__version__}"' in (vendored / "__init__.py").read_text()
    app = (tmp_path / "space" / "app.py").read_text()
    assert "DEFAULT_MODEL = 'alice/detector-space-model'" in app
    compile(app, "app.py", "exec")
    # the Space's app imports the vendored copy, not whatever happens to be installed
    import subprocess
    import sys

    found = subprocess.run([sys.executable, "-c", "import deepfake_hf, app; print(deepfake_hf.__file__); "
                            "print(app.DEFAULT_MODEL)"], cwd=tmp_path / "space", capture_output=True, text=True,
                           check=True).stdout.split()  # a Space runs app.py from its repo root
    assert found[-2] == str(vendored / "__init__.py") and found[-1] == "alice/detector-space-model"
    # --overwrite of the dry-run folder replaces the Space's files and keeps the user's
    (tmp_path / "space" / "TODO.md").write_text("mine")
    assert main(["push-space", "--model", "alice/other", "--space-id", "alice/demo", "--dry-run",
                 str(tmp_path / "space"), "--overwrite"]) == 0
    assert (tmp_path / "space" / "TODO.md").read_text() == "mine"
    assert "DEFAULT_MODEL = 'alice/other'" in (tmp_path / "space" / "app.py").read_text()

    # the model must exist on the Hub before a Space can use it
    assert main(["push-space", "--model", "alice/missing", "--space-id", "alice/demo"]) == 1
    hub_env.create_repo("alice/detector-space-model")
    assert main(["push-space", "--model", "alice/detector-space-model", "--space-id", "alice/demo"]) == 0
    space = hub_env.files("alice/demo", repo_type="space")
    assert {"README.md", "app.py", "requirements.txt", "deepfake_hf/scoring/detector.py"} <= set(space)
    assert ".deepfake-hf-outputs.json" not in space
    assert hub_env.repos[("space", "alice/demo")].sdk == "gradio"


def test_stock_checkpoint_folder_is_published_as_is(run_dir, tmp_path):
    from deepfake_hf import export_native
    from deepfake_hf.publish.hub import assemble_model_repo

    native = export_native(run_dir / "model", tmp_path / "native")
    out = assemble_model_repo(native, tmp_path / "repo", "alice/stock")
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= files
    assert not any(name.endswith(".py") for name in files if name != "handler.py")  # the endpoint handler only
    assert (out / "model.safetensors").read_bytes() == (native / "model.safetensors").read_bytes()
    assert "trust_remote_code" not in (out / "README.md").read_text()


def test_app_serves_a_model_from_the_hub(hub_env, run_dir, tmp_path):
    """What a Space does: app.py with a Hub id (the package installed, so no remote code is needed)."""
    from deepfake_hf.publish.hub import push_model
    from deepfake_hf.scoring.detector import Detector
    from tests.conftest import PROJECT_ROOT

    push_model(run_dir / "model", "alice/app-model", retry_wait=0)
    image = write_image(tmp_path / "face.png", seed=6)
    code = ("import json, sys, app; demo = app.DeepfakeDemo(sys.argv[1], faces='none'); "
            "verdict, probabilities, _, _ = demo.analyse_image(sys.argv[2]); print(json.dumps(probabilities))")
    env = {**fresh_env(hub_env, tmp_path), "PYTHONPATH": str(PROJECT_ROOT)}
    probabilities = json.loads(run_python(code, "alice/app-model", image, env=env).stdout.strip().splitlines()[-1])
    (expected,) = Detector.from_pretrained(str(run_dir / "model"), faces="none", progress=False)(str(image))
    assert probabilities["fake"] == pytest.approx(expected.fake_probability, abs=1e-5)


def test_native_widget_example_is_an_aligned_face_crop(run_dir, tmp_path):
    """The native repo is the widget model: its example is the face crop predict scores, or a stand-in it names."""
    from PIL import Image

    from deepfake_hf.publish.hub import assemble_model_repo

    pytest.importorskip("skimage")  # the default example photo (public-domain astronaut)
    pytest.importorskip("dlib")
    # a model that records the dlib face mode (one recording nothing is scored as given, so its example would be too)
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    shutil.rmtree(run / "model")
    tiny_detector("vit", seed=3, face_preprocessing="dlib").save_pretrained(run / "model")
    out = assemble_model_repo(run, tmp_path / "native", "alice/native", native=True, endpoint="http://hub")
    assert Image.open(out / "example.png").size == (256, 256)  # the aligned crop, not the 512x512 photo
    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert front["widget"][0]["src"] == "http://hub/alice/native/resolve/main/example.png"
    assert "is an aligned face crop made by the `dlib` face mode" in card
    assert "scores **the picture as given**" in card and "handler.py" in card

    noise = write_image(tmp_path / "noise.png", size=(40, 40), seed=9)
    out = assemble_model_repo(run, tmp_path / "stand-in", "alice/native", native=True, example_image=noise)
    assert Image.open(out / "example.png").size == (40, 40)
    assert "is a stand-in, the picture as given: the `dlib` face mode found no face" in (out / "README.md").read_text()
