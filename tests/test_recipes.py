"""Recipes: built-ins load and dry-run offline, validation errors name the key and file, --set overrides."""

import json

import pytest
import yaml

from deepfake_hf.cli import main
from deepfake_hf.training.recipes import RecipeError, builtin_recipes, load_recipe
from deepfake_hf.training.train import dry_run

PUBLISHED_METHODS = ["vit-in21k", "clip-b32-cosine", "clip-l14-ln", "clip-l14-ln-gend", "cnn-dfdc", "frozen-probe"]


def write_recipe(tmp_path, data, name="my-recipe.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


TINY = {"name": "tiny", "model": {"architecture": {"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 2,
                                                   "num_attention_heads": 4, "intermediate_size": 37,
                                                   "image_size": 32, "patch_size": 8}}}


def test_every_published_method_and_the_quickstart_has_a_builtin_recipe():
    assert set(PUBLISHED_METHODS + ["quickstart"]) <= set(builtin_recipes())


@pytest.mark.parametrize("name", PUBLISHED_METHODS + ["quickstart"])
def test_builtin_recipe_dry_runs_offline(name):
    recipe = load_recipe(name)
    assert recipe.name == name
    assert name == "quickstart" or recipe.reference  # each published recipe cites its source
    result = dry_run(recipe, random_init=True)
    assert result["tuning"] == recipe.tuning.method
    assert 0 < result["trainable_params"] <= result["total_params"]
    if recipe.tuning.method == "full":
        assert result["trainable_fraction"] == 1.0
    if recipe.tuning.method == "linear_probe":
        hidden = recipe.model.architecture["hidden_size"]
        assert result["trainable_params"] == hidden * 2 + 2  # the head only


def test_clip_l14_ln_tunes_about_three_hundredths_of_a_percent():
    result = dry_run(load_recipe("clip-l14-ln"), random_init=True)
    # ViT-L/14 vision tower: ~303M parameters; 50 LayerNorms (pre, 2 per layer x 24, post) x 2 x 1024
    # + head 1024 x 2 + 2
    assert 300e6 < result["total_params"] < 310e6
    assert result["trainable_params"] == 50 * 2 * 1024 + 1024 * 2 + 2
    assert 0.0002 < result["trainable_fraction"] < 0.0005  # published: ~0.03%


def test_cli_dry_run_prints_json(capsys):
    assert main(["train", "clip-l14-ln", "--dry-run", "--random-init", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"trainable_params", "total_params", "trainable_fraction", "tuning"} <= set(result)
    assert result["tuning"] == "ln_tuning"


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = write_recipe(tmp_path, {**TINY, "tuning": {"method": "full", "rank": 4}})
    with pytest.raises(RecipeError, match=r"my-recipe\.yaml: tuning\.rank: unknown key"):
        load_recipe(path)
    path = write_recipe(tmp_path, {**TINY, "trainng": {}})
    with pytest.raises(RecipeError, match=r"my-recipe\.yaml: trainng: unknown key"):
        load_recipe(path)


@pytest.mark.parametrize("section, value, key", [
    ({"data": {"val_fraction": "a lot"}}, None, r"data\.val_fraction: expected float"),
    ({"data": {"train": "folder"}}, None, r"data\.train: expected a list"),
    ({"tuning": {"lora": {"r": 2.5}}}, None, r"tuning\.lora\.r: expected int"),
    ({"training": {"num_train_epochs": "ten"}}, None, r"training\.num_train_epochs: expected float"),
    ({"training": {"warmup_ratio": 0.1}}, None, r"training\.warmup_ratio: not a transformers\.TrainingArguments"),
    ({"tuning": {"method": "adapter"}}, None, r"tuning\.method: 'adapter' is not one of"),
    ({"augmentation": [{"mixup": {}}]}, None, r"augmentation\[0\]\.mixup: unknown augmentation"),
    ({"augmentation": [{"blur": {"radius": 3}}]}, None, r"augmentation: blur: .*radius"),
])
def test_wrong_types_and_values_name_the_key_and_the_file(tmp_path, section, value, key):
    path = write_recipe(tmp_path, {**TINY, **section})
    with pytest.raises(RecipeError, match=rf"my-recipe\.yaml: {key}"):
        load_recipe(path)


def test_detector_options_are_checked_against_the_config(tmp_path):
    path = write_recipe(tmp_path, {**TINY, "model": {**TINY["model"], "detector": {"poolin": "cls"}}})
    with pytest.raises(RecipeError, match=r"model\.detector\.poolin: unknown detector option"):
        load_recipe(path)
    path = write_recipe(tmp_path, {**TINY, "model": {**TINY["model"], "detector": {"label_smoothing": 1.5}}})
    with pytest.raises(RecipeError, match=r"my-recipe\.yaml: model: label_smoothing"):
        load_recipe(path)


def test_set_overrides_any_field_with_yaml_types(tmp_path):
    path = write_recipe(tmp_path, TINY)
    recipe = load_recipe(path, ["training.learning_rate=1e-4", "data.train=[a, b]", "tuning.lora.r=16",
                                "model.detector.normalize_features=true", "augmentation=[{hflip: {p: 0.25}}]"])
    assert recipe.training["learning_rate"] == pytest.approx(1e-4)
    assert recipe.data.train == ["a", "b"]
    assert recipe.tuning.lora.r == 16
    assert recipe.model.detector["normalize_features"] is True
    assert recipe.augmentation == [{"hflip": {"p": 0.25}}]
    with pytest.raises(RecipeError, match=r"data\.trian: unknown key"):
        load_recipe(path, ["data.trian=[x]"])
    with pytest.raises(RecipeError, match="expected KEY=VALUE"):
        load_recipe(path, ["data.train"])


def test_resolved_recipe_round_trips_through_yaml(tmp_path):
    recipe = load_recipe("clip-l14-ln", ["training.learning_rate=1e-5"])
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe.to_yaml())
    again = load_recipe(path)
    assert again.to_dict() == recipe.to_dict()


def test_unknown_recipe_name_lists_the_builtins(capsys):
    assert main(["train", "no-such-recipe", "--dry-run"]) == 1
    error = capsys.readouterr().err
    assert "no-such-recipe: no such recipe" in error and "clip-l14-ln" in error
    assert len(error.strip().splitlines()) == 1


def test_ln_tuning_on_a_batchnorm_cnn_is_a_clear_error(capsys):
    assert main(["train", "cnn-dfdc", "--set", "tuning.method=ln_tuning", "--dry-run", "--random-init"]) == 1
    assert "not applicable to resnet" in capsys.readouterr().err
