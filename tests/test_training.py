"""Training: LN-tuning names per family, PEFT save -> merge -> fresh-process reload, selection, resume, CLI."""

import json

import numpy as np
import pytest
import torch

from deepfake_hf.cli import main
from deepfake_hf.training.recipes import load_recipe
from deepfake_hf.training.train import (
    TrainingError,
    apply_tuning,
    build_augmentation,
    build_model,
    layer_norm_names,
    train,
    training_arguments,
)
from tests.conftest import TINY_BACKBONES, pipeline_scores, tiny_detector

# The LayerNorm module names of each family in the installed transformers (checked, not assumed).
FAMILY_LAYER_NORMS = {
    "clip_vision_model": {"pre_layrnorm", "layer_norm1", "layer_norm2", "post_layernorm"},
    "vit": {"layernorm_before", "layernorm_after", "layernorm"},
    "dinov2": {"norm1", "norm2", "layernorm"},
    "convnext": {"layernorm", "0"},  # "0": the LayerNorm opening each downsampling block
}


def tiny_recipe(method="ln_tuning", family="vit", **training):
    return load_recipe({
        "name": "tiny",
        "model": {"architecture": dict(TINY_BACKBONES[family])},
        "tuning": {"method": method},
        "augmentation": [{"hflip": {"p": 0.5}}, {"jpeg": {"quality": [60, 100], "p": 0.5}}],
        "training": {"num_train_epochs": 2, "per_device_train_batch_size": 16, "learning_rate": 5e-2,
                     "logging_steps": 1, "seed": 0, **training},
    })


def toy_split(n, seed):
    """Noise images; the fakes carry a brighter square (a learnable blending-like artefact)."""
    from datasets import Dataset
    from datasets import Image as ImageFeature
    from PIL import Image

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for index in range(n):
        pixels = rng.integers(40, 200, size=(32, 32, 3))
        label = index % 2
        if label:
            pixels[8:24, 8:24] += 50
        images.append(Image.fromarray(pixels.clip(0, 255).astype(np.uint8)))
        labels.append(label)
    return Dataset.from_dict({"image": images, "label": labels}).cast_column("image", ImageFeature())


@pytest.fixture(scope="module")
def toy_data():
    from datasets import DatasetDict

    return DatasetDict(train=toy_split(48, 0), validation=toy_split(16, 1))


@pytest.fixture(scope="module")
def ln_run(tmp_path_factory, toy_data):
    out = tmp_path_factory.mktemp("ln-run")
    return out, train(tiny_recipe("ln_tuning"), out, datasets=toy_data)


@pytest.mark.parametrize("family", sorted(FAMILY_LAYER_NORMS))
def test_layer_norm_names_per_family(family):
    model = tiny_detector(family)
    names = layer_norm_names(model)
    assert {name.rsplit(".", 1)[-1] for name in names} == FAMILY_LAYER_NORMS[family]
    expected = sum(p.numel() for name, module in model.named_modules() if name in names or name == "classifier"
                   for p in module.parameters())
    tuned = apply_tuning(model, tiny_recipe("ln_tuning").tuning)
    trainable = {name for name, p in tuned.named_parameters() if p.requires_grad}
    assert trainable and all("ln_tuning_layers" in name for name in trainable)
    assert sum(p.numel() for p in tuned.parameters() if p.requires_grad) == expected


def test_ln_tuning_does_not_apply_to_batchnorm_cnns():
    with pytest.raises(TrainingError, match="not applicable to resnet"):
        apply_tuning(tiny_detector("resnet"), tiny_recipe("ln_tuning").tuning)


def test_deepfakebench_faces_in_the_recipe_are_recorded_in_the_model():
    from deepfake_hf.training.train import detector_config

    recipe = load_recipe({**tiny_recipe().to_dict(), "data": {"faces": "deepfakebench"}})
    assert detector_config(recipe, random_init=True).face_preprocessing == "deepfakebench"
    assert detector_config(tiny_recipe(), random_init=True).face_preprocessing == "none"  # whole images, recorded


def test_linear_probe_trains_only_the_head():
    model = apply_tuning(tiny_detector("vit"), tiny_recipe("linear_probe").tuning)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"classifier.weight", "classifier.bias"}


def test_training_arguments_guard_trainer_5_traps():
    recipe = load_recipe({**tiny_recipe().to_dict(), "training": {"warmup_steps": 0.1, "activation_checkpointing": True,
                                                                   "lr_scheduler_type": "cosine_with_min_lr",
                                                                   "lr_scheduler_kwargs": {"min_lr": 1e-5}}})
    args = training_arguments(recipe, "unused")
    assert args.remove_unused_columns is False  # set_transform needs the raw image column
    assert args.warmup_steps == pytest.approx(0.1)  # a float < 1 is a warmup ratio in Trainer 5.x
    assert args.activation_checkpointing_kwargs == {"use_reentrant": False}
    assert args.metric_for_best_model.removeprefix("eval_") == "auroc"
    assert args.greater_is_better and args.load_best_model_at_end


def test_checkpoint_selection_direction_comes_from_the_metric_registry(monkeypatch):
    from deepfake_hf.evaluation import metric_defs
    from deepfake_hf.evaluation.metric_defs import MetricDef, registered_metrics
    from deepfake_hf.training.recipes import RecipeError

    def selection(metric):
        recipe = load_recipe({**tiny_recipe().to_dict(), "evaluation": {"metric": metric}})
        return training_arguments(recipe, "unused", check_only=True)["greater_is_better"]

    for name, metric in registered_metrics().items():
        if metric.higher_is_better is None:  # a threshold, not a score: it cannot rank checkpoints
            with pytest.raises(RecipeError, match=f"evaluation.metric: '{name}' is not a metric that ranks"):
                selection(name)
        else:
            assert selection(name) is metric.higher_is_better, name
    assert selection("auroc") is True and selection("eer") is False and selection("eval_brier") is False
    assert selection("loss") is False  # the Trainer's own validation loss
    # a metric added to the registry (one new module in metric_defs/) is ranked by its own definition
    miss_rate = MetricDef(name="miss_rate", label="Miss rate", compute=lambda inputs: 0.0, order=99,
                          higher_is_better=False)
    monkeypatch.setattr(metric_defs, "registered_metrics", lambda: {**registered_metrics(), "miss_rate": miss_rate})
    assert selection("miss_rate") is False
    with pytest.raises(RecipeError) as caught:
        selection("aurco")
    assert str(caught.value).startswith("<recipe>: evaluation.metric: 'aurco' is not a metric that ranks checkpoints "
                                        "(one of loss, ") and "miss_rate" in str(caught.value)


def test_augmentation_keeps_uint8_images_of_the_right_size():
    transform = build_augmentation([{"hflip": {}}, {"affine": {"degrees": 10, "translate": [0.1, 0.1]}},
                                    {"blur": {"kernel_size": [3, 7], "p": 1.0}}, {"color_jitter": {"brightness": 0.1}},
                                    {"jpeg": {"quality": [40, 100]}}, {"rotation": {"degrees": 90}},
                                    {"sharpness": {"p": 1.0}}, {"random_resized_crop": {"scale": [0.5, 1.0]}}],
                                   image_size=24)
    image = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    out = transform(image)
    assert out.dtype == torch.uint8 and out.shape == (3, 24, 24)
    assert not torch.equal(out, image[:, :24, :24])


@pytest.mark.slow  # trains (Trainer); without it: test_save_run_writes_the_merged_model_with_its_trained_head
def test_ln_tuning_run_writes_the_run_folder(ln_run):
    out, summary = ln_run
    for name in ("model/config.json", "model/model.safetensors", "model/preprocessor_config.json", "model/README.md",
                 "adapter/adapter_config.json", "recipe.yaml", "trainer_state.json", "val_metrics.json"):
        assert (out / name).is_file(), name
    assert summary["global_step"] == 6 and summary["world_size"] == 1
    assert load_recipe(out / "recipe.yaml").tuning.method == "ln_tuning"
    val_metrics = json.loads((out / "val_metrics.json").read_text())
    assert 0.0 <= val_metrics["eval_auroc"] <= 1.0
    # Selection used the validation metric: the best checkpoint is the one with the highest validation AUROC.
    state = json.loads((out / "trainer_state.json").read_text())
    evals = [entry for entry in state["log_history"] if "eval_auroc" in entry]
    assert state["best_metric"] == pytest.approx(max(entry["eval_auroc"] for entry in evals))


@pytest.mark.slow  # fresh process
def test_merged_checkpoint_reloads_with_the_trained_head_in_a_fresh_process(ln_run, tmp_path):
    """peft's merge_and_unload keeps `modules_to_save` wrapped; the head must survive save -> reload."""
    from peft import PeftModel
    from PIL import Image
    from safetensors.torch import load_file

    out, _ = ln_run
    recipe = tiny_recipe("ln_tuning")
    initial = build_model(recipe, random_init=True)  # same seed: the weights training started from
    saved = json.loads((out / "model" / "config.json").read_text())
    assert saved["model_type"] == "deepfake_detector" and "auto_map" in saved
    adapted = PeftModel.from_pretrained(build_model(recipe, random_init=True), out / "adapter").eval()
    saved_head = load_file(out / "model" / "model.safetensors")["classifier.weight"]
    assert not torch.allclose(saved_head, initial.classifier.weight)  # the trained head, not a fresh one

    image_path = tmp_path / "face.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(image_path)
    processor = initial.matching_image_processor()
    with torch.no_grad():
        pixels = processor(images=Image.open(image_path).convert("RGB"), return_tensors="pt")["pixel_values"]
        expected = adapted(pixel_values=pixels).logits.softmax(-1)[0]
        untrained = initial.eval()(pixel_values=pixels).logits.softmax(-1)[0]
    scores = pipeline_scores(out / "model", image_path, trust_remote_code=True)  # no peft code in that process
    assert scores["fake"] == pytest.approx(expected[1].item(), abs=1e-5)
    assert scores["real"] == pytest.approx(expected[0].item(), abs=1e-5)
    assert abs(scores["fake"] - untrained[1].item()) > 1e-4


@pytest.mark.slow  # trains (Trainer); without it: test_save_run_writes_the_merged_model_with_its_trained_head
def test_lora_merge_keeps_the_trained_head(tmp_path, toy_data):
    from deepfake_hf import DeepfakeDetectorForImageClassification

    recipe = tiny_recipe("lora", num_train_epochs=1)
    summary = train(recipe, tmp_path / "lora", datasets=toy_data)
    assert summary["tuning"] == "lora" and summary["trainable_fraction"] < 0.5
    reloaded = DeepfakeDetectorForImageClassification.from_pretrained(tmp_path / "lora" / "model").eval()
    initial = build_model(recipe, random_init=True).eval()
    assert not torch.allclose(reloaded.classifier.weight, initial.classifier.weight)
    assert not any("lora" in name or "modules_to_save" in name for name, _ in reloaded.named_parameters())


@pytest.mark.slow  # trains (Trainer) twice; the guards alone: test_resume_and_overwrite_are_checked_before_building
def test_resume_continues_from_the_last_checkpoint(tmp_path, toy_data):
    recipe = tiny_recipe("full", eval_strategy="steps", eval_steps=1, save_steps=1, max_steps=2)
    first = train(recipe, tmp_path / "run", datasets=toy_data)
    assert first["global_step"] == 2 and first["resumed_from_step"] is None
    more = load_recipe(recipe, ["training.max_steps=4"])
    resumed = train(more, tmp_path / "run", datasets=toy_data, resume=True)
    assert resumed["resumed_from_step"] == 2 and resumed["global_step"] == 4
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    logged_steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert logged_steps == [1, 2, 3, 4]  # steps 1-2 from the first run, 3-4 after resuming; none repeated
    with pytest.raises(FileExistsError):
        train(recipe, tmp_path / "run", datasets=toy_data)


def test_single_class_validation_is_refused(tmp_path, toy_data):
    from datasets import DatasetDict

    only_real = toy_data["validation"].filter(lambda row: row["label"] == 0)
    with pytest.raises(TrainingError, match="validation split has no fake"):
        train(tiny_recipe(), tmp_path / "x", datasets=DatasetDict(train=toy_data["train"], validation=only_real))


@pytest.mark.slow  # trains (Trainer)
def test_train_cli_on_a_folder_of_real_and_fake_images(tmp_path, capsys):
    """The whole command: folder -> load_source -> group split -> train -> run folder."""

    for split_seed, label in ((0, "real"), (1, "fake")):
        for index, image in enumerate(toy_split(24, 10 + split_seed)):
            if (index % 2) == (label == "fake"):
                folder = tmp_path / "data" / label
                folder.mkdir(parents=True, exist_ok=True)
                image["image"].save(folder / f"{index}.png")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(tiny_recipe("full").to_yaml())
    code = main(["train", str(recipe), "--out", str(tmp_path / "run"), "--random-init", "--json",
                 "--set", f"data.train=[{tmp_path / 'data'}]", "--set", "data.val_fraction=0.25",
                 "--set", f"data.cache_dir={tmp_path / 'cache'}", "--set", "training.num_train_epochs=1"])
    assert code == 0
    stdout = capsys.readouterr().out
    summary = json.loads(stdout)  # with --json, stdout holds only the summary
    assert summary["global_step"] >= 1 and summary["model"] == str(tmp_path / "run" / "model")
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "val_metrics.json").is_file()


@pytest.mark.slow  # trains (Trainer); one step without it: test_activation_checkpointing_gives_layer_norms_gradients
@pytest.mark.parametrize("reentrant", [None, True])
def test_activation_checkpointing_still_trains_layer_norms(tmp_path, toy_data, reentrant):
    """Reentrant checkpointing gives LN-only training zero gradients; the recipe default avoids it."""
    from deepfake_hf import DeepfakeDetectorForImageClassification

    extra = {"activation_checkpointing_kwargs": {"use_reentrant": True}} if reentrant else {}
    recipe = tiny_recipe("ln_tuning", activation_checkpointing=True, max_steps=2, eval_strategy="steps",
                         eval_steps=2, save_steps=2, **extra)
    train(recipe, tmp_path / "run", datasets=toy_data)
    initial = build_model(recipe, random_init=True).state_dict()
    saved = DeepfakeDetectorForImageClassification.from_pretrained(tmp_path / "run" / "model").state_dict()
    names = [name for name in saved if name.endswith("layernorm_before.weight")]
    changed = [name for name in names if not torch.allclose(saved[name], initial[name])]
    assert names and (changed == [] if reentrant else changed == names)


def test_train_without_data_sources_fails_before_building_anything(tmp_path, capsys):
    assert main(["train", "clip-l14-ln", "--random-init", "--out", str(tmp_path / "run")]) == 1
    error = capsys.readouterr().err.strip()
    assert "clip-l14-ln.yaml: data.train: no training sources" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ the same behaviours without the Trainer
def one_training_step(model, seed=0):
    """One SGD step on a noise batch (what a Trainer step changes), back in eval mode."""
    torch.manual_seed(seed)
    pixels, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1])
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(pixel_values=pixels, labels=labels).loss.backward()
    optimizer.step()
    return model.eval()


@pytest.mark.parametrize("method", ["ln_tuning", "lora"])
def test_save_run_writes_the_merged_model_with_its_trained_head(tmp_path, method):
    """The run folder train() writes, from a tuned model: model/ is plain (adapter merged), keeps the trained head
    (peft's merge_and_unload does not unwrap modules_to_save) and scores like the adapted model."""
    from types import SimpleNamespace

    from transformers.trainer_callback import TrainerState

    from deepfake_hf import DeepfakeDetectorForImageClassification
    from deepfake_hf.training.train import save_run

    recipe = tiny_recipe(method)
    initial = build_model(recipe, random_init=True)
    tuned = one_training_step(apply_tuning(build_model(recipe, random_init=True), recipe.tuning))
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = tuned(pixel_values=pixels).logits
    out, summary = tmp_path / "run", {}
    save_run(tuned, initial.matching_image_processor(), recipe, out, {"eval_auroc": 0.5},
             SimpleNamespace(state=TrainerState(global_step=1)), summary)
    for name in ("model/config.json", "model/model.safetensors", "model/preprocessor_config.json", "model/README.md",
                 "adapter/adapter_config.json", "recipe.yaml", "trainer_state.json", "val_metrics.json"):
        assert (out / name).is_file(), name
    assert summary["adapter"] == str(out / "adapter") and load_recipe(out / "recipe.yaml").tuning.method == method
    reloaded = DeepfakeDetectorForImageClassification.from_pretrained(out / "model").eval()
    assert not torch.allclose(reloaded.classifier.weight, initial.classifier.weight)  # the trained head
    assert not any(word in name for name, _ in reloaded.named_parameters()
                   for word in ("lora", "modules_to_save", "ln_tuning"))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixel_values=pixels).logits, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("reentrant", [None, True])
def test_activation_checkpointing_gives_layer_norms_gradients(tmp_path, reentrant):
    """As the Trainer enables it from the recipe: reentrant checkpointing leaves LN-only training without
    gradients (frozen inputs); the recipe default (non-reentrant) trains every checkpointed LayerNorm."""
    extra = {"activation_checkpointing_kwargs": {"use_reentrant": True}} if reentrant else {}
    recipe = tiny_recipe("ln_tuning", activation_checkpointing=True, **extra)
    args = training_arguments(recipe, tmp_path / "checkpoints")
    model = apply_tuning(build_model(recipe, random_init=True), recipe.tuning)
    model.activation_checkpointing_enable(activation_checkpointing_kwargs=args.activation_checkpointing_kwargs)
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    one_training_step(model)
    names = [name for name in initial if "layernorm_before" in name and name.endswith(".weight")
             and model.get_parameter(name).requires_grad]
    changed = [name for name in names if not torch.allclose(model.get_parameter(name), initial[name])]
    assert names and (changed == [] if reentrant else changed == names)


def test_resume_and_overwrite_are_checked_before_building(tmp_path):
    (tmp_path / "run" / "model").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="already holds a trained model"):
        train(tiny_recipe(), tmp_path / "run")
    with pytest.raises(TrainingError, match="no checkpoint to resume from"):
        train(tiny_recipe(), tmp_path / "fresh", resume=True)
