"""Offline end-to-end run that needs no downloads.

This first version builds a small *randomly initialised* ViT detector, saves it (remote code +
image processor), exports it as a stock ViTForImageClassification, and scores a generated image
through `pipeline("image-classification")` with both. It shows the packaging works end to end;
its verdicts mean nothing because the model is untrained.
"""

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def run_quickstart(out_dir, overwrite=False, seed=0):
    from transformers import pipeline

    from . import DeepfakeDetectorConfig, DeepfakeDetectorForImageClassification, export_native

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: exists and is not empty (pass --overwrite to replace it)")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    backbone = dict(model_type="vit", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=128, image_size=64, patch_size=8)
    model = DeepfakeDetectorForImageClassification(DeepfakeDetectorConfig(backbone_config=backbone)).eval()
    model.save_pretrained(out / "model")
    export_native(out / "model", out / "model-native", overwrite=True)

    image_path = out / "sample.png"
    pixels = np.random.default_rng(seed).integers(0, 255, size=(96, 96, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(image_path)
    remote = pipeline("image-classification", model=str(out / "model"), trust_remote_code=True)(str(image_path))
    native = pipeline("image-classification", model=str(out / "model-native"))(str(image_path))
    summary = {
        "model": str(out / "model"),
        "native_export": str(out / "model-native"),
        "sample": str(image_path),
        "scores_custom": {r["label"]: round(r["score"], 6) for r in remote},
        "scores_native": {r["label"]: round(r["score"], 6) for r in native},
        "note": "random untrained model: scores show the pipeline works, not a verdict",
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
