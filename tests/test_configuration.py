import pytest
from transformers import CLIPConfig, CLIPVisionConfig

from deepfake_hf import DeepfakeDetectorConfig

from .conftest import TINY_BACKBONES, TRANSFORMER


@pytest.mark.parametrize("family, pooling", [("vit", "cls"), ("clip_vision_model", "pooler"), ("dinov2", "cls"),
                                             ("convnext", "pooler"), ("resnet", "pooler")])
def test_default_pooling_per_family(family, pooling):
    config = DeepfakeDetectorConfig(backbone_config=dict(TINY_BACKBONES[family]))
    assert config.backbone_config.model_type == family
    assert config.pooling == pooling
    assert config.id2label == {0: "real", 1: "fake"}
    assert config.label2id == {"real": 0, "fake": 1}


def test_full_clip_config_contributes_its_vision_tower():
    clip = CLIPConfig(vision_config=dict(TRANSFORMER), text_config=dict(hidden_size=32, num_attention_heads=4,
                                                                        intermediate_size=37, num_hidden_layers=1))
    config = DeepfakeDetectorConfig(backbone_config=clip)
    assert isinstance(config.backbone_config, CLIPVisionConfig)
    assert config.hidden_size == 32
    from_dict = DeepfakeDetectorConfig(backbone_config={"model_type": "clip", "vision_config": dict(TRANSFORMER)})
    assert from_dict.backbone_config.model_type == "clip_vision_model"


def test_hidden_size_of_cnn_is_last_stage_width():
    assert DeepfakeDetectorConfig(backbone_config=dict(TINY_BACKBONES["convnext"])).hidden_size == 32
    assert DeepfakeDetectorConfig(backbone_config=dict(TINY_BACKBONES["resnet"])).hidden_size == 32


def test_round_trip_through_json(tmp_path):
    config = DeepfakeDetectorConfig(backbone_config=dict(TINY_BACKBONES["clip_vision_model"]), pooling="mean",
                                    normalize_features=True, threshold=0.3, calibration_temperature=1.5,
                                    alignment_weight=0.5, slerp_augmentation=True, video_aggregation="confident")
    config.save_pretrained(tmp_path)
    loaded = DeepfakeDetectorConfig.from_pretrained(tmp_path)
    for field in ("pooling", "normalize_features", "threshold", "calibration_temperature", "alignment_weight",
                  "slerp_augmentation", "video_aggregation", "image_size"):
        assert getattr(loaded, field) == getattr(config, field), field
    assert loaded.backbone_config.to_dict() == config.backbone_config.to_dict()


@pytest.mark.parametrize("kwargs, field", [
    (dict(pooling="cls", backbone_config=dict(TINY_BACKBONES["resnet"])), "pooling"),
    (dict(pooling="max"), "pooling"),
    (dict(threshold=1.5), "threshold"),
    (dict(threshold=0.0), "threshold"),
    (dict(calibration_temperature=0.0), "calibration_temperature"),
    (dict(label_smoothing=1.0), "label_smoothing"),
    (dict(alignment_weight=-1.0), "alignment_weight"),
    (dict(video_aggregation="median"), "video_aggregation"),
    (dict(slerp_augmentation=True, normalize_features=False), "slerp_augmentation"),
    (dict(backbone_config={"hidden_size": 32}), "backbone_config"),
    (dict(backbone_config={"model_type": "no_such_model"}), "backbone_config"),
    (dict(backbone_config=dict(TRANSFORMER, model_type="clip_vision_model", num_attention_heads=5)), "backbone_config"),
    (dict(backbone_config=42), "backbone_config"),
    (dict(id2label={0: "a", 1: "b", 2: "c"}), "id2label"),
])
def test_invalid_config_names_the_field(kwargs, field):
    with pytest.raises((ValueError, TypeError)) as error:
        DeepfakeDetectorConfig(**kwargs)
    message = str(error.value)
    assert message.startswith(field), message
    assert "\n" not in message


@pytest.mark.parametrize("family", list(TINY_BACKBONES))
def test_backbone_config_is_saved_as_a_diff_and_round_trips(family, tmp_path):
    import json

    config = DeepfakeDetectorConfig(backbone_config=dict(TINY_BACKBONES[family]))
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["backbone_config"]
    # Only what was chosen: the values given (all differ from the family's defaults) and the model type.
    assert saved == TINY_BACKBONES[family]
    loaded = DeepfakeDetectorConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()


@pytest.mark.parametrize("pooler_output_size", [64, 768])
def test_backbone_diff_keeps_values_a_rebuild_would_change(pooler_output_size, tmp_path):
    import json

    # ViT derives pooler_output_size from hidden_size; 768 equals the class default, yet a rebuild from
    # hidden_size=32 alone would give 32, so the diff must keep it.
    backbone = dict(TINY_BACKBONES["vit"], pooler_output_size=pooler_output_size)
    config = DeepfakeDetectorConfig(backbone_config=backbone)
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["backbone_config"]
    assert saved["pooler_output_size"] == pooler_output_size
    loaded = DeepfakeDetectorConfig.from_pretrained(tmp_path)
    assert loaded.backbone_config.pooler_output_size == pooler_output_size
    assert loaded.to_dict() == config.to_dict()


def test_bare_encoder_config_becomes_the_backbone(tmp_path):
    CLIPVisionConfig(**TRANSFORMER).save_pretrained(tmp_path)
    config = DeepfakeDetectorConfig.from_pretrained(tmp_path)
    assert config.model_type == "deepfake_detector"
    assert config.backbone_config.model_type == "clip_vision_model"
    assert config.hidden_size == 32 and config.pooling == "pooler"
