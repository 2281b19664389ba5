"""Reading a published checkpoint safely: the one place weights, configs and sources are read.

Weights come from safetensors or `torch.load(weights_only=True)`; anything whose unpickling would run code is
refused, never executed. A DataParallel `module.` prefix is stripped. Configs go through `deepfake_hf.safety`
(size and nesting limits) before anything is built from them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from deepfake_hf.convert.base import ConvertError
from deepfake_hf.errors import one_line

PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
WEIGHT_SUFFIXES = (".safetensors",) + PICKLE_SUFFIXES


def load_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """{key: tensor} from a .safetensors file, or from a torch file read with `weights_only=True`.

    A torch file may hold the state dict under `state_dict` or `model`; a `module.` prefix
    (DataParallel) is stripped. Anything whose unpickling would run code is refused, not executed.
    """
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return strip_module_prefix(load_file(str(path)))
        except Exception as error:  # a truncated or foreign file
            raise ConvertError(f"{path}: not a readable safetensors file ({one_line(error, 200)})") from None
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        # weights_only refuses every global outside torch's allow-list, before anything is called.
        reason = one_line(error, 160)
        raise ConvertError(f"{path}: refused: reading it would need arbitrary unpickling, which can run code "
                           f"({reason}); re-save the weights as safetensors or a plain state dict") from None
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not loaded:
        raise ConvertError(f"{path}: expected a state dict (a mapping of names to tensors)")
    not_tensors = [key for key, value in loaded.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise ConvertError(f"{path}: {not_tensors[0]!r} is not a tensor; expected a state dict")
    return strip_module_prefix(loaded)


class SourceState(dict):
    """A state dict whose keys lost the source's DataParallel wrapper (`wrapper`, e.g. "module."): errors put it
    back, so that they name a key as the source's file spells it."""

    wrapper = ""


def strip_module_prefix(state: dict[str, Any]) -> dict[str, Any]:
    """`state` without DataParallel's `module.` prefix, when every key has it."""
    if all(key.startswith("module.") for key in state):
        stripped = SourceState({key[len("module."):]: value for key, value in state.items()})
        stripped.wrapper = "module."
        return stripped
    return SourceState(state)


def source_name(state: dict[str, Any], key: str) -> str:
    """`key` of `state` as the source's file spells it (the stripped wrapper restored)."""
    return getattr(state, "wrapper", "") + key


def weight_files(folder: str | os.PathLike) -> list[Path]:
    """The weight files of a folder: its safetensors files when it has any, else its torch files."""
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    safetensors = [p for p in files if p.suffix == ".safetensors"]
    return safetensors or files


def load_folder_weights(folder: str | os.PathLike) -> dict[str, Any]:
    """The state dict of a folder: its safetensors shards (preferred) or its torch files, merged."""
    files = weight_files(folder)
    if not files:
        raise ConvertError(f"{folder}: no weight file (.safetensors, .pth, .pt, .ckpt or .bin)")
    state = {}
    for file in files:
        state.update(load_state_dict(file))
    return state


def load_weights(path: Path) -> dict[str, Any]:
    """The state dict of a weight file, or of a folder's weight files."""
    return load_state_dict(path) if path.is_file() else load_folder_weights(path)


def resolve_source(source: str | os.PathLike) -> Path:
    """A local path for `source`: an existing file or folder, else a Hub id fetched with snapshot_download."""
    path = Path(os.path.expanduser(str(source)))
    if path.exists():
        return path
    if re.fullmatch(r"[\w.-]+/[\w.-]+", str(source)):
        from huggingface_hub import snapshot_download

        try:
            patterns = ["*.json", "*.safetensors", "*.pth", "*.pt", "*.ckpt", "*.bin", "README.md", "*.txt"]
            return Path(snapshot_download(str(source), allow_patterns=patterns))
        except Exception as error:
            raise ConvertError(f"{source}: not a local path and not downloadable from the Hub "
                               f"({one_line(error, 200)})") from None
    raise ConvertError(f"{source}: no such file or folder (and not a Hub id of the form org/name)")


def read_config(folder: str | os.PathLike) -> dict[str, Any] | None:
    """A folder's config.json, checked for size and nesting; None when it has none."""
    from deepfake_hf.safety import UnsafeFileError, check_config, read_json

    config_path = Path(folder) / "config.json"
    if not config_path.is_file():
        return None
    try:  # too large, invalid or deeply nested JSON, and absurd sizes, refused before anything is built from it
        return check_config(read_json(config_path), config_path)
    except UnsafeFileError as error:
        raise ConvertError(str(error)) from None


def take(state: dict[str, Any], prefix: str, where: Any) -> SourceState:
    """The entries of `state` under `prefix`, with the prefix removed; ConvertError when there are none."""
    taken = SourceState({key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)})
    taken.wrapper = getattr(state, "wrapper", "")
    if not taken:
        raise ConvertError(f"{where}: no keys under {source_name(state, prefix)!r} (found e.g. "
                           f"{[source_name(state, key) for key in sorted(state)[:3]]})")
    return taken


def head(state: dict[str, Any], prefix: str, where: Any) -> tuple[Any, Any]:
    """The (weight, bias) of the Linear layer under `prefix`; ConvertError naming a missing key."""
    for name in ("weight", "bias"):
        if prefix + name not in state:
            raise ConvertError(f"{where}: missing key {source_name(state, prefix + name)!r}")
    return state[prefix + "weight"], state[prefix + "bias"]


__all__ = ["PICKLE_SUFFIXES", "WEIGHT_SUFFIXES", "head", "load_folder_weights", "load_state_dict", "load_weights",
           "read_config", "resolve_source", "source_name", "SourceState", "strip_module_prefix", "take",
           "weight_files"]
