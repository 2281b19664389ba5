"""Encoders of converted detectors: their configs (from --backbone, a timm name or the weights' shapes) and the
exact loading of a source's encoder weights into the detector's backbone."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from deepfake_hf.convert.base import ConvertError
from deepfake_hf.errors import MissingDependencyError, one_line

logger = logging.getLogger(__name__)

# Prefixes under which a module may hold the weights a source saves bare: CLIP vision weights are `vision_model.*`
# in some transformers versions' CLIPVisionModel and bare in others (and bare in the sources, which saved
# CLIPVisionTransformer); TimmWrapperModel holds the timm model, whose own names the sources use, as `timm_model`.
WRAPPER_PREFIXES = ("vision_model.", "timm_model.")


def load_backbone_config(backbone: Any) -> Any:
    """The encoder config named by a Hub id, a local folder or a timm architecture name (e.g. legacy_xception);
    the vision tower of a full CLIP config."""
    from transformers import AutoConfig

    if not Path(str(backbone)).exists() and "/" not in str(backbone) and is_timm_architecture(str(backbone)):
        return timm_config(str(backbone))
    from deepfake_hf.safety import check_model_source

    try:
        check_model_source(str(backbone))  # absurd sizes refused before AutoConfig builds anything
        config = AutoConfig.from_pretrained(str(backbone), trust_remote_code=False)  # no stdin prompt, no code run
    except Exception as error:
        raise ConvertError(f"--backbone {backbone}: cannot load its config ({one_line(error, 160)}); pass a local "
                           "folder holding the encoder's config.json") from None
    return getattr(config, "vision_config", None) or config


def is_timm_architecture(name: str) -> bool:
    """Whether `name` is a timm model name (False when timm is not installed)."""
    import importlib.util

    if importlib.util.find_spec("timm") is None:
        return False
    import timm

    return timm.is_model(name)


def timm_config(architecture: str) -> Any:
    """A TimmWrapperConfig building `architecture` (a timm model name; no weights are fetched)."""
    from transformers import TimmWrapperConfig

    return TimmWrapperConfig(architecture=architecture)


def require_timm(config: Any) -> None:
    """MissingDependencyError (naming the extra) unless a timm backbone's package is installed."""
    from deepfake_hf.configuration_deepfake import missing_timm

    reason = missing_timm(config)
    if reason:
        raise MissingDependencyError(reason)


def timm_backbone(backbone: Any, family: str, architectures: tuple[str, ...], **model_args: Any) -> Any:
    """The timm encoder config of --backbone (a folder with a timm_wrapper config.json, or a timm name; the first
    of `architectures` when None), with `model_args` the source always builds it with; ConvertError unless it is
    one of `architectures`."""
    name = str(backbone or architectures[0])
    where = f"--backbone {backbone}" if backbone else name
    local = Path(os.path.expanduser(name)).exists()
    config = load_backbone_config(name) if local or "/" in name else timm_config(name)
    if config.model_type != "timm_wrapper":
        raise ConvertError(f"{where}: {family} is a timm model (timm_wrapper config), got {config.model_type!r}")
    require_timm(config)
    if not is_timm_architecture(config.architecture) or not config.architecture.startswith(architectures):
        raise ConvertError(f"{where}: {family} is timm {' or '.join(architectures)}, got {config.architecture!r}")
    if model_args:
        config.model_args = {**(config.model_args or {}), **model_args}
    return config


def clip_vision_config_from_weights(state: dict[str, Any], prefix: str) -> Any:
    """A CLIPVisionConfig read off CLIP vision weights (for checkpoints that carry no config).

    Every OpenAI CLIP ViT uses 64-dimensional attention heads, quick_gelu and LayerNorm eps 1e-5
    (CLIPVisionConfig's defaults), so the rest follows from the tensor shapes.
    """
    from transformers import CLIPVisionConfig

    def shape(key):
        if prefix + key not in state:
            raise ConvertError(f"missing key {prefix + key!r} (needed to read the CLIP architecture; or pass "
                               "--backbone)")
        return tuple(state[prefix + key].shape)

    hidden, _, patch, _ = shape("embeddings.patch_embedding.weight")
    positions = shape("embeddings.position_embedding.weight")[0]
    layers = 1 + max(int(m.group(1)) for key in state
                     if (m := re.match(re.escape(prefix) + r"encoder\.layers\.(\d+)\.", key)))
    grid = round((positions - 1) ** 0.5)
    if hidden % 64:
        raise ConvertError(f"{prefix}: hidden size {hidden} is not a multiple of 64, so the attention heads cannot "
                           "be inferred; pass --backbone with the encoder's config")
    return CLIPVisionConfig(hidden_size=hidden, intermediate_size=shape("encoder.layers.0.mlp.fc1.weight")[0],
                            num_hidden_layers=layers, num_attention_heads=hidden // 64, patch_size=patch,
                            image_size=grid * patch)


def encoder_config(backbone: Any, state: dict[str, Any] | None = None, clip_prefix: str | None = None,
                   default: str | None = None) -> Any:
    """--backbone when given; else CLIP architecture read off the weights; else `default` (a Hub id)."""
    if backbone:
        return load_backbone_config(backbone)
    if clip_prefix is not None and state is not None:
        config = clip_vision_config_from_weights(state, clip_prefix)
        logger.warning("no --backbone: CLIP vision architecture read from the weights (hidden %d, %d layers, "
                       "%d heads of 64)", config.hidden_size, config.num_hidden_layers, config.num_attention_heads)
        return config
    if default:
        return load_backbone_config(default)
    raise ConvertError("the checkpoint does not carry its encoder architecture; pass --backbone ID_OR_DIR")


# ------------------------------------------------------------------------------------------- loading weights
def _in_module_names(expected: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """`state` renamed to the module's naming (wrapper prefix added or removed), without the buffers that some
    versions save and others rebuild (position ids), which are not weights."""
    for wrapped in WRAPPER_PREFIXES:
        if all(key.startswith(wrapped) for key in expected) and not any(key.startswith(wrapped) for key in state):
            state = {wrapped + key: value for key, value in state.items()}
        elif not any(key.startswith(wrapped) for key in expected) and all(key.startswith(wrapped) for key in state):
            state = {key[len(wrapped):]: value for key, value in state.items()}
    return {key: value for key, value in state.items() if key in expected or not key.endswith("position_ids")}


def _key_mismatch(expected: dict[str, Any], state: dict[str, Any], where: str, prefix: str = "") -> ConvertError | None:
    """The error naming the first missing or unexpected key of `state` against the module's, or None."""
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing:
        return ConvertError(f"{where}: missing key {prefix + missing[0]!r} ({len(missing)} missing)")
    if unexpected:
        return ConvertError(f"{where}: unexpected key {prefix + unexpected[0]!r} ({len(unexpected)} not used by the "
                            "encoder)")
    return None


def _legacy_renamings(module: Any, state: dict[str, Any]) -> list[tuple[str, str]]:
    """(old, new) key fragments of transformers' own renaming of older checkpoints (e.g. DINOv2's
    `attention.attention.query` -> `attention.q_proj`) that `state`'s keys use; plain renamings only."""
    try:
        from transformers.conversion_mapping import WeightRenaming, get_model_conversion_mapping

        renamings = get_model_conversion_mapping(module)
    except Exception:  # an older or newer transformers without this table: nothing to map back
        return []
    pairs = []
    for renaming in renamings or []:
        if type(renaming) is not WeightRenaming or len(renaming.source_patterns) != 1:
            continue
        old, new = renaming.source_patterns[0], renaming.target_patterns[0]
        if re.fullmatch(r"[\w.]+", old) and re.fullmatch(r"[\w.]+", new) and any(old in key for key in state):
            pairs.append((old, new))
    return pairs


def _source_key(key: str, renamings: list[tuple[str, str]], state: dict[str, Any]) -> str:
    """A key of the module's in the checkpoint's own naming: legacy fragments restored, wrapper prefix as saved."""
    for old, new in renamings:
        key = key.replace(new, old)
    for wrapped in WRAPPER_PREFIXES:
        if key.startswith(wrapped) and not any(name.startswith(wrapped) for name in state):
            key = key[len(wrapped):]
    return key


def _load_legacy(module: Any, state: dict[str, Any], where: str, prefix: str,
                 renamings: list[tuple[str, str]]) -> Any:
    """The module loaded by transformers' own loader (which renames legacy keys), quietly; ConvertError naming the
    first key it could not place, in the checkpoint's own naming."""
    import tempfile

    from safetensors.torch import save_file
    from transformers.utils import logging as transformers_logging

    expected = module.state_dict()
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # its LOAD REPORT table would precede our one-line error
    try:
        with tempfile.TemporaryDirectory() as folder:
            module.config.save_pretrained(folder)
            save_file({key: value.contiguous() for key, value in state.items()},
                      os.path.join(folder, "model.safetensors"))
            loaded, info = type(module).from_pretrained(folder, output_loading_info=True)
    finally:
        transformers_logging.set_verbosity(verbosity)
    missing = sorted(info.get("missing_keys") or [], key=list(expected).index)
    if missing:
        name = _source_key(missing[0], renamings, state)
        raise ConvertError(f"{where}: missing key {prefix + name!r} ({len(missing)} missing)")
    unexpected = sorted(info.get("unexpected_keys") or [])
    if unexpected:
        raise ConvertError(f"{where}: unexpected key {prefix + unexpected[0]!r} ({len(unexpected)} not used by the "
                           "encoder)")
    mismatched = info.get("mismatched_keys") or []
    if mismatched:
        first = mismatched[0]
        name = _source_key(first[0] if isinstance(first, (tuple, list)) else str(first), renamings, state)
        raise ConvertError(f"{where}: {prefix + name!r} has a shape the encoder does not expect "
                           f"({len(mismatched)} such keys)")
    return loaded


def _load_matching(module: Any, expected: dict[str, Any], state: dict[str, Any], where: str) -> None:
    """load_state_dict(strict) of a state whose keys are the module's, naming the first mis-shaped key."""
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ConvertError(f"{where}: {key!r} has shape {tuple(value.shape)}, the encoder expects "
                               f"{tuple(expected[key].shape)}")
    module.load_state_dict(state, strict=True)


def load_encoder(module: Any, state: dict[str, Any], where: str, prefix: str = "") -> None:
    """Load encoder weights exactly, with one-line errors naming the first missing, unexpected or mis-shaped key in
    the checkpoint's own naming (`prefix`: where the source keeps the encoder, e.g. `feature_extractor.backbone.`).

    When the keys are not the module's, the checkpoint may have been saved by an older transformers (legacy key
    names, e.g. DINOv2's `attention.attention.query`): transformers' own loader, which renames them, is used,
    and only when it accounts for every key."""
    expected = module.state_dict()
    renamed = _in_module_names(expected, state)
    mismatch = _key_mismatch(expected, renamed, where, prefix)
    if mismatch is None:
        _load_matching(module, expected, renamed, where)
        return
    renamings = _legacy_renamings(module, state)
    if not renamings:
        raise mismatch
    try:
        loaded = _load_legacy(module, state, where, prefix, renamings)
    except ConvertError:
        raise
    except Exception:  # transformers could not build from these weights at all: the plain mismatch says why
        raise mismatch from None
    legacy = _in_module_names(expected, loaded.state_dict())
    mismatch = _key_mismatch(expected, legacy, where)
    if mismatch is not None:
        raise mismatch
    _load_matching(module, expected, legacy, where)


__all__ = ["clip_vision_config_from_weights", "encoder_config", "is_timm_architecture", "load_backbone_config",
           "load_encoder", "require_timm", "timm_backbone", "timm_config"]
