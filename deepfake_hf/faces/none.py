"""The "none" face mode: finds no faces, so whole frames (or whole photos) are scored."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from deepfake_hf.faces.base import NO_FACES, Face, FaceMode, register


@register
class NoFaceDetector(FaceMode):
    """Finds no faces: the whole frame is scored."""

    name = NO_FACES
    description = "whole frames"
    order = 90
    finds_faces = False
    auto = True  # the fallback when no detector is installed
    recorded = True  # a model trained on whole images or ready-made crops records it

    def detect(self, image: Any) -> list[Face]:
        return []

    def detect_video(self, frames: Iterable[Any]) -> Iterator[list[Face]]:
        return ([] for _ in frames)
