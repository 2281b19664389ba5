"""deepfake_hf.convert's format registry: a new source format is one new module, and everything users see lists it
(`deepfake-hf convert --list`, the `--from` choices, detect_format, convert itself and the model card)."""

import json
import sys

import pytest

from deepfake_hf.convert import ConvertError, convert, detect_format, format_names, formats, list_formats

# A whole format: one module defining one SourceFormat subclass, nothing else edited.
TOY_FORMAT = '''
from deepfake_hf.convert.base import Converted, Match, SourceFormat, SourceInfo

TOY = SourceInfo(title="Toy detector", paper="none (a test format)", code="https://example.org/toy",
                 licence="MIT", backbone="a tiny ViT", input="whole images")


class Toy(SourceFormat):
    name = "toyformat"
    description = "toy detector folder (config.json model_type toy) on a tiny ViT"
    face_preprocessing = "deepfakebench"
    order = 15

    def recognise_config(self, path, config):
        return Match() if config.get("model_type") == "toy" else None

    def load(self, path, variant=None, backbone=None, fake_label=None):
        import torch
        from transformers import ViTConfig, ViTImageProcessor, ViTModel

        from tests.conftest import TINY_BACKBONES

        settings = {key: value for key, value in TINY_BACKBONES["vit"].items() if key != "model_type"}
        config = ViTConfig(**settings)
        torch.manual_seed(0)
        encoder = ViTModel(config, add_pooling_layer=False)
        weight = torch.randn(2, config.hidden_size)
        return Converted(config, "cls", False, encoder.state_dict(), weight, torch.zeros(2),
                         ViTImageProcessor(size={"height": config.image_size, "width": config.image_size}),
                         "toyformat", "toy detector", TOY)
'''


@pytest.fixture
def toy_format(tmp_path, monkeypatch):
    """The toy format's module in a folder on the convert package's search path, as a new file of the package is;
    the registry is rediscovered and restored afterwards."""
    import deepfake_hf.convert as package
    from deepfake_hf.convert import base

    folder = tmp_path / "more_formats"
    folder.mkdir()
    (folder / "toy_format.py").write_text(TOY_FORMAT)
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    monkeypatch.setattr(base, "_discovered", False)
    yield "toyformat"
    sys.modules.pop("deepfake_hf.convert.toy_format", None)


def test_every_registered_format_is_listed_and_a_from_choice(capsys):
    from deepfake_hf.cli import main

    names = format_names()
    assert names[:4] == ["gend", "deepfakebench", "univfd", "classifier"]  # order: specific before general
    assert main(["convert", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == names
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    assert "{" + ",".join(["auto", *names]) + "}" in capsys.readouterr().out
    for source_format in formats():
        assert source_format.description and "\n" not in source_format.description


def test_a_new_format_is_one_new_module(toy_format, tmp_path, capsys):
    from deepfake_hf.cli import build_parser, main

    assert toy_format in format_names()
    assert main(["convert", "--list"]) == 0
    assert "toyformat      toy detector folder (config.json model_type toy)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    assert "toyformat" in capsys.readouterr().out
    args = build_parser().parse_args(["convert", "src", "--out", "out", "--from", toy_format])
    assert args.source_format == toy_format
    source = tmp_path / "toy_source"
    source.mkdir()
    (source / "config.json").write_text(json.dumps({"model_type": "toy"}))
    assert detect_format(source) == (toy_format, None)
    # convert reads the registry too: the format's load, its face preprocessing and its card information are used
    result = convert(source, tmp_path / "out")
    assert result["format"] == toy_format and result["description"] == "toy detector"
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["face_preprocessing"] == "deepfakebench"
    card = (tmp_path / "out" / "README.md").read_text()
    assert "# Toy detector, converted for transformers" in card
    assert "| face preprocessing recorded | deepfakebench |" in card


def test_the_toy_format_is_gone_when_its_module_is(capsys):
    assert "toyformat" not in format_names() and "toyformat" not in list_formats()
    with pytest.raises(ConvertError, match="--from toyformat: not one of auto, gend, deepfakebench"):
        convert("anything", "out", format="toyformat")


def test_detector_needs_a_format_with_variants(tmp_path):
    with pytest.raises(ConvertError, match="--detector applies to --from deepfakebench only"):
        convert(tmp_path, tmp_path / "out", format="univfd", detector="clip")
