"""The model card (README.md) of a converted detector: where it came from, what it expects, what was published."""

from __future__ import annotations

import os
import re
from pathlib import Path

from deepfake_hf.convert.base import Converted
from deepfake_hf.convert.processors import describe_processor


def _source_licence(path: str | os.PathLike) -> str | None:
    """The licence a source folder's README.md declares in its front matter, or None."""
    readme = Path(path) / "README.md" if Path(path).is_dir() else None
    if readme is not None and readme.is_file():
        match = re.search(r"^license:\s*(\S+)", readme.read_text(encoding="utf-8", errors="replace"), re.MULTILINE)
        if match:
            return match.group(1)
    return None


def render_card(converted: Converted, source: str | os.PathLike, path: str | os.PathLike,
                face_preprocessing: str | None) -> str:
    """README.md of a detector converted from `source` (read at `path`), whose config records `face_preprocessing`."""
    info = converted.info
    licence = _source_licence(path) or info.licence
    lines = [
        "---", "library_name: transformers", "pipeline_tag: image-classification",
        "tags: [deepfake-detection, image-classification, converted]", "---", "",
        f"# {info.title}, converted for transformers", "",
        f"Converted with `deepfake-hf convert` from `{source}`: {converted.description}. The weights are the "
        "source's, rearranged exactly (a test checks that the converted model scores what the source's forward "
        "scores, within 1e-5); nothing was retrained.", "",
        "```python", "from transformers import pipeline", "",
        "detector = pipeline(\"image-classification\", model=\"PATH_OR_REPO\", trust_remote_code=True)",
        "detector(\"face.png\")  # [{'label': 'fake', 'score': ...}, {'label': 'real', 'score': ...}]", "```", "",
        "| | |", "|---|---|",
        f"| source | {info.code or source} |",
        f"| paper | {info.paper} |",
        f"| licence | {licence} |",
        f"| backbone | {info.backbone} |",
        f"| input the source was evaluated on | {info.input} |",
        # written from the processor saved in this folder, so the card cannot drift from what runs
        f"| preprocessing saved (the source's test-time transform) | {describe_processor(converted.processor)} |",
        f"| face preprocessing recorded | {face_preprocessing or 'none recorded'} |",
        f"| published cross-dataset results | {info.published} |", "",
        "Labels: `fake` means manipulated or synthetic, `real` means authentic. Published numbers are the "
        "source's, quoted with their citation; they were not re-measured here.", "",
        *(line for note in info.notes for line in (note, "")),
    ]
    return "\n".join(lines)


__all__ = ["render_card"]
