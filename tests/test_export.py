import json

import pytest
import torch

from deepfake_hf import export_native
from deepfake_hf.cli import main
from deepfake_hf.export import NativeExportError

from .conftest import pipeline_scores, tiny_detector, write_image


def _nudge_head(model):
    with torch.no_grad():
        model.classifier.weight.mul_(25.0)
        model.classifier.bias.copy_(torch.tensor([0.4, -0.3]))
    return model


@pytest.mark.parametrize("family, pooling, stock", [("vit", "cls", "ViTForImageClassification"),
                                                    ("clip_vision_model", "mean", "CLIPForImageClassification")])
def test_native_export_matches_custom_model_in_fresh_process(family, pooling, stock, tmp_path):
    model = _nudge_head(tiny_detector(family, pooling=pooling, threshold=0.35, calibration_temperature=1.3))
    model.save_pretrained(tmp_path / "model")
    export_native(tmp_path / "model", tmp_path / "native")
    config = json.loads((tmp_path / "native" / "config.json").read_text())
    assert config["architectures"] == [stock]
    assert "auto_map" not in config
    assert not list((tmp_path / "native").glob("*.py"))
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
