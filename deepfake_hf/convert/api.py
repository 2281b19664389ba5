"""`convert`, `detect_format` and `list_formats`: the entry points, which read the format registry."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from deepfake_hf.convert.base import Converted, ConvertError, format_names, formats, get_format
from deepfake_hf.convert.card import render_card
from deepfake_hf.convert.encoders import load_encoder, require_timm
from deepfake_hf.convert.loading import load_weights, read_config, resolve_source, source_name
from deepfake_hf.publish.endpoint import write_handler


def detect_format(path: str | os.PathLike, state: dict[str, Any] | None = None) -> tuple[str, str | None]:
    """The format of a source (a registered format's name) and its variant (DeepfakeBench's detector, else None);
    ConvertError when it cannot tell. A folder's config.json is asked first, then the weights' keys."""
    path = Path(path)
    known = formats()
    if path.is_dir():
        config = read_config(path)
        if config is not None:
            if config.get("model_type") == "deepfake_detector":
                raise ConvertError(f"{path}: already a deepfake-hf detector; load it directly")
            for source_format in known:
                match = source_format.recognise_config(path, config)
                if match is not None:
                    return source_format.name, match.variant
    if state is None:
        state = load_weights(path)
    for source_format in known:
        match = source_format.recognise_weights(path, state)
        if match is not None:
            return source_format.name, match.variant
    raise ConvertError(f"{path}: cannot tell the checkpoint's format from its keys (e.g. {sorted(state)[:3]}); "
                       f"pass --from {'|'.join(format_names())}")


def convert(source: str | os.PathLike, out: str | os.PathLike, format: str = "auto", detector: str | None = None,
            backbone: str | None = None, fake_label: str | None = None, overwrite: bool = False) -> dict[str, str]:
    """Convert `source` (local file or folder, or Hub id) into a detector folder at `out`.

    Returns {"out", "format", "source", "description"}. Raises ConvertError (one line) for anything
    that cannot be converted exactly, and FileExistsError when `out` is not empty and not `overwrite`.
    """
    from deepfake_hf.runtime.outputs import prepare_output_dir

    if format != "auto":
        source_format = get_format(format)
        if detector is not None and not source_format.variants:
            raise ConvertError(f"--detector applies to --from {' | '.join(_with_variants())} only")
    elif detector is not None:  # --detector names a variant, so the format is the one that has variants
        with_variants = _with_variants()
        if len(with_variants) != 1:
            raise ConvertError(f"--detector needs --from (one of {', '.join(with_variants)})")
        source_format = get_format(with_variants[0])
    path = resolve_source(source)
    if format == "auto" and detector is None:
        name, detector = detect_format(path)
        source_format = get_format(name)
    converted = source_format.load(path, variant=detector, backbone=backbone, fake_label=fake_label)
    try:
        model = build_detector(converted, source_format.face_preprocessing)
    except ConvertError as error:  # the weights of `path` do not fit: the one line names that file
        raise ConvertError(str(error) if str(path) in str(error) else f"{path}: {error}") from None
    out_dir = prepare_output_dir(out, overwrite)
    model.save_pretrained(out_dir)
    write_handler(out_dir)  # handler.py and requirements.txt for Inference Endpoints
    card = render_card(converted, source, path, source_format.face_preprocessing)
    (out_dir / "README.md").write_text(card, encoding="utf-8")
    reported = source_format.name if converted.variant is None else f"{source_format.name}-{converted.variant}"
    return {"out": str(out_dir), "format": reported, "source": str(source), "description": converted.description}


def _with_variants() -> list[str]:
    return [source_format.name for source_format in formats() if source_format.variants]


def build_detector(converted: Converted, face_preprocessing: str | None) -> Any:
    """The DeepfakeDetectorForImageClassification holding `converted` exactly, recording `face_preprocessing`."""
    import torch

    from deepfake_hf import register
    from deepfake_hf.configuration_deepfake import DeepfakeDetectorConfig
    from deepfake_hf.defaults import DEFAULT_CROP, FACE_SCALE, FACE_SIZE
    from deepfake_hf.modeling_deepfake import DeepfakeDetectorForImageClassification

    register()  # save_pretrained then writes auto_map and the code files
    backbone_config = converted.backbone_config
    require_timm(backbone_config)
    image_size = getattr(backbone_config, "image_size", None)
    settings = converted.processor.to_dict()
    # the model's input side: the crop when the processor crops, else a square resize's side
    crop = settings.get("crop_size") if settings.get("do_center_crop") else settings.get("size")
    image_size = (crop or {}).get("height") or image_size
    # the recorded face mode's crop: DeepfakeBench's aligned 256 px at scale 1.3 (the package defaults)
    geometry = {"face_crop": DEFAULT_CROP, "face_size": FACE_SIZE, "face_scale": FACE_SCALE} if (
        face_preprocessing not in (None, "none")) else {}
    config = DeepfakeDetectorConfig(backbone_config=backbone_config, pooling=converted.pooling,
                                    normalize_features=converted.normalize_features, image_size=image_size,
                                    face_preprocessing=face_preprocessing, **geometry)
    model = DeepfakeDetectorForImageClassification(config).eval()
    # errors name the source's own keys: its DataParallel wrapper (if loading stripped one) and encoder prefix
    load_encoder(model.backbone, converted.encoder_state, f"{converted.source_key} encoder",
                 source_name(converted.encoder_state, converted.encoder_prefix))
    weight, bias = converted.head_weight, converted.head_bias
    if tuple(weight.shape) != (2, config.hidden_size) or tuple(bias.shape) != (2,):
        raise ConvertError(f"{converted.source_key} head: shape {tuple(weight.shape)} / {tuple(bias.shape)}, expected "
                           f"(2, {config.hidden_size}) / (2,)")
    with torch.no_grad():
        model.classifier.weight.copy_(weight.to(model.classifier.weight.dtype))
        model.classifier.bias.copy_(bias.to(model.classifier.bias.dtype))
    model.image_processor = converted.processor
    return model


def list_formats() -> str:
    """The formats `convert` knows, one line each, for `deepfake-hf convert --list`."""
    return "\n".join(f"{source_format.name:<14} {source_format.description}" for source_format in formats())


__all__ = ["build_detector", "convert", "detect_format", "list_formats"]
