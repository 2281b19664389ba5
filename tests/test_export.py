import json

import pytest
import torch

from deepfake_hf import export_native
from deepfake_hf.cli import main
from deepfake_hf.publish.export import NativeExportError

from .conftest import pipeline_scores, tiny_detector, write_image


def _nudge_head(model):
    with torch.no_grad():
        model.classifier.weight.mul_(25.0)
        model.classifier.bias.copy_(torch.tensor([0.4, -0.3]))
    return model


@pytest.mark.parametrize("family, pooling, stock", [("vit", "cls", "ViTForImageClassification"),
                                                    ("clip_vision_model", "mean", "CLIPForImageClassification")])
@pytest.mark.slow  # fresh process
def test_native_export_matches_custom_model_in_fresh_process(family, pooling, stock, tmp_path):
    model = _nudge_head(tiny_detector(family, pooling=pooling, threshold=0.35, calibration_temperature=1.3))
    model.save_pretrained(tmp_path / "model")
    export_native(tmp_path / "model", tmp_path / "native")
    config = json.loads((tmp_path / "native" / "config.json").read_text())
    assert config["architectures"] == [stock]
    assert "auto_map" not in config
    # no remote code: the only Python file is the Inference Endpoints handler, which transformers never runs
    assert [path.name for path in (tmp_path / "native").glob("*.py")] == ["handler.py"]
    image = write_image(tmp_path / "face.png", size=(64, 52), seed=3)
    custom = pipeline_scores(tmp_path / "model", image, trust_remote_code=True)
    native = pipeline_scores(tmp_path / "native", image, trust_remote_code=False)
    assert set(native) == {"real", "fake"}
    assert max(abs(custom[k] - native[k]) for k in custom) <= 1e-5
    assert abs(custom["fake"] - 0.5) > 1e-3  # the comparison is not between two constant outputs


@pytest.mark.parametrize("family, kwargs, reason", [
    ("vit", dict(normalize_features=True), "normalisation"),
    ("vit", dict(pooling="mean"), "pooling='mean'"),
    ("clip_vision_model", dict(pooling="pooler"), "pooling='pooler'"),
    ("dinov2", dict(), "'dinov2'"),
    ("resnet", dict(), "'resnet'"),
])
def test_native_export_refuses_inexact_models(family, kwargs, reason, tmp_path):
    with pytest.raises(NativeExportError) as error:
        export_native(tiny_detector(family, **kwargs), tmp_path / "out")
    assert reason in str(error.value)
    assert not (tmp_path / "out").exists()


def test_cli_export_refusal_is_one_line(tmp_path, capsys):
    tiny_detector("vit", normalize_features=True).save_pretrained(tmp_path / "model")
    capsys.readouterr()
    code = main(["export", str(tmp_path / "model"), "--native", "--out", str(tmp_path / "native")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1, err
    assert err[0].startswith("deepfake-hf export: error: cannot export natively")


def test_cli_export_does_not_overwrite_without_flag(tmp_path, capsys):
    tiny_detector("vit").save_pretrained(tmp_path / "model")
    (tmp_path / "native").mkdir()
    (tmp_path / "native" / "mine.txt").write_text("keep me")
    args = ["export", str(tmp_path / "model"), "--native", "--out", str(tmp_path / "native")]
    assert main(args) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "native" / "mine.txt").read_text() == "keep me"
    assert main(args + ["--overwrite"]) == 0
    assert (tmp_path / "native" / "config.json").is_file()


def _tiny_clip_checkpoint(folder):
    from transformers import CLIPConfig, CLIPModel

    from .conftest import TINY_BACKBONES

    torch.manual_seed(4)
    text = dict(hidden_size=32, num_attention_heads=4, intermediate_size=37, num_hidden_layers=1)
    vision = {k: v for k, v in TINY_BACKBONES["clip_vision_model"].items() if k != "model_type"}
    CLIPModel(CLIPConfig(vision_config=vision, text_config=text)).save_pretrained(folder)
    return str(folder)


def test_readme_clip_example_refusal_says_why_and_how(tmp_path):
    from deepfake_hf import DeepfakeDetectorForImageClassification

    # README "Build one": from_backbone(CLIP, normalize_features=True), pooling defaults to CLIP's pooler.
    model = DeepfakeDetectorForImageClassification.from_backbone(_tiny_clip_checkpoint(tmp_path / "clip"),
                                                                 normalize_features=True)
    with pytest.raises(NativeExportError) as error:
        export_native(model, tmp_path / "native")
    message = str(error.value)
    assert "pooling='pooler' classifies the CLS token after post_layernorm" in message
    assert "CLIPForImageClassification classifies the mean of the patch tokens" in message
    assert "normalize_features=True" in message
    assert message.endswith("build with pooling='mean' and normalize_features=False to export natively")
    assert "\n" not in message


def test_clip_built_for_export_from_a_checkpoint_exports_exactly(tmp_path):
    from transformers import CLIPForImageClassification

    from deepfake_hf import DeepfakeDetectorForImageClassification

    model = DeepfakeDetectorForImageClassification.from_backbone(_tiny_clip_checkpoint(tmp_path / "clip"),
                                                                 pooling="mean", threshold=0.4).eval()
    _nudge_head(model)
    export_native(model, tmp_path / "native")
    stock = CLIPForImageClassification.from_pretrained(tmp_path / "native").eval()
    pixel_values = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = model(pixel_values).logits.softmax(-1)
        exported = stock(pixel_values).logits.softmax(-1)
    assert torch.allclose(expected, exported, atol=1e-5)
    assert (expected[:, 1] - 0.5).abs().max() > 1e-3
