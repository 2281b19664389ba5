"""Image processors a converted detector saves: each reproduces a source's own preprocessing exactly."""

from __future__ import annotations

from typing import Any

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def processor_of(backbone: Any) -> Any | None:
    """The image processor saved with a backbone (local folder or Hub id), or None."""
    from transformers import AutoImageProcessor

    if not backbone:
        return None
    try:
        return AutoImageProcessor.from_pretrained(str(backbone), trust_remote_code=False)
    except Exception:  # no preprocessor_config.json, or offline
        return None


def resize_processor(size: int, mean: list[float], std: list[float]) -> Any:
    """Resize straight to size x size (bicubic), no crop: DeepfakeBench's `cv2.resize(..., INTER_CUBIC)`."""
    from transformers import ViTImageProcessor
    from transformers.image_utils import PILImageResampling

    return ViTImageProcessor(size={"height": size, "width": size}, resample=PILImageResampling.BICUBIC,
                             image_mean=list(mean), image_std=list(std))


def clip_processor(size: int) -> Any:
    """CLIP's published preprocessing: short side to `size`, centre crop, CLIP statistics."""
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                              image_mean=CLIP_MEAN, image_std=CLIP_STD)


def dinov2_processor(size: int) -> Any:
    """DINOv2's published preprocessing: short side to 256/224 of the crop, centre crop, ImageNet statistics."""
    from transformers import BitImageProcessor

    return BitImageProcessor(size={"shortest_edge": round(size * 256 / 224)}, crop_size={"height": size, "width": size},
                             image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, do_convert_rgb=True)


__all__ = ["CLIP_MEAN", "CLIP_STD", "IMAGENET_MEAN", "IMAGENET_STD", "clip_processor", "dinov2_processor",
           "processor_of", "resize_processor"]
