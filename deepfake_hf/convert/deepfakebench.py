"""DeepfakeBench (SCLBD/DeepfakeBench) `.pth` state dicts of its `clip`, `effort` and `xception` detectors.

`clip`: CLIP vision `backbone.*`, `pooler_output`, `head` Linear. `effort`: the same, with every self-attention
Linear stored as `weight_main + U_residual @ diag(S_residual) @ V_residual`, which is merged into one plain weight
(the layer is linear in its weight, so the merge is exact). `xception`: the Cadene/FaceForensics++ port of Xception
under `backbone.*`, `backbone.last_linear` head; its layer names and operations are timm's `legacy_xception`, run
through TimmWrapperModel. `efficientnetb4` is refused: see NOT_CONVERTED.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepfake_hf.convert.base import Converted, ConvertError, Match, SourceFormat, SourceInfo
from deepfake_hf.convert.encoders import encoder_config, timm_backbone
from deepfake_hf.convert.loading import SourceState, head, load_weights, source_name, take
from deepfake_hf.convert.processors import CLIP_MEAN, CLIP_STD, deepfakebench_processor

DETECTORS = ("clip", "effort", "xception")
# DeepfakeBench detectors no encoder here computes exactly, with the reason.
NOT_CONVERTED = {
    # efficientnet_pytorch's Conv2dStaticSamePadding fixes each convolution's padding for the model's nominal
    # 380-pixel input (asymmetric (0, 1) on its stride-2 3x3 layers), DeepfakeBench swaps the stem for an unpadded
    # Conv2d and runs at 256: the stem gives 127 x 127 where every timm EfficientNet gives 128 x 128 (symmetric or
    # input-dependent TF "same" padding), so no timm EfficientNet-B4 computes its features.
    "efficientnetb4": ("DeepfakeBench's efficientnetb4 pads its convolutions for 380-pixel inputs and not its stem "
                       "at all while running at 256; no timm EfficientNet pads that way (its feature maps differ in "
                       "size from the stem on), so it cannot be converted exactly"),
}
# DeepfakeBench's Xception is the FaceForensics++ / Cadene port, whose layer names timm's legacy_xception kept.
XCEPTION_ARCHITECTURE = "legacy_xception"
# DeepfakeBench's data settings for its CNN detectors (config/detector/xception.yaml): 256 x 256, mean = std = 0.5.
DEEPFAKEBENCH_RESOLUTION = 256

SOURCES = {
    "clip": SourceInfo(
        title="DeepfakeBench CLIP detector",
        paper="Yan et al., DeepfakeBench (NeurIPS 2023 Datasets and Benchmarks)",
        code="https://github.com/SCLBD/DeepfakeBench",
        licence="CC BY-NC 4.0 (DeepfakeBench)",
        backbone="openai/clip-vit-base-patch16 vision tower, pooler_output, Linear(768, 2)",
        input="DeepfakeBench-aligned 256x256 face crops (its preprocessing, dlib 81 landmarks, scale 1.3)",
    ),
    "effort": SourceInfo(
        title="Effort (DeepfakeBench)",
        paper="Yan et al., Effort: Orthogonal Subspace Decomposition for Generalizable AI-Generated Image "
              "Detection (ICML 2025)",
        code="https://github.com/SCLBD/DeepfakeBench",
        licence="CC BY-NC 4.0 (DeepfakeBench)",
        backbone="openai/clip-vit-large-patch14 vision tower with SVD-residual attention (merged), "
                 "pooler_output, Linear(1024, 2)",
        input="DeepfakeBench-aligned 256x256 face crops (its preprocessing, dlib 81 landmarks, scale 1.3)",
        published="AUROC trained on FF++ c23, as DeepfakeBench reports it: CDFv2 0.956, DFD 0.965, DFDC 0.843, "
                  "FFIW 0.921",
    ),
    "xception": SourceInfo(
        title="Xception (DeepfakeBench)",
        paper="Rossler et al., FaceForensics++ (ICCV 2019), Xception baseline as trained by DeepfakeBench (Yan et al., "
              "NeurIPS 2023 Datasets and Benchmarks)",
        code="https://github.com/SCLBD/DeepfakeBench",
        licence="CC BY-NC 4.0 (DeepfakeBench)",
        backbone="Xception (timm legacy_xception through transformers' TimmWrapperModel), global average pool, "
                 "Linear(2048, 2)",
        input="DeepfakeBench-aligned 256x256 face crops (its preprocessing, dlib 81 landmarks, scale 1.3)",
        published="AUROC trained on FF++ c23, as DeepfakeBench reports it: CDFv2 0.737, DFDC 0.708",
    ),
}


class DeepfakeBench(SourceFormat):
    name = "deepfakebench"
    description = ("DeepfakeBench .pth state dict: --detector clip | effort (SVD residuals merged) | xception "
                   "(timm legacy_xception); efficientnetb4 refused (its padding has no timm equivalent)")
    # Its detectors are trained and evaluated on DeepfakeBench's own face crops.
    face_preprocessing = "deepfakebench"
    variants = DETECTORS
    order = 20

    def recognise_weights(self, path: Path, state: dict[str, Any]) -> Match | None:
        """The detector whose keys `state` has (efficientnetb4 too, so that converting it says why it is not)."""
        keys = set(state)
        if any(key.endswith((".U_residual", ".weight_main")) for key in keys):
            return Match("effort")
        if "head.weight" in keys and any(key.startswith("backbone.embeddings.") for key in keys):
            return Match("clip")
        if "backbone.block1.rep.0.conv1.weight" in keys and any(key.startswith("backbone.last_linear.")
                                                                for key in keys):
            return Match("xception")
        if "backbone.efficientnet._conv_stem.weight" in keys:
            return Match("efficientnetb4")
        return None

    def load(self, path: Path, variant: str | None = None, backbone: str | None = None,
             fake_label: str | None = None) -> Converted:
        """The detector `variant` (read off the keys when None) of the checkpoint at `path`."""
        state = load_weights(path)
        if variant is None:
            match = self.recognise_weights(path, state)
            if match is None:
                raise ConvertError(f"{path}: cannot tell the DeepfakeBench detector from its keys (e.g. "
                                   f"{sorted(state)[:3]}); pass --detector {'|'.join(DETECTORS)}")
            variant = match.variant
        if variant in NOT_CONVERTED:
            raise ConvertError(f"--detector {variant}: {NOT_CONVERTED[variant]}")
        if variant not in DETECTORS:
            raise ConvertError(f"--detector {variant}: not one of {', '.join(DETECTORS)}")
        if variant == "xception":
            return _xception(path, state, backbone)
        return _clip(path, state, variant, backbone)


def _clip(path: Path, state: dict[str, Any], detector: str, backbone: str | None) -> Converted:
    """The clip and effort detectors: a CLIP vision model under `backbone.*` (pooler_output), Linear `head`."""
    if detector == "effort":
        state = merge_effort_attention(state, path)
    elif any(key.endswith(".weight_main") for key in state):
        raise ConvertError(f"{path}: has Effort's SVD-residual keys; use --detector effort")
    weight, bias = head(state, "head.", path)
    encoder_state = take(state, "backbone.", path)
    encoder = encoder_config(backbone, state, clip_prefix="backbone.")
    if encoder.model_type != "clip_vision_model":
        raise ConvertError(f"--backbone {backbone}: DeepfakeBench's {detector} detector is a CLIP vision model, "
                           f"got {encoder.model_type!r}")
    size = encoder.image_size
    mean, std = (CLIP_MEAN, CLIP_STD) if detector == "effort" else ([0.5] * 3, [0.5] * 3)
    return Converted(encoder, "pooler", False, encoder_state, weight, bias, deepfakebench_processor(size, mean, std),
                     f"deepfakebench-{detector}", f"DeepfakeBench {detector} detector", SOURCES[detector],
                     variant=detector, encoder_prefix="backbone.")


def _xception(path: Path, state: dict[str, Any], backbone: str | None) -> Converted:
    """DeepfakeBench's xception detector: `backbone.*` is the Xception (timm legacy_xception's names), head
    `backbone.last_linear` (`last_linear.1` when trained with dropout); the detector classifies
    last_linear(avg_pool(relu(bn4 output))), which is TimmWrapperModel's pooler_output followed by that Linear.

    Its config's mode "original" is assumed: "shallow_xception" (blocks 4-11 skipped) saves the same keys and
    cannot be told from them; "adjust_channel_iid" is refused by its head's shape (512 inputs)."""
    outside = sorted(key for key in state if not key.startswith("backbone."))
    if outside:
        raise ConvertError(f"{path}: unexpected key {source_name(state, outside[0])!r}: DeepfakeBench's xception "
                           "detector keeps every "
                           "weight under backbone.* (another detector built on Xception is not converted)")
    prefix = "backbone.last_linear.1." if "backbone.last_linear.1.weight" in state else "backbone.last_linear."
    weight, bias = head(state, prefix, path)
    if weight.ndim != 2 or weight.shape[1] != 2048:
        raise ConvertError(f"{path}: {prefix}weight has shape {tuple(weight.shape)}; the xception detector's head is "
                           "Linear(2048, 2) (an adjust_channel Xception is not converted)")
    # adjust_channel is built in every mode but used only in DeepfakeBench's adjust_channel modes.
    taken = take(state, "backbone.", path)
    encoder_state = SourceState({key: value for key, value in taken.items()
                                 if not key.startswith(("last_linear.", "adjust_channel."))})
    encoder_state.wrapper = taken.wrapper
    encoder = timm_backbone(backbone, "DeepfakeBench's Xception", (XCEPTION_ARCHITECTURE,))
    processor = deepfakebench_processor(DEEPFAKEBENCH_RESOLUTION, [0.5] * 3, [0.5] * 3)
    return Converted(encoder, "pooler", False, encoder_state, weight, bias, processor, "deepfakebench-xception",
                     "DeepfakeBench xception detector (timm legacy_xception)", SOURCES["xception"], variant="xception",
                     encoder_prefix="backbone.")


def merge_effort_attention(state: dict[str, Any], path: Any = "effort checkpoint") -> dict[str, Any]:
    """Effort's SVD-residual attention Linear layers merged into plain `weight` tensors, exactly.

    `weight = weight_main + U_residual @ diag(S_residual) @ V_residual` is the weight its forward
    applies (F.linear(x, weight, bias)); computed in float64 and cast back so the merge adds no error
    beyond the final rounding.
    """
    import torch

    merged = SourceState()
    merged.wrapper = getattr(state, "wrapper", "")
    residual_parts: dict[str, dict[str, Any]] = {}
    for key, value in state.items():
        stem, _, name = key.rpartition(".")
        if name in ("weight_main", "U_residual", "S_residual", "V_residual"):
            residual_parts.setdefault(stem, {})[name] = value
        else:
            merged[key] = value
    for stem, parts in residual_parts.items():
        if "weight_main" not in parts:
            raise ConvertError(f"{path}: missing key {source_name(state, stem + '.weight_main')!r}")
        weight = parts["weight_main"].double()
        if any(name in parts for name in ("U_residual", "S_residual", "V_residual")):
            missing = [n for n in ("U_residual", "S_residual", "V_residual") if n not in parts]
            if missing:
                raise ConvertError(f"{path}: missing key {source_name(state, stem + '.' + missing[0])!r}")
            u, s, v = parts["U_residual"].double(), parts["S_residual"].double(), parts["V_residual"].double()
            if u.shape[0] != weight.shape[0] or v.shape[1] != weight.shape[1] or u.shape[1] != s.shape[0] != v.shape[0]:
                raise ConvertError(f"{path}: {source_name(state, stem)}: residual shapes U {tuple(u.shape)}, "
                                   f"S {tuple(s.shape)}, V {tuple(v.shape)} do not match weight_main "
                                   f"{tuple(weight.shape)}")
            weight = weight + u @ torch.diag(s) @ v
        merged[stem + ".weight"] = weight.to(parts["weight_main"].dtype)
    return merged


__all__ = ["DETECTORS", "NOT_CONVERTED", "DeepfakeBench", "merge_effort_attention"]
