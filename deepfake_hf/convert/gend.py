"""GenD (yermandy/GenD, WACV 2026) `save_pretrained` folders.

config.json `{model_type: GenD, backbone, head: linear|LinearNorm}`; CLIP weights under
`feature_extractor.vision_model.*` (features: `pooler_output`), DINOv2 weights under `feature_extractor.backbone.*`
(features: the CLS token of `last_hidden_state`), or the Perception Encoder (timm Eva `vit_pe_*`, built with
`dynamic_img_size=True`, its classifier replaced by Identity, so the features are its attention pool's output)
under `feature_extractor.backbone.*`, run through transformers' TimmWrapperModel; head `model.linear.*`;
LinearNorm L2-normalises before the head.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from deepfake_hf.convert.base import Converted, ConvertError, Match, SourceFormat, SourceInfo
from deepfake_hf.convert.encoders import encoder_config, load_backbone_config, timm_backbone
from deepfake_hf.convert.loading import head, load_folder_weights, read_config, take
from deepfake_hf.convert.processors import backbone_processor, timm_eval_processor

# What GenD's README documents for its data (and so for its published numbers): its own detector.py, which the
# "gend" face mode (faces/gend.py) follows.
GEND_FACES = ("face crops from GenD's own detector.py (SCRFD det_10g.onnx 5 landmarks, partial affine fit to its "
              "template, scale 1.3, --target_size none: crops keep the face's size), as its README documents")
GEND_FACE_NOTE = ("GenD's published numbers use crops from its own detector.py (`-m at_least -n 32 --det_thres 0.1 "
                  "-s 1.3 --target_size none`), so this folder records `face_preprocessing: gend`: deepfake-hf's "
                  "`gend` face mode runs those steps (insightface's SCRFD `det_10g.onnx` with onnxruntime, the "
                  "largest face, GenD's five-point template fitted by OpenCV's LMEDS, crops at the face's own size, "
                  "GenD's frame order). It needs `pip install 'deepfake-hf[gend-faces]'` and the detector file: set "
                  "`DEEPFAKE_HF_SCRFD_MODEL` to a local `det_10g.onnx`, or to `hub` to fetch the copy GenD's script "
                  "fetches. Inputs that are GenD crops already: `--faces none` (or `face_mode=\"none\"`). Where "
                  "GenD's script moves on to later frames when a frame has no face, the mode scores the frames it "
                  "found faces in.")

GEND = SourceInfo(
    title="GenD",
    paper="Yermakov et al., GenD (WACV 2026); code github.com/yermandy/GenD",
    code="https://github.com/yermandy/GenD",
    licence="see the source repository (not recorded in the checkpoint)",
    backbone="CLIP ViT (pooler_output) or DINOv2 (CLS token), named in the checkpoint's config",
    input=GEND_FACES,
    published="not stated here for GenD itself. Its predecessor (CLIP ViT-L/14 LN-tuning, arXiv 2503.19683) "
              "reports video AUROC trained on FF++: CDFv2 96.62, DFD 98.0, DFDC 87.15, FFIW 91.52, "
              "DeepSpeak v1 92.01",
    notes=[GEND_FACE_NOTE],
)

GEND_PE = SourceInfo(
    title="GenD (Perception Encoder)",
    paper="Yermakov et al., GenD (WACV 2026); code github.com/yermandy/GenD",
    code="https://github.com/yermandy/GenD",
    licence="see the source repository (not recorded in the checkpoint)",
    backbone="Perception Encoder (timm Eva vit_pe_*, attention-pool output, through transformers' "
             "TimmWrapperModel)",
    input=GEND_FACES,
    notes=[GEND_FACE_NOTE],
)


class GenD(SourceFormat):
    name = "gend"
    description = ("GenD save_pretrained folder (config model_type GenD): CLIP, DINOv2 or Perception Encoder (timm) "
                   "backbone, linear/LinearNorm head")
    # GenD's README prepares its data with its own detector.py: the "gend" face mode follows it.
    face_preprocessing = "gend"
    order = 10

    def recognise_config(self, path: Path, config: dict[str, Any]) -> Match | None:
        return Match() if config.get("model_type") == "GenD" else None

    def load(self, path: Path, variant: str | None = None, backbone: str | None = None,
             fake_label: str | None = None) -> Converted:
        """The CLIP, DINO or Perception Encoder backbone named by config.json, with its head (see the module)."""
        config = read_config(path) or {}
        if config.get("model_type") != "GenD":
            raise ConvertError(f"{path}: not a GenD folder (config.json model_type is {config.get('model_type')!r})")
        kind = config.get("head", "linear")
        if kind not in ("linear", "LinearNorm"):
            raise ConvertError(f"{path}: GenD head {kind!r} is not linear or LinearNorm")
        named = str(config.get("backbone") or "")
        state = load_folder_weights(path)
        weight, bias = head(state, "model.linear.", path)
        if "vit_pe" in named.lower():
            # GenD builds the PE with dynamic_img_size=True (position embeddings resampled to its 224 input) and
            # replaces its classifier by Identity: the features are the attention pool's output, TimmWrapperModel's
            # pooler_output (built with num_classes=0).
            encoder = timm_backbone(backbone or named, "GenD's Perception Encoder", ("vit_pe",),
                                    dynamic_img_size=True)
            encoder_state = take(state, "feature_extractor.backbone.", path)
            from deepfake_hf.modeling_deepfake import timm_pretrained_cfg

            # GenD's preprocess: timm's evaluation transform of the model's data config, with input size 224.
            processor = timm_eval_processor(timm_pretrained_cfg(encoder), size=224)
            return Converted(encoder, "pooler", kind == "LinearNorm", encoder_state, weight, bias, processor,
                             "gend-pe", f"GenD (Perception Encoder {encoder.architecture}, head {kind})", GEND_PE,
                             encoder_prefix="feature_extractor.backbone.")
        if any(key.startswith("feature_extractor.vision_model.") for key in state):
            prefix = "feature_extractor.vision_model."
            encoder = encoder_config(backbone, state, clip_prefix=prefix) if backbone or not named else None
            if encoder is None:
                try:
                    encoder = load_backbone_config(named)
                except ConvertError:  # offline without a cached config: read the architecture off the weights
                    encoder = encoder_config(None, state, clip_prefix=prefix)
            encoder_state = take(state, prefix, path)
            pooling, family = "pooler", "CLIP"
            processor = backbone_processor(backbone or named, f"{path}: GenD's CLIP preprocessing")
        elif any(key.startswith("feature_extractor.backbone.") for key in state):
            prefix = "feature_extractor.backbone."
            encoder = encoder_config(backbone, default=named)
            encoder_state = take(state, prefix, path)
            if not encoder.model_type.startswith("dino"):
                raise ConvertError(f"{path}: GenD backbone weights under feature_extractor.backbone but the encoder "
                                   f"config is {encoder.model_type!r}, not a DINO model")
            # DINO features are the CLS token of last_hidden_state (after the final LayerNorm); for DINOv2 and its
            # register variant `pooler_output` is that same token, so "pooler" is exact for every DINO family.
            pooling, family = ("cls" if encoder.model_type == "dinov2" else "pooler"), "DINO"
            # GenD preprocesses with the backbone's own processor (DINOv2: short side 256, crop 224, bicubic, PIL in
            # transformers 4.56; DINOv3: 224x224, bilinear, torchvision), never a family default.
            processor = backbone_processor(backbone or named, f"{path}: GenD's DINO preprocessing")
        else:
            raise ConvertError(f"{path}: GenD weights have neither feature_extractor.vision_model.* (CLIP) nor "
                               "feature_extractor.backbone.* (DINO)")
        # the card's backbone row names this checkpoint's encoder, not every family GenD supports
        features = "pooler_output" if family == "CLIP" else "CLS token of last_hidden_state"
        info = replace(GEND, backbone=f"{encoder.model_type} {named or backbone} ({features}), head {kind}")
        return Converted(encoder, pooling, kind == "LinearNorm", encoder_state, weight, bias, processor, "gend",
                         f"GenD ({family} backbone {named or backbone}, head {kind})", info, encoder_prefix=prefix)


__all__ = ["GenD"]
