"""Export a detector as a stock transformers checkpoint where that is exact.

A stock `ViTForImageClassification` classifies the CLS token after the final LayerNorm; a stock
`CLIPForImageClassification` classifies the mean of the patch tokens (no post_layernorm). A detector
with the same pooling, no L2 normalisation and a plain linear head is exactly one of those; its
calibration (temperature and threshold) folds into the head's weights and bias. Anything else is
refused with the reason, because an export that silently changes scores is worse than none.
"""

import os

import torch
from transformers import CLIPConfig, CLIPForImageClassification, ViTForImageClassification

from deepfake_hf.configuration_deepfake import INPUT_KEYS, DeepfakeDetectorConfig
from deepfake_hf.errors import DeepfakeHFError, one_line
from deepfake_hf.modeling_deepfake import DeepfakeDetectorForImageClassification, logit
from deepfake_hf.publish.endpoint import write_handler
from deepfake_hf.runtime.outputs import prepare_output_dir


class NativeExportError(DeepfakeHFError, ValueError):
    """The model cannot be written as a stock transformers class without changing its scores."""


# backbone model_type -> (stock class, pooling it applies, name of its encoder attribute)
NATIVE_CLASSES = {
    "vit": (ViTForImageClassification, "cls", "vit"),
    "clip_vision_model": (CLIPForImageClassification, "mean", "vision_model"),
}

# What each pooling feeds the head, per backbone family, to say exactly why a stock class differs.
POOLING_MEANS = {
    ("vit", "cls"): "the CLS token after the final layernorm",
    ("vit", "mean"): "the mean of the patch tokens",
    ("vit", "pooler"): "ViT's pooler (a dense layer and tanh over the CLS token)",
    ("clip_vision_model", "mean"): "the mean of the patch tokens, without post_layernorm",
    ("clip_vision_model", "pooler"): "the CLS token after post_layernorm",
    ("clip_vision_model", "cls"): "the CLS token before post_layernorm",
}


def native_export_problem(config):
    """Why `config` has no exact stock equivalent (one line, ending with how to build one that has), or None."""
    backbone_type = config.backbone_config.model_type
    if backbone_type not in NATIVE_CLASSES:
        return f"no stock transformers classifier matches a {backbone_type!r} backbone (only vit and clip vision)"
    stock_class, pooling, _ = NATIVE_CLASSES[backbone_type]
    stock = stock_class.__name__
    problems = []
    if config.pooling != pooling:
        problems.append(
            f"pooling={config.pooling!r} classifies {POOLING_MEANS[backbone_type, config.pooling]}, but {stock} "
            f"classifies {POOLING_MEANS[backbone_type, pooling]} (pooling={pooling!r})"
        )
    if config.normalize_features:
        problems.append(f"{stock} has no L2 normalisation before the head (normalize_features=True)")
    if not problems:
        return None
    return "; ".join(problems) + f"; build with pooling={pooling!r} and normalize_features=False to export natively"


def _folded_head(model):
    """The head with temperature and threshold folded in, so a stock softmax gives the model's scores."""
    config = model.config
    weight = model.classifier.weight.detach() / config.calibration_temperature
    bias = model.classifier.bias.detach() / config.calibration_temperature
    bias = bias - torch.tensor([0.0, logit(config.threshold)], dtype=bias.dtype)
    return {"weight": weight.clone(), "bias": bias.clone()}


def export_native(model_or_folder, out_dir, overwrite=False):
    """Write a stock `ViTForImageClassification` / `CLIPForImageClassification` checkpoint to `out_dir`, with the
    Inference Endpoints handler (`publish.endpoint.write_handler`: handler.py and requirements.txt).

    Raises `NativeExportError` with a one-line reason when the conversion would not be exact, and
    `FileExistsError` when `out_dir` is not empty and `overwrite` is False. Returns the output path.
    """
    from deepfake_hf.safety import UnsafeFileError, check_model_folder

    from_folder = isinstance(model_or_folder, (str, os.PathLike))
    # Refuse before loading any weights: the config alone decides (after its sizes and the weight headers pass).
    try:
        if from_folder and os.path.isdir(model_or_folder):
            check_model_folder(model_or_folder)
    except UnsafeFileError as error:
        raise NativeExportError(str(error)) from None
    folder_given = from_folder and os.path.isdir(model_or_folder)
    if folder_given and not os.path.isfile(os.path.join(model_or_folder, "config.json")):
        raise NativeExportError(f"{model_or_folder}: no config.json: not a saved detector folder")
    try:
        config = DeepfakeDetectorConfig.from_pretrained(model_or_folder) if from_folder else model_or_folder.config
    except (OSError, ValueError) as error:  # transformers' messages run to several lines
        raise NativeExportError(f"{model_or_folder}: not a readable detector folder ({one_line(error, 300)})") from None
    problem = native_export_problem(config)
    if problem:
        raise NativeExportError(f"cannot export natively: {problem}")
    try:
        model = (DeepfakeDetectorForImageClassification.from_pretrained(model_or_folder) if from_folder
                 else model_or_folder)
    except (OSError, ValueError) as error:
        raise NativeExportError(f"{model_or_folder}: its weights cannot be loaded ({one_line(error, 300)})") from None
    out_dir = prepare_output_dir(out_dir, overwrite)

    stock_class, _, encoder_name = NATIVE_CLASSES[config.backbone_config.model_type]
    labels = {"id2label": dict(config.id2label), "label2id": dict(config.label2id)}
    if stock_class is CLIPForImageClassification:
        stock_config = CLIPConfig(vision_config=config.backbone_config.to_dict(), **labels)
    else:
        stock_config = type(config.backbone_config)(**{**config.backbone_config.to_dict(), **labels})
    for key in INPUT_KEYS:  # what input the model expects, read by every door (scoring.Scorer) from any config
        if getattr(config, key, None) is not None:
            setattr(stock_config, key, getattr(config, key))
    stock = stock_class(stock_config).eval()
    getattr(stock, encoder_name).load_state_dict(model.backbone.state_dict(), strict=True)
    stock.classifier.load_state_dict(_folded_head(model), strict=True)
    stock.save_pretrained(out_dir)

    model.matching_image_processor().save_pretrained(out_dir)
    write_handler(out_dir)  # the Inference Endpoints handler: transformers never runs it
    return out_dir
