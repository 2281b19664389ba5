"""UnivFD (Ojha et al., CVPR 2023): an `fc` Linear(768, 1) on CLIP ViT-L/14 image features.

The features are `visual_projection(pooler_output)`; no nonlinearity sits between the projection and `fc`, so the
two fold into one head row W = W_fc @ W_proj (fake logit z, real logit 0, softmax = sigmoid(z)).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deepfake_hf.convert.base import Converted, ConvertError, Match, SourceFormat, SourceInfo
from deepfake_hf.convert.encoders import load_backbone_config
from deepfake_hf.convert.loading import head, load_folder_weights, load_weights, take
from deepfake_hf.convert.processors import univfd_processor
from deepfake_hf.errors import one_line

DEFAULT_BACKBONE = "openai/clip-vit-large-patch14"

UNIVFD = SourceInfo(
    title="UnivFD",
    paper="Ojha, Li and Lee, Towards Universal Fake Image Detectors that Generalize Across Generative Models "
          "(CVPR 2023)",
    code="https://github.com/WisconsinAIVision/UniversalFakeDetect",
    licence="see the source repository (not recorded in the checkpoint)",
    backbone="CLIP ViT-L/14 image features (visual_projection of pooler_output), fc Linear(768, 1) folded in",
    input="whole images (trained on ProGAN pictures, not face crops)",
)


class UnivFD(SourceFormat):
    name = "univfd"
    description = ("UnivFD fc_weights.pth (Linear(768, 1)) + CLIP ViT-L/14 (--backbone, default "
                   f"{DEFAULT_BACKBONE}), projection folded into the head")
    # UnivFD scores whole pictures (its validate.py centre-crops the image itself): every door feeds it the picture
    # as given, never a face crop
    face_preprocessing = "none"
    order = 30

    def recognise_weights(self, path: Path, state: dict[str, Any]) -> Match | None:
        keys = set(state)
        return Match() if keys and keys <= {"weight", "bias", "fc.weight", "fc.bias"} else None

    def load(self, path: Path, variant: str | None = None, backbone: str | None = None,
             fake_label: str | None = None) -> Converted:
        """The fc of `path` folded with the visual projection of the CLIP checkpoint `backbone`."""
        import torch

        state = load_weights(path)
        prefix = "fc." if "fc.weight" in state else ""
        fc_weight, fc_bias = head(state, prefix, path)
        if fc_weight.ndim != 2 or fc_weight.shape[0] != 1 or fc_bias.numel() != 1:
            raise ConvertError(f"{path}: {prefix}weight has shape {tuple(fc_weight.shape)}; UnivFD's fc is "
                               "Linear(D, 1)")
        backbone = backbone or DEFAULT_BACKBONE
        clip_state = _clip_weights_with_projection(backbone)
        projection = clip_state.pop("visual_projection.weight")  # (projection_dim, hidden)
        if projection.shape[0] != fc_weight.shape[1]:
            raise ConvertError(f"{path}: fc expects {fc_weight.shape[1]} features but {backbone}'s visual_projection "
                               f"gives {projection.shape[0]}")
        encoder = load_backbone_config(backbone)
        # fake logit z = w_fc . (W_proj h) + b = (w_fc W_proj) . h + b; real logit 0: softmax = sigmoid(z), exactly.
        fake_row = (fc_weight.double() @ projection.double()).to(fc_weight.dtype)
        weight = torch.cat([torch.zeros_like(fake_row), fake_row])
        bias = torch.cat([torch.zeros_like(fc_bias.reshape(1)), fc_bias.reshape(1)])
        processor = univfd_processor(encoder.image_size)
        return Converted(encoder, "pooler", False, clip_state, weight, bias, processor, "univfd",
                         f"UnivFD fc on {backbone}", UNIVFD, encoder_prefix="vision_model.")


def _clip_weights_with_projection(backbone: str) -> dict[str, Any]:
    """CLIP vision weights (`vision_model.*`) and `visual_projection.weight` of a full CLIP checkpoint."""
    from huggingface_hub import snapshot_download

    folder = Path(str(backbone))
    if not folder.is_dir():
        try:
            folder = Path(snapshot_download(str(backbone), allow_patterns=["*.json", "*.safetensors"]))
        except Exception as error:
            raise ConvertError(f"--backbone {backbone}: not a local folder and not downloadable "
                               f"({one_line(error, 160)})") from None
    state = load_folder_weights(folder)
    if "visual_projection.weight" not in state:
        raise ConvertError(f"--backbone {backbone}: missing key 'visual_projection.weight' (UnivFD needs a full CLIP "
                           "checkpoint or CLIPVisionModelWithProjection)")
    kept = take(state, "vision_model.", f"--backbone {backbone}")
    kept["visual_projection.weight"] = state["visual_projection.weight"]
    return kept


__all__ = ["UnivFD"]
