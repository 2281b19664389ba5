"""Deepfake detector: a vision encoder, a pooling rule, optional L2 normalisation and a linear real/fake head.

This file is copied next to the weights when a model is saved (remote code): it imports only
transformers, torch and its sibling `configuration_deepfake`.
"""

import copy
import math
import os
import shutil
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoImageProcessor, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput
from transformers.utils import can_return_tuple
from transformers.utils import logging as hf_logging
from transformers.video_processing_utils import BaseVideoProcessor

from .configuration_deepfake import (
    CONV_BACKBONES,
    CUSTOM_PIPELINES,
    PIPELINE_FILE,
    VISION_TOWER_OF,
    DeepfakeDetectorConfig,
    DetectorConfigError,
    config_size_problem,
    missing_timm,
)

logger = hf_logging.get_logger(__name__)


class VideoInputError(ValueError):
    """A video cannot be read. This file runs as remote code, so it cannot derive from
    deepfake_hf.errors.DeepfakeHFError: deepfake_hf.errors.is_user_error recognises it by name."""

# ImageNet statistics, used by DINOv2, ConvNeXt and ResNet checkpoints.
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass
class DeepfakeDetectorOutput(ImageClassifierOutput):
    """`ImageClassifierOutput` plus the pooled features the head saw (after L2 normalisation when configured)."""

    image_features: torch.FloatTensor | None = None


def default_image_processor(config):
    """The preprocessing each backbone family was trained with, at the detector's input size."""
    from transformers import BitImageProcessor, CLIPImageProcessor, ConvNextImageProcessor, ViTImageProcessor

    size = config.image_size
    backbone_type = config.backbone_config.model_type
    if backbone_type in ("clip_vision_model", "siglip_vision_model"):
        return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    if backbone_type == "dinov2":
        return BitImageProcessor(
            size={"shortest_edge": size},
            crop_size={"height": size, "width": size},
            image_mean=IMAGENET_MEAN,
            image_std=IMAGENET_STD,
            do_convert_rgb=True,
        )
    if backbone_type == "timm_wrapper":
        return timm_image_processor(timm_pretrained_cfg(config.backbone_config), size=size, crop_pct=1.0)
    if backbone_type in CONV_BACKBONES:
        # crop_pct 1.0: resize straight to the input size, as face crops are already framed.
        return ConvNextImageProcessor(size={"shortest_edge": size}, crop_pct=1.0)
    return ViTImageProcessor(size={"height": size, "width": size})


def timm_pretrained_cfg(backbone_config):
    """The data settings (mean, std, interpolation, input size, crop_pct) of a timm backbone's weights.

    A config saved from a timm Hub checkpoint carries its `pretrained_cfg`; otherwise timm's registry gives the
    default one of the architecture (no download: the registry ships with timm).
    """
    cfg = getattr(backbone_config, "pretrained_cfg", None)
    if cfg:
        return dict(cfg)
    import timm

    found = timm.models.get_pretrained_cfg(backbone_config.architecture)
    return found.to_dict() if found is not None else {}


def timm_image_processor(data_config, size=None, crop_pct=None):
    """A stock processor doing timm's evaluation transform: short side to size / crop_pct, centre crop, normalise.

    transformers' TimmWrapperImageProcessor is not used: its `save_pretrained` writes nothing (it reads its
    settings from a timm checkpoint's config.json, which a detector folder does not have), so a pipeline could
    not load it back. `size` and `crop_pct` override the data config's.
    """
    from transformers import BitImageProcessor
    from transformers.image_utils import PILImageResampling

    size = size or (data_config.get("input_size") or (3, 224, 224))[-1]
    crop_pct = crop_pct if crop_pct is not None else data_config.get("crop_pct") or 1.0
    resample = {"bilinear": PILImageResampling.BILINEAR, "nearest": PILImageResampling.NEAREST}.get(
        data_config.get("interpolation"), PILImageResampling.BICUBIC)
    return BitImageProcessor(size={"shortest_edge": math.floor(size / crop_pct)},
                             crop_size={"height": size, "width": size}, resample=resample, do_convert_rgb=True,
                             image_mean=list(data_config.get("mean") or IMAGENET_MEAN),
                             image_std=list(data_config.get("std") or IMAGENET_STD))


def confident_mean(frame_probabilities, threshold, fraction):
    """Video score from frame fake-probabilities with the DFDC winner's "confident" strategy.

    When more than `fraction` of the frames are confidently fake (p > threshold), average only those;
    when more than 90% are confidently real (p < 1 - threshold), average only those; otherwise average
    all frames (Seferbekov, DFDC 1st place, 2020). `frame_probabilities` is (videos, frames).
    """
    frames = frame_probabilities.shape[-1]
    fake = frame_probabilities > threshold
    real = frame_probabilities < 1.0 - threshold

    def masked_mean(mask):
        return (frame_probabilities * mask).sum(-1) / mask.sum(-1).clamp(min=1)

    score = frame_probabilities.mean(-1)
    score = torch.where(real.sum(-1) > 0.9 * frames, masked_mean(real), score)
    return torch.where(fake.sum(-1) > fraction * frames, masked_mean(fake), score)


def alignment_loss(features, labels, alpha=2.0):
    """Mean ||z_i - z_j||^alpha over same-label pairs i < j (Wang and Isola, ICML 2020)."""
    distances = torch.cdist(features, features)
    same = labels[:, None] == labels[None, :]
    pairs = torch.triu(same, diagonal=1)
    if not pairs.any():
        return features.new_zeros(())
    return distances[pairs].pow(alpha).mean()


def uniformity_loss(features, t=2.0):
    """log E exp(-t ||z_i - z_j||^2) over pairs i < j (Wang and Isola, ICML 2020)."""
    if features.shape[0] < 2:
        return features.new_zeros(())
    return torch.pdist(features, p=2).pow(2).mul(-t).exp().mean().log()


def slerp(start, end, t):
    """Spherical interpolation between unit vectors, row by row; `t` is (batch,) in [0, 1]."""
    cos = (start * end).sum(-1).clamp(-1 + 1e-7, 1 - 1e-7)
    angle = torch.acos(cos)[:, None]
    t = t[:, None]
    sin = torch.sin(angle)
    # Nearly parallel vectors: interpolate linearly, the limit of slerp as the angle goes to 0.
    linear = (1 - t) * start + t * end
    spherical = (torch.sin((1 - t) * angle) * start + torch.sin(t * angle) * end) / sin.clamp(min=1e-7)
    return torch.where(sin > 1e-4, spherical, linear)


def same_class_partners(labels, generator=None):
    """For each row, the index of a random other row with the same label (itself when it is alone)."""
    same = (labels[:, None] == labels[None, :]).float()
    if labels.shape[0] > 1:
        alone = same.sum(-1) == 1
        same.fill_diagonal_(0)
        same[alone, torch.nonzero(alone).flatten()] = 1
    return torch.multinomial(same, 1, generator=generator).squeeze(-1)


class DeepfakeDetectorPreTrainedModel(PreTrainedModel):
    config_class = DeepfakeDetectorConfig
    config: DeepfakeDetectorConfig
    base_model_prefix = "backbone"
    main_input_name = "pixel_values"
    input_modalities = ("image", "video")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    @torch.no_grad()
    def initialize_weights(self):
        # The encoder is a stock transformers model: initialise it as one first. transformers treats every module
        # of a remote-code model as custom code and then skips modules without parameters of their own (CLIP's
        # attention and MLP blocks), whose `_init_weights` sets their projections' std; missing encoder weights
        # would otherwise be initialised differently by `from_pretrained` than by `__init__`. The encoder's
        # modules are then marked initialised, so the pass below only reaches the detector's own modules.
        if isinstance(getattr(self, "backbone", None), PreTrainedModel):
            self.backbone.initialize_weights()
        super().initialize_weights()

    @torch.no_grad()
    def _init_weights(self, module):
        if isinstance(module, nn.Linear) and module is getattr(self, "classifier", None):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)


class DeepfakeDetectorForImageClassification(DeepfakeDetectorPreTrainedModel):
    """Scores an image (4-D `pixel_values`) or a video (5-D: batch, frames, channels, height, width).

    `logits` are calibrated: divided by `config.calibration_temperature` and shifted so that
    `softmax(logits)[..., 1] >= 0.5` exactly when the fake probability reaches `config.threshold`.
    The loss is computed on the uncalibrated head output, so calibration never changes training.
    """

    def __init__(self, config: DeepfakeDetectorConfig):
        super().__init__(config)
        backbone_kwargs = {}
        if config.backbone_config.model_type in ("vit", "deit"):
            backbone_kwargs["add_pooling_layer"] = config.pooling == "pooler"
        reason = missing_timm(config.backbone_config)
        if reason:  # before transformers' own check, whose message runs to many lines
            raise ImportError(reason)
        self.backbone = AutoModel.from_config(config.backbone_config, **backbone_kwargs)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.image_processor = None  # set by from_backbone; written next to the weights by save_pretrained
        self.post_init()

    # ----------------------------------------------------------------------------------------- features
    @can_return_tuple
    def get_image_features(self, pixel_values, output_hidden_states=None, output_attentions=None, **backbone_kwargs):
        """The encoder's output for a batch of images, with the pooled features the head sees as `pooler_output`.

        As in transformers 5 (`CLIPModel.get_image_features`): a `BaseModelOutputWithPooling` whose
        `last_hidden_state` is the encoder's and whose `pooler_output` is the pooled (and, when configured,
        L2-normalised) feature vector; a tuple with `return_dict=False`.
        """
        options = self._backbone_output_options(output_hidden_states, output_attentions)
        features, outputs = self._features(pixel_values, **options, **backbone_kwargs)
        return BaseModelOutputWithPooling(
            last_hidden_state=outputs.last_hidden_state,
            pooler_output=features,
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
        )

    def _backbone_output_options(self, output_hidden_states, output_attentions):
        """What to ask the encoder to record: the argument, else the detector's config, else the encoder's own config.

        `output_hidden_states` may be a list of layer indices; it is passed on unchanged, so the encoder keeps
        only those layers (the others come back as None), as transformers' models do.
        """
        options = {}
        for name, value in (("output_hidden_states", output_hidden_states), ("output_attentions", output_attentions)):
            if value is None:
                # Unset on the detector's config (False is its default) leaves the decision to the encoder's config.
                value = getattr(self.config, name, None) or None
            if value is not None:
                options[name] = value
        return options

    def _features(self, pixel_values, **backbone_kwargs):
        outputs = self.backbone(pixel_values=pixel_values, return_dict=True, **backbone_kwargs)
        pooling = self.config.pooling
        if pooling == "pooler":
            features = outputs.pooler_output
        elif pooling == "cls":
            features = outputs.last_hidden_state[:, 0]
        elif outputs.last_hidden_state.ndim == 4:  # mean over a CNN feature map
            features = outputs.last_hidden_state.mean(dim=(2, 3))
        else:  # mean over patch tokens, CLS excluded
            features = outputs.last_hidden_state[:, 1:].mean(dim=1)
        features = features.flatten(1)
        if self.config.normalize_features:
            features = F.normalize(features, dim=-1)
        return features, outputs

    # --------------------------------------------------------------------------------------- calibration
    def calibrated_logits(self, logits):
        """Temperature-scaled logits, shifted so that 0.5 is the decision threshold."""
        shift = torch.tensor([0.0, logit(self.config.threshold)], dtype=logits.dtype, device=logits.device)
        return logits / self.config.calibration_temperature - shift

    def _video_logits(self, fake_probability):
        """Two-class logits whose softmax gives the threshold-centred video decision score."""
        p = fake_probability.clamp(1e-7, 1 - 1e-7)
        fake = torch.log(p) - torch.log1p(-p) - logit(self.config.threshold)
        return torch.stack([torch.zeros_like(fake), fake], dim=-1)

    def aggregate_frames(self, frame_probabilities):
        """(videos, frames) fake probabilities -> (videos,) with the configured aggregation."""
        if self.config.video_aggregation == "confident":
            return confident_mean(frame_probabilities, self.config.confident_threshold, self.config.confident_fraction)
        return frame_probabilities.mean(-1)

    # -------------------------------------------------------------------------------------------- losses
    def compute_loss(self, features, labels):
        """Cross-entropy (label smoothing), alignment, uniformity and slerp augmentation, as configured."""
        config = self.config
        logits = self.classifier(self.dropout(features))
        ce_logits, ce_labels = logits, labels
        if config.slerp_augmentation and self.training and features.shape[0] > 1:
            partners = same_class_partners(labels)
            t = torch.rand(features.shape[0], device=features.device, dtype=features.dtype)
            mixed = slerp(features, features[partners], t)
            ce_logits = torch.cat([logits, self.classifier(self.dropout(mixed))])
            ce_labels = torch.cat([labels, labels])
        loss = F.cross_entropy(ce_logits.float(), ce_labels, label_smoothing=config.label_smoothing)
        if config.alignment_weight or config.uniformity_weight:
            unit = F.normalize(features.float(), dim=-1)
            if config.alignment_weight:
                loss = loss + config.alignment_weight * alignment_loss(unit, labels, config.alignment_alpha)
            if config.uniformity_weight:
                loss = loss + config.uniformity_weight * uniformity_loss(unit, config.uniformity_t)
        return loss, logits

    # ------------------------------------------------------------------------------------------- forward
    @can_return_tuple
    def forward(self, pixel_values=None, labels=None, output_hidden_states=None, output_attentions=None, **kwargs):
        """`DeepfakeDetectorOutput`, or its tuple (None fields left out) with `return_dict=False` or
        `config.return_dict=False`. `output_hidden_states` may be True or a list of layer indices."""
        backbone_kwargs = self._backbone_output_options(output_hidden_states, output_attentions)
        if pixel_values.ndim == 5:
            return self._forward_video(pixel_values, labels, backbone_kwargs)

        features, outputs = self._features(pixel_values, **backbone_kwargs)
        loss = None
        if labels is not None:
            loss, logits = self.compute_loss(features, labels)
        else:
            logits = self.classifier(self.dropout(features))
        return DeepfakeDetectorOutput(
            loss=loss,
            logits=self.calibrated_logits(logits),
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
            image_features=features,
        )

    def _forward_video(self, pixel_values, labels, backbone_kwargs):
        videos, frames = pixel_values.shape[:2]
        features, outputs = self._features(pixel_values.flatten(0, 1), **backbone_kwargs)
        raw_logits = self.classifier(self.dropout(features))
        # Aggregate calibrated (temperature-scaled) frame probabilities; `_video_logits` applies the
        # threshold shift once, to the video score.
        fake_probability = (raw_logits / self.config.calibration_temperature).softmax(-1)[:, 1]
        fake_probability = self.aggregate_frames(fake_probability.view(videos, frames))
        loss = None
        if labels is not None:
            raw_probability = raw_logits.softmax(-1)[:, 1].view(videos, frames).mean(-1).clamp(1e-7, 1 - 1e-7)
            loss = F.binary_cross_entropy(raw_probability.float(), labels.float())
        return DeepfakeDetectorOutput(
            loss=loss,
            logits=self._video_logits(fake_probability),
            hidden_states=getattr(outputs, "hidden_states", None),
            attentions=getattr(outputs, "attentions", None),
            image_features=features.view(videos, frames, -1),
        )

    # -------------------------------------------------------------------------------------- construction
    @classmethod
    def from_backbone(cls, pretrained_model_name_or_path, image_processor=True, **config_kwargs):
        """A detector whose encoder starts from pretrained weights (a local folder or a Hub id).

        A full CLIP checkpoint contributes its vision tower. `config_kwargs` go to
        `DeepfakeDetectorConfig`; extra loading options (`revision`, `cache_dir`, `token`,
        `local_files_only`) go to `from_pretrained`. The checkpoint's own image processor is kept
        when it has one.

        Checkpoint weights the detector has no use for by design (a CLIP text tower and projections, a
        pooler it does not pool with, a classification checkpoint's head) are dropped quietly, without
        transformers' load report; any other unused weight is named in one warning, and encoder weights
        the checkpoint lacks are an error.
        """
        from transformers import AutoConfig

        load_keys = ("revision", "cache_dir", "token", "local_files_only", "trust_remote_code")
        load_kwargs = {key: config_kwargs.pop(key) for key in load_keys if key in config_kwargs}
        if load_kwargs.get("trust_remote_code") is None:  # None would prompt on stdin for a checkpoint's auto_map
            load_kwargs["trust_remote_code"] = False
        # The raw dict first: AutoConfig builds id2label from num_labels, gigabytes for an absurd value.
        raw_config, _ = PretrainedConfig.get_config_dict(
            pretrained_model_name_or_path, **{k: v for k, v in load_kwargs.items() if k != "trust_remote_code"}
        )
        problem = config_size_problem(raw_config or {})
        if problem:
            raise DetectorConfigError(f"{pretrained_model_name_or_path}: {problem}")
        try:
            source_config = AutoConfig.from_pretrained(pretrained_model_name_or_path, **load_kwargs)
        except ValueError as error:
            if "custom code" not in str(error):
                raise
            raise DetectorConfigError(
                f"{pretrained_model_name_or_path}: its config names custom model code (auto_map) that would run on "
                "this machine; refused (trust_remote_code=True runs it: only if you trust its author)"
            ) from None
        config = DeepfakeDetectorConfig(backbone_config=source_config, **config_kwargs)
        model = cls(config)
        encoder_class = type(model.backbone)
        encoder_kwargs = {}
        if config.backbone_config.model_type in ("vit", "deit"):
            encoder_kwargs["add_pooling_layer"] = config.pooling == "pooler"
        with _load_report_silenced():
            encoder, loading_info = encoder_class.from_pretrained(
                pretrained_model_name_or_path, output_loading_info=True, **encoder_kwargs, **load_kwargs
            )
        missing = sorted(loading_info["missing_keys"])
        if missing:
            raise DetectorConfigError(
                f"{pretrained_model_name_or_path}: the checkpoint lacks {len(missing)} encoder weights "
                f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})"
            )
        unused = sorted(key for key in loading_info["unexpected_keys"]
                        if not _unused_by_design(key, source_config.model_type))
        if unused:
            logger.warning(
                f"{pretrained_model_name_or_path}: {len(unused)} checkpoint weights are not used by the encoder "
                f"({', '.join(unused[:5])}{', ...' if len(unused) > 5 else ''})"
            )
        model.backbone.load_state_dict(encoder.state_dict(), strict=True)
        model.config.backbone_config = encoder.config
        if image_processor:
            try:
                model.image_processor = AutoImageProcessor.from_pretrained(pretrained_model_name_or_path, **load_kwargs)
            except (OSError, ValueError):
                model.image_processor = None
        return model

    def matching_image_processor(self):
        """The encoder checkpoint's own processor when known, else the backbone family's default."""
        if type(self.image_processor).__name__ == "TimmWrapperImageProcessor":  # a timm checkpoint's own settings
            return timm_image_processor(self.image_processor.data_config)
        if self.image_processor is not None:
            return self.image_processor
        source = self.config.name_or_path
        if source and os.path.isfile(os.path.join(source, "preprocessor_config.json")):
            # False, not None: a processor auto_map must not prompt on stdin or run the folder's code.
            return AutoImageProcessor.from_pretrained(source, trust_remote_code=False)
        return default_image_processor(self.config)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save weights and config, and the image and video processors that match the backbone; for a model that
        finds faces, also the face-aware pipeline file its config names in `custom_pipelines`."""
        remote_code = getattr(type(self), "_auto_class", None) is not None
        if remote_code:
            # One checkpoint serves both tasks: with remote code, AutoModelForVideoClassification finds the video class.
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **AUTO_MAP}
        pipeline_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), PIPELINE_FILE)
        face_pipeline = remote_code and self.config.finds_faces and os.path.isfile(pipeline_file)
        if face_pipeline:
            self.config.custom_pipelines = copy.deepcopy(CUSTOM_PIPELINES)
        elif getattr(self.config, "custom_pipelines", None) is not None:  # no face mode (any more): stock pipelines
            del self.config.custom_pipelines
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            if face_pipeline:
                shutil.copyfile(pipeline_file, os.path.join(save_directory, PIPELINE_FILE))
            image_processor = self.matching_image_processor()
            image_processor.save_pretrained(save_directory)
            video_processor = DeepfakeVideoProcessor.from_image_processor(
                image_processor, num_frames=self.config.num_frames
            )
            video_processor.save_pretrained(save_directory)


class DeepfakeDetectorForVideoClassification(DeepfakeDetectorForImageClassification):
    """The same detector for `pipeline("video-classification")`: 5-D input, one real/fake score per clip.

    Takes `pixel_values` or a video processor's `pixel_values_videos` of shape (batch, frames, C, H, W);
    frame probabilities are aggregated with `config.video_aggregation`. Weights are shared with the
    image class, so any saved detector loads as either.
    """

    def forward(self, pixel_values=None, labels=None, pixel_values_videos=None, **kwargs):
        if pixel_values is None:
            pixel_values = pixel_values_videos
        if pixel_values is not None and pixel_values.ndim == 4:  # a single clip without the batch axis
            pixel_values = pixel_values[None]
        return super().forward(pixel_values=pixel_values, labels=labels, **kwargs)


AUTO_MAP = {
    "AutoModelForImageClassification": f"modeling_deepfake.{DeepfakeDetectorForImageClassification.__name__}",
    "AutoModelForVideoClassification": f"modeling_deepfake.{DeepfakeDetectorForVideoClassification.__name__}",
}


# ------------------------------------------------------------------------------------------- video processor
class DeepfakeVideoProcessor(BaseVideoProcessor):
    """Video processor for the detector: decodes with PyAV, samples `num_frames` frames evenly over the whole
    clip (frame indices `linspace(0, n - 1, num_frames)`, nearest frame, repeats for short clips), applies
    rotation metadata, then gives each frame exactly the pixels the model's image processor gives that frame as
    a picture (`frames_from_image_processor`, set for every saved model: a converted detector's processor
    resizes with OpenCV or PIL, which torchvision's video steps would not reproduce). `from_pretrained` loads
    that image processor from the same folder or Hub repo. Without the flag (folders saved before it), the
    frames get torchvision's resize / crop / normalisation with the image processor's settings.

    Returns `pixel_values_videos` of shape (batch, frames, C, H, W).
    """

    num_frames = 32
    do_sample_frames = True
    frames_from_image_processor = False

    def __init__(self, frames_from_image_processor=False, **kwargs):
        super().__init__(**kwargs)
        self.frames_from_image_processor = bool(frames_from_image_processor)
        self._frame_processor = None  # the image processor itself, never saved in this processor's JSON

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """The saved video processor, with the folder's (or repo's) image processor when it scores frames with it."""
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        processor = loaded[0] if isinstance(loaded, tuple) else loaded
        if processor.frames_from_image_processor:
            hub = {key: kwargs[key] for key in ("cache_dir", "force_download", "local_files_only", "token",
                                                 "revision", "subfolder") if kwargs.get(key) is not None}
            # This file runs from a model folder only when its user trusted that folder's code, and the image
            # processor's code comes from the same folder; inside the package the registered class is used.
            processor._frame_processor = AutoImageProcessor.from_pretrained(
                pretrained_model_name_or_path, trust_remote_code=_RUNS_AS_REMOTE_CODE, **hub)
        return loaded

    def to_dict(self):
        settings = super().to_dict()
        settings.pop("_frame_processor", None)
        return settings

    def _preprocess(self, videos, return_tensors=None, **kwargs):
        """(frames, C, H, W) pixel values per video: the image processor's own, frame by frame, when so saved."""
        if not self.frames_from_image_processor:
            return super()._preprocess(videos, return_tensors=return_tensors, **kwargs)
        if self._frame_processor is None:
            raise VideoInputError("this video processor scores frames with the model's image processor: load it "
                                  "with from_pretrained(model folder or Hub id), or build it with "
                                  "from_image_processor(image_processor)")
        from PIL import Image
        from transformers.feature_extraction_utils import BatchFeature

        clips = []
        for video in videos:  # (T, C, H, W) uint8, RGB: each frame as the PIL picture the Scorer gives the processor
            pictures = [Image.fromarray(frame.permute(1, 2, 0).cpu().numpy()) for frame in video]
            clips.append(self._frame_processor(images=pictures, return_tensors="pt")["pixel_values"])
        return BatchFeature(data={"pixel_values_videos": clips}, tensor_type=return_tensors)

    @classmethod
    def from_image_processor(cls, image_processor, **kwargs):
        """The video counterpart of an image processor: its frames get exactly that processor's pixels (its
        geometry and normalisation are saved too, for readers of the JSON)."""
        kwargs.setdefault("frames_from_image_processor", True)
        settings = image_processor.to_dict()
        options = {key: settings[key] for key in VIDEO_PROCESSOR_KEYS if settings.get(key) is not None}
        size = dict(settings.get("size") or {})
        crop_pct = settings.get("crop_pct")
        if crop_pct is not None and "shortest_edge" in size:  # ConvNeXt-style: resize then centre crop
            edge = size["shortest_edge"]
            if edge < 384:
                options.update(size={"shortest_edge": int(edge / crop_pct)}, do_center_crop=True,
                               crop_size={"height": edge, "width": edge})
            else:
                options.update(size={"height": edge, "width": edge}, do_center_crop=False)
        processor = cls(**options, **kwargs)
        processor._frame_processor = image_processor
        return processor

    def sample_frames(self, metadata, num_frames=None, fps=None, **kwargs):
        """Indices of `num_frames` frames spread evenly over the clip; every frame once if it has fewer.

        A copy of `deepfake_hf.media.sample_frame_indices` (this file is remote code and imports nothing
        from the package): linspace over the frame indices, nearest frame, ties to the earlier one, never
        a repeated frame. tests/test_media.py checks that the two agree.
        """
        num_frames = int(num_frames or self.num_frames)
        total = int(metadata.total_num_frames)
        if total <= num_frames:
            return np.arange(max(total, 0), dtype=np.int64)
        positions = np.linspace(0, total - 1, num_frames)
        return np.ceil(positions - 0.5 - 1e-6).astype(np.int64)  # nearest frame, ties to the earlier one

    def fetch_videos(self, video_url_or_urls, sample_indices_fn=None):
        if isinstance(video_url_or_urls, list):
            return list(zip(*[self.fetch_videos(item, sample_indices_fn) for item in video_url_or_urls]))
        return read_video_pyav_rotated(video_url_or_urls, sample_indices_fn)


# True for the copy of this file that transformers runs from a model folder (its module lives under
# transformers_modules), False for the package's own module.
_RUNS_AS_REMOTE_CODE = not __name__.startswith("deepfake_hf.")
VIDEO_PROCESSOR_KEYS = ("do_resize", "size", "resample", "do_center_crop", "crop_size", "do_rescale",
                        "rescale_factor", "do_normalize", "image_mean", "image_std", "do_convert_rgb")


def read_video_pyav_rotated(path, sample_indices_fn=None):
    """(frames array (T, H, W, 3) uint8, VideoMetadata) for the indices `sample_indices_fn` picks.

    Decodes forward once up to the last wanted frame; applies the stream's display rotation.
    """
    import av
    from transformers.video_utils import VideoMetadata

    if isinstance(path, str) and path.startswith(("http://", "https://")):
        raise VideoInputError(f"{path}: download the video first; URLs are not decoded here")
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoInputError(f"{path}: no video stream")
        stream = container.streams.video[0]
        total = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
        if total == 0:
            raise VideoInputError(f"{path}: the video has no frames")
        container.seek(0)
        fps = float(stream.average_rate or 0)
        metadata = VideoMetadata(total_num_frames=total, fps=fps, duration=total / fps if fps else 0.0,
                                 video_backend="pyav", height=stream.height, width=stream.width)
        indices = np.asarray(sample_indices_fn(metadata=metadata) if sample_indices_fn else np.arange(total))
        wanted, frames = set(indices.tolist()), {}
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                frames[index] = np.rot90(frame.to_ndarray(format="rgb24"), k=round(frame.rotation / 90) % 4)
            if index >= indices.max():
                break
    if not frames:
        raise VideoInputError(f"{path}: no decodable frames")
    decoded = sorted(frames)
    # A frame index past the decodable end (a frame count that overstates) takes the last decoded frame.
    video = np.stack([frames[index] if index in frames else frames[decoded[-1]] for index in indices.tolist()])
    metadata.frames_indices = indices
    return np.ascontiguousarray(video), metadata


def _unused_by_design(key, source_model_type):
    """Whether a checkpoint weight the encoder did not take is one a detector leaves out on purpose."""
    if source_model_type in VISION_TOWER_OF and not key.startswith("vision_model."):
        return True  # text tower, projections and logit scale of a multimodal checkpoint
    # A pooler the detector does not pool with (built without it), or a classification checkpoint's own head.
    return key.startswith(("pooler.", "classifier."))


class _load_report_silenced:
    """Keeps transformers' LOAD REPORT table off the console while an encoder loads; `from_backbone` reports what
    matters itself. transformers logs the table as a warning on the `transformers.modeling_utils` logger; a filter
    drops that one record and lets every other warning through (raising the logger's level would also switch on
    transformers' tensor-parallel plan check, which then warns about every layer)."""

    def __enter__(self):
        self.logger = hf_logging.get_logger("transformers.modeling_utils")
        self.logger.addFilter(self.filter)

    def __exit__(self, *exc_info):
        self.logger.removeFilter(self.filter)
        return False

    @staticmethod
    def filter(record):
        return "LOAD REPORT" not in record.getMessage()


def logit(p):
    """log(p / (1 - p)) of a probability in (0, 1)."""
    return math.log(p) - math.log1p(-p)


__all__ = [
    "DeepfakeDetectorForImageClassification",
    "DeepfakeDetectorForVideoClassification",
    "DeepfakeDetectorPreTrainedModel",
    "DeepfakeDetectorOutput",
    "DeepfakeVideoProcessor",
]
