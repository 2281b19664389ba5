"""One interface for a published detector's format, and the registry that finds every format.

A format is a `SourceFormat` subclass with a `name`; defining it registers it, and `formats()` imports every
module of this package once (pkgutil), so a new format is one new file here and nothing else changes:
`convert()`, `detect_format()`, `list_formats()` and the command line's `--from` choices all read the registry.
Modules of this package import nothing heavy at module level (the command line imports the registry to build
its choices, and `deepfake-hf convert --help` stays fast).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from deepfake_hf.errors import DeepfakeHFError


class ConvertError(DeepfakeHFError, ValueError):
    """A checkpoint that cannot be converted exactly; one line naming the file, key or option."""


@dataclass
class SourceInfo:
    """What a model card says about a published detector. Numbers only with their citation."""

    title: str
    paper: str
    code: str
    licence: str
    backbone: str
    input: str
    published: str = "not stated"
    notes: list[str] = field(default_factory=list)


@dataclass
class Converted:
    """Everything a detector folder is written from: a format's `load` returns it, `convert` writes it."""

    backbone_config: Any  # a transformers PretrainedConfig of the encoder
    pooling: str
    normalize_features: bool
    encoder_state: dict[str, Any]  # {key: torch.Tensor}, in the source's (or the encoder's) key names
    head_weight: Any  # torch.Tensor (2, hidden): row 0 real, row 1 fake
    head_bias: Any  # torch.Tensor (2,)
    processor: Any  # a transformers image processor
    source_key: str  # names the source in error messages ("deepfakebench-clip", "gend-pe")
    description: str
    info: SourceInfo  # what the model card says about the source
    variant: str | None = None  # the format's variant that was converted (DeepfakeBench's detector), if any
    encoder_prefix: str = ""  # where the source keeps `encoder_state` (error messages name the source's own keys)


@dataclass(frozen=True)
class Match:
    """A format recognised a source; `variant` names which of its variants, when it has several."""

    variant: str | None = None


class SourceFormat:
    """A published detector's checkpoint layout: how to recognise it and how to read it into a `Converted`.

    Subclasses set `name` (the `--from` value) and `description` (one line for `convert --list`), and
    override `load` and one or both `recognise_*` methods. `order` sorts the formats in listings and in
    detection (lower first: a more specific format before a more general one).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # The face preprocessing the source was trained with, recorded in the converted detector's config so that
    # predict/evaluate/Detector/app crop faces the same way by default (None: whole images or not recorded).
    face_preprocessing: ClassVar[str | None] = None
    # The values `--detector` accepts for this format (empty: the option does not apply).
    variants: ClassVar[tuple[str, ...]] = ()
    order: ClassVar[int] = 100

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            register(cls)

    def recognise_config(self, path: Path, config: dict[str, Any]) -> Match | None:
        """Whether a folder whose config.json is `config` holds this format (checked before any weight is read)."""
        return None

    def recognise_weights(self, path: Path, state: dict[str, Any]) -> Match | None:
        """Whether the state dict `state` (read from the file or folder `path`) is this format's."""
        return None

    def load(self, path: Path, variant: str | None = None, backbone: str | None = None,
             fake_label: str | None = None) -> Converted:
        """The source at `path` (a local file or folder) read into a `Converted`; ConvertError when it cannot be
        converted exactly. `variant` is `--detector`, `backbone` `--backbone`, `fake_label` `--fake-label`."""
        raise NotImplementedError


_REGISTRY: dict[str, type[SourceFormat]] = {}
_discovered = False


def register(cls: type[SourceFormat]) -> type[SourceFormat]:
    """Add a format to the registry (done by defining a SourceFormat subclass with a `name`)."""
    known = _REGISTRY.get(cls.name)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise TypeError(f"source format {cls.name!r} is defined twice: {known.__module__} and {cls.__module__}")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    """Import every module of this package once, so each file's formats register themselves."""
    global _discovered
    if _discovered:
        return
    package = sys.modules[__package__]  # imported before any of its modules; its __path__ may have grown
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__package__}.{module.name}")
    _discovered = True


def formats() -> list[SourceFormat]:
    """Every registered format, in `order` (then name)."""
    _discover()
    return [cls() for cls in sorted(_REGISTRY.values(), key=lambda cls: (cls.order, cls.name))]


def format_names() -> list[str]:
    """The `--from` values: every registered format's name, in order."""
    return [source_format.name for source_format in formats()]


def get_format(name: str) -> SourceFormat:
    """The format called `name`; ConvertError naming `--from` otherwise."""
    for source_format in formats():
        if source_format.name == name:
            return source_format
    raise ConvertError(f"--from {name}: not one of auto, {', '.join(format_names())}")


__all__ = ["ConvertError", "Converted", "Match", "SourceFormat", "SourceInfo", "format_names", "formats",
           "get_format", "register"]
