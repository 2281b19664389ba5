"""Perturbations for robustness sweeps: JPEG re-encoding, down-then-up resizing, Gaussian blur, Gaussian noise.

`evaluate --perturb jpeg:90,70 blur:1` scores every test set again with each crop the model sees degraded.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import numpy as np

from deepfake_hf.evaluation.errors import EvaluationError

PERTURBATIONS = {
    # name: (what the strength is, whether a smaller value is a stronger perturbation, the unperturbed value)
    "jpeg": ("JPEG quality", True, 100.0),
    "resize": ("scale factor", True, 1.0),
    "blur": ("Gaussian blur sigma (px)", False, 0.0),
    "noise": ("Gaussian noise std (0-1 range)", False, 0.0),
}


def parse_perturbations(items: Iterable[str] | None) -> list[tuple[str, float]]:
    """["jpeg:90,70", "blur:1"] -> [("jpeg", 90.0), ("jpeg", 70.0), ("blur", 1.0)], validated."""
    parsed = []
    for item in items or ():
        kind, sep, values = str(item).partition(":")
        if kind not in PERTURBATIONS or not sep:
            raise EvaluationError(f"--perturb {item!r}: expected KIND:V1,V2 with KIND one of "
                                  f"{', '.join(PERTURBATIONS)}")
        for value in values.split(","):
            try:
                strength = float(value)
            except ValueError:
                raise EvaluationError(f"--perturb {item!r}: {value!r} is not a number") from None
            valid = {"jpeg": 1 <= strength <= 100, "resize": 0 < strength <= 1, "blur": strength > 0,
                     "noise": strength > 0}[kind]
            if not valid:
                raise EvaluationError(f"--perturb {item!r}: {value} out of range for {kind} "
                                      "(jpeg 1-100, resize (0, 1], blur > 0, noise > 0)")
            parsed.append((kind, strength))
    return parsed


def perturbation_name(kind: str, strength: float) -> str:
    """The key of a perturbation in metrics.json's robustness entries and the report: "jpeg:50"."""
    return f"{kind}:{strength:g}"


def perturb(image, kind: str, strength: float, seed: int = 0):
    """A degraded copy of a PIL RGB image: JPEG re-encoding, down-then-up resizing, Gaussian blur or noise."""
    from PIL import Image, ImageFilter

    image = image.convert("RGB")
    if kind == "jpeg":
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(round(strength)))
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    if kind == "resize":  # lose resolution, keep the size the processor expects
        small = (max(1, round(image.width * strength)), max(1, round(image.height * strength)))
        return image.resize(small, Image.BILINEAR).resize(image.size, Image.BILINEAR)
    if kind == "blur":
        return image.filter(ImageFilter.GaussianBlur(radius=strength))
    if kind == "noise":
        rng = np.random.default_rng(seed)
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        noisy = np.clip(pixels + rng.normal(0.0, strength, pixels.shape), 0.0, 1.0)
        return Image.fromarray((noisy * 255.0 + 0.5).astype(np.uint8))
    raise EvaluationError(f"unknown perturbation {kind!r}")
