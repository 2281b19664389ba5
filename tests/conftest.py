"""Shared test helpers: tiny random backbones (transformers' ModelTester sizes), generated media, subprocesses."""

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# torch's OpenMP threads spin while they wait for work, holding a core that decoding, dlib or the next op needs:
# on 2 cores the tiny-model tests took ~3x their CPU time that way. The package's commands make waiting threads
# sleep (threads.configure_threads sets OMP_WAIT_POLICY=PASSIVE before torch is imported); here torch is imported
# while tests are collected, before any command runs, so the same policy is set now (GNU OpenMP reads it when
# torch loads). A value already in the environment is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_MEDIA = PROJECT_ROOT.parent / "shared" / "media"
IMAGE_SIZE = 32

TRANSFORMER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                   image_size=IMAGE_SIZE, patch_size=8)
TINY_BACKBONES = {
    "vit": dict(model_type="vit", **TRANSFORMER),
    "clip_vision_model": dict(model_type="clip_vision_model", **TRANSFORMER),
    "dinov2": dict(model_type="dinov2", **TRANSFORMER),
    "convnext": dict(model_type="convnext", hidden_sizes=[16, 32], depths=[1, 1], num_stages=2, image_size=IMAGE_SIZE),
    "resnet": dict(model_type="resnet", embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1]),
    # CLIP's modified ResNet-50 (attention-pool head) through TimmWrapperModel, an eighth of its width
    "timm_wrapper": dict(model_type="timm_wrapper", architecture="resnet50_clip",
                         model_args=dict(width_factor=0.125, stem_chs=[8, 8, 16], img_size=IMAGE_SIZE)),
}


def tiny_detector(family="vit", seed=0, **config_kwargs):
    """A randomly initialised detector on a tiny backbone, in eval mode."""
    import torch

    from deepfake_hf import DeepfakeDetectorConfig, DeepfakeDetectorForImageClassification

    torch.manual_seed(seed)
    config_kwargs.setdefault("image_size", IMAGE_SIZE)
    config = DeepfakeDetectorConfig(backbone_config=dict(TINY_BACKBONES[family]), **config_kwargs)
    return DeepfakeDetectorForImageClassification(config).eval()


def write_image(path, size=(48, 40), seed=0, mode="RGB"):
    """A random-noise image file; returns its path."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path)
    return Path(path)


def run_python(code, *args, env=None, timeout=300):
    """Run `code` in a fresh interpreter (no state from this process); returns CompletedProcess."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", **(env or {})}
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                            env=full_env, timeout=timeout)
    assert result.returncode == 0, f"subprocess failed:\n{result.stderr[-3000:]}"
    return result


# What the Inference Endpoints toolkit does with a repo holding handler.py (huggingface_inference_toolkit.utils.
# check_and_register_custom_pipeline_from_directory): `handler` is then the EndpointHandler of the folder argv[1].
LOAD_HANDLER = """
import base64, importlib.util, json, os, sys
model_dir = sys.argv[1]
spec = importlib.util.spec_from_file_location("handler.EndpointHandler", os.path.join(model_dir, "handler.py"))
sys.path.insert(0, model_dir)
module = importlib.util.module_from_spec(spec)
sys.modules["handler.EndpointHandler"] = module
spec.loader.exec_module(module)
handler = module.EndpointHandler(model_dir)
"""

PIPELINE_SCORES = """
import json, sys
from transformers import pipeline
classify = pipeline("image-classification", model=sys.argv[1], **json.loads(sys.argv[3]))
print(json.dumps(classify(sys.argv[2])))
"""


def pipeline_scores(model_dir, image, trust_remote_code):
    """{label: score} from `pipeline("image-classification")` run in a fresh process."""
    options = json.dumps({"trust_remote_code": True} if trust_remote_code else {})
    out = run_python(PIPELINE_SCORES, model_dir, image, options).stdout.strip().splitlines()[-1]
    return {row["label"]: row["score"] for row in json.loads(out)}


def pytest_collection_finish(session):
    """The modules imported while collecting (torch, transformers, gradio, ...) hold ~0.5 M objects that live to the
    end: frozen, the cyclic collector stops walking them in every full collection, and at exit (leaving the
    interpreter took ~5 s walking them). Nothing a test creates is frozen here."""
    gc.freeze()


def pytest_unconfigure(config):
    gc.freeze()  # what the tests left behind too: the process is ending, the OS takes the memory back


@pytest.fixture(autouse=True)
def isolated_cache(monkeypatch, tmp_path):
    """Dataset and feature caches go to the test's own folder, not ~/.cache."""
    monkeypatch.setenv("DEEPFAKE_HF_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A saved tiny ViT detector (4 frames a video), built once for the session: tests only read it (one that
    changes a model copies it, or saves its own)."""
    folder = tmp_path_factory.mktemp("tiny-model") / "model"
    tiny_detector("vit", num_frames=4).save_pretrained(folder)
    return folder


@pytest.fixture
def shared_media():
    if not (SHARED_MEDIA / "manifest.csv").is_file():
        pytest.skip(f"shared media not found at {SHARED_MEDIA}")
    return SHARED_MEDIA
