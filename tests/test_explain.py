"""Heatmaps: attention rollout (eager attention) for ViT-family detectors, Grad-CAM for every backbone."""

import numpy as np
import pytest
import torch
from PIL import Image

from deepfake_hf.scoring.explain import ExplainError, attention_rollout, explain, grad_cam

from .conftest import tiny_detector, write_image


def pixels(seed=0, size=32):
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_rollout_matches_a_direct_computation_and_needs_eager():
    model = tiny_detector("vit", seed=2)
    assert model.backbone.config._attn_implementation == "sdpa"
    maps = attention_rollout(model, pixels())
    assert model.backbone.config._attn_implementation == "eager"  # switched, else no attention maps
    assert maps.shape == (2, 4, 4) and maps.min() == 0.0 and maps.max() == pytest.approx(1.0)
    # direct computation from the eager attentions: (mean over heads + I), row-normalised, multiplied
    with torch.no_grad():
        attentions = model(pixel_values=pixels(), output_attentions=True).attentions
    rollout = np.eye(17)
    for layer in attentions:
        a = layer[0].double().mean(0).numpy() + np.eye(17)
        rollout = (a / a.sum(-1, keepdims=True)) @ rollout
    cls = rollout[0, 1:].reshape(4, 4)
    expected = (cls - cls.min()) / (cls.max() - cls.min())
    assert maps[0] == pytest.approx(expected.astype(np.float32), abs=1e-5)
    with pytest.raises(ExplainError, match="gradcam"):
        attention_rollout(tiny_detector("resnet"), pixels())


@pytest.mark.parametrize("family", ["vit", "clip_vision_model", "convnext", "resnet"])
def test_grad_cam_every_backbone(family):
    model = tiny_detector(family, seed=1)
    maps = grad_cam(model, pixels(1))
    side = 4  # 32 px / patch 8, or the last CNN stage (stride 8)
    assert maps.shape == (2, side, side) and np.isfinite(maps).all()
    assert (maps >= 0).all() and maps.max() <= 1.0 and maps.max() > 0
    assert not np.allclose(maps[0], maps[1])  # depends on the image


def test_grad_cam_follows_the_evidence():
    """Zeroing the head's weights on every feature makes the margin constant: no gradient, empty map."""
    model = tiny_detector("resnet", seed=0)
    with torch.no_grad():
        model.classifier.weight.zero_()
    assert grad_cam(model, pixels()).max() == 0.0


def test_explain_cli_writes_a_png(tmp_path, capsys):
    from deepfake_hf.cli import main

    model_dir = tmp_path / "model"
    tiny_detector("vit", seed=0).save_pretrained(model_dir)
    image = write_image(tmp_path / "face.png", size=(48, 40))
    out = tmp_path / "heat.png"
    assert main(["explain", str(model_dir), str(image), "--out", str(out)]) == 0
    assert "rollout" in capsys.readouterr().out
    with Image.open(out) as heat:
        assert heat.format == "PNG" and min(heat.size) >= 256
        colours = np.asarray(heat.convert("RGB"), dtype=float)
    assert colours.std() > 5
    assert main(["explain", str(model_dir), str(image), "--out", str(out)]) == 1  # no silent overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(["explain", str(model_dir), str(image), "--out", str(out), "--method", "gradcam", "--overwrite"]) == 0
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    assert main(["explain", str(model_dir), str(bad), "--out", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert "bad.png" in err and "Traceback" not in err


def test_explain_result_for_the_app():
    model = tiny_detector("convnext", seed=0)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8))
    result = explain(model, image)
    assert result["method"] == "gradcam" and result["label"] in ("real", "fake")
    assert result["overlay"].size[0] >= 256 and 0.0 <= result["fake_probability"] <= 1.0
    with torch.no_grad():
        inputs = model.matching_image_processor()(images=[image], return_tensors="pt")
        expected = model(**inputs).logits.softmax(-1)[0, 1].item()
    assert result["fake_probability"] == pytest.approx(expected, abs=1e-6)
