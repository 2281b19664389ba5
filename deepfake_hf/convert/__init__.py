"""Published deepfake detectors -> deepfake-hf detector folders, exactly.

`convert(source, out)` reads a published checkpoint in its own key layout and writes a
`DeepfakeDetectorForImageClassification` folder (weights, config with `auto_map` and the code files,
image processor with the source's preprocessing, README.md model card) that loads with
`pipeline("image-classification", model=out, trust_remote_code=True)` and scores what the source's
own forward scores. Formats:

- gend: GenD (yermandy/GenD, WACV 2026) `save_pretrained` folders: config.json `{model_type: GenD,
  backbone, head: linear|LinearNorm}`; CLIP weights under `feature_extractor.vision_model.*`
  (features: `pooler_output`), DINOv2 weights under `feature_extractor.backbone.*` (features: the CLS
  token of `last_hidden_state`), or the Perception Encoder (timm Eva `vit_pe_*`, built with
  `dynamic_img_size=True`, its classifier replaced by Identity, so the features are its attention pool's output)
  under `feature_extractor.backbone.*`, run through transformers' TimmWrapperModel; head `model.linear.*`;
  LinearNorm L2-normalises before the head.
- deepfakebench: DeepfakeBench (SCLBD/DeepfakeBench) `.pth` state dicts of the `clip` detector
  (CLIP vision `backbone.*`, `pooler_output`, `head` Linear) and `effort` (the same, with every
  self-attention Linear stored as `weight_main + U_residual @ diag(S_residual) @ V_residual`, which
  is merged into one plain weight: the layer is linear in its weight, so the merge is exact), and `xception`
  (the Cadene/FaceForensics++ port of Xception under `backbone.*`, `backbone.last_linear` head; its layer names and
  operations are timm's `legacy_xception`, run through TimmWrapperModel). `efficientnetb4` is refused: see
  DEEPFAKEBENCH_NOT_CONVERTED.
- univfd: UnivFD (Ojha et al., CVPR 2023) `fc` Linear(768, 1) on CLIP ViT-L/14 image features
  (`visual_projection(pooler_output)`); no nonlinearity sits between the projection and `fc`, so the
  two fold into one head row W = W_fc @ W_proj (fake logit z, real logit 0, softmax = sigmoid(z)).
- classifier: a stock transformers image classifier with two labels (ViT, CLIP, ConvNeXt, ResNet);
  the label that means fake is read from `id2label` or given with `fake_label`.

Checkpoints are read with safetensors or `torch.load(weights_only=True)`; anything that would need
arbitrary unpickling is refused, never executed. Every problem is a one-line `ConvertError` naming
the file, key or option.
"""

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from deepfake_hf.errors import DeepfakeHFError, MissingDependencyError, one_line

logger = logging.getLogger(__name__)

FORMATS = ("gend", "deepfakebench", "univfd", "classifier")
DEEPFAKEBENCH_DETECTORS = ("clip", "effort", "xception")
# DeepfakeBench detectors no encoder here computes exactly, with the reason.
DEEPFAKEBENCH_NOT_CONVERTED = {
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
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
WEIGHT_SUFFIXES = (".safetensors",) + PICKLE_SUFFIXES

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

# Label names read from a classifier's id2label (case-insensitive; separators ignored).
FAKE_WORDS = ("fake", "deepfake", "spoof", "manipulated", "synthetic", "generated", "ai", "aigenerated", "artificial",
              "forged", "altered")
REAL_WORDS = ("real", "authentic", "bonafide", "genuine", "human", "original", "pristine", "natural", "live")

# Stock classifiers that are exactly a backbone + pooling + one Linear head:
# model_type -> (attribute of the encoder, pooling, head weight key prefix)
CLASSIFIER_LAYOUTS = {
    "vit": ("vit", "cls", "classifier."),
    "clip": ("vision_model", "mean", "classifier."),
    "convnext": ("convnext", "pooler", "classifier."),
    "resnet": ("resnet", "pooler", "classifier.1."),
}


class ConvertError(DeepfakeHFError, ValueError):
    """A checkpoint that cannot be converted exactly; one line naming the file, key or option."""


# ------------------------------------------------------------------------------------------- sources
@dataclass
class SourceInfo:
    """What a model card says about a published detector. Numbers only with their citation."""

    title: str
    paper: str
    code: str
    licence: str
    backbone: str
    input: str
    published: str = "not stated"
    notes: list = field(default_factory=list)


SOURCES = {
    "gend": SourceInfo(
        title="GenD",
        paper="Yermakov et al., GenD (WACV 2026); code github.com/yermandy/GenD",
        code="https://github.com/yermandy/GenD",
        licence="see the source repository (not recorded in the checkpoint)",
        backbone="CLIP ViT (pooler_output) or DINOv2 (CLS token), named in the checkpoint's config",
        input="DeepfakeBench-aligned 256x256 face crops; the backbone's processor (CLIP: short side 224, "
              "centre crop 224, CLIP mean/std)",
        published="not stated here for GenD itself. Its predecessor (CLIP ViT-L/14 LN-tuning, arXiv 2503.19683) "
                  "reports video AUROC trained on FF++: CDFv2 96.62, DFD 98.0, DFDC 87.15, FFIW 91.52, "
                  "DeepSpeak v1 92.01",
    ),
    "deepfakebench-clip": SourceInfo(
        title="DeepfakeBench CLIP detector",
        paper="Yan et al., DeepfakeBench (NeurIPS 2023 Datasets and Benchmarks)",
        code="https://github.com/SCLBD/DeepfakeBench",
        licence="CC BY-NC 4.0 (DeepfakeBench)",
        backbone="openai/clip-vit-base-patch16 vision tower, pooler_output, Linear(768, 2)",
        input="256x256 aligned face crops resized to 224x224 (bicubic), mean = std = 0.5",
    ),
    "deepfakebench-effort": SourceInfo(
        title="Effort (DeepfakeBench)",
        paper="Yan et al., Effort: Orthogonal Subspace Decomposition for Generalizable AI-Generated Image "
              "Detection (ICML 2025)",
        code="https://github.com/SCLBD/DeepfakeBench",
        licence="CC BY-NC 4.0 (DeepfakeBench)",
        backbone="openai/clip-vit-large-patch14 vision tower with SVD-residual attention (merged), "
                 "pooler_output, Linear(1024, 2)",
        input="256x256 aligned face crops resized to 224x224 (bicubic), CLIP mean/std",
        published="AUROC trained on FF++ c23, as DeepfakeBench reports it: CDFv2 0.956, DFD 0.965, DFDC 0.843, "
                  "FFIW 0.921",
    ),
    "deepfakebench-xception": SourceInfo(
        title="Xception (DeepfakeBench)",
        paper="Rossler et al., FaceForensics++ (ICCV 2019), Xception baseline as trained by DeepfakeBench (Yan et al., "
              "NeurIPS 2023 Datasets and Benchmarks)",
        code="https://github.com/SCLBD/DeepfakeBench",
        licence="CC BY-NC 4.0 (DeepfakeBench)",
        backbone="Xception (timm legacy_xception through transformers' TimmWrapperModel), global average pool, "
                 "Linear(2048, 2)",
        input="256x256 aligned face crops (resized to 256, bicubic), mean = std = 0.5",
        published="AUROC trained on FF++ c23, as DeepfakeBench reports it: CDFv2 0.737, DFDC 0.708",
    ),
    "gend-pe": SourceInfo(
        title="GenD (Perception Encoder)",
        paper="Yermakov et al., GenD (WACV 2026); code github.com/yermandy/GenD",
        code="https://github.com/yermandy/GenD",
        licence="see the source repository (not recorded in the checkpoint)",
        backbone="Perception Encoder (timm Eva vit_pe_*, attention-pool output, through transformers' "
                 "TimmWrapperModel)",
        input="DeepfakeBench-aligned 256x256 face crops; the timm model's evaluation transform at 224 (its mean, "
              "std and crop_pct), as GenD's preprocess",
    ),
    "univfd": SourceInfo(
        title="UnivFD",
        paper="Ojha, Li and Lee, Towards Universal Fake Image Detectors that Generalize Across Generative Models "
              "(CVPR 2023)",
        code="https://github.com/WisconsinAIVision/UniversalFakeDetect",
        licence="see the source repository (not recorded in the checkpoint)",
        backbone="CLIP ViT-L/14 image features (visual_projection of pooler_output), fc Linear(768, 1) folded in",
        input="centre crop 224 without resizing, CLIP mean/std (as its evaluation script)",
    ),
    "classifier": SourceInfo(
        title="image classifier",
        paper="not stated (a stock transformers classifier)",
        code="",
        licence="as stated by the source checkpoint",
        backbone="the classifier's own encoder",
        input="the classifier's own image processor",
    ),
}


# ------------------------------------------------------------------------------------------- safe loading
def load_state_dict(path):
    """{key: tensor} from a .safetensors file, or from a torch file read with `weights_only=True`.

    A torch file may hold the state dict under `state_dict` or `model`; a `module.` prefix
    (DataParallel) is stripped. Anything whose unpickling would run code is refused, not executed.
    """
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return _strip_module_prefix(load_file(str(path)))
        except Exception as error:  # a truncated or foreign file
            raise ConvertError(f"{path}: not a readable safetensors file ({one_line(error, 200)})") from None
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        # weights_only refuses every global outside torch's allow-list, before anything is called.
        reason = one_line(error, 160)
        raise ConvertError(f"{path}: refused: reading it would need arbitrary unpickling, which can run code "
                           f"({reason}); re-save the weights as safetensors or a plain state dict") from None
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not loaded:
        raise ConvertError(f"{path}: expected a state dict (a mapping of names to tensors)")
    not_tensors = [key for key, value in loaded.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise ConvertError(f"{path}: {not_tensors[0]!r} is not a tensor; expected a state dict")
    return _strip_module_prefix(loaded)


def _strip_module_prefix(state):
    if all(key.startswith("module.") for key in state):
        return {key[len("module."):]: value for key, value in state.items()}
    return dict(state)


def _weight_files(folder):
    files = sorted(p for p in Path(folder).iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    safetensors = [p for p in files if p.suffix == ".safetensors"]
    return safetensors or files


def _load_folder_weights(folder):
    """The state dict of a folder: its safetensors shards (preferred) or its torch files, merged."""
    files = _weight_files(folder)
    if not files:
        raise ConvertError(f"{folder}: no weight file (.safetensors, .pth, .pt, .ckpt or .bin)")
    state = {}
    for file in files:
        state.update(load_state_dict(file))
    return state


def resolve_source(source):
    """A local path for `source`: an existing file or folder, else a Hub id fetched with snapshot_download."""
    path = Path(os.path.expanduser(str(source)))
    if path.exists():
        return path
    if re.fullmatch(r"[\w.-]+/[\w.-]+", str(source)):
        from huggingface_hub import snapshot_download

        try:
            patterns = ["*.json", "*.safetensors", "*.pth", "*.pt", "*.ckpt", "*.bin", "README.md", "*.txt"]
            return Path(snapshot_download(str(source), allow_patterns=patterns))
        except Exception as error:
            raise ConvertError(f"{source}: not a local path and not downloadable from the Hub "
                               f"({one_line(error, 200)})") from None
    raise ConvertError(f"{source}: no such file or folder (and not a Hub id of the form org/name)")


# ------------------------------------------------------------------------------------------- detection
def _read_config(folder):
    from deepfake_hf.safety import UnsafeFileError, check_config, read_json

    config_path = Path(folder) / "config.json"
    if not config_path.is_file():
        return None
    try:  # too large, invalid or deeply nested JSON, and absurd sizes, refused before anything is built from it
        return check_config(read_json(config_path), config_path)
    except UnsafeFileError as error:
        raise ConvertError(str(error)) from None


def detect_format(path, state=None):
    """The format of a source ("gend", "deepfakebench", "univfd", "classifier") and, for DeepfakeBench,
    the detector ("clip", "effort", "xception" or "efficientnetb4"); ConvertError when it cannot tell."""
    path = Path(path)
    if path.is_dir():
        config = _read_config(path)
        if config is not None:
            if config.get("model_type") == "GenD":
                return "gend", None
            if config.get("model_type") == "deepfake_detector":
                raise ConvertError(f"{path}: already a deepfake-hf detector; load it directly")
            if config.get("id2label") or any(a.endswith("ForImageClassification")
                                             for a in config.get("architectures") or []):
                return "classifier", None
        if state is None:
            state = _load_folder_weights(path)
    elif state is None:
        state = load_state_dict(path)
    keys = set(state)
    if any(key.endswith((".U_residual", ".weight_main")) for key in keys):
        return "deepfakebench", "effort"
    if "head.weight" in keys and any(key.startswith("backbone.embeddings.") for key in keys):
        return "deepfakebench", "clip"
    if "backbone.block1.rep.0.conv1.weight" in keys and any(key.startswith("backbone.last_linear.") for key in keys):
        return "deepfakebench", "xception"
    if "backbone.efficientnet._conv_stem.weight" in keys:
        return "deepfakebench", "efficientnetb4"
    if keys <= {"weight", "bias", "fc.weight", "fc.bias"} and keys:
        return "univfd", None
    raise ConvertError(f"{path}: cannot tell the checkpoint's format from its keys (e.g. {sorted(keys)[:3]}); "
                       f"pass --from {'|'.join(FORMATS)}")


# ------------------------------------------------------------------------------------------- backbones
def _load_backbone_config(backbone):
    """The encoder config named by a Hub id, a local folder or a timm architecture name (e.g. legacy_xception);
    the vision tower of a full CLIP config."""
    from transformers import AutoConfig

    if not Path(str(backbone)).exists() and "/" not in str(backbone) and _is_timm_architecture(str(backbone)):
        return _timm_config(str(backbone))
    from deepfake_hf.safety import check_model_source

    try:
        check_model_source(str(backbone))  # absurd sizes refused before AutoConfig builds anything
        config = AutoConfig.from_pretrained(str(backbone), trust_remote_code=False)  # no stdin prompt, no code run
    except Exception as error:
        raise ConvertError(f"--backbone {backbone}: cannot load its config ({one_line(error, 160)}); pass a local "
                           "folder holding the encoder's config.json") from None
    return getattr(config, "vision_config", None) or config


def _is_timm_architecture(name):
    import importlib.util

    if importlib.util.find_spec("timm") is None:
        return False
    import timm

    return timm.is_model(name)


def _timm_config(architecture):
    """A TimmWrapperConfig building `architecture` (a timm model name; no weights are fetched)."""
    from transformers import TimmWrapperConfig

    return TimmWrapperConfig(architecture=architecture)


def _require_timm(config):
    """MissingDependencyError (naming the extra) unless a timm backbone's package is installed."""
    from deepfake_hf.configuration_deepfake import missing_timm

    reason = missing_timm(config)
    if reason:
        raise MissingDependencyError(reason)


def _timm_backbone(backbone, family, architectures, **model_args):
    """The timm encoder config of --backbone (a folder with a timm_wrapper config.json, or a timm name; the first
    of `architectures` when None), with `model_args` the source always builds it with; ConvertError unless it is
    one of `architectures`."""
    name = str(backbone or architectures[0])
    where = f"--backbone {backbone}" if backbone else name
    local = Path(os.path.expanduser(name)).exists()
    config = _load_backbone_config(name) if local or "/" in name else _timm_config(name)
    if config.model_type != "timm_wrapper":
        raise ConvertError(f"{where}: {family} is a timm model (timm_wrapper config), got {config.model_type!r}")
    _require_timm(config)
    if not _is_timm_architecture(config.architecture) or not config.architecture.startswith(architectures):
        raise ConvertError(f"{where}: {family} is timm {' or '.join(architectures)}, got {config.architecture!r}")
    if model_args:
        config.model_args = {**(config.model_args or {}), **model_args}
    return config


def _clip_vision_config_from_weights(state, prefix):
    """A CLIPVisionConfig read off CLIP vision weights (for checkpoints that carry no config).

    Every OpenAI CLIP ViT uses 64-dimensional attention heads, quick_gelu and LayerNorm eps 1e-5
    (CLIPVisionConfig's defaults), so the rest follows from the tensor shapes.
    """
    from transformers import CLIPVisionConfig

    def shape(key):
        if prefix + key not in state:
            raise ConvertError(f"missing key {prefix + key!r} (needed to read the CLIP architecture; or pass "
                               "--backbone)")
        return tuple(state[prefix + key].shape)

    hidden, _, patch, _ = shape("embeddings.patch_embedding.weight")
    positions = shape("embeddings.position_embedding.weight")[0]
    layers = 1 + max(int(m.group(1)) for key in state
                     if (m := re.match(re.escape(prefix) + r"encoder\.layers\.(\d+)\.", key)))
    grid = round((positions - 1) ** 0.5)
    if hidden % 64:
        raise ConvertError(f"{prefix}: hidden size {hidden} is not a multiple of 64, so the attention heads cannot "
                           "be inferred; pass --backbone with the encoder's config")
    return CLIPVisionConfig(hidden_size=hidden, intermediate_size=shape("encoder.layers.0.mlp.fc1.weight")[0],
                            num_hidden_layers=layers, num_attention_heads=hidden // 64, patch_size=patch,
                            image_size=grid * patch)


def _encoder_config(backbone, state=None, clip_prefix=None, default=None):
    """--backbone when given; else CLIP architecture read off the weights; else `default` (a Hub id)."""
    if backbone:
        return _load_backbone_config(backbone)
    if clip_prefix is not None and state is not None:
        config = _clip_vision_config_from_weights(state, clip_prefix)
        logger.warning("no --backbone: CLIP vision architecture read from the weights (hidden %d, %d layers, "
                       "%d heads of 64)", config.hidden_size, config.num_hidden_layers, config.num_attention_heads)
        return config
    if default:
        return _load_backbone_config(default)
    raise ConvertError("the checkpoint does not carry its encoder architecture; pass --backbone ID_OR_DIR")


def _processor_of(backbone):
    """The image processor saved with a backbone (local folder or Hub id), or None."""
    from transformers import AutoImageProcessor

    if not backbone:
        return None
    try:
        return AutoImageProcessor.from_pretrained(str(backbone), trust_remote_code=False)
    except Exception:  # no preprocessor_config.json, or offline
        return None


def _resize_processor(size, mean, std):
    """Resize straight to size x size (bicubic), no crop: DeepfakeBench's `cv2.resize(..., INTER_CUBIC)`."""
    from transformers import ViTImageProcessor
    from transformers.image_utils import PILImageResampling

    return ViTImageProcessor(size={"height": size, "width": size}, resample=PILImageResampling.BICUBIC,
                             image_mean=list(mean), image_std=list(std))


def _clip_processor(size):
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                              image_mean=CLIP_MEAN, image_std=CLIP_STD)


def _dinov2_processor(size):
    """DINOv2's published preprocessing: short side to 256/224 of the crop, centre crop, ImageNet statistics."""
    from transformers import BitImageProcessor

    return BitImageProcessor(size={"shortest_edge": round(size * 256 / 224)}, crop_size={"height": size, "width": size},
                             image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, do_convert_rgb=True)


# ------------------------------------------------------------------------------------------- weights
def _take(state, prefix, where):
    """The entries of `state` under `prefix`, with the prefix removed; ConvertError when there are none."""
    taken = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    if not taken:
        raise ConvertError(f"{where}: no keys under {prefix!r} (found e.g. {sorted(state)[:3]})")
    return taken


def _head(state, prefix, where):
    for name in ("weight", "bias"):
        if prefix + name not in state:
            raise ConvertError(f"{where}: missing key {prefix + name!r}")
    return state[prefix + "weight"], state[prefix + "bias"]


def merge_effort_attention(state):
    """Effort's SVD-residual attention Linear layers merged into plain `weight` tensors, exactly.

    `weight = weight_main + U_residual @ diag(S_residual) @ V_residual` is the weight its forward
    applies (F.linear(x, weight, bias)); computed in float64 and cast back so the merge adds no error
    beyond the final rounding.
    """
    import torch

    merged, residual_parts = {}, {}
    for key, value in state.items():
        stem, _, name = key.rpartition(".")
        if name in ("weight_main", "U_residual", "S_residual", "V_residual"):
            residual_parts.setdefault(stem, {})[name] = value
        else:
            merged[key] = value
    for stem, parts in residual_parts.items():
        if "weight_main" not in parts:
            raise ConvertError(f"effort checkpoint: missing key {stem + '.weight_main'!r}")
        weight = parts["weight_main"].double()
        if any(name in parts for name in ("U_residual", "S_residual", "V_residual")):
            missing = [n for n in ("U_residual", "S_residual", "V_residual") if n not in parts]
            if missing:
                raise ConvertError(f"effort checkpoint: missing key {stem + '.' + missing[0]!r}")
            u, s, v = parts["U_residual"].double(), parts["S_residual"].double(), parts["V_residual"].double()
            if u.shape[0] != weight.shape[0] or v.shape[1] != weight.shape[1] or u.shape[1] != s.shape[0] != v.shape[0]:
                raise ConvertError(f"effort checkpoint: {stem}: residual shapes U {tuple(u.shape)}, S {tuple(s.shape)}, "
                                   f"V {tuple(v.shape)} do not match weight_main {tuple(weight.shape)}")
            weight = weight + u @ torch.diag(s) @ v
        merged[stem + ".weight"] = weight.to(parts["weight_main"].dtype)
    return merged


def _load_exact(module, state, where):
    """load_state_dict(strict) with one-line errors naming the first missing, unexpected or mis-shaped key."""
    expected = module.state_dict()
    # CLIP vision weights are `vision_model.*` in some transformers versions' CLIPVisionModel and bare in others
    # (and bare in the sources, which saved CLIPVisionTransformer); TimmWrapperModel holds the timm model, whose
    # own names the sources use, as `timm_model`: match the module's naming.
    for wrapped in ("vision_model.", "timm_model."):
        if all(key.startswith(wrapped) for key in expected) and not any(key.startswith(wrapped) for key in state):
            state = {wrapped + key: value for key, value in state.items()}
        elif not any(key.startswith(wrapped) for key in expected) and all(key.startswith(wrapped) for key in state):
            state = {key[len(wrapped):]: value for key, value in state.items()}
    # buffers that some versions save and others rebuild (position ids) are not weights
    state = {key: value for key, value in state.items() if key in expected or not key.endswith("position_ids")}
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing:
        raise ConvertError(f"{where}: missing key {missing[0]!r} ({len(missing)} missing)")
    if unexpected:
        raise ConvertError(f"{where}: unexpected key {unexpected[0]!r} ({len(unexpected)} not used by the encoder)")
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ConvertError(f"{where}: {key!r} has shape {tuple(value.shape)}, the encoder expects "
                               f"{tuple(expected[key].shape)}")
    module.load_state_dict(state, strict=True)


def _load_encoder(module, state, where):
    """Load encoder weights exactly; checkpoints saved by older transformers (legacy key names, e.g. DINOv2's
    `attention.attention.query`) go through transformers' own loader, which renames them."""
    import tempfile

    from safetensors.torch import save_file

    try:
        _load_exact(module, state, where)
        return
    except ConvertError as error:
        if "missing key" not in str(error) and "unexpected key" not in str(error):
            raise
        exact_error = error
    with tempfile.TemporaryDirectory() as folder:
        module.config.save_pretrained(folder)
        save_file({key: value.contiguous() for key, value in state.items()}, os.path.join(folder, "model.safetensors"))
        try:
            loaded, info = type(module).from_pretrained(folder, output_loading_info=True)
        except Exception:
            raise exact_error from None
    if info.get("missing_keys") or info.get("unexpected_keys") or info.get("mismatched_keys"):
        raise exact_error
    _load_exact(module, loaded.state_dict(), where)


@dataclass
class Converted:
    """Everything a detector folder is written from."""

    backbone_config: object
    pooling: str
    normalize_features: bool
    encoder_state: dict
    head_weight: object
    head_bias: object
    processor: object
    source_key: str
    description: str


# Sources trained on DeepfakeBench's face crops (GenD too: its data are DeepfakeBench-preprocessed): their
# detectors record that face mode, so predict/evaluate/Detector/app crop the same way by default.
DEEPFAKEBENCH_PREPROCESSED = ("gend", "deepfakebench")


def face_preprocessing_of(source_key):
    """The face preprocessing a converted source was trained with ("deepfakebench"), or None."""
    return "deepfakebench" if source_key.split("-")[0] in DEEPFAKEBENCH_PREPROCESSED else None


def _build(converted):
    import torch

    from deepfake_hf import register
    from deepfake_hf.configuration_deepfake import DeepfakeDetectorConfig
    from deepfake_hf.modeling_deepfake import DeepfakeDetectorForImageClassification

    register()  # save_pretrained then writes auto_map and the code files
    backbone_config = converted.backbone_config
    _require_timm(backbone_config)
    image_size = getattr(backbone_config, "image_size", None)
    crop = (converted.processor.to_dict().get("crop_size") or converted.processor.to_dict().get("size") or {})
    image_size = crop.get("height") or image_size
    config = DeepfakeDetectorConfig(backbone_config=backbone_config, pooling=converted.pooling,
                                    normalize_features=converted.normalize_features, image_size=image_size,
                                    face_preprocessing=face_preprocessing_of(converted.source_key))
    model = DeepfakeDetectorForImageClassification(config).eval()
    _load_encoder(model.backbone, converted.encoder_state, f"{converted.source_key} encoder")
    weight, bias = converted.head_weight, converted.head_bias
    if tuple(weight.shape) != (2, config.hidden_size) or tuple(bias.shape) != (2,):
        raise ConvertError(f"{converted.source_key} head: shape {tuple(weight.shape)} / {tuple(bias.shape)}, expected "
                           f"(2, {config.hidden_size}) / (2,)")
    with torch.no_grad():
        model.classifier.weight.copy_(weight.to(model.classifier.weight.dtype))
        model.classifier.bias.copy_(bias.to(model.classifier.bias.dtype))
    model.image_processor = converted.processor
    return model


# ------------------------------------------------------------------------------------------- formats
def _from_gend(path, backbone):
    config = _read_config(path) or {}
    if config.get("model_type") != "GenD":
        raise ConvertError(f"{path}: not a GenD folder (config.json model_type is {config.get('model_type')!r})")
    head = config.get("head", "linear")
    if head not in ("linear", "LinearNorm"):
        raise ConvertError(f"{path}: GenD head {head!r} is not linear or LinearNorm")
    named = str(config.get("backbone") or "")
    state = _load_folder_weights(path)
    weight, bias = _head(state, "model.linear.", path)
    if "vit_pe" in named.lower():
        # GenD builds the PE with dynamic_img_size=True (position embeddings resampled to its 224 input) and
        # replaces its classifier by Identity: the features are the attention pool's output, TimmWrapperModel's
        # pooler_output (built with num_classes=0).
        encoder_config = _timm_backbone(backbone or named, "GenD's Perception Encoder", ("vit_pe",),
                                        dynamic_img_size=True)
        encoder_state = _take(state, "feature_extractor.backbone.", path)
        from deepfake_hf.modeling_deepfake import timm_image_processor, timm_pretrained_cfg

        # GenD's preprocess: timm's evaluation transform of the model's data config, with input size 224.
        processor = timm_image_processor(timm_pretrained_cfg(encoder_config), size=224)
        return Converted(encoder_config, "pooler", head == "LinearNorm", encoder_state, weight, bias, processor,
                         "gend-pe", f"GenD (Perception Encoder {encoder_config.architecture}, head {head})")
    if any(key.startswith("feature_extractor.vision_model.") for key in state):
        prefix = "feature_extractor.vision_model."
        encoder_config = _encoder_config(backbone, state, clip_prefix=prefix) if backbone or not named else None
        if encoder_config is None:
            try:
                encoder_config = _load_backbone_config(named)
            except ConvertError:  # offline without a cached config: read the architecture off the weights
                encoder_config = _encoder_config(None, state, clip_prefix=prefix)
        encoder_state = _take(state, prefix, path)
        pooling, family = "pooler", "CLIP"
        processor = _processor_of(backbone or named) or _clip_processor(encoder_config.image_size)
    elif any(key.startswith("feature_extractor.backbone.") for key in state):
        encoder_config = _encoder_config(backbone, default=named)
        encoder_state = _take(state, "feature_extractor.backbone.", path)
        if not encoder_config.model_type.startswith("dino"):
            raise ConvertError(f"{path}: GenD backbone weights under feature_extractor.backbone but the encoder config "
                               f"is {encoder_config.model_type!r}, not a DINO model")
        # DINO features are the CLS token of last_hidden_state (after the final LayerNorm); for DINOv2 and its
        # register variant `pooler_output` is that same token, so "pooler" is exact for every DINO family.
        pooling, family = ("cls" if encoder_config.model_type == "dinov2" else "pooler"), "DINO"
        # DINOv2 configs say 518 (their position grid) but the published processor crops 224, as GenD trains.
        processor = _processor_of(backbone or named) or _dinov2_processor(224)
    else:
        raise ConvertError(f"{path}: GenD weights have neither feature_extractor.vision_model.* (CLIP) nor "
                           "feature_extractor.backbone.* (DINO)")
    return Converted(encoder_config, pooling, head == "LinearNorm", encoder_state, weight, bias, processor, "gend",
                     f"GenD ({family} backbone {named or backbone}, head {head})")


def _from_deepfakebench(path, detector, backbone):
    state = load_state_dict(path) if path.is_file() else _load_folder_weights(path)
    if detector is None:
        _, detector = detect_format(path, state)
    if detector in DEEPFAKEBENCH_NOT_CONVERTED:
        raise ConvertError(f"--detector {detector}: {DEEPFAKEBENCH_NOT_CONVERTED[detector]}")
    if detector not in DEEPFAKEBENCH_DETECTORS:
        raise ConvertError(f"--detector {detector}: not one of {', '.join(DEEPFAKEBENCH_DETECTORS)}")
    if detector == "xception":
        return _from_deepfakebench_xception(path, state, backbone)
    if detector == "effort":
        state = merge_effort_attention(state)
    elif any(key.endswith(".weight_main") for key in state):
        raise ConvertError(f"{path}: has Effort's SVD-residual keys; use --detector effort")
    weight, bias = _head(state, "head.", path)
    encoder_state = _take(state, "backbone.", path)
    encoder_config = _encoder_config(backbone, state, clip_prefix="backbone.")
    if encoder_config.model_type != "clip_vision_model":
        raise ConvertError(f"--backbone {backbone}: DeepfakeBench's {detector} detector is a CLIP vision model, "
                           f"got {encoder_config.model_type!r}")
    size = encoder_config.image_size
    mean, std = (CLIP_MEAN, CLIP_STD) if detector == "effort" else ([0.5] * 3, [0.5] * 3)
    return Converted(encoder_config, "pooler", False, encoder_state, weight, bias, _resize_processor(size, mean, std),
                     f"deepfakebench-{detector}", f"DeepfakeBench {detector} detector")


def _from_deepfakebench_xception(path, state, backbone):
    """DeepfakeBench's xception detector: `backbone.*` is the Xception (timm legacy_xception's names), head
    `backbone.last_linear` (`last_linear.1` when trained with dropout); the detector classifies
    last_linear(avg_pool(relu(bn4 output))), which is TimmWrapperModel's pooler_output followed by that Linear.

    Its config's mode "original" is assumed: "shallow_xception" (blocks 4-11 skipped) saves the same keys and
    cannot be told from them; "adjust_channel_iid" is refused by its head's shape (512 inputs)."""
    outside = sorted(key for key in state if not key.startswith("backbone."))
    if outside:
        raise ConvertError(f"{path}: unexpected key {outside[0]!r}: DeepfakeBench's xception detector keeps every "
                           "weight under backbone.* (another detector built on Xception is not converted)")
    head = "backbone.last_linear.1." if "backbone.last_linear.1.weight" in state else "backbone.last_linear."
    weight, bias = _head(state, head, path)
    if weight.ndim != 2 or weight.shape[1] != 2048:
        raise ConvertError(f"{path}: {head}weight has shape {tuple(weight.shape)}; the xception detector's head is "
                           "Linear(2048, 2) (an adjust_channel Xception is not converted)")
    # adjust_channel is built in every mode but used only in DeepfakeBench's adjust_channel modes.
    encoder_state = {key: value for key, value in _take(state, "backbone.", path).items()
                     if not key.startswith(("last_linear.", "adjust_channel."))}
    encoder_config = _timm_backbone(backbone, "DeepfakeBench's Xception", (XCEPTION_ARCHITECTURE,))
    processor = _resize_processor(DEEPFAKEBENCH_RESOLUTION, [0.5] * 3, [0.5] * 3)
    return Converted(encoder_config, "pooler", False, encoder_state, weight, bias, processor,
                     "deepfakebench-xception", "DeepfakeBench xception detector (timm legacy_xception)")


def _from_univfd(path, backbone):
    import torch

    state = load_state_dict(path) if path.is_file() else _load_folder_weights(path)
    prefix = "fc." if "fc.weight" in state else ""
    fc_weight, fc_bias = _head(state, prefix, path)
    if fc_weight.ndim != 2 or fc_weight.shape[0] != 1 or fc_bias.numel() != 1:
        raise ConvertError(f"{path}: {prefix}weight has shape {tuple(fc_weight.shape)}; UnivFD's fc is Linear(D, 1)")
    backbone = backbone or "openai/clip-vit-large-patch14"
    clip_state = _clip_weights_with_projection(backbone)
    projection = clip_state.pop("visual_projection.weight")  # (projection_dim, hidden)
    if projection.shape[0] != fc_weight.shape[1]:
        raise ConvertError(f"{path}: fc expects {fc_weight.shape[1]} features but {backbone}'s visual_projection gives "
                           f"{projection.shape[0]}")
    encoder_config = _load_backbone_config(backbone)
    # fake logit z = w_fc . (W_proj h) + b = (w_fc W_proj) . h + b; real logit 0: softmax = sigmoid(z), exactly.
    fake_row = (fc_weight.double() @ projection.double()).to(fc_weight.dtype)
    weight = torch.cat([torch.zeros_like(fake_row), fake_row])
    bias = torch.cat([torch.zeros_like(fc_bias.reshape(1)), fc_bias.reshape(1)])
    size = encoder_config.image_size
    from transformers import CLIPImageProcessor

    processor = CLIPImageProcessor(do_resize=False, crop_size={"height": size, "width": size},
                                   image_mean=CLIP_MEAN, image_std=CLIP_STD)
    return Converted(encoder_config, "pooler", False, clip_state, weight, bias, processor, "univfd",
                     f"UnivFD fc on {backbone}")


def _clip_weights_with_projection(backbone):
    """CLIP vision weights (`vision_model.*`) and `visual_projection.weight` of a full CLIP checkpoint."""
    from huggingface_hub import snapshot_download

    folder = Path(str(backbone))
    if not folder.is_dir():
        try:
            folder = Path(snapshot_download(str(backbone), allow_patterns=["*.json", "*.safetensors"]))
        except Exception as error:
            raise ConvertError(f"--backbone {backbone}: not a local folder and not downloadable "
                               f"({one_line(error, 160)})") from None
    state = _load_folder_weights(folder)
    if "visual_projection.weight" not in state:
        raise ConvertError(f"--backbone {backbone}: missing key 'visual_projection.weight' (UnivFD needs a full CLIP "
                           "checkpoint or CLIPVisionModelWithProjection)")
    kept = _take(state, "vision_model.", f"--backbone {backbone}")
    kept["visual_projection.weight"] = state["visual_projection.weight"]
    return kept


def fake_label_of(id2label, fake_label=None):
    """Index of the label meaning fake among two labels; ConvertError when it cannot be told."""
    labels = {int(index): str(name) for index, name in id2label.items()}
    if sorted(labels) != [0, 1]:
        raise ConvertError(f"a deepfake detector needs two labels, the classifier has {len(labels)}: {labels}")
    if fake_label is not None:
        matches = [index for index, name in labels.items() if name.lower() == str(fake_label).lower()]
        if not matches:
            raise ConvertError(f"--fake-label {fake_label}: not one of the classifier's labels {list(labels.values())}")
        return matches[0]

    def word(name):
        return re.sub(r"[^a-z]", "", name.lower())

    fake = [i for i, name in labels.items() if word(name) in FAKE_WORDS or any(w in re.split(r"[^a-z]+", name.lower())
                                                                              for w in FAKE_WORDS)]
    real = [i for i, name in labels.items() if word(name) in REAL_WORDS or any(w in re.split(r"[^a-z]+", name.lower())
                                                                              for w in REAL_WORDS)]
    if len(fake) == 1 and fake != real:
        return fake[0]
    if len(real) == 1 and fake != real:
        return 1 - real[0]
    raise ConvertError(f"cannot tell which label means fake in id2label {labels}; pass --fake-label NAME")


def _from_classifier(path, fake_label):
    from transformers import AutoConfig, AutoModelForImageClassification

    _read_config(path)  # its sizes checked before AutoConfig builds it
    try:  # False, not None: a classifier's auto_map is refused in one line, never asked about on stdin or run
        config = AutoConfig.from_pretrained(str(path), trust_remote_code=False)
    except Exception as error:
        if "custom code" in str(error):
            raise ConvertError(f"{path}: its config.json names custom model code (auto_map) that would run on this "
                               "machine; convert never runs it (refused)") from None
        raise ConvertError(f"{path}: cannot load the classifier's config ({one_line(error, 200)})") from None
    model_type = config.model_type
    if model_type not in CLASSIFIER_LAYOUTS:
        raise ConvertError(f"{path}: a {model_type!r} classifier is not converted (supported: "
                           f"{', '.join(CLASSIFIER_LAYOUTS)}; its head or pooling has no exact detector equivalent)")
    fake_index = fake_label_of(config.id2label, fake_label)
    encoder_name, pooling, head_prefix = CLASSIFIER_LAYOUTS[model_type]
    # transformers' own loader reads the weights (safetensors, or torch weights-only) and renames legacy keys,
    # so the encoder and head are taken from the loaded model rather than from the files' key names.
    try:
        model = AutoModelForImageClassification.from_pretrained(str(path), use_safetensors=None,
                                                                trust_remote_code=False).eval()
    except Exception as error:
        raise ConvertError(f"{path}: cannot load the classifier ({one_line(error, 200)})") from None
    state = model.state_dict()
    weight, bias = _head(state, head_prefix, path)
    order = [1 - fake_index, fake_index]  # detector rows: 0 real, 1 fake
    weight, bias = weight[order], bias[order]
    encoder_state = getattr(model, encoder_name).state_dict()
    backbone_config = config.vision_config if model_type == "clip" else config
    processor = _processor_of(path)
    if processor is None:
        raise ConvertError(f"{path}: no preprocessor_config.json; the classifier's preprocessing is unknown")
    return Converted(backbone_config, pooling, False, encoder_state, weight.clone(), bias.clone(), processor,
                     "classifier", f"{model_type} image classifier (fake label: {config.id2label[fake_index]!r})")


# ------------------------------------------------------------------------------------------- card
def _source_licence(path):
    readme = Path(path) / "README.md" if Path(path).is_dir() else None
    if readme is not None and readme.is_file():
        match = re.search(r"^license:\s*(\S+)", readme.read_text(encoding="utf-8", errors="replace"), re.MULTILINE)
        if match:
            return match.group(1)
    return None


def render_card(converted, source, path):
    info = SOURCES[converted.source_key]
    licence = _source_licence(path) or info.licence
    processor = converted.processor.to_dict()
    lines = [
        "---", "library_name: transformers", "pipeline_tag: image-classification",
        "tags: [deepfake-detection, image-classification, converted]", "---", "",
        f"# {info.title}, converted for transformers", "",
        f"Converted with `deepfake-hf convert` from `{source}`: {converted.description}. The weights are the "
        "source's, rearranged exactly (a test checks that the converted model scores what the source's forward "
        "scores, within 1e-5); nothing was retrained.", "",
        "```python", "from transformers import pipeline", "",
        "detector = pipeline(\"image-classification\", model=\"PATH_OR_REPO\", trust_remote_code=True)",
        "detector(\"face.png\")  # [{'label': 'fake', 'score': ...}, {'label': 'real', 'score': ...}]", "```", "",
        "| | |", "|---|---|",
        f"| source | {info.code or source} |",
        f"| paper | {info.paper} |",
        f"| licence | {licence} |",
        f"| backbone | {info.backbone} |",
        f"| input | {info.input} |",
        f"| preprocessing saved | size {processor.get('size')}, crop {processor.get('crop_size') if processor.get('do_center_crop') else 'none'}, "
        f"mean {processor.get('image_mean')}, std {processor.get('image_std')} |",
        f"| face preprocessing recorded | {face_preprocessing_of(converted.source_key) or 'none recorded'} |",
        f"| published cross-dataset results | {info.published} |", "",
        "Labels: `fake` means manipulated or synthetic, `real` means authentic. Published numbers are the "
        "source's, quoted with their citation; they were not re-measured here.", "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- entry point
def convert(source, out, format="auto", detector=None, backbone=None, fake_label=None, overwrite=False):
    """Convert `source` (local file or folder, or Hub id) into a detector folder at `out`.

    Returns {"out", "format", "source", "description"}. Raises ConvertError (one line) for anything
    that cannot be converted exactly, and FileExistsError when `out` is not empty and not `overwrite`.
    """
    from deepfake_hf.runtime.outputs import prepare_output_dir

    if format not in ("auto",) + FORMATS:
        raise ConvertError(f"--from {format}: not one of auto, {', '.join(FORMATS)}")
    if detector is not None and format not in ("auto", "deepfakebench"):
        raise ConvertError("--detector applies to --from deepfakebench only")
    path = resolve_source(source)
    if format == "auto":
        format, found_detector = ("deepfakebench", None) if detector else detect_format(path)
        detector = detector or found_detector
    if format == "gend":
        converted = _from_gend(path, backbone)
    elif format == "deepfakebench":
        converted = _from_deepfakebench(path, detector, backbone)
    elif format == "univfd":
        converted = _from_univfd(path, backbone)
    else:
        converted = _from_classifier(path, fake_label)
    model = _build(converted)
    out = prepare_output_dir(out, overwrite)
    model.save_pretrained(out)
    (out / "README.md").write_text(render_card(converted, source, path), encoding="utf-8")
    return {"out": str(out), "format": format if format != "deepfakebench" else f"deepfakebench-{detector}",
            "source": str(source), "description": converted.description}


def list_formats():
    """The formats `convert` knows, one line each, for `deepfake-hf convert --list`."""
    rows = [
        ("gend", "GenD save_pretrained folder (config model_type GenD): CLIP, DINOv2 or Perception Encoder (timm) "
                 "backbone, linear/LinearNorm head"),
        ("deepfakebench", "DeepfakeBench .pth state dict: --detector clip | effort (SVD residuals merged) | xception "
                          "(timm legacy_xception); efficientnetb4 refused (its padding has no timm equivalent)"),
        ("univfd", "UnivFD fc_weights.pth (Linear(768, 1)) + CLIP ViT-L/14 (--backbone, default "
                   "openai/clip-vit-large-patch14), projection folded into the head"),
        ("classifier", "stock transformers two-label image classifier (vit, clip, convnext, resnet); "
                       "--fake-label when id2label does not say"),
    ]
    return "\n".join(f"{name:<14} {text}" for name, text in rows)


__all__ = ["ConvertError", "FORMATS", "SOURCES", "convert", "detect_format", "fake_label_of", "list_formats",
           "load_state_dict", "merge_effort_attention"]
