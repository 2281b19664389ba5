"""timm encoders through transformers' TimmWrapperModel: the three CNN families deepfake papers use (Xception as
DeepfakeBench trains it, EfficientNet-B4, CLIP's modified ResNet-50), their pooling, a train step, save -> reload ->
pipeline, and the one-line error when timm is not installed."""

import sys

import pytest
import torch

from .conftest import pipeline_scores, write_image

SIZE = 64
# Xception and EfficientNet-B4 have no width options in timm: they are built full size and run on 64 x 64 inputs.
# resnet50_clip takes ByobNet's overlays: an eighth of its width, and its attention pool sized for 64 x 64.
TIMM_BACKBONES = {
    "xception": dict(architecture="legacy_xception"),
    "efficientnet_b4": dict(architecture="efficientnet_b4"),
    "clip_rn50": dict(architecture="resnet50_clip", model_args=dict(width_factor=0.125, stem_chs=[8, 8, 16],
                                                                    img_size=SIZE)),
}


def timm_detector(name, seed=0):
    from deepfake_hf import DeepfakeDetectorConfig, DeepfakeDetectorForImageClassification

    torch.manual_seed(seed)
    config = DeepfakeDetectorConfig(backbone_config={"model_type": "timm_wrapper", **TIMM_BACKBONES[name]},
                                    image_size=SIZE)
    return DeepfakeDetectorForImageClassification(config).eval()


def pixels(batch=2, seed=0):
    return torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def clip_attention_pool(pool, feature_map):
    """CLIP's AttentionPool2d (Radford et al. 2021, the modified ResNet's last layer), without its output projection:
    the spatial mean joins the H*W positions as a query token, absolute position embeddings are added, and
    multi-head attention from that token reads the map out. The projection (CLIP's c_proj, the image-embedding
    projection) is linear, so a linear head on these features can express any head on the projected ones."""
    tokens = feature_map.flatten(2).transpose(1, 2)
    tokens = torch.cat([tokens.mean(1, keepdim=True), tokens], dim=1) + pool.pos_embed
    heads = pool.num_heads

    def split(t):  # (batch, tokens, width) -> (batch, heads, tokens, width / heads)
        return t.unflatten(-1, (heads, -1)).transpose(1, 2)

    query, key, value = split(pool.q(tokens[:, :1])), split(pool.k(tokens)), split(pool.v(tokens))
    weights = (query @ key.transpose(-1, -2) / query.shape[-1] ** 0.5).softmax(-1)
    return (weights @ value).transpose(1, 2).flatten(2)[:, 0]


# EfficientNet-B4's first forward in a process takes seconds on CPU (its many depthwise shapes): slow suite only
@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name == "efficientnet_b4" else name
                                  for name in TIMM_BACKBONES])
def test_pooled_features_are_each_familys_published_features(name):
    model = timm_detector(name)
    with torch.no_grad():
        encoded = model.get_image_features(pixels())
    feature_map = encoded.last_hidden_state
    assert feature_map.ndim == 4 and encoded.pooler_output.shape == (2, model.config.hidden_size)
    average = feature_map.mean(dim=(2, 3))
    if name == "clip_rn50":
        assert model.config.hidden_size == 256  # the attention pool's width (2048 at full size), not c_proj's
        expected = clip_attention_pool(model.backbone.timm_model.head, feature_map)
        assert not torch.allclose(encoded.pooler_output, average, atol=1e-3)
    else:
        # Xception: relu(bn4) then global average pool (DeepfakeBench's classifier); EfficientNet: conv_head, BN,
        # SiLU, global average pool
        assert model.config.hidden_size == {"xception": 2048, "efficientnet_b4": 1792}[name]
        assert feature_map.min() >= 0 or name == "efficientnet_b4"
        expected = average
    assert torch.allclose(encoded.pooler_output, expected, atol=1e-5)


def test_processor_follows_the_timm_weights_statistics(tmp_path):
    import json

    timm_detector("clip_rn50").save_pretrained(tmp_path / "clip")
    processor = json.loads((tmp_path / "clip" / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == pytest.approx([0.48145466, 0.4578275, 0.40821073])  # OpenAI CLIP's
    assert processor["crop_size"] == {"height": SIZE, "width": SIZE} and processor["size"] == {"shortest_edge": SIZE}


def test_from_backbone_takes_a_timm_checkpoint_and_its_processor(tmp_path):
    import json

    import timm
    from transformers import TimmWrapperConfig, TimmWrapperModel

    from deepfake_hf import DeepfakeDetectorForImageClassification

    args = TIMM_BACKBONES["clip_rn50"]
    encoder = TimmWrapperModel(TimmWrapperConfig(**args)).eval()
    encoder.save_pretrained(tmp_path / "encoder")
    # a timm Hub checkpoint's config.json carries its pretrained_cfg, from which TimmWrapperImageProcessor reads
    config = json.loads((tmp_path / "encoder" / "config.json").read_text())
    config["pretrained_cfg"] = timm.models.get_pretrained_cfg("resnet50_clip").to_dict()
    (tmp_path / "encoder" / "config.json").write_text(json.dumps(config))
    model = DeepfakeDetectorForImageClassification.from_backbone(str(tmp_path / "encoder"), image_size=SIZE).eval()
    with torch.no_grad():
        assert torch.equal(model.get_image_features(pixels()).pooler_output, encoder(pixels()).pooler_output)
    model.save_pretrained(tmp_path / "detector")
    processor = json.loads((tmp_path / "detector" / "preprocessor_config.json").read_text())
    # timm's evaluation transform of those weights: short side 224 / crop_pct 0.9, centre crop 224
    assert processor["size"] == {"shortest_edge": 248} and processor["crop_size"] == {"height": 224, "width": 224}


def test_missing_timm_is_one_line_naming_the_extra(monkeypatch, tmp_path, capsys):
    from deepfake_hf import DeepfakeDetectorConfig, DeepfakeDetectorForImageClassification
    from deepfake_hf.cli import main
    from deepfake_hf.errors import DeepfakeHFError, MissingDependencyError
    from deepfake_hf.training.recipes import load_recipe
    from deepfake_hf.training.train import build_model

    config = DeepfakeDetectorConfig(backbone_config={"model_type": "timm_wrapper", **TIMM_BACKBONES["xception"]})
    monkeypatch.setitem(sys.modules, "timm", None)  # what an environment without timm looks like to imports
    with pytest.raises(ImportError, match=r"'legacy_xception' is a timm model and needs timm: pip install "
                                          r"'deepfake-hf\[timm\]'"):
        DeepfakeDetectorForImageClassification(config)
    recipe = load_recipe({"name": "x", "model": {"architecture": {"model_type": "timm_wrapper",
                                                                  "architecture": "legacy_xception"}}})
    with pytest.raises(MissingDependencyError, match=r"pip install 'deepfake-hf\[timm\]'") as error:
        build_model(recipe, random_init=True)
    assert isinstance(error.value, DeepfakeHFError) and "\n" not in str(error.value)
    torch.save({"backbone.block1.rep.0.conv1.weight": torch.zeros(1),
                "backbone.last_linear.weight": torch.zeros(2, 2048),
                "backbone.last_linear.bias": torch.zeros(2)}, tmp_path / "xception.pth")
    capsys.readouterr()
    assert main(["convert", str(tmp_path / "xception.pth"), "--out", str(tmp_path / "out")]) == 1
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert len(error_lines) == 1 and "pip install 'deepfake-hf[timm]'" in error_lines[0]


@pytest.mark.slow  # trains, saves ~150 MB, starts a process
def test_each_family_trains_saves_reloads_and_serves_the_same_scores(tmp_path):
    import json

    from PIL import Image
    from transformers import AutoImageProcessor

    from deepfake_hf import DeepfakeDetectorForImageClassification

    from .conftest import run_python

    image = write_image(tmp_path / "face.png", size=(72, 60), seed=4)
    expected = {}
    for name in TIMM_BACKBONES:
        model = timm_detector(name).train()
        before = {key: value.clone() for key, value in model.state_dict().items()}
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        loss = model(pixel_values=pixels(4, seed=1), labels=torch.tensor([0, 1, 1, 0])).loss
        loss.backward()
        optimizer.step()
        after = model.state_dict()
        assert not torch.equal(after["classifier.weight"], before["classifier.weight"])
        assert any(not torch.equal(after[key], before[key]) for key in after if key.startswith("backbone.")), name
        model.eval().save_pretrained(tmp_path / name)
        reloaded = DeepfakeDetectorForImageClassification.from_pretrained(tmp_path / name).eval()
        processor = AutoImageProcessor.from_pretrained(tmp_path / name)
        inputs = processor(images=Image.open(image).convert("RGB"), return_tensors="pt")
        assert inputs["pixel_values"].shape[-2:] == (SIZE, SIZE)
        with torch.no_grad():
            logits = model(**inputs).logits
            assert torch.equal(reloaded(**inputs).logits, logits), name
        expected[name] = logits.softmax(-1)[0]
    folders = json.dumps({name: str(tmp_path / name) for name in TIMM_BACKBONES})
    from .test_convert import PIPELINE_CHECK

    scores = json.loads(run_python(PIPELINE_CHECK, folders, image).stdout.strip().splitlines()[-1])
    for name, probabilities in expected.items():
        assert scores[name]["fake"] == pytest.approx(probabilities[1].item(), abs=1e-5), name
        assert scores[name]["real"] == pytest.approx(probabilities[0].item(), abs=1e-5), name


@pytest.mark.slow  # the Trainer
def test_a_timm_recipe_trains_with_the_project_trainer(tmp_path):
    from datasets import DatasetDict

    from deepfake_hf import DeepfakeDetectorForImageClassification
    from deepfake_hf.training.recipes import load_recipe
    from deepfake_hf.training.train import train

    from .conftest import IMAGE_SIZE
    from .test_training import tiny_recipe, toy_split

    recipe = tiny_recipe("full", family="timm_wrapper", max_steps=2, eval_strategy="steps", eval_steps=2,
                         save_steps=2, per_device_train_batch_size=8).to_dict()
    recipe["model"]["detector"] = {"image_size": IMAGE_SIZE}  # timm configs carry no input size
    summary = train(load_recipe(recipe), tmp_path / "run",
                    datasets=DatasetDict(train=toy_split(16, 0), validation=toy_split(8, 1)))
    assert summary["global_step"] == 2
    model = DeepfakeDetectorForImageClassification.from_pretrained(tmp_path / "run" / "model")
    assert model.config.backbone_config.architecture == "resnet50_clip"
    scores = pipeline_scores(tmp_path / "run" / "model", write_image(tmp_path / "x.png"), trust_remote_code=True)
    assert set(scores) == {"real", "fake"}
