"""An image processor that repeats a published detector's own test-time transform, step for step, with the library
that source uses (remote code: copied into converted detector folders beside modeling_deepfake.py, so it imports
nothing from the package).

Stock transformers processors resize with torchvision (or with PIL under `backend="pil"`) and floor the centre
crop's offset; some sources do otherwise, and the difference moves a detector's probability by more than 1e-5:

- DeepfakeBench reads a crop with OpenCV, converts BGR to RGB and resizes it with `cv2.resize(..., INTER_CUBIC)`
  (`resize_library="opencv"`);
- UnivFD (torchvision `CenterCrop(224)` on the PIL image, no resize) and timm's evaluation transform (GenD's
  Perception Encoder: torchvision `Resize` on the PIL image, then `CenterCrop`) round the crop offset with Python's
  `round` and pad an image smaller than the crop with zeros (`resize_library="pil"`, torchvision's crop);
- GenD's CLIP and DINOv2 backbones were preprocessed by transformers 4.56's PIL ("slow") processors, which floor the
  crop offset (`crop_rounding="floor"`); transformers 5 keeps that class as `*ImageProcessorPil` but a saved folder
  cannot ask for it (`pipeline` loads the torchvision backend), so the steps are written out here.

The steps, in order: resize (optional; `size` is {"height", "width"} or {"shortest_edge"}, the long side
`int(shortest_edge * long / short)` as torchvision and transformers compute it), a centre crop (optional;
torchvision's or transformers' offsets), then `x / 255` and `(x - mean) / std` in float32, as torchvision's
`ToTensor` and `Normalize` do.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from transformers.feature_extraction_utils import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor

RESIZE_LIBRARIES = ("opencv", "pil", "torchvision")
# Stock processors whose own `_preprocess` rescales to [0, 1] before resizing (the others resize the uint8 image)
RESCALE_FIRST = ("DINOv3ViTImageProcessor",)
# PIL's resampling codes, as transformers saves `resample`
BILINEAR, BICUBIC = 2, 3


class DeepfakeImageProcessor(BaseImageProcessor):
    """A source's exact test-time transform (see the module docstring); `describe()` says it in one line."""

    model_input_names = ["pixel_values"]

    def __init__(self, do_resize: bool = True, size: dict[str, int] | None = None, resample: int = BICUBIC,
                 resize_library: str = "pil", do_center_crop: bool = False, crop_size: dict[str, int] | None = None,
                 do_rescale: bool = True, rescale_factor: float = 1 / 255, do_normalize: bool = True,
                 image_mean: list[float] | None = None, image_std: list[float] | None = None,
                 do_convert_rgb: bool = True, source_transform: str | None = None,
                 crop_rounding: str = "torchvision", **kwargs: Any) -> None:
        kwargs.pop("image_processor_type", None)
        super().__init__(**kwargs)
        if resize_library not in RESIZE_LIBRARIES:
            raise ValueError(f"resize_library {resize_library!r}: not one of {', '.join(RESIZE_LIBRARIES)}")
        if crop_rounding not in ("torchvision", "floor"):
            raise ValueError(f"crop_rounding {crop_rounding!r}: not torchvision or floor")
        if resample not in (BILINEAR, BICUBIC):
            raise ValueError(f"resample {resample!r}: only bilinear (2) and bicubic (3) are supported")
        if do_rescale and rescale_factor != 1 / 255:
            raise ValueError(f"rescale_factor {rescale_factor}: only 1/255 (torchvision's ToTensor) is supported")
        self.do_resize = bool(do_resize)
        self.size = dict(size or {"height": 224, "width": 224})
        self.resample = int(resample)
        self.resize_library = resize_library
        self.do_center_crop = bool(do_center_crop)
        self.crop_rounding = crop_rounding
        self.crop_size = dict(crop_size or {"height": 224, "width": 224})
        self.do_rescale = bool(do_rescale)
        self.rescale_factor = rescale_factor
        self.do_normalize = bool(do_normalize)
        self.image_mean = list(image_mean if image_mean is not None else [0.5, 0.5, 0.5])
        self.image_std = list(image_std if image_std is not None else [0.5, 0.5, 0.5])
        self.do_convert_rgb = bool(do_convert_rgb)
        self.source_transform = source_transform  # the source's own words for this transform, for the model card

    # ------------------------------------------------------------------------------------------- steps
    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) after the resize: `size`, or the short side to `shortest_edge` (long side floored)."""
        if "shortest_edge" in self.size:
            edge = int(self.size["shortest_edge"])
            short, long = (width, height) if width <= height else (height, width)
            new_short, new_long = edge, int(edge * long / short)
            return (new_long, new_short) if width <= height else (new_short, new_long)
        return int(self.size["height"]), int(self.size["width"])

    def resize_array(self, image: np.ndarray) -> np.ndarray:
        """`image` (H, W, 3) uint8 resized with the source's library; unchanged when already that size."""
        height, width = self.output_size(*image.shape[:2])
        if (height, width) == image.shape[:2] and self.resize_library != "opencv":
            return image  # torchvision returns the image itself; PIL copies it
        if self.resize_library == "opencv":
            try:
                import cv2
            except ImportError:
                raise ImportError("this detector's preprocessing is OpenCV's resize: pip install "
                                  "opencv-python-headless") from None
            flag = cv2.INTER_CUBIC if self.resample == BICUBIC else cv2.INTER_LINEAR
            return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=flag)
        if self.resize_library == "pil":
            from PIL import Image

            return np.asarray(Image.fromarray(image).resize((width, height), resample=self.resample))
        import torch
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional

        mode = InterpolationMode.BICUBIC if self.resample == BICUBIC else InterpolationMode.BILINEAR
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        resized = functional.resize(tensor, [height, width], interpolation=mode, antialias=True)
        return resized.permute(1, 2, 0).numpy()

    def center_crop_array(self, image: np.ndarray) -> np.ndarray:
        """A centre crop with zero padding when the image is smaller. torchvision's `CenterCrop` pads (d // 2) before
        and rounds the offset (`int(round(d / 2))`, half to even); transformers' `center_crop` pads ceil(d / 2)
        before and floors the offset."""
        crop_height, crop_width = int(self.crop_size["height"]), int(self.crop_size["width"])
        height, width = image.shape[:2]
        if crop_height > height or crop_width > width:
            extra_height, extra_width = max(crop_height - height, 0), max(crop_width - width, 0)
            before = (lambda d: d // 2) if self.crop_rounding == "torchvision" else (lambda d: (d + 1) // 2)
            pad_top, pad_left = before(extra_height), before(extra_width)
            image = np.pad(image, ((pad_top, extra_height - pad_top), (pad_left, extra_width - pad_left), (0, 0)))
            height, width = image.shape[:2]
        if self.crop_rounding == "torchvision":
            top, left = int(round((height - crop_height) / 2.0)), int(round((width - crop_width) / 2.0))
        else:
            top, left = (height - crop_height) // 2, (width - crop_width) // 2
        return image[top:top + crop_height, left:left + crop_width]

    def to_pixel_values(self, image: np.ndarray) -> Any:
        """(3, H, W) float32: torchvision's `ToTensor` (x / 255) then `Normalize` ((x - mean) / std)."""
        import torch

        tensor = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).to(torch.float32)  # a copy
        if self.do_rescale:
            tensor = tensor.div(255)
        if self.do_normalize:
            mean = torch.as_tensor(self.image_mean, dtype=torch.float32).view(-1, 1, 1)
            std = torch.as_tensor(self.image_std, dtype=torch.float32).view(-1, 1, 1)
            tensor = tensor.sub(mean).div(std)
        return tensor

    def preprocess(self, images: Any, return_tensors: str | None = "pt", **kwargs: Any) -> BatchFeature:
        """Pixel values of one image or a list (PIL images, or (H, W, 3) uint8 arrays in RGB order)."""
        import torch

        batch = images if isinstance(images, (list, tuple)) else [images]
        outputs = []
        for image in batch:
            array = _rgb_array(image, self.do_convert_rgb)
            if self.do_resize:
                array = self.resize_array(array)
            if self.do_center_crop:
                array = self.center_crop_array(array)
            outputs.append(self.to_pixel_values(array))
        if return_tensors == "pt":
            return BatchFeature(data={"pixel_values": torch.stack(outputs)})
        return BatchFeature(data={"pixel_values": [output.numpy() for output in outputs]}, tensor_type=return_tensors)

    def describe(self) -> str:
        """This transform in one line, from its settings (the model card's input row)."""
        steps = []
        if self.do_resize:
            target = (f"short side {self.size['shortest_edge']}" if "shortest_edge" in self.size
                      else f"{self.size['height']}x{self.size['width']}")
            how = {"opencv": "OpenCV cv2.resize ({})", "pil": "PIL Image.resize ({})",
                   "torchvision": "torchvision resize ({}, antialias)"}[self.resize_library]
            flag = {("opencv", BICUBIC): "INTER_CUBIC", ("opencv", BILINEAR): "INTER_LINEAR"}.get(
                (self.resize_library, self.resample), "bicubic" if self.resample == BICUBIC else "bilinear")
            steps.append(f"resize to {target} with {how.format(flag)}")
        else:
            steps.append("no resize")
        if self.do_center_crop:
            name, offset = (("torchvision CenterCrop", "rounded") if self.crop_rounding == "torchvision"
                            else ("transformers center_crop", "floored"))
            steps.append(f"{name} {self.crop_size['height']}x{self.crop_size['width']} (offset {offset}, zero padding "
                         "when smaller)")
        steps.append(f"x/255, mean {_short(self.image_mean)}, std {_short(self.image_std)}")
        text = ", ".join(steps)
        return f"{self.source_transform}: {text}" if self.source_transform else text


def describe_settings(settings: dict[str, Any]) -> str:
    """One line saying what a saved processor does, from its preprocessor_config.json settings (never running a
    folder's code): DeepfakeImageProcessor's own `describe()`, else a stock transformers processor's steps as
    `pipeline` runs them (transformers 5 loads the torchvision backend unless the class is a `*Pil` one)."""
    name = str(settings.get("image_processor_type") or "image processor")
    if name == "DeepfakeImageProcessor":
        own = {key: value for key, value in settings.items() if key not in ("auto_map", "processor_class")}
        return DeepfakeImageProcessor(**own).describe()
    library = "PIL" if name.endswith("Pil") else "torchvision"
    steps = []
    if settings.get("do_resize", True):
        size = settings.get("size") or {}
        target = (f"short side {size['shortest_edge']}" if "shortest_edge" in size
                  else f"{size.get('height')}x{size.get('width')}")
        code = settings.get("resample")
        resample = {2: "bilinear", 3: "bicubic"}.get(code, f"resample {code}") if isinstance(code, int) else \
            f"resample {code}"
        steps.append(f"resize to {target} ({library}, {resample})")
    else:
        steps.append("no resize")
    if settings.get("do_center_crop"):
        crop = settings.get("crop_size") or {}
        steps.append(f"centre crop {crop.get('height')}x{crop.get('width')} (offset floored)")
    mean, std = settings.get("image_mean"), settings.get("image_std")
    if name.removesuffix("Fast") in RESCALE_FIRST and settings.get("do_rescale", True):
        steps.insert(0, "x/255 (before the resize, which runs on the float image)")
        steps.append(f"mean {_short(mean)}, std {_short(std)}" if settings.get("do_normalize", True) else "")
        return f"{name}: " + ", ".join(step for step in steps if step)
    steps.append(f"x/255, mean {_short(mean)}, std {_short(std)}" if settings.get("do_normalize", True) else "x/255")
    return f"{name}: " + ", ".join(steps)


def _short(values: Any) -> str:
    return "[" + ", ".join(f"{value:g}" for value in values) + "]" if values else "none"


def _rgb_array(image: Any, convert_rgb: bool) -> np.ndarray:
    """(H, W, 3) uint8 RGB array of a PIL image or an array (a 2-D array is grey: repeated to 3 channels)."""
    if hasattr(image, "convert"):  # PIL
        return np.asarray(image.convert("RGB") if convert_rgb else image)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)  # channels first -> last
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels (as read from an image file), got {array.dtype}")
    return array


__all__ = ["DeepfakeImageProcessor", "describe_settings"]
