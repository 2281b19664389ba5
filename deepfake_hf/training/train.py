"""Recipe -> model, PEFT tuning, augmentation, datasets, TrainingArguments, and a stock `transformers.Trainer` run.

`train(recipe, output_dir)` writes a run folder:

    model/            plain merged checkpoint (no peft needed to load it; loads with pipeline())
    adapter/          the PEFT adapter, when the recipe tunes with ln_tuning or lora
    checkpoints/      Trainer checkpoints (what `resume=True` continues from)
    recipe.yaml       the resolved recipe (overrides applied)
    trainer_state.json, val_metrics.json

The best checkpoint is picked on the validation split only (never a test set). The same call runs in one
process or under `torchrun` / `accelerate launch` (the Trainer handles the distribution).
"""

import json
import logging
import math
import warnings
from pathlib import Path

import torch
from torch import nn

from deepfake_hf.errors import DeepfakeHFError, MissingDependencyError, one_line
from deepfake_hf.training.recipes import Recipe, RecipeError, build_augmentation, load_recipe

logger = logging.getLogger(__name__)

# LoRA targets per encoder family: the attention query/value projections (Hu et al., 2021), as named in the
# installed transformers (5.x renamed ViT/DINOv2's query/value to q_proj/v_proj).
LORA_TARGETS = {
    "clip_vision_model": ["q_proj", "v_proj"],
    "siglip_vision_model": ["q_proj", "v_proj"],
    "vit": ["q_proj", "v_proj"],
    "deit": ["q_proj", "v_proj"],
    "dinov2": ["q_proj", "v_proj"],
    "convnext": ["pwconv1", "pwconv2"],
}


class TrainingError(DeepfakeHFError, RuntimeError):
    """A problem the user can fix (missing weights, unusable data, a tuning method that does not apply)."""


# ------------------------------------------------------------------------------------------------ model
def detector_config(recipe, random_init=False, local_only=False):
    """The `DeepfakeDetectorConfig` of a recipe: the encoder config of the checkpoint when it is available
    (only a local folder or the Hub cache with `local_only`), else the recipe's known `architecture`."""
    from transformers import AutoConfig

    from deepfake_hf.configuration_deepfake import DeepfakeDetectorConfig

    model = recipe.model
    backbone_config = None
    if model.backbone is not None and not random_init:
        from deepfake_hf.safety import check_model_source

        try:
            # absurd sizes refused before AutoConfig builds anything; False, not None: an auto_map never prompts or runs
            check_model_source(model.backbone, local_files_only=local_only)
            backbone_config = AutoConfig.from_pretrained(model.backbone, local_files_only=local_only,
                                                         trust_remote_code=False)
        except (OSError, ValueError) as error:
            if not local_only or model.architecture is None:
                raise TrainingError(f"{model.backbone}: encoder checkpoint not available "
                                    f"({one_line(error, 300)}); pass --random-init to build it untrained") from None
    if backbone_config is None:
        if model.architecture is None:
            raise TrainingError(f"{recipe.source_file}: model.architecture is needed to build {model.backbone} "
                                "without its checkpoint (--random-init)")
        backbone_config = dict(model.architecture)
    detector = {**input_record(recipe), **model.detector}
    try:
        return DeepfakeDetectorConfig(backbone_config=backbone_config, **detector)
    except (TypeError, ValueError) as error:
        raise RecipeError(f"{recipe.source_file}: model: {one_line(error, 300)}") from None


def input_record(recipe: Recipe) -> dict:
    """The config keys saying what input a model trained on `recipe` expects (`configuration_deepfake.INPUT_KEYS`):
    the face mode its data was read with ("auto" as resolved here), the crop geometry `data.load_source` cut with
    when that mode finds faces, and the frames per video. Every door scores new files that way by default."""
    from deepfake_hf.faces import input_record as faces_input_record

    return faces_input_record(recipe.data.faces, recipe.data.num_frames)


def record_input(config, recipe: Recipe) -> None:
    """Write `input_record(recipe)` into a model's config before it is saved. Whole images ("none") do not
    replace a face mode the model already records (fine-tuning a converted model on its ready-made crops)."""
    record = input_record(recipe)
    if record.get("face_preprocessing") == "none" and getattr(config, "face_preprocessing", None) not in (None, "none"):
        record = {key: value for key, value in record.items() if key == "num_frames"}
    for key, value in record.items():
        setattr(config, key, value)


def build_model(recipe, random_init=False, device=None):
    """The detector of a recipe: pretrained encoder weights unless `random_init` (or no backbone is named).

    `device="meta"` builds the architecture without allocating weights (to count parameters of large encoders).
    """
    import deepfake_hf

    deepfake_hf.register()
    from deepfake_hf.modeling_deepfake import DeepfakeDetectorForImageClassification

    try:
        if random_init or recipe.model.backbone is None or device == "meta":
            config = detector_config(recipe, random_init=random_init, local_only=device == "meta")
            if device == "meta":
                with torch.device("meta"):
                    return DeepfakeDetectorForImageClassification(config)
            torch.manual_seed(recipe.training.get("seed", 42))
            return DeepfakeDetectorForImageClassification(config)
        try:
            return DeepfakeDetectorForImageClassification.from_backbone(recipe.model.backbone,
                                                                        **recipe.model.detector)
        except OSError as error:
            raise TrainingError(f"{recipe.model.backbone}: encoder checkpoint not available "
                                f"({one_line(error, 300)}); pass --random-init to build it untrained") from None
    except ImportError as error:  # an encoder's optional package (timm): the message names the extra to install
        raise MissingDependencyError(f"{recipe.source_file}: {one_line(error, 300)}") from None


def layer_norm_names(model):
    """Full names of the encoder's LayerNorm modules (CLIP: pre_layrnorm, layer_norm1/2, post_layernorm; ViT:
    layernorm_before/after, layernorm; DINOv2: norm1/2, layernorm; ConvNeXt: layernorm and the downsampling norms)."""
    return [name for name, module in model.named_modules()
            if name.startswith("backbone.")
            and (isinstance(module, nn.LayerNorm) or type(module).__name__.endswith("LayerNorm"))]


def apply_tuning(model, tuning):
    """Make only what the tuning method trains require gradients; returns the model (a PeftModel for ln_tuning/lora).

    ln_tuning: PEFT `LNTuningConfig` on every LayerNorm of the encoder plus the head. The head is a target module,
    not `modules_to_save`: `merge_and_unload()` does not unwrap `modules_to_save`, so a head kept that way would be
    silently re-initialised in the merged checkpoint.
    """
    method = tuning.method
    family = model.config.backbone_config.model_type
    if method == "full":
        model.requires_grad_(True)
        return model
    if method == "linear_probe":
        model.requires_grad_(False)
        model.classifier.requires_grad_(True)
        return model
    from peft import LNTuningConfig, LoraConfig, get_peft_model

    if method == "ln_tuning":
        names = layer_norm_names(model)
        if not names:
            raise TrainingError(f"tuning.method ln_tuning: not applicable to {family}: its encoder has no LayerNorm "
                                "(BatchNorm only); use full, lora or linear_probe")
        config = LNTuningConfig(target_modules=[*names, "classifier"])
    elif method == "lora":
        targets = tuning.lora.target_modules or LORA_TARGETS.get(family)
        if not targets:
            raise TrainingError(f"tuning.lora.target_modules: no default for {family}; name the layers to adapt")
        config = LoraConfig(r=tuning.lora.r, lora_alpha=tuning.lora.alpha, lora_dropout=tuning.lora.dropout,
                            target_modules=targets, modules_to_save=["classifier"])
    else:
        raise TrainingError(f"tuning.method: {method!r} is not supported")
    with warnings.catch_warnings():  # "Unsupported layer type LayerNorm": harmless for LN-tuning
        warnings.filterwarnings("ignore", message="Unsupported layer type")
        return get_peft_model(model, config)


def count_parameters(model, total=None):
    """{trainable_params, total_params, trainable_fraction}; `total` overrides the total (PEFT keeps copies)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = total if total is not None else sum(p.numel() for p in model.parameters())
    return {"trainable_params": trainable, "total_params": total, "trainable_fraction": trainable / total}


def merged_model(model):
    """The plain detector with the adapter folded in (the model itself when no PEFT is used)."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        return model.merge_and_unload()
    return model


def dry_run(recipe, random_init=False):
    """Build the model and tuning without data or weights; the numbers `train --dry-run --json` prints."""
    recipe = load_recipe(recipe) if not isinstance(recipe, Recipe) else recipe
    model = build_model(recipe, random_init=random_init, device="meta")
    total = sum(p.numel() for p in model.parameters())
    tuned = apply_tuning(model, recipe.tuning)
    training_arguments(recipe, "dry-run-output", check_only=True)
    return {
        "recipe": recipe.name,
        "backbone": recipe.model.backbone,
        "backbone_type": model.config.backbone_config.model_type,
        "tuning": recipe.tuning.method,
        **count_parameters(tuned, total=total),
        "image_size": model.config.image_size,
        "augmentation": [next(iter(item)) for item in recipe.augmentation],
    }


def image_transform(processor, augmentation=None):
    """A `Dataset.set_transform` function: image column -> (augmented) `pixel_values`, label -> `labels`."""
    from torchvision.transforms.v2 import functional as F

    def transform(batch):
        images = []
        for image in batch["image"]:
            tensor = F.pil_to_tensor(image.convert("RGB"))
            images.append(augmentation(tensor) if augmentation is not None else tensor)
        pixel_values = processor(images=images, return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixel_values, "labels": torch.tensor(batch["label"], dtype=torch.long)}

    return transform


# ---------------------------------------------------------------------------------------------------- data
def build_datasets(recipe):
    """DatasetDict with `train` and `validation` from the recipe's sources (or self-blended fakes)."""
    from datasets import DatasetDict, concatenate_datasets

    data = recipe.data
    if data.sbi is not None:
        from deepfake_hf.data.synthesis import make_sbi_dataset

        dataset = make_sbi_dataset(**data.sbi, seed=data.seed)
        if isinstance(dataset, DatasetDict) and "validation" in dataset:
            return DatasetDict(train=dataset["train"], validation=dataset["validation"])
        from deepfake_hf.data.datasets import split_by_group

        return split_by_group(dataset, val_fraction=data.val_fraction, seed=data.seed)
    from deepfake_hf.data.datasets import load_source, split_by_group

    def load(specs):
        parts = [load_source(spec, label_map=data.label_map, faces=data.faces, num_frames=data.num_frames,
                             cache_dir=data.cache_dir) for spec in specs]
        return parts[0] if len(parts) == 1 else concatenate_datasets(parts)

    train_set = load(data.train)
    if data.validation:
        return DatasetDict(train=train_set, validation=load(data.validation))
    return split_by_group(train_set, val_fraction=data.val_fraction, seed=data.seed)


def check_datasets(datasets):
    for split in ("train", "validation"):
        if split not in datasets or len(datasets[split]) == 0:
            raise TrainingError(f"data: the {split} split is empty; nothing usable to train on")
        labels = set(datasets[split]["label"])
        if labels != {0, 1}:
            missing = "fake" if 1 not in labels else "real"
            raise TrainingError(f"data: the {split} split has no {missing} images; it needs both classes")


# -------------------------------------------------------------------------------------------- arguments
def training_arguments(recipe, output_dir, check_only=False):
    """TrainingArguments from the recipe, with the settings model selection and `set_transform` need."""
    from transformers import TrainingArguments

    args = dict(recipe.training)
    # Selection on the validation split only, by the evaluation metric; set_transform needs the raw columns.
    args.setdefault("eval_strategy", "epoch")
    args.setdefault("save_strategy", args["eval_strategy"])
    if args["eval_strategy"] == "steps" and "eval_steps" in args:
        args.setdefault("save_steps", args["eval_steps"])
    args.setdefault("load_best_model_at_end", True)
    args.setdefault("metric_for_best_model", recipe.evaluation.metric)
    if "greater_is_better" not in args:
        args["greater_is_better"] = greater_is_better(recipe.evaluation.metric, recipe.source_file or "<recipe>")
    args.setdefault("save_total_limit", 2)
    args.setdefault("report_to", "none")
    if not torch.cuda.is_available():
        args.setdefault("dataloader_pin_memory", False)
        # Without use_cpu, Accelerate in a torchrun/accelerate-launched CPU process believes it is alone.
        args.setdefault("use_cpu", True)
    args["remove_unused_columns"] = False
    if args.get("activation_checkpointing") or args.get("gradient_checkpointing"):
        # Reentrant checkpointing gives LayerNorm-only training zero gradients (frozen inputs).
        key = ("activation_checkpointing_kwargs" if args.get("activation_checkpointing")
               else "gradient_checkpointing_kwargs")
        args[key] = {"use_reentrant": False, **(args.get(key) or {})}
    if not torch.cuda.is_available():
        args["bf16"] = args["fp16"] = False  # bf16 autocast is ~8x slower on CPU; fp16 needs a GPU
    if check_only:
        return args
    try:
        return TrainingArguments(output_dir=str(output_dir), **args)
    except (TypeError, ValueError) as error:
        raise RecipeError(f"{recipe.source_file}: training: {one_line(error, 300)}") from None


def greater_is_better(metric: str, source: object = "recipe") -> bool:
    """Whether a larger value of the selection metric `metric` is better: the metric registry's
    `MetricDef.higher_is_better`, or False for the Trainer's own validation loss ("loss"). A metric that is not
    registered, or is no quality score (the EER threshold), cannot select a checkpoint: `RecipeError`."""
    from deepfake_hf.evaluation.metric_defs import registered_metrics

    name = metric.removeprefix("eval_")  # the Trainer's own spelling of a validation metric
    if name == "loss":
        return False
    metrics = registered_metrics()
    definition = metrics.get(name)
    if definition is None or definition.higher_is_better is None:
        scores = ", ".join(key for key, value in metrics.items() if value.higher_is_better is not None)
        raise RecipeError(f"{source}: evaluation.metric: {metric!r} is not a metric that ranks checkpoints "
                          f"(one of loss, {scores})")
    return definition.higher_is_better


def _logits_only(logits, labels):
    """Keep only the logits of the model output (not `image_features`) for metric computation."""
    return logits[0] if isinstance(logits, (tuple, list)) else logits


# ------------------------------------------------------------------------------------------------ train
def train(recipe, output_dir, resume=False, datasets=None, random_init=False, overrides=()):
    """Train a recipe; returns a summary dict (paths, global step, world size, validation metrics).

    `datasets` (a DatasetDict with train/validation and columns image, label) replaces the recipe's sources.
    """
    from transformers import Trainer

    from deepfake_hf.evaluation.metrics import trainer_compute_metrics
    from deepfake_hf.runtime.threads import configure_threads

    configure_threads()  # this rank's share of the cores (LOCAL_WORLD_SIZE under torchrun / accelerate)
    recipe = load_recipe(recipe, overrides) if not isinstance(recipe, Recipe) or overrides else recipe
    out = Path(output_dir)
    checkpoints = out / "checkpoints"
    if not resume and (out / "model").exists():
        raise FileExistsError(f"{out}: already holds a trained model (use another --out, or --resume)")
    if resume and not any(checkpoints.glob("checkpoint-*")):
        raise TrainingError(f"{out}: no checkpoint to resume from in {checkpoints}")

    if datasets is None and not recipe.data.train and recipe.data.sbi is None:
        raise TrainingError(f"{recipe.source_file}: data.train: no training sources (or data.sbi) given")
    model = build_model(recipe, random_init=random_init)  # before decoding data: a missing checkpoint fails fast
    processor = model.matching_image_processor()
    if datasets is None:
        datasets = build_datasets(recipe)  # a DataSourceError names the source and the problem
    check_datasets(datasets)
    total = sum(p.numel() for p in model.parameters())
    model = apply_tuning(model, recipe.tuning)
    parameters = count_parameters(model, total=total)

    augmentation = build_augmentation(recipe.augmentation, model.config.image_size if hasattr(model, "config") else 224)
    train_set = datasets["train"].with_transform(image_transform(processor, augmentation))
    validation_set = datasets["validation"].with_transform(image_transform(processor))
    args = training_arguments(recipe, checkpoints)

    trainer = Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=validation_set,
                      compute_metrics=trainer_compute_metrics, preprocess_logits_for_metrics=_logits_only)
    resumed_from_step = None
    if resume:
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(str(checkpoints))
        resumed_from_step = json.loads((Path(last) / "trainer_state.json").read_text())["global_step"]
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    val_metrics = trainer.evaluate()
    summary = {
        "recipe": recipe.name,
        "output_dir": str(out),
        "model": str(out / "model"),
        "adapter": None,
        "global_step": trainer.state.global_step,
        "resumed_from_step": resumed_from_step,
        "world_size": args.world_size,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "train_loss": result.training_loss,
        "val_metrics": val_metrics,
        "tuning": recipe.tuning.method,
        **parameters,
    }
    if trainer.is_world_process_zero():
        save_run(trainer.model, processor, recipe, out, val_metrics, trainer, summary)
    trainer.accelerator.wait_for_everyone()
    return summary


def save_run(model, processor, recipe, out, val_metrics, trainer, summary):
    """Write model/ (merged, plain), adapter/ (PEFT), recipe.yaml, trainer_state.json, val_metrics.json."""
    from peft import PeftModel

    out.mkdir(parents=True, exist_ok=True)
    if isinstance(model, PeftModel):
        model.save_pretrained(out / "adapter")
        summary["adapter"] = str(out / "adapter")
    plain = merged_model(model)
    plain.image_processor = processor
    record_input(plain.config, recipe)
    plain.save_pretrained(out / "model")
    (out / "recipe.yaml").write_text(recipe.to_yaml())
    trainer.state.save_to_json(str(out / "trainer_state.json"))
    (out / "val_metrics.json").write_text(json.dumps(_jsonable(val_metrics), indent=2))
    write_model_card(out / "model", recipe=recipe)


def write_model_card(model_dir, recipe=None, metrics=None):
    """model_dir/README.md: the hub helper's card when available, else a minimal one."""
    model_dir = Path(model_dir)
    try:
        from deepfake_hf.publish.model_card import render_model_card
    except ImportError:
        render_model_card = None
    if render_model_card is not None:
        try:
            render_model_card(model_dir, metrics=metrics, recipe=recipe).save(model_dir / "README.md")
            return model_dir / "README.md"
        except Exception as error:  # a card problem must not lose a finished training run
            logger.warning("model card: %s; writing a minimal card", one_line(error, 300))
    lines = ["---", "library_name: transformers", "pipeline_tag: image-classification", "tags: [deepfake-detection]",
             "---", "", f"# {recipe.name if recipe else model_dir.name}", "",
             "A real/fake deepfake detector built with deepfake-hf. Labels: `real`, `fake`.", ""]
    if recipe is not None and recipe.reference:
        lines += [f"Recipe reference: {recipe.reference}", ""]
    if metrics:
        lines += ["## Metrics", "", "```json", json.dumps(_jsonable(metrics), indent=2), "```", ""]
    lines += ["## Use", "", "```python", "from transformers import pipeline",
              f'detect = pipeline("image-classification", model="{model_dir}", trust_remote_code=True)', "```", ""]
    (model_dir / "README.md").write_text("\n".join(lines))
    return model_dir / "README.md"


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


__all__ = [
    "TrainingError",
    "apply_tuning",
    "build_augmentation",
    "build_model",
    "count_parameters",
    "dry_run",
    "greater_is_better",
    "layer_norm_names",
    "merged_model",
    "train",
    "training_arguments",
]
