"""The Inference Endpoints files of a model folder: `handler.py` (a copy of `publish/endpoint_handler.py`) and
the `requirements.txt` an endpoint installs before importing it.

`push` writes them into every model repo it assembles, `convert` and `export --native` into their output folders.
The handler is not remote code for transformers: `from_pretrained` and `pipeline` never run it; only an endpoint
created from the repo does (Inference Endpoints runs a repo's `handler.py` as a custom handler).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

HANDLER_FILE = "handler.py"
REQUIREMENTS_FILE = "requirements.txt"
HANDLER_TEMPLATE = Path(__file__).with_name("endpoint_handler.py")
# What the handler needs besides the core package: video decoding (PyAV) for videos, and the faces extra because
# a model that records a face mode finds faces with dlib: without it the handler could not load such a model.
HANDLER_EXTRAS = ("video", "faces")
TIMM_MODEL_TYPE = "timm_wrapper"
GEND_FACE_MODE = "gend"


def handler_requirements(folder: str | os.PathLike) -> list[str]:
    """requirements.txt lines for the handler of the model in `folder`: deepfake-hf with the extras it needs
    (`timm` too for a timm encoder), at least this version (the handler uses its API)."""
    from deepfake_hf import __version__

    extras = list(HANDLER_EXTRAS)
    config = _read_config(Path(folder) / "config.json")
    if TIMM_MODEL_TYPE in _model_types(config):
        extras.append("timm")
    if config.get("face_preprocessing") == GEND_FACE_MODE:  # SCRFD through onnxruntime (faces/gend.py)
        extras.append("gend-faces")
    return [f"deepfake-hf[{','.join(extras)}]>={__version__}"]


def _read_config(config_path: Path) -> dict:
    from deepfake_hf.safety import UnsafeFileError, read_json

    try:
        config = read_json(config_path)
    except (OSError, UnsafeFileError, json.JSONDecodeError):
        return {}
    return config if isinstance(config, dict) else {}


def _model_types(config: dict) -> set[str]:
    backbone = config.get("backbone_config")
    return {value for value in (config.get("model_type"), (backbone or {}).get("model_type")
                                if isinstance(backbone, dict) else None) if isinstance(value, str)}


def write_handler(folder: str | os.PathLike) -> list[Path]:
    """Write handler.py and requirements.txt into the model folder `folder`; returns their paths."""
    folder = Path(folder)
    handler = folder / HANDLER_FILE
    handler.write_text(HANDLER_TEMPLATE.read_text(encoding="utf-8"), encoding="utf-8")
    requirements = folder / REQUIREMENTS_FILE
    requirements.write_text("\n".join(handler_requirements(folder)) + "\n", encoding="utf-8")
    return [handler, requirements]


__all__ = ["HANDLER_FILE", "REQUIREMENTS_FILE", "handler_requirements", "write_handler"]
