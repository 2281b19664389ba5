"""Image processors a converted detector saves: each repeats its source's test-time transform with the library the
source uses (tests/test_processors.py checks each against the source's documented steps, to 1e-6).

Where a stock transformers processor does the source's steps exactly it is used (GenD's CLIP and DINO backbones:
the backbone's own processor, with the backend transformers 4.56 picked for it); otherwise the package's
`DeepfakeImageProcessor` (remote code saved beside modeling_deepfake.py) names the library and the steps.
"""

from __future__ import annotations

import math
from typing import Any

from deepfake_hf.convert.base import ConvertError
from deepfake_hf.errors import one_line

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# timm interpolation names -> PIL resampling codes (transformers' `resample`)
TIMM_INTERPOLATION = {"bilinear": 2, "bicubic": 3}


def backbone_processor(backbone: Any, where: str) -> Any:
    """The image processor published with `backbone` (a local folder or a Hub id), loaded as the source loaded it.

    GenD (transformers 4.56.2) calls `AutoImageProcessor` / `CLIPProcessor.from_pretrained(backbone)`, which in
    4.56 gives the PIL ("slow") class unless the saved `image_processor_type` ends in "Fast" (DINOv3's does); the
    same choice is made here with transformers 5's `backend`. ConvertError naming the file when there is none:
    convert never substitutes a guess."""
    from transformers import AutoImageProcessor
    from transformers.image_processing_base import ImageProcessingMixin

    name = str(backbone)
    try:
        settings, _ = ImageProcessingMixin.get_image_processor_dict(name)
    except Exception as error:  # no preprocessor_config.json, or offline with nothing cached
        raise ConvertError(f"{where}: {name} has no readable preprocessor_config.json ({one_line(error, 120)}); the "
                           "source's preprocessing is read from it: pass --backbone a folder holding the backbone's "
                           "config.json and preprocessor_config.json") from None
    saved_type = str(settings.get("image_processor_type") or settings.get("feature_extractor_type") or "")
    backend = "torchvision" if saved_type.endswith("Fast") else "pil"
    try:  # False, not None: a processor auto_map is refused, never asked about on stdin or run
        processor = AutoImageProcessor.from_pretrained(name, backend=backend, trust_remote_code=False)
    except Exception as error:
        raise ConvertError(f"{where}: cannot load {name}'s preprocessor_config.json ({one_line(error, 160)})") from None
    # A saved folder cannot ask for the PIL backend (pipeline loads torchvision's), so PIL steps are written out.
    return processor if backend == "torchvision" else pil_steps(processor, f"{where}: {name}")


def pil_steps(processor: Any, where: str) -> Any:
    """A DeepfakeImageProcessor doing what a transformers PIL processor does (PIL resize, centre crop with floored
    offsets, rescale, normalise); ConvertError when the processor has steps it does not repeat."""
    from deepfake_hf.image_processing_deepfake import DeepfakeImageProcessor

    settings = processor.to_dict()
    active = [key for key in ("do_pad", "do_reduce_labels", "crop_pct") if settings.get(key)]
    resample = settings.get("resample")
    if active or resample not in (2, 3) or (settings.get("do_rescale", True)
                                            and abs(settings.get("rescale_factor", 1 / 255) - 1 / 255) > 1e-12):
        raise ConvertError(f"{where}: {type(processor).__name__} with {active or f'resample {resample}'} is not "
                           "reproduced exactly")
    return DeepfakeImageProcessor(
        do_resize=settings.get("do_resize", True), size=settings.get("size"), resample=resample, resize_library="pil",
        do_center_crop=bool(settings.get("do_center_crop")), crop_size=settings.get("crop_size"),
        crop_rounding="floor", do_rescale=settings.get("do_rescale", True), do_normalize=settings.get("do_normalize",
                                                                                                    True),
        image_mean=list(settings.get("image_mean")), image_std=list(settings.get("image_std")),
        source_transform=f"transformers 4.56 {type(processor).__name__.removesuffix('Pil')} (PIL)")


def deepfakebench_processor(size: int, mean: list[float], std: list[float]) -> Any:
    """DeepfakeBench's `load_rgb` + `normalize`: cv2.cvtColor(BGR2RGB), cv2.resize to size x size (INTER_CUBIC),
    ToTensor, Normalize(mean, std)."""
    from deepfake_hf.image_processing_deepfake import DeepfakeImageProcessor

    return DeepfakeImageProcessor(size={"height": size, "width": size}, resize_library="opencv", resample=3,
                                  image_mean=list(mean), image_std=list(std),
                                  source_transform="DeepfakeBench abstract_dataset (cv2.cvtColor BGR2RGB)")


def univfd_processor(size: int) -> Any:
    """UnivFD's evaluation transform (validate.py): torchvision CenterCrop(size) of the PIL image, ToTensor,
    Normalize with CLIP's statistics; no resize."""
    from deepfake_hf.image_processing_deepfake import DeepfakeImageProcessor

    return DeepfakeImageProcessor(do_resize=False, do_center_crop=True, crop_size={"height": size, "width": size},
                                  image_mean=CLIP_MEAN, image_std=CLIP_STD,
                                  source_transform="UnivFD validate.py (PIL image, torchvision transforms)")


def timm_eval_processor(data_config: dict[str, Any], size: int) -> Any:
    """timm's `create_transform(**data_config, is_training=False)` at input `size` (GenD's Perception Encoder):
    torchvision Resize(floor(size / crop_pct)) of the PIL image (short side), CenterCrop(size), ToTensor,
    Normalize(mean, std)."""
    from deepfake_hf.image_processing_deepfake import DeepfakeImageProcessor

    crop_mode = data_config.get("crop_mode") or "center"
    interpolation = data_config.get("interpolation") or "bilinear"
    if crop_mode != "center" or interpolation not in TIMM_INTERPOLATION:
        raise ConvertError(f"timm data config: crop_mode {crop_mode!r}, interpolation {interpolation!r}; only timm's "
                           "centre crop with bilinear or bicubic resizing is reproduced exactly")
    crop_pct = data_config.get("crop_pct") or 0.875  # timm's DEFAULT_CROP_PCT
    return DeepfakeImageProcessor(size={"shortest_edge": math.floor(size / crop_pct)}, resize_library="pil",
                                  resample=TIMM_INTERPOLATION[interpolation], do_center_crop=True,
                                  crop_size={"height": size, "width": size},
                                  image_mean=list(data_config.get("mean") or IMAGENET_MEAN),
                                  image_std=list(data_config.get("std") or IMAGENET_STD),
                                  source_transform="timm create_transform, evaluation (PIL image, torchvision "
                                                   "transforms)")


def describe_processor(processor: Any) -> str:
    """One line saying what a saved processor does to an image (the model card's preprocessing row)."""
    from deepfake_hf.image_processing_deepfake import describe_settings

    if hasattr(processor, "describe"):
        return processor.describe()
    return describe_settings({**processor.to_dict(), "image_processor_type": type(processor).__name__})


__all__ = ["CLIP_MEAN", "CLIP_STD", "IMAGENET_MEAN", "IMAGENET_STD", "backbone_processor", "deepfakebench_processor",
           "describe_processor", "pil_steps", "timm_eval_processor", "univfd_processor"]
