"""ModelTester-style checks for every backbone family on tiny random configs."""

import json

import pytest
import torch
from transformers.modeling_outputs import ImageClassifierOutput

from deepfake_hf import DeepfakeDetectorForImageClassification

from .conftest import IMAGE_SIZE, TINY_BACKBONES, pipeline_scores, tiny_detector, write_image

FAMILIES = list(TINY_BACKBONES)


def pixels(batch=3, seed=0):
    return torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", FAMILIES)
def test_forward_shapes_and_features(family):
    model = tiny_detector(family)
    with torch.no_grad():
        output = model(pixels())
        encoded = model.get_image_features(pixels())
    assert isinstance(output, ImageClassifierOutput)
    assert output.logits.shape == (3, 2)
    assert encoded.pooler_output.shape == (3, model.config.hidden_size)
    assert encoded.last_hidden_state.shape[0] == 3
    assert torch.allclose(output.image_features, encoded.pooler_output)


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_and_backward_reach_head_and_backbone(family):
    model = tiny_detector(family).train()
    output = model(pixels(4), labels=torch.tensor([0, 1, 1, 0]))
    assert output.loss.ndim == 0 and torch.isfinite(output.loss)
    output.loss.backward()
    assert model.classifier.weight.grad is not None and model.classifier.weight.grad.abs().sum() > 0
    backbone_grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert backbone_grads and any(g.abs().sum() > 0 for g in backbone_grads)


@pytest.mark.parametrize("family", FAMILIES)
def test_save_load_gives_identical_logits(family, tmp_path):
    model = tiny_detector(family)
    model.save_pretrained(tmp_path)
    for name in ("config.json", "model.safetensors", "preprocessor_config.json",
                 "configuration_deepfake.py", "modeling_deepfake.py"):
        assert (tmp_path / name).is_file(), name
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"]["AutoModelForImageClassification"].endswith("DeepfakeDetectorForImageClassification")
    loaded = DeepfakeDetectorForImageClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(model(pixels()).logits, loaded(pixels()).logits)


@pytest.mark.slow  # fresh process
@pytest.mark.parametrize("family", FAMILIES)
def test_pipeline_with_remote_code_in_fresh_process(family, tmp_path):
    model = tiny_detector(family)
    model.save_pretrained(tmp_path / "model")
    image = write_image(tmp_path / "face.png", size=(50, 41))
    scores = pipeline_scores(tmp_path / "model", image, trust_remote_code=True)
    assert set(scores) == {"real", "fake"}
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-5)
    # the processor written next to the weights reproduces the scores computed here
    from PIL import Image
    from transformers import AutoImageProcessor

    inputs = AutoImageProcessor.from_pretrained(tmp_path / "model")(Image.open(image), return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs).logits.softmax(-1)[0]
    assert scores["fake"] == pytest.approx(expected[1].item(), abs=1e-5)


def test_clip_processor_uses_clip_statistics(tmp_path):
    tiny_detector("clip_vision_model").save_pretrained(tmp_path)
    processor = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    assert processor["crop_size"] == {"height": IMAGE_SIZE, "width": IMAGE_SIZE}


def test_in_process_pipeline_after_registration(tmp_path):
    from transformers import pipeline

    tiny_detector("vit").save_pretrained(tmp_path / "model")
    image = write_image(tmp_path / "x.png")
    result = pipeline("image-classification", model=str(tmp_path / "model"))(str(image))
    assert {row["label"] for row in result} == {"real", "fake"}


def test_threshold_and_temperature_shape_the_scores():
    base = tiny_detector("vit")
    calibrated = tiny_detector("vit", threshold=0.2, calibration_temperature=2.0)
    calibrated.load_state_dict(base.state_dict())
    with torch.no_grad():
        p = (base(pixels()).logits / 2.0).softmax(-1)[:, 1]
        decision = calibrated(pixels()).logits.softmax(-1)[:, 1]
    assert torch.equal(decision >= 0.5, p >= 0.2)
    assert not torch.allclose(decision, p)


def test_loss_ignores_calibration():
    base = tiny_detector("vit")
    calibrated = tiny_detector("vit", threshold=0.2, calibration_temperature=3.0)
    calibrated.load_state_dict(base.state_dict())
    labels = torch.tensor([0, 1, 0])
    assert torch.allclose(base(pixels(), labels=labels).loss, calibrated(pixels(), labels=labels).loss)


def test_video_input_averages_frame_probabilities():
    model = tiny_detector("vit")
    frames = pixels(4).view(1, 4, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        per_frame = model(frames[0]).logits.softmax(-1)[:, 1]
        video = model(frames).logits.softmax(-1)[0, 1]
    assert video.item() == pytest.approx(per_frame.mean().item(), abs=1e-5)


def test_confident_aggregation_follows_confident_frames():
    from deepfake_hf.modeling_deepfake import confident_mean

    probabilities = torch.tensor([[0.95, 0.9, 0.92, 0.1, 0.2],    # 3/5 confident fakes -> their mean
                                  [0.01, 0.02, 0.03, 0.05, 0.04],  # all confidently real -> their mean
                                  [0.5, 0.6, 0.4, 0.55, 0.45]])    # nothing confident -> plain mean
    scores = confident_mean(probabilities, threshold=0.8, fraction=0.5)
    assert scores.tolist() == pytest.approx([0.9233333, 0.03, 0.5], abs=1e-6)


def test_from_backbone_loads_encoder_weights(tmp_path):
    from transformers import AutoModel, ViTConfig

    torch.manual_seed(1)
    encoder = AutoModel.from_config(ViTConfig(**{k: v for k, v in TINY_BACKBONES["vit"].items() if k != "model_type"}))
    encoder.save_pretrained(tmp_path / "encoder")
    model = DeepfakeDetectorForImageClassification.from_backbone(str(tmp_path / "encoder"), normalize_features=True)
    assert model.config.normalize_features
    loaded = model.backbone.state_dict()
    for name, tensor in encoder.state_dict().items():
        if name in loaded:
            assert torch.equal(loaded[name], tensor), name
    assert torch.equal(model.backbone.embeddings.cls_token, encoder.embeddings.cls_token)


def test_from_backbone_takes_vision_tower_of_full_clip(tmp_path):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(2)
    text = dict(hidden_size=32, num_attention_heads=4, intermediate_size=37, num_hidden_layers=1)
    vision = {k: v for k, v in TINY_BACKBONES["clip_vision_model"].items() if k != "model_type"}
    clip = CLIPModel(CLIPConfig(vision_config=vision, text_config=text))
    clip.save_pretrained(tmp_path / "clip")
    model = DeepfakeDetectorForImageClassification.from_backbone(str(tmp_path / "clip"))
    assert model.config.backbone_config.model_type == "clip_vision_model"
    assert torch.equal(model.backbone.state_dict()["post_layernorm.weight"],
                       clip.state_dict()["vision_model.post_layernorm.weight"])
    clip_patch = clip.state_dict()["vision_model.embeddings.patch_embedding.weight"]
    assert torch.equal(model.backbone.state_dict()["embeddings.patch_embedding.weight"], clip_patch)


def test_from_backbone_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(OSError) as error:
        DeepfakeDetectorForImageClassification.from_backbone(str(tmp_path / "nowhere"), local_files_only=True)
    assert "nowhere" in str(error.value)


def test_return_dict_false_gives_a_tuple_by_argument_and_by_config():
    model = tiny_detector("vit")
    labels = torch.tensor([0, 1, 0])
    with torch.no_grad():
        as_dict = model(pixels(), labels=labels)
        as_tuple = model(pixels(), labels=labels, return_dict=False)
        encoded = model.get_image_features(pixels(), return_dict=False)
        model.config.return_dict = False
        from_config = model(pixels())
    assert isinstance(as_tuple, tuple) and not isinstance(as_tuple, ImageClassifierOutput)
    assert len(as_tuple) == 3  # loss, logits, image_features (None fields are left out)
    assert torch.equal(as_tuple[0], as_dict.loss) and torch.equal(as_tuple[1], as_dict.logits)
    assert isinstance(from_config, tuple) and torch.equal(from_config[0], as_dict.logits)
    assert isinstance(encoded, tuple) and torch.equal(encoded[1], as_dict.image_features)


@pytest.mark.parametrize("family", ["vit", "clip_vision_model"])
def test_output_hidden_states_selects_layers_by_index(family):
    model = tiny_detector(family)
    with torch.no_grad():
        everything = model(pixels(), output_hidden_states=True).hidden_states
        selected = model(pixels(), output_hidden_states=[0, -1]).hidden_states
    assert len(everything) == 3 and len(selected) == 3  # embeddings + 2 layers
    assert selected[1] is None
    assert torch.equal(selected[0], everything[0]) and torch.equal(selected[2], everything[2])


def test_get_image_features_returns_encoder_output_and_pooled_features():
    model = tiny_detector("clip_vision_model", normalize_features=True)
    model.set_attn_implementation("eager")  # SDPA records no attention maps
    with torch.no_grad():
        encoded = model.get_image_features(pixels(), output_attentions=True)
        direct = model.backbone(pixel_values=pixels())
    assert torch.equal(encoded.last_hidden_state, direct.last_hidden_state)
    assert torch.allclose(encoded.pooler_output, torch.nn.functional.normalize(direct.pooler_output, dim=-1))
    assert len(encoded.attentions) == 2


def test_from_pretrained_on_a_bare_encoder_checkpoint(tmp_path):
    from transformers import AutoModel, ViTConfig

    torch.manual_seed(3)
    encoder_config = ViTConfig(**{k: v for k, v in TINY_BACKBONES["vit"].items() if k != "model_type"})
    encoder = AutoModel.from_config(encoder_config, add_pooling_layer=False)
    encoder.save_pretrained(tmp_path / "encoder")
    model, info = DeepfakeDetectorForImageClassification.from_pretrained(tmp_path / "encoder",
                                                                         output_loading_info=True)
    assert model.config.backbone_config.model_type == "vit"
    assert model.config.id2label == {0: "real", 1: "fake"}
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    loaded = model.backbone.state_dict()
    assert loaded.keys() == encoder.state_dict().keys()
    assert all(torch.equal(loaded[name], tensor) for name, tensor in encoder.state_dict().items())


def _tiny_clip(folder, seed=2):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    text = dict(hidden_size=32, num_attention_heads=4, intermediate_size=37, num_hidden_layers=1)
    vision = {k: v for k, v in TINY_BACKBONES["clip_vision_model"].items() if k != "model_type"}
    clip = CLIPModel(CLIPConfig(vision_config=vision, text_config=text))
    clip.save_pretrained(folder)
    return clip


def test_from_backbone_on_full_clip_prints_no_load_report(tmp_path, capfd):
    # The README's "Build one" example, on a tiny local CLIP: the text tower and projections are unused by
    # design, so transformers' LOAD REPORT table must not reach the console.
    _tiny_clip(tmp_path / "clip")
    capfd.readouterr()
    model = DeepfakeDetectorForImageClassification.from_backbone(str(tmp_path / "clip"), normalize_features=True)
    printed = capfd.readouterr()
    assert model.config.pooling == "pooler" and model.config.normalize_features
    for text in (printed.out, printed.err):
        assert "LOAD REPORT" not in text and "UNEXPECTED" not in text and "not sharded" not in text, text


def test_from_backbone_names_weights_unused_for_no_known_reason(tmp_path, monkeypatch):
    from safetensors.torch import load_file, save_file
    from transformers import AutoModel, ViTConfig

    from deepfake_hf import modeling_deepfake

    encoder = AutoModel.from_config(ViTConfig(**{k: v for k, v in TINY_BACKBONES["vit"].items() if k != "model_type"}))
    encoder.save_pretrained(tmp_path / "encoder")
    weights = load_file(tmp_path / "encoder" / "model.safetensors")
    weights["adapter.weight"] = torch.zeros(2, 2)  # a weight no ViT has
    save_file(weights, tmp_path / "encoder" / "model.safetensors", metadata={"format": "pt"})
    warnings = []
    monkeypatch.setattr(modeling_deepfake.logger, "warning", warnings.append)
    DeepfakeDetectorForImageClassification.from_backbone(str(tmp_path / "encoder"))
    # ViT's pooler is left out on purpose (CLS pooling); only the unknown weight is reported, in one line.
    assert len(warnings) == 1 and "adapter.weight" in warnings[0] and "pooler" not in warnings[0]
    assert "\n" not in warnings[0]
