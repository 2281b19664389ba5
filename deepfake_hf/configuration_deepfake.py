"""Configuration of a deepfake detector: any vision encoder, a pooling rule and a binary real/fake head.

This file is copied next to the weights when a model is saved (remote code), so it imports nothing
from deepfake_hf and only relative names inside its own folder.
"""

import copy
import functools
import importlib.util
import json

from transformers import AutoConfig, PretrainedConfig
from transformers.configuration_utils import SubConfigSpec
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

# Encoders whose output has a CLS token at position 0 of `last_hidden_state`.
TOKEN_BACKBONES = ("vit", "clip_vision_model", "dinov2", "deit", "beit", "siglip_vision_model", "vit_mae")
# Encoders whose `last_hidden_state` is a (batch, channels, height, width) feature map.
CONV_BACKBONES = ("convnext", "convnextv2", "resnet", "efficientnet", "regnet", "bit")
# Full multimodal configs whose vision tower is taken when given as a backbone.
VISION_TOWER_OF = {"clip": "vision_config", "siglip": "vision_config", "clipseg": "vision_config"}

# The pooling each family was published with: ViT/DINOv2 classify the CLS token after the final
# LayerNorm; CLIP's LN-tuning recipe uses `pooler_output` (CLS after post_layernorm); CNNs expose a global
# average pool as `pooler_output`, and timm models (TimmWrapperModel) their head without the classifier: a
# global average pool for CNNs, the attention pool of CLIP ResNets (before CLIP's output projection, a linear map
# a linear head absorbs) and of the Perception Encoder.
DEFAULT_POOLING = {"vit": "cls", "dinov2": "cls", "deit": "cls", "beit": "mean", "clip_vision_model": "pooler"}

POOLINGS = ("cls", "mean", "pooler")


class DetectorConfigError(ValueError):
    """A detector config (or a saved detector's files) is not valid. This file runs as remote code, so it cannot
    derive from deepfake_hf.errors.DeepfakeHFError: deepfake_hf.errors.is_user_error recognises it by name."""

AGGREGATIONS = ("mean", "confident")
# The face modes a model can record as the input it expects, in the registry's order (deepfake_hf.faces has the
# detectors of these names; tests/test_face_modes.py checks the two agree): "none" is whole images or
# ready-made crops, scored as given.
FACE_PREPROCESSINGS = ("dlib", "deepfakebench", "gend", "none")
WHOLE_IMAGE = "none"
# How a found face is cut (deepfake_hf.faces.FACE_CROPS): 5-point aligned, or the box plus a margin.
FACE_CROPS = ("align", "margin")
# The config keys that say what input a model expects; every door reads them (deepfake_hf.scoring.Scorer).
INPUT_KEYS = ("face_preprocessing", "face_crop", "face_size", "face_scale", "face_margin", "num_frames")
# The face-aware pipeline written beside the model for a model that finds faces (pipeline_deepfake.py).
PIPELINE_FILE = "pipeline_deepfake.py"
# Both load the image class: the pipeline scores a video's face crops one by one, as `predict` does.
CUSTOM_PIPELINES = {
    task: {"impl": f"pipeline_deepfake.{name}", "pt": ["AutoModelForImageClassification"], "type": kind}
    for task, name, kind in (
        ("image-classification", "DeepfakeImageClassificationPipeline", "image"),
        ("video-classification", "DeepfakeVideoClassificationPipeline", "video"),
    )
}
# The inference defaults, defined here once: the rest of the package imports them (this file imports nothing
# of the package, since it is copied to the Hub as remote code).
DEFAULT_THRESHOLD = 0.5
DEFAULT_CALIBRATION_TEMPERATURE = 1.0
DEFAULT_NUM_FRAMES = 32  # DeepfakeBench's frames per video, linspace over the video
DEFAULT_AGGREGATION = "mean"
DEFAULT_CONFIDENT_THRESHOLD = 0.8
DEFAULT_CONFIDENT_FRACTION = 0.5
# The extra that installs timm, named in the error a timm backbone raises without it.
TIMM_INSTALL = "pip install 'deepfake-hf[timm]'"
# Ceilings far above every published vision model (ViT-22B: 48 layers, width 6144; ImageNet-21k: ~22k labels).
# A config beyond one is a broken or hostile file: building it would run for minutes (a million layers) or
# allocate gigabytes (transformers builds id2label from num_labels) before failing, so it is refused first.
# A list (depths, hidden_sizes, image_size) is checked by its sum for depths, else by its largest item.
SIZE_CEILINGS = {
    "num_hidden_layers": 1000, "num_layers": 1000, "depth": 1000, "depths": 1000,
    "hidden_size": 65536, "hidden_sizes": 65536, "embed_dim": 65536, "projection_dim": 65536,
    "num_features": 65536, "intermediate_size": 262144, "num_attention_heads": 4096, "num_channels": 4096,
    "num_labels": 100000, "id2label": 100000, "label2id": 100000, "vocab_size": 1000000,
    "image_size": 16384, "patch_size": 16384, "num_frames": 10000, "face_size": 16384,
}
SUMMED_SIZES = ("depths",)
COUNTED_SIZES = ("id2label", "label2id")  # mappings: their number of entries


def config_size_problem(config_dict):
    """One line naming the first setting of `config_dict` (nested sub-configs included) beyond `SIZE_CEILINGS`,
    or None. Reads only the dict: nothing is built, so an absurd file costs nothing to refuse."""
    stack = [("", config_dict)]
    while stack:
        prefix, node = stack.pop()
        if not isinstance(node, dict):
            continue
        for key, value in node.items():
            name = f"{prefix}{key}"
            if key in SIZE_CEILINGS:
                size = _size_of(key, value)
                if size is not None and size > SIZE_CEILINGS[key]:
                    shown = int(size) if float(size).is_integer() else size
                    return (f"{name} = {shown} is beyond {SIZE_CEILINGS[key]}, far above any real model; "
                            "refused before building it")
            if isinstance(value, dict) and key not in COUNTED_SIZES:
                stack.append((f"{name}.", value))
    return None


def _size_of(key, value):
    if key in COUNTED_SIZES:
        return len(value) if isinstance(value, (dict, list)) else None
    numbers = value if isinstance(value, (list, tuple)) else [value]
    numbers = [item for item in numbers if isinstance(item, (int, float)) and not isinstance(item, bool)]
    if not numbers:
        return None
    return sum(numbers) if key in SUMMED_SIZES else max(numbers)


def missing_timm(backbone_config):
    """One line saying why a timm backbone cannot be built here (timm is not installed); None when it can."""
    if backbone_config.model_type != "timm_wrapper" or importlib.util.find_spec("timm") is not None:
        return None
    return (f"the backbone {getattr(backbone_config, 'architecture', None)!r} is a timm model and needs timm: "
            f"{TIMM_INSTALL} (or pip install timm)")


@functools.lru_cache(maxsize=64)
def _timm_feature_size(architecture, model_args_json):
    import timm
    import torch

    # TimmWrapperModel builds its timm model with num_classes=0, so `pooler_output` is `forward_head` without the
    # classifier: `head_hidden_size` wide (an attention pool's width where there is one). The meta device gives
    # the shapes without allocating or initialising a single weight.
    with torch.device("meta"):
        model = timm.create_model(architecture, pretrained=False, num_classes=0, **json.loads(model_args_json))
    return getattr(model, "head_hidden_size", None) or model.num_features


def timm_feature_size(backbone_config):
    """Width of a TimmWrapperModel's `pooler_output` for this config."""
    reason = missing_timm(backbone_config)
    if reason:
        raise ImportError(reason)
    return _timm_feature_size(backbone_config.architecture,
                              json.dumps(backbone_config.model_args or {}, sort_keys=True))


def _as_backbone_config(backbone_config):
    """Accept a config object or a dict (with `model_type`); take the vision tower of a full CLIP config."""
    if backbone_config is None:
        backbone_config = {"model_type": "vit"}
    if isinstance(backbone_config, dict):
        backbone_config = dict(backbone_config)
        model_type = backbone_config.pop("model_type", None)
        if model_type is None:
            raise DetectorConfigError(
                "backbone_config: a dict needs a 'model_type' key (e.g. 'vit', 'clip_vision_model').")
        if model_type not in CONFIG_MAPPING:
            raise DetectorConfigError(
                f"backbone_config: unknown model_type {model_type!r} for this transformers version.")
        try:
            backbone_config = AutoConfig.for_model(model_type, **backbone_config)
        except Exception as error:  # unknown model_type, or the backbone's own validation
            reason = str(error).strip().splitlines()[-1].strip()
            raise DetectorConfigError(f"backbone_config ({model_type}): {reason}") from None
    if not isinstance(backbone_config, PretrainedConfig):
        raise TypeError(
            f"backbone_config: expected a transformers config or a dict, got {type(backbone_config).__name__}."
        )
    tower = VISION_TOWER_OF.get(backbone_config.model_type)
    if tower is not None:
        backbone_config = getattr(backbone_config, tower)
    return backbone_config


# {(config class, repr of its full dict): the diff}. Finding the diff builds the class once per key (~8 ms), and
# transformers serialises a config for each from_pretrained's log line, not only to save it.
_DIFFS: dict = {}


def backbone_config_diff(backbone_config):
    """`backbone_config.to_dict()` reduced to the values that its class would not rebuild, plus `model_type`.

    Values equal to the class defaults go, and so do values derived from other fields in `__post_init__`
    (ViT's `pooler_output_size`, DINOv2's `stage_names`): config.json then shows what was chosen. A key is
    dropped only when rebuilding without it gives back exactly the same config, so the diff round-trips.
    """
    full = backbone_config.to_dict()
    key = (type(backbone_config), repr(full))  # repr, not JSON: a tuple and a list may rebuild differently
    if key not in _DIFFS:
        if len(_DIFFS) >= 256:
            _DIFFS.clear()
        _DIFFS[key] = _backbone_config_diff(type(backbone_config), full)
    return copy.deepcopy(_DIFFS[key])  # the caller's own


def _backbone_config_diff(config_class, full):
    """backbone_config_diff's work: `full` (a `config_class` config's dict) without what the class rebuilds."""

    def rebuilds(diff):
        try:
            return config_class(**{key: value for key, value in diff.items() if key != "model_type"}).to_dict() == full
        except Exception:  # the class's own validation refuses the reduced set
            return False

    try:
        defaults = config_class().to_dict()
    except Exception:  # a class that cannot be built without arguments: keep everything
        return full
    diff = {key: value for key, value in full.items() if key not in defaults or defaults[key] != value}
    diff["model_type"] = full["model_type"]
    if not rebuilds(diff):
        # A default that depends on other fields equals the class default here yet is rebuilt differently.
        return full
    for key in [key for key in diff if key != "model_type"]:
        reduced = {name: value for name, value in diff.items() if name != key}
        if rebuilds(reduced):
            diff = reduced
    return diff


class DeepfakeDetectorConfig(PretrainedConfig):
    r"""
    Configuration of [`DeepfakeDetectorForImageClassification`].

    Args:
        backbone_config (`PretrainedConfig` or `dict`):
            The encoder: any config `AutoModel` can build (vit, clip_vision_model, dinov2, convnext, resnet,
            timm_wrapper, ...). A full `clip` config contributes its vision tower. A dict needs `model_type`.
        pooling (`str`, *optional*):
            How the encoder output becomes one feature vector: `"cls"` (token 0 of the last hidden state),
            `"mean"` (mean of patch tokens, or of the feature map for CNNs) or `"pooler"` (the encoder's
            `pooler_output`). Defaults to what the backbone family was published with.
        normalize_features (`bool`): L2-normalise the pooled features before the linear head.
        classifier_dropout (`float`): dropout on the pooled features during training.
        label_smoothing (`float`): label smoothing of the cross-entropy loss, in [0, 1).
        alignment_weight, uniformity_weight (`float`): weights of the alignment and uniformity losses
            (Wang and Isola, 2020) on L2-normalised features; 0 switches them off.
        alignment_alpha, uniformity_t (`float`): the exponents of those losses (2 and 2 in the paper).
        slerp_augmentation (`bool`): add spherical interpolations between same-class features as extra
            training features (the CLIP LN-tuning recipe, arXiv 2503.19683).
        threshold (`float`): fake probability at or above which the label is "fake", in (0, 1).
        calibration_temperature (`float`): logits are divided by it (temperature scaling), > 0; fitted by
            `deepfake-hf calibrate`. (Named so because `temperature` is a generation parameter in transformers.)
        num_frames (`int`): frames sampled per video.
        video_aggregation (`str`): `"mean"` of frame probabilities, or `"confident"` (DFDC winner).
        confident_threshold (`float`), confident_fraction (`float`): with `"confident"`, frames with a fake
            probability above `confident_threshold` are averaged alone when they are more than
            `confident_fraction` of the frames.
        image_size (`int`, *optional*): input resolution; defaults to the backbone's `image_size` or 224.
        face_preprocessing (`str`, *optional*): the input the model was trained or converted on, which every
            door (`deepfake-hf predict`/`evaluate`, the Detector, `pipeline`, the app) uses unless told
            otherwise: `"deepfakebench"` (DeepfakeBench's dlib alignment, 256x256 at scale 1.3, frames at
            `linspace(0, n-1, num_frames)` rounded down), `"dlib"` (the package's fast dlib face mode),
            `"none"` (whole images or ready-made face crops, scored as given), or None (nothing recorded:
            every door scores the picture as given unless told a face mode).
        face_crop (`str`, *optional*): how a found face is cut: `"align"` (5-point aligned) or `"margin"`
            (box plus `face_margin`); None: the package default ("align").
        face_size (`int`, *optional*), face_scale (`float`, *optional*), face_margin (`float`, *optional*):
            the crop's side in pixels, the aligned crop's field of view and the margin crop's margin;
            None: the package defaults (256, 1.3, 0.3).
    """

    model_type = "deepfake_detector"
    sub_configs_defaults = {"backbone_config": SubConfigSpec(config_class=AutoConfig, model_type="vit")}

    def __init__(
        self,
        backbone_config=None,
        pooling=None,
        normalize_features=False,
        classifier_dropout=0.0,
        label_smoothing=0.0,
        alignment_weight=0.0,
        uniformity_weight=0.0,
        alignment_alpha=2.0,
        uniformity_t=2.0,
        slerp_augmentation=False,
        threshold=DEFAULT_THRESHOLD,
        calibration_temperature=DEFAULT_CALIBRATION_TEMPERATURE,
        num_frames=DEFAULT_NUM_FRAMES,
        video_aggregation=DEFAULT_AGGREGATION,
        confident_threshold=DEFAULT_CONFIDENT_THRESHOLD,
        confident_fraction=DEFAULT_CONFIDENT_FRACTION,
        image_size=None,
        face_preprocessing=None,
        face_crop=None,
        face_size=None,
        face_scale=None,
        face_margin=None,
        **kwargs,
    ):
        # Before anything is built from them: a backbone dict with num_labels 1e8 would allocate its id2label.
        problem = config_size_problem({"backbone_config": backbone_config if isinstance(backbone_config, dict)
                                       else None, "num_frames": num_frames, "image_size": image_size,
                                       "face_size": face_size, **kwargs})
        if problem:
            raise DetectorConfigError(problem)
        self.backbone_config = _as_backbone_config(backbone_config)
        backbone_type = self.backbone_config.model_type
        self.pooling = pooling if pooling is not None else DEFAULT_POOLING.get(backbone_type, "pooler")
        self.normalize_features = bool(normalize_features)
        self.classifier_dropout = float(classifier_dropout)
        self.label_smoothing = float(label_smoothing)
        self.alignment_weight = float(alignment_weight)
        self.uniformity_weight = float(uniformity_weight)
        self.alignment_alpha = float(alignment_alpha)
        self.uniformity_t = float(uniformity_t)
        self.slerp_augmentation = bool(slerp_augmentation)
        self.threshold = float(threshold)
        self.calibration_temperature = float(calibration_temperature)
        self.num_frames = int(num_frames)
        self.video_aggregation = video_aggregation
        self.confident_threshold = float(confident_threshold)
        self.confident_fraction = float(confident_fraction)
        self.image_size = int(image_size or getattr(self.backbone_config, "image_size", None) or 224)
        self.face_preprocessing = face_preprocessing
        self.face_crop = face_crop
        self.face_size = None if face_size is None else int(face_size)
        self.face_scale = None if face_scale is None else float(face_scale)
        self.face_margin = None if face_margin is None else float(face_margin)
        kwargs.setdefault("id2label", {0: "real", 1: "fake"})
        kwargs.setdefault("label2id", {"real": 0, "fake": 1})
        super().__init__(**kwargs)
        self._validate()

    def _validate(self):
        backbone_type = self.backbone_config.model_type
        if self.pooling not in POOLINGS:
            raise DetectorConfigError(f"pooling: {self.pooling!r} is not one of {', '.join(POOLINGS)}.")
        if self.pooling == "cls" and backbone_type not in TOKEN_BACKBONES:
            raise DetectorConfigError(
                f"pooling: 'cls' needs a transformer backbone with a CLS token; {backbone_type!r} has none "
                "(use 'pooler' or 'mean')."
            )
        if self.slerp_augmentation and not self.normalize_features:
            raise DetectorConfigError(
                "slerp_augmentation: interpolates on the unit sphere, so it needs normalize_features=True.")
        if self.video_aggregation not in AGGREGATIONS:
            raise DetectorConfigError(
                f"video_aggregation: {self.video_aggregation!r} is not one of {', '.join(AGGREGATIONS)}.")
        if self.face_preprocessing is not None and self.face_preprocessing not in FACE_PREPROCESSINGS:
            raise DetectorConfigError(f"face_preprocessing: {self.face_preprocessing!r} is not one of "
                             f"{', '.join(FACE_PREPROCESSINGS)} (or None).")
        if self.face_crop is not None and self.face_crop not in FACE_CROPS:
            raise DetectorConfigError(f"face_crop: {self.face_crop!r} is not one of {', '.join(FACE_CROPS)} (or None).")
        ranges = {
            "classifier_dropout": (0.0 <= self.classifier_dropout < 1.0, "in [0, 1)"),
            "label_smoothing": (0.0 <= self.label_smoothing < 1.0, "in [0, 1)"),
            "alignment_weight": (self.alignment_weight >= 0.0, ">= 0"),
            "uniformity_weight": (self.uniformity_weight >= 0.0, ">= 0"),
            "alignment_alpha": (self.alignment_alpha > 0.0, "> 0"),
            "uniformity_t": (self.uniformity_t > 0.0, "> 0"),
            "threshold": (0.0 < self.threshold < 1.0, "in (0, 1)"),
            "calibration_temperature": (self.calibration_temperature > 0.0, "> 0"),
            "num_frames": (self.num_frames >= 1, ">= 1"),
            "confident_threshold": (0.0 < self.confident_threshold < 1.0, "in (0, 1)"),
            "confident_fraction": (0.0 <= self.confident_fraction < 1.0, "in [0, 1)"),
            "image_size": (self.image_size >= 1, ">= 1"),
            "face_size": (self.face_size is None or self.face_size >= 1, ">= 1"),
            "face_scale": (self.face_scale is None or self.face_scale > 0.0, "> 0"),
            "face_margin": (self.face_margin is None or self.face_margin >= 0.0, ">= 0"),
        }
        for name, (ok, expected) in ranges.items():
            if not ok:
                raise DetectorConfigError(f"{name}: {getattr(self, name)!r} must be {expected}.")
        # A backbone given as a config object was not seen by the check in __init__; the model is not built yet.
        problem = config_size_problem({"backbone_config": self.backbone_config.to_dict(),
                                       "num_frames": self.num_frames, "image_size": self.image_size})
        if problem:
            raise DetectorConfigError(problem)
        labels = {int(k): v for k, v in (self.id2label or {}).items()}
        if labels != {0: "real", 1: "fake"}:
            raise DetectorConfigError(
                f"id2label: a deepfake detector has the labels {{0: 'real', 1: 'fake'}}, got {labels}.")

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path, **kwargs):
        """The saved config as a dict; a bare encoder's config (a ViT, CLIP, ... checkpoint) becomes the backbone.

        That is how `from_pretrained` on an encoder checkpoint gives a detector on that encoder (the head
        newly initialised), as transformers' head classes load their base model's checkpoints.
        """
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        model_type = config_dict.get("model_type")
        if model_type not in (None, cls.model_type) and model_type in CONFIG_MAPPING:
            config_dict = {"backbone_config": config_dict}
        return config_dict, kwargs

    def to_diff_dict(self):
        """The serialised config, with `backbone_config` reduced to what differs from its class's defaults.

        transformers serialises a `backbone_config` in full (it may hold timm settings that AutoConfig cannot
        rebuild); here the diff is kept only where rebuilding from it gives back exactly the same config.
        """
        serialized = super().to_diff_dict()
        if isinstance(serialized.get("backbone_config"), dict):
            serialized["backbone_config"] = backbone_config_diff(self.backbone_config)
        return serialized

    @property
    def finds_faces(self):
        """Whether the recorded input is a face found in a photo or video frame (not a whole image)."""
        return self.face_preprocessing not in (None, WHOLE_IMAGE)

    @property
    def hidden_size(self):
        """Width of the pooled feature vector."""
        backbone = self.backbone_config
        if backbone.model_type == "timm_wrapper":
            return timm_feature_size(backbone)
        if getattr(backbone, "hidden_sizes", None):
            return backbone.hidden_sizes[-1]
        if getattr(backbone, "num_features", None):
            return backbone.num_features
        return backbone.hidden_size


__all__ = ["DeepfakeDetectorConfig"]
