"""Heatmaps of where a detector looks: attention rollout (ViT family) and Grad-CAM (every backbone).

- Attention rollout (Abnar and Zuidema, ACL 2020): average the heads of each layer's attention,
  add the identity for the residual path, renormalise, multiply through the layers; the pooled
  token's row (the CLS token, or the mean of patch rows for mean pooling) over the patch tokens is
  the map. Needs attention probabilities, which SDPA/flash kernels do not return: the model is
  switched to eager attention first.
- Grad-CAM (Selvaraju et al., ICCV 2017): gradient of the fake-vs-real logit margin with respect to
  the last spatial feature map (CNN stages; for transformers the patch tokens entering the last
  block, since the final CLS token sees them only through that block), channel weights = mean
  gradient, map = ReLU(weighted sum).

`explain(model, image)` returns the map, the overlay (on the exact crop the model saw) and the
fake probability; `deepfake-hf explain MODEL IMAGE --out heat.png` writes the overlay. The image is
scored by `scoring.Scorer`, as `predict` scores it: the same face policy picks the crop (the most
suspicious face), and the fake probability is the same calibrated probability predict reports.
"""

import math
import os

import numpy as np

from deepfake_hf.errors import DeepfakeHFError

ROLLOUT_BACKBONES = ("vit", "deit", "dinov2", "clip_vision_model")
METHODS = ("auto", "rollout", "gradcam")


class ExplainError(DeepfakeHFError, ValueError):
    """A one-line problem with the model, the image or the method."""


def load_for_explain(model_path, trust_remote_code=False):
    """A saved detector (eager attention, so attention maps exist) and its image processor; a folder's own
    model code runs only with `trust_remote_code`."""
    from deepfake_hf.scoring.scorer import load_classifier

    model_path = os.fspath(model_path)
    if not os.path.isfile(os.path.join(model_path, "config.json")):
        raise ExplainError(f"{model_path}: not a model folder (no config.json)")
    try:
        model, processor = load_classifier(model_path, attn_implementation="eager",
                                           trust_remote_code=trust_remote_code)
    except DeepfakeHFError:  # already one line naming the folder and the reason
        raise
    except (OSError, ValueError, KeyError) as error:
        raise ExplainError(f"{model_path}: cannot load the model ({str(error).splitlines()[0]})") from None
    if not hasattr(model, "get_image_features"):
        raise ExplainError(f"{model_path}: not a deepfake-hf detector")
    return model, processor


def _use_eager_attention(model):
    """Attention maps need eager attention; switch an already loaded model when it uses a fused kernel."""
    implementation = getattr(model.backbone.config, "_attn_implementation", "eager")
    if implementation != "eager":
        try:
            model.set_attn_implementation("eager")
        except (ValueError, AttributeError) as error:
            raise ExplainError(f"attention rollout needs eager attention: {error}") from None


def _patch_grid(model, tokens):
    """(prefix tokens, grid side) for a transformer's token sequence of length `tokens`."""
    config = model.backbone.config
    side = config.image_size // config.patch_size
    prefix = tokens - side * side
    if prefix < 0:
        side = int(math.isqrt(tokens - 1))
        prefix = tokens - side * side
    return prefix, side


def attention_rollout(model, pixel_values):
    """(batch, side, side) rollout maps for a ViT-family detector, each scaled to [0, 1]."""
    import torch

    backbone_type = model.config.backbone_config.model_type
    if backbone_type not in ROLLOUT_BACKBONES:
        raise ExplainError(f"attention rollout needs a ViT-family backbone ({', '.join(ROLLOUT_BACKBONES)}), "
                           f"not {backbone_type}: use --method gradcam")
    _use_eager_attention(model)
    with torch.no_grad():
        attentions = model(pixel_values=pixel_values, output_attentions=True).attentions
    if not attentions or attentions[0] is None:
        raise ExplainError("the backbone returned no attention maps")
    tokens = attentions[0].shape[-1]
    identity = torch.eye(tokens, dtype=torch.float64)
    rollout = identity.expand(pixel_values.shape[0], tokens, tokens)
    for layer in attentions:
        mixed = layer.double().mean(dim=1) + identity
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        rollout = mixed @ rollout
    prefix, side = _patch_grid(model, tokens)
    if model.config.pooling == "mean":  # the pooled vector is the mean of the patch tokens
        relevance = rollout[:, prefix:, prefix:].mean(dim=1)
    else:
        relevance = rollout[:, 0, prefix:]
    return _normalise(relevance.reshape(-1, side, side).float().numpy())


def grad_cam(model, pixel_values):
    """(batch, h, w) Grad-CAM maps of the fake-vs-real logit margin, each scaled to [0, 1]."""
    import torch

    pixel_values = pixel_values.clone().requires_grad_(True)  # a graph exists even for a frozen model
    with torch.enable_grad():
        outputs = model(pixel_values=pixel_values, output_hidden_states=True)
        hidden = outputs.hidden_states
        if hidden is None:
            raise ExplainError("the backbone returned no hidden states")
        spatial = hidden[-1].ndim == 4
        features = hidden[-1] if spatial else hidden[-2]
        margin = (outputs.logits[:, 1] - outputs.logits[:, 0]).sum()
        (gradient,) = torch.autograd.grad(margin, features)
    features, gradient = features.detach().double(), gradient.double()
    if spatial:  # (batch, channels, h, w)
        weights = gradient.mean(dim=(2, 3), keepdim=True)
        cam = (weights * features).sum(dim=1)
    else:  # (batch, tokens, channels): patch tokens on their grid
        prefix, side = _patch_grid(model, features.shape[1])
        weights = gradient[:, prefix:].mean(dim=1, keepdim=True)
        cam = (weights * features[:, prefix:]).sum(dim=-1).reshape(-1, side, side)
    return _normalise(torch.relu(cam).float().numpy())


def _normalise(maps):
    maps = maps - maps.min(axis=(1, 2), keepdims=True)
    top = maps.max(axis=(1, 2), keepdims=True)
    return np.where(top > 0, maps / np.where(top > 0, top, 1), 0.0).astype(np.float32)


def model_input_image(processor, pixel_values):
    """The RGB crop the model saw (processor normalisation undone), as a PIL image."""
    from PIL import Image

    mean = np.asarray(getattr(processor, "image_mean", None) or [0.5] * 3, dtype=np.float32)[:, None, None]
    std = np.asarray(getattr(processor, "image_std", None) or [0.5] * 3, dtype=np.float32)[:, None, None]
    pixels = pixel_values.detach().float().cpu().numpy() * std + mean
    return Image.fromarray((np.clip(pixels.transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8))


def overlay(image, heatmap, alpha=0.5, min_side=256):
    """`heatmap` (values in [0, 1]) coloured with the jet colormap and blended over `image`."""
    from PIL import Image

    try:
        from matplotlib import colormaps
    except ImportError:
        raise ExplainError("heatmap overlays need matplotlib: pip install 'deepfake-hf[app]'") from None
    scale = max(1.0, min_side / min(image.size))
    size = (round(image.width * scale), round(image.height * scale))
    base = image.convert("RGB").resize(size, Image.BICUBIC)
    heat = Image.fromarray((heatmap * 255).astype(np.uint8)).resize(size, Image.BILINEAR)
    colours = colormaps["jet"](np.asarray(heat, dtype=np.float32) / 255.0)[..., :3]
    blended = (1 - alpha) * np.asarray(base, dtype=np.float32) / 255.0 + alpha * colours
    return Image.fromarray((np.clip(blended, 0, 1) * 255 + 0.5).astype(np.uint8))


def explain(model, image, processor=None, method="auto", faces=None, trust_remote_code=False, **face_options):
    """Heatmap of one image for a detector (object or folder), on the crop `predict` would score.

    `faces` (None: the model's recorded face mode, as at every door; "none", "auto", "dlib" or a detector object)
    and `face_options` (crop, face_size, face_scale, margin) are the scorer's face policy: with a face found, the
    map is of the most suspicious face's crop.
    Returns {"method", "heatmap" (side x side in [0, 1]), "overlay" (PIL), "input" (PIL crop the model saw),
    "fake_probability" (the calibrated probability, as `predict` reports it), "label" (by the model's
    threshold), "faces", "note"}.
    """
    from deepfake_hf.media import MediaError, open_image
    from deepfake_hf.scoring.scorer import Scorer

    if method not in METHODS:
        raise ExplainError(f"method {method!r} is not one of {', '.join(METHODS)}")
    if isinstance(model, (str, os.PathLike)):
        model, processor = load_for_explain(model, trust_remote_code=trust_remote_code)
    processor = processor or model.matching_image_processor()
    try:
        picture = open_image(image)
    except MediaError as error:
        raise ExplainError(str(error)) from None
    if method == "auto":
        method = "rollout" if model.config.backbone_config.model_type in ROLLOUT_BACKBONES else "gradcam"
    scorer = Scorer(model, processor, faces=faces, device=next(model.parameters()).device, **face_options)
    plan = scorer.plan([picture])
    inputs = scorer.preprocess(plan.crops)
    verdict = scorer.decide(plan, scorer.forward(inputs))
    pixel_values = inputs[verdict.frame_crops[0]][None].to(scorer.device)
    heatmap = (attention_rollout if method == "rollout" else grad_cam)(model, pixel_values)[0]
    seen = model_input_image(processor, pixel_values[0])
    return {"method": method, "heatmap": heatmap, "overlay": overlay(seen, heatmap), "input": seen,
            "fake_probability": verdict.probability, "label": scorer.label(verdict.probability),
            "faces": plan.faces, "note": plan.note}


def explain_to_file(model_path, image, out, method="auto", overwrite=False, faces=None, trust_remote_code=False,
                    **face_options):
    """Write the overlay PNG of `image` to `out`; returns the explain() result without the images.

    `faces` defaults to None, the model's (resolved by the scorer), as at every door, so the command explains
    (and prints the probability of) what predict scores.
    """
    out = os.fspath(out)
    if os.path.exists(out) and not overwrite:
        raise ExplainError(f"{out}: exists (use --overwrite)")
    result = explain(model_path, image, method=method, faces=faces, trust_remote_code=trust_remote_code,
                     **face_options)
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    result["overlay"].save(out, format="PNG")
    return {key: value for key, value in result.items() if key not in ("overlay", "input")}
