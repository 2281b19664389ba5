"""deepfake_hf.convert: published checkpoints (GenD, DeepfakeBench clip/effort, UnivFD, stock classifiers) in their
own key layouts, built from tiny random encoders, converted and compared with reference forwards written here from
the published formulas (not from the sources' code)."""

import json
import os
import pickle

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from deepfake_hf.convert import ConvertError, convert, detect_format, list_formats, load_state_dict
from deepfake_hf.convert.classifier import fake_label_of

from .conftest import IMAGE_SIZE, TINY_BACKBONES, run_python, write_image

TOLERANCE = 1e-5


def tiny(family, **overrides):
    from transformers import AutoConfig

    settings = {**TINY_BACKBONES[family], **overrides}
    return AutoConfig.for_model(settings.pop("model_type"), **settings)


def save_config(config, folder):
    config.save_pretrained(folder)
    return folder


CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
# The backbones' published preprocessor_config.json files, as their Hub repositories hold them.
PUBLISHED_PROCESSORS = {
    # openai/clip-vit-large-patch14 (a feature-extractor era file: sizes as integers)
    "clip": {"crop_size": 224, "do_center_crop": True, "do_normalize": True, "do_resize": True,
             "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": CLIP_MEAN, "image_std": CLIP_STD,
             "resample": 3, "size": 224},
    # facebook/dinov2-base
    "dinov2": {"crop_size": {"height": 224, "width": 224}, "do_center_crop": True, "do_convert_rgb": True,
               "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": IMAGENET_MEAN,
               "image_processor_type": "BitImageProcessor", "image_std": IMAGENET_STD, "resample": 3,
               "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 256}},
    # facebook/dinov3-vitb16-pretrain-lvd1689m
    "dinov3": {"do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": IMAGENET_MEAN,
               "image_processor_type": "DINOv3ViTImageProcessorFast", "image_std": IMAGENET_STD, "resample": 2,
               "rescale_factor": 0.00392156862745098, "size": {"height": 224, "width": 224}},
}




def backbone_folder(folder, config, processor=None):
    """A --backbone folder: the encoder's config.json, and its published preprocessor_config.json when given."""
    save_config(config, folder)
    if processor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


def converted_fake_probability(out, pixel_values):
    from deepfake_hf import DeepfakeDetectorForImageClassification

    model = DeepfakeDetectorForImageClassification.from_pretrained(out).eval()
    with torch.no_grad():
        return model(pixel_values=pixel_values).logits.softmax(-1)[:, 1]


def pixels(seed=1, size=IMAGE_SIZE, batch=3):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------- sources
def make_gend_clip(folder, head="LinearNorm", seed=0, config=None):
    """GenD save_pretrained layout on a CLIP backbone; returns the reference fake-probability function."""
    from transformers import CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    clip = CLIPVisionModelWithProjection(config or tiny("clip_vision_model", projection_dim=16)).eval()
    linear = torch.nn.Linear(32, 2)
    state = {f"feature_extractor.vision_model.{k}": v for k, v in clip.vision_model.state_dict().items()}
    state["feature_extractor.visual_projection.weight"] = clip.visual_projection.weight.detach()
    state.update({"model.linear.weight": linear.weight.detach(), "model.linear.bias": linear.bias.detach()})
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"model_type": "GenD", "backbone": "openai/clip-vit-large-patch14",
                                                    "head": head}))

    def reference(pixel_values):
        features = clip.vision_model(pixel_values=pixel_values).pooler_output  # GenD CLIP: pooler_output
        if head == "LinearNorm":
            features = F.normalize(features, dim=-1)  # LinearNorm: L2-normalise, then linear
        return linear(features).softmax(-1)[:, 1]  # label 1 = fake

    return reference


# transformers 4 names of DINOv2 attention weights (GenD's checkpoints were saved with them)
LEGACY_DINOV2 = {"attention.q_proj": "attention.attention.query", "attention.k_proj": "attention.attention.key",
                 "attention.v_proj": "attention.attention.value", "attention.o_proj": "attention.output.dense"}


def make_gend_dino(folder, registers=False, legacy=False, seed=0, config=None):
    from transformers import AutoModel

    torch.manual_seed(seed)
    config = config or tiny("dinov2", **({"model_type": "dinov2_with_registers", "num_register_tokens": 2}
                                         if registers else {}))
    dino = AutoModel.from_config(config).eval()
    linear = torch.nn.Linear(32, 2)
    state = {f"feature_extractor.backbone.{k}": v for k, v in dino.state_dict().items()}
    if legacy:
        for new_name, old_name in LEGACY_DINOV2.items():
            state = {k.replace(new_name, old_name): v for k, v in state.items()}
        assert any("attention.attention.query" in k for k in state)
    state.update({"model.linear.weight": linear.weight.detach(), "model.linear.bias": linear.bias.detach()})
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"model_type": "GenD", "backbone": "facebook/dinov2-base",
                                                    "head": "linear"}))
    return (lambda pixel_values: linear(dino(pixel_values=pixel_values).last_hidden_state[:, 0]).softmax(-1)[:, 1],
            config)


def make_deepfakebench(path, detector, seed=0, config=None):
    """A DeepfakeBench detector state dict saved with torch.save (DataParallel `module.` prefix)."""
    from transformers import CLIPVisionModel

    torch.manual_seed(seed)
    config = config or tiny("clip_vision_model")
    clip = CLIPVisionModel(config).eval()
    head = torch.nn.Linear(32, 2)
    encoder = {k: v.clone() for k, v in clip.state_dict().items()}  # CLIP vision transformer keys (embeddings.*)
    state = {}
    for key, value in encoder.items():
        stem, _, name = key.rpartition(".")
        if detector == "effort" and ".self_attn." in key and name == "weight":
            # Effort: the top-r singular directions stay in weight_main, the rest become trainable residuals,
            # which training then changes; perturb them so the merged weight differs from weight_main alone.
            u, s, vh = torch.linalg.svd(value, full_matrices=False)
            r = 24
            state[f"backbone.{stem}.weight_main"] = u[:, :r] @ torch.diag(s[:r]) @ vh[:r]
            state[f"backbone.{stem}.U_residual"] = u[:, r:] + 0.05 * torch.randn_like(u[:, r:])
            state[f"backbone.{stem}.S_residual"] = s[r:] * 3.0
            state[f"backbone.{stem}.V_residual"] = vh[r:] + 0.05 * torch.randn_like(vh[r:])
        else:
            state[f"backbone.{key}"] = value
    state.update({"head.weight": head.weight.detach(), "head.bias": head.bias.detach()})
    torch.save({f"module.{k}": v for k, v in state.items()}, path)

    reference_clip = CLIPVisionModel(config).eval()
    merged = dict(encoder)
    if detector == "effort":
        for key in list(merged):
            stem, _, name = key.rpartition(".")
            if ".self_attn." in key and name == "weight":
                get = lambda part, stem=stem: state[f"backbone.{stem}.{part}"]  # noqa: E731
                # Effort's forward: F.linear(x, weight_main + U_residual @ diag(S_residual) @ V_residual, bias)
                merged[key] = get("weight_main") + get("U_residual") @ torch.diag(get("S_residual")) @ get("V_residual")
                assert (merged[key] - encoder[key]).abs().max() > 1e-2  # the residuals matter
    reference_clip.load_state_dict(merged)
    return lambda pixel_values: head(reference_clip(pixel_values=pixel_values).pooler_output).softmax(-1)[:, 1]


# DeepfakeBench's Xception (training/networks/xception.py, the FaceForensics++ port of Chollet's Xception), block by
# block: (name, reps, stride, start_with_relu, has_skip). Every block is ReLU -> SeparableConv -> BN repeated `reps`
# times (the first ReLU dropped when start_with_relu is False), then MaxPool(3, stride, 1) when strided, plus a
# 1x1-conv + BN shortcut when the channels or the stride change.
XCEPTION_BLOCKS = ([("block1", 2, 2, False, True), ("block2", 2, 2, True, True), ("block3", 2, 2, True, True)]
                   + [(f"block{i}", 3, 1, True, False) for i in range(4, 12)] + [("block12", 2, 2, True, True)])
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def deepfakebench_xception_keys():
    """Every key of DeepfakeBench's xception detector state dict, written from its architecture (not from timm)."""
    keys = ["conv1.weight", *(f"bn1.{k}" for k in BN_KEYS), "conv2.weight", *(f"bn2.{k}" for k in BN_KEYS)]
    for name, reps, _, start_with_relu, has_skip in XCEPTION_BLOCKS:
        for rep in range(reps):
            sep = 3 * rep + (1 if start_with_relu else 0)  # index in `rep` (nn.Sequential of ReLU, Sep, BN)
            keys += [f"{name}.rep.{sep}.conv1.weight", f"{name}.rep.{sep}.pointwise.weight"]
            keys += [f"{name}.rep.{sep + 1}.{k}" for k in BN_KEYS]
        if has_skip:
            keys += [f"{name}.skip.weight", *(f"{name}.skipbn.{k}" for k in BN_KEYS)]
    for conv, bn in (("conv3", "bn3"), ("conv4", "bn4")):
        keys += [f"{conv}.conv1.weight", f"{conv}.pointwise.weight", *(f"{bn}.{k}" for k in BN_KEYS)]
    # last_linear is the head; adjust_channel is built in every mode (used only by the adjust_channel modes)
    keys += ["last_linear.weight", "last_linear.bias", "adjust_channel.0.weight", "adjust_channel.0.bias",
             *(f"adjust_channel.1.{k}" for k in BN_KEYS)]
    return ["backbone." + key for key in keys]


def xception_reference(state, pixel_values):
    """DeepfakeBench's xception detector forward, written from its architecture: entry, middle and exit flows, then
    ReLU, global average pool and last_linear; BatchNorm in eval mode with PyTorch's default eps (1e-5)."""

    def get(name):
        return state["backbone." + name]

    def bn(name, x):
        return F.batch_norm(x, get(f"{name}.running_mean"), get(f"{name}.running_var"), get(f"{name}.weight"),
                            get(f"{name}.bias"), training=False, eps=1e-5)

    def separable(name, x):  # depthwise 3x3 (padding 1), then pointwise 1x1
        x = F.conv2d(x, get(f"{name}.conv1.weight"), padding=1, groups=x.shape[1])
        return F.conv2d(x, get(f"{name}.pointwise.weight"))

    x = F.relu(bn("bn1", F.conv2d(pixel_values, get("conv1.weight"), stride=2)))  # 3x3, stride 2, no padding
    x = F.relu(bn("bn2", F.conv2d(x, get("conv2.weight"))))
    for name, reps, stride, start_with_relu, has_skip in XCEPTION_BLOCKS:
        h = x
        for rep in range(reps):
            sep = 3 * rep + (1 if start_with_relu else 0)
            if rep or start_with_relu:
                h = F.relu(h)
            h = bn(f"{name}.rep.{sep + 1}", separable(f"{name}.rep.{sep}", h))
        if stride != 1:
            h = F.max_pool2d(h, 3, stride, 1)
        x = h + (bn(f"{name}.skipbn", F.conv2d(x, get(f"{name}.skip.weight"), stride=stride)) if has_skip else x)
    x = F.relu(bn("bn3", separable("conv3", x)))
    x = bn("bn4", separable("conv4", x))  # features(); classifier() applies the ReLU
    features = F.relu(x).mean(dim=(2, 3))
    return F.linear(features, get("last_linear.weight"), get("last_linear.bias")).softmax(-1)[:, 1]


def make_deepfakebench_xception(path, seed=0):
    """A DeepfakeBench xception state dict (torch.save, DataParallel prefix), random weights and BatchNorm statistics.

    The weights come from a timm legacy_xception (random, pretrained=False) under DeepfakeBench's names; the test
    checks those names against `deepfakebench_xception_keys`, which is written from the architecture alone.
    """
    import timm

    torch.manual_seed(seed)
    xception = timm.create_model("legacy_xception", pretrained=False, num_classes=0)
    state = {}
    for key, value in xception.state_dict().items():
        value = value.clone()
        if key.endswith(("running_mean", "bias")):
            value.normal_(0.0, 0.1)
        elif key.endswith("running_var"):
            value.uniform_(0.5, 1.5)
        elif value.ndim == 1:  # BatchNorm scale
            value.normal_(1.0, 0.1)
        state[f"backbone.{key}"] = value
    state["backbone.last_linear.weight"] = torch.randn(2, 2048) * 0.5  # logits of order 1 on these features
    state["backbone.last_linear.bias"] = torch.randn(2) * 0.1
    adjust = {"0.weight": torch.randn(512, 2048, 1, 1), "0.bias": torch.randn(512), "1.weight": torch.ones(512),
              "1.bias": torch.zeros(512), "1.running_mean": torch.zeros(512), "1.running_var": torch.ones(512),
              "1.num_batches_tracked": torch.tensor(0)}
    state.update({f"backbone.adjust_channel.{k}": v for k, v in adjust.items()})
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    return lambda pixel_values: xception_reference(state, pixel_values), state


def make_gend_pe(folder, head="LinearNorm", seed=0):
    """GenD save_pretrained layout on a Perception Encoder shrunk to 2 blocks of width 32; returns (reference,
    --backbone folder). GenD builds the timm model with dynamic_img_size=True and replaces its head by Identity."""
    import timm
    from transformers import TimmWrapperConfig

    torch.manual_seed(seed)
    shrink = dict(embed_dim=32, depth=2, num_heads=4, attn_pool_num_heads=4)
    # num_classes=16: the published model's projection head, which GenD replaces by Identity
    pe = timm.create_model("vit_pe_core_large_patch14_336", pretrained=False, dynamic_img_size=True, num_classes=16,
                           **shrink).eval()
    pe.head = torch.nn.Identity()
    linear = torch.nn.Linear(32, 2)
    state = {f"feature_extractor.backbone.{k}": v for k, v in pe.state_dict().items()}
    state.update({"model.linear.weight": linear.weight.detach(), "model.linear.bias": linear.bias.detach()})
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"model_type": "GenD", "backbone": "vit_pe_core_large_patch14_336",
                                                    "head": head}))
    architecture = folder.parent / f"{folder.name}-arch"
    TimmWrapperConfig(architecture="vit_pe_core_large_patch14_336", model_args=shrink).save_pretrained(architecture)

    def reference(pixel_values):
        features = pe(pixel_values)  # attention-pool output (the head is Identity)
        if head == "LinearNorm":
            features = F.normalize(features, dim=-1)
        return linear(features).softmax(-1)[:, 1]

    return reference, architecture


def make_univfd(folder, seed=0, vision=None):
    """UnivFD's fc_weights.pth (Linear(projection_dim, 1)) and a full CLIP checkpoint folder as --backbone."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    text = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, vocab_size=99)
    vision = {**{k: v for k, v in TINY_BACKBONES["clip_vision_model"].items() if k != "model_type"}, **(vision or {})}
    clip = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    clip.save_pretrained(folder / "clip")
    fc = torch.nn.Linear(16, 1)
    torch.save({"weight": fc.weight.detach(), "bias": fc.bias.detach()}, folder / "fc_weights.pth")

    def reference(pixel_values):
        # UnivFD: z = fc(CLIP image features), features = visual_projection(pooler_output); p(fake) = sigmoid(z)
        features = clip.visual_projection(clip.vision_model(pixel_values=pixel_values).pooler_output)
        return torch.sigmoid(fc(features))[:, 0]

    return reference, folder / "clip"


def make_classifier(folder, id2label, seed=0):
    from transformers import ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    config = tiny("vit", id2label=id2label, label2id={v: k for k, v in id2label.items()})
    model = ViTForImageClassification(config).eval()
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(folder)
    return model


# ------------------------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("head", ["LinearNorm", "linear"])
def test_gend_clip_is_exact_with_l2_norm_and_clip_preprocessing(tmp_path, head):
    reference = make_gend_clip(tmp_path / "gend", head=head)
    backbone = backbone_folder(tmp_path / "arch", tiny("clip_vision_model"), PUBLISHED_PROCESSORS["clip"])
    result = convert(tmp_path / "gend", tmp_path / "out", backbone=backbone)
    assert result["format"] == "gend"
    x = pixels()
    with torch.no_grad():
        expected = reference(x)
    assert (converted_fake_probability(tmp_path / "out", x) - expected).abs().max() < TOLERANCE
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["pooling"] == "pooler" and config["normalize_features"] is (head == "LinearNorm")
    assert config["id2label"] == {"0": "real", "1": "fake"} and "AutoModelForImageClassification" in config["auto_map"]
    assert config["face_preprocessing"] == "gend"  # GenD's published numbers use its own detector.py's crops
    processor = json.loads((tmp_path / "out" / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    # the backbone's published processor, in the PIL class transformers 4.56 (GenD's) loaded it as
    assert processor["crop_size"] == {"height": 224, "width": 224}
    assert processor["resize_library"] == "pil" and processor["crop_rounding"] == "floor"
    card = (tmp_path / "out" / "README.md").read_text()
    assert "GenD" in card and "github.com/yermandy/GenD" in card and "licence" in card and "2503.19683" in card
    assert "| face preprocessing recorded | gend |" in card and "DEEPFAKE_HF_SCRFD_MODEL" in card


@pytest.mark.parametrize("registers,legacy", [(False, False), (True, False), (False, True)])
def test_gend_dino_takes_the_cls_token(tmp_path, registers, legacy):
    reference, config = make_gend_dino(tmp_path / "gend", registers=registers, legacy=legacy)
    result = convert(tmp_path / "gend", tmp_path / "out",
                     backbone=backbone_folder(tmp_path / "arch", config, PUBLISHED_PROCESSORS["dinov2"]))
    x = pixels()
    with torch.no_grad():
        expected = reference(x)
    assert (converted_fake_probability(tmp_path / "out", x) - expected).abs().max() < TOLERANCE
    assert json.loads((tmp_path / "out" / "config.json").read_text())["pooling"] == ("pooler" if registers else "cls")
    processor = json.loads((tmp_path / "out" / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == pytest.approx([0.485, 0.456, 0.406]) and result["format"] == "gend"


@pytest.mark.parametrize("detector", ["clip", "effort"])
def test_deepfakebench_clip_and_effort_are_exact(tmp_path, detector):
    checkpoint = tmp_path / f"{detector}_best.pth"
    reference = make_deepfakebench(checkpoint, detector)
    assert detect_format(checkpoint) == ("deepfakebench", detector)
    backbone = save_config(tiny("clip_vision_model"), tmp_path / "arch")
    result = convert(checkpoint, tmp_path / "out", backbone=backbone)  # --from auto
    assert result["format"] == f"deepfakebench-{detector}"
    x = pixels()
    with torch.no_grad():
        expected = reference(x)
    assert (converted_fake_probability(tmp_path / "out", x) - expected).abs().max() < TOLERANCE
    processor = json.loads((tmp_path / "out" / "preprocessor_config.json").read_text())
    # DeepfakeBench resizes the crop straight to the resolution; clip uses mean=std=0.5, effort CLIP statistics
    assert processor["size"] == {"height": IMAGE_SIZE, "width": IMAGE_SIZE} and not processor.get("do_center_crop")
    assert processor["image_mean"] == pytest.approx([0.5] * 3 if detector == "clip" else [0.48145466, 0.4578275,
                                                                                         0.40821073])
    card = (tmp_path / "out" / "README.md").read_text()
    assert "DeepfakeBench" in card and ("0.956" in card) is (detector == "effort")
    assert json.loads((tmp_path / "out" / "config.json").read_text())["face_preprocessing"] == "deepfakebench"
    assert "| face preprocessing recorded | deepfakebench |" in card


def test_deepfakebench_xception_names_are_timm_legacy_xception(tmp_path):
    import timm

    with torch.device("meta"):
        timm_names = timm.create_model("legacy_xception", pretrained=False, num_classes=0).state_dict()
    extra = ["last_linear.weight", "last_linear.bias", "adjust_channel.0.weight", "adjust_channel.0.bias",
             *(f"adjust_channel.1.{k}" for k in BN_KEYS)]
    layout = ["backbone." + key for key in [*timm_names, *extra]]
    assert sorted(layout) == sorted(deepfakebench_xception_keys())  # the rename is the prefix, nothing else
    assert detect_format(tmp_path / "x.pth", state=dict.fromkeys(layout)) == ("deepfakebench", "xception")
    # a checkpoint with weights outside backbone.* is another detector built on Xception, not this one
    torch.save({"backbone.block1.rep.0.conv1.weight": torch.zeros(1),
                "backbone.last_linear.weight": torch.zeros(2, 2048), "backbone.last_linear.bias": torch.zeros(2),
                "head.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ConvertError, match="unexpected key 'head.weight'"):
        convert(tmp_path / "other.pth", tmp_path / "out")


def test_deepfakebench_efficientnetb4_is_refused_because_its_padding_has_no_timm_equivalent(tmp_path):
    import timm

    # efficientnet_pytorch's layout, as DeepfakeBench saves it; DeepfakeBench's stem is a plain Conv2d(3, 48, 3, 2)
    stem = torch.randn(48, 3, 3, 3)
    torch.save({"backbone.efficientnet._conv_stem.weight": stem, "backbone.last_layer.weight": torch.zeros(2, 1792),
                "backbone.last_layer.bias": torch.zeros(2)}, tmp_path / "effnb4.pth")
    assert detect_format(tmp_path / "effnb4.pth") == ("deepfakebench", "efficientnetb4")
    with pytest.raises(ConvertError, match="efficientnetb4 pads its convolutions for 380-pixel") as error:
        convert(tmp_path / "effnb4.pth", tmp_path / "out")
    assert "\n" not in str(error.value) and not (tmp_path / "out").exists()
    # the reason: at DeepfakeBench's 256 input its stem gives 127 x 127, every timm EfficientNet-B4 stem 128 x 128
    x = torch.randn(1, 3, 256, 256)
    assert F.conv2d(x, stem, stride=2).shape[-1] == 127
    for name in ("efficientnet_b4", "tf_efficientnet_b4"):
        with torch.device("meta"):
            conv_stem = timm.create_model(name, pretrained=False).conv_stem
        assert conv_stem(x.to("meta")).shape[-1] == 128, name


@pytest.mark.parametrize("head", ["LinearNorm", "linear"])
def test_gend_perception_encoder_is_exact_through_timm_wrapper(tmp_path, head):
    reference, architecture = make_gend_pe(tmp_path / "gend", head=head)
    result = convert(tmp_path / "gend", tmp_path / "out", backbone=architecture)
    assert result["format"] == "gend"
    for size in (56, 70):  # position embeddings are resampled to any input, as GenD builds it (dynamic_img_size)
        x = pixels(size=size, batch=2)
        with torch.no_grad():
            expected = reference(x)
        assert (converted_fake_probability(tmp_path / "out", x) - expected).abs().max() < TOLERANCE
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["backbone_config"]["model_args"]["dynamic_img_size"] is True
    assert config["face_preprocessing"] == "gend"
    assert config["normalize_features"] is (head == "LinearNorm")
    processor = json.loads((tmp_path / "out" / "preprocessor_config.json").read_text())
    assert processor["crop_size"] == {"height": 224, "width": 224} and processor["image_mean"] == [0.5] * 3
    assert "Perception Encoder" in (tmp_path / "out" / "README.md").read_text()


def test_univfd_projection_and_fc_fold_into_the_head(tmp_path):
    reference, clip_folder = make_univfd(tmp_path)
    assert detect_format(tmp_path / "fc_weights.pth") == ("univfd", None)
    convert(tmp_path / "fc_weights.pth", tmp_path / "out", backbone=clip_folder)
    x = pixels()
    with torch.no_grad():
        expected = reference(x)
    assert (converted_fake_probability(tmp_path / "out", x) - expected).abs().max() < TOLERANCE
    processor = json.loads((tmp_path / "out" / "preprocessor_config.json").read_text())
    assert processor["do_resize"] is False and processor["crop_size"] == {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    assert "Ojha" in (tmp_path / "out" / "README.md").read_text()
    # UnivFD scores whole images (trained on ProGAN pictures, not faces): it records "none", so every door scores
    # the picture as given instead of cutting a face out of it
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["face_preprocessing"] == "none" and config["face_crop"] is None
    from deepfake_hf.publish.model_card import default_face_mode

    assert default_face_mode(tmp_path / "out") == "none"


def test_classifier_labels_are_mapped_so_fake_means_fake_and_native_export_works(tmp_path):
    from transformers import ViTForImageClassification

    from deepfake_hf.cli import main

    stock = make_classifier(tmp_path / "clf", {0: "Fake", 1: "Real"})
    x = pixels()
    with torch.no_grad():
        expected = stock(pixel_values=x).logits.softmax(-1)[:, 0]  # this classifier's index 0 is "Fake"
    assert main(["convert", str(tmp_path / "clf"), "--out", str(tmp_path / "out")]) == 0
    assert (converted_fake_probability(tmp_path / "out", x) - expected).abs().max() < TOLERANCE
    # the converted model is exactly a stock ViT classifier again: export --native writes it
    assert main(["export", str(tmp_path / "out"), "--native", "--out", str(tmp_path / "native")]) == 0
    native = ViTForImageClassification.from_pretrained(tmp_path / "native").eval()
    with torch.no_grad():
        exported = native(pixel_values=x).logits.softmax(-1)[:, 1]
    assert native.config.id2label[1] == "fake" and (exported - expected).abs().max() < TOLERANCE


def test_fake_label_is_read_from_id2label_or_required(tmp_path, capsys):
    assert fake_label_of({0: "Realism", 1: "Deepfake"}) == 1
    assert fake_label_of({0: "AI-generated", 1: "human"}) == 0
    assert fake_label_of({0: "bonafide", 1: "spoof"}) == 1
    make_classifier(tmp_path / "clf", {0: "LABEL_0", 1: "LABEL_1"})
    with pytest.raises(ConvertError, match="--fake-label") as error:
        convert(tmp_path / "clf", tmp_path / "out")
    assert "\n" not in str(error.value)
    from deepfake_hf.cli import main

    assert main(["convert", str(tmp_path / "clf"), "--out", str(tmp_path / "out2"), "--fake-label", "label_0"]) == 0
    assert json.loads((tmp_path / "out2" / "config.json").read_text())["id2label"] == {"0": "real", "1": "fake"}
    with pytest.raises(ConvertError, match="not one of the classifier's labels"):
        convert(tmp_path / "clf", tmp_path / "out3", fake_label="fake")


# ------------------------------------------------------------------------------------------- safety and errors
class WritesAFile:
    """Unpickling this would write a file: what a malicious checkpoint does."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (exec, (f"open({str(self.path)!r}, 'w').write('pwned')",))


def test_pickles_that_run_code_are_refused_not_executed(tmp_path):
    marker = tmp_path / "side_effect.txt"
    evil = tmp_path / "evil.pth"
    torch.save({"head.weight": torch.zeros(2, 2), "payload": WritesAFile(marker)}, evil)
    with pytest.raises(ConvertError, match="arbitrary unpickling") as error:
        convert(evil, tmp_path / "out", format="deepfakebench", detector="clip")
    assert not marker.exists() and "\n" not in str(error.value)
    plain = tmp_path / "plain.ckpt"  # a raw pickle (not torch's zip format) is refused too
    plain.write_bytes(pickle.dumps(WritesAFile(marker)))
    with pytest.raises(ConvertError):
        load_state_dict(plain)
    assert not marker.exists()
    # a state dict nested under "state_dict" loads
    torch.save({"state_dict": {"module.weight": torch.ones(1, 3), "module.bias": torch.zeros(1)}}, tmp_path / "ok.pth")
    assert set(load_state_dict(tmp_path / "ok.pth")) == {"weight", "bias"}


def test_errors_name_the_key_option_or_missing_support(tmp_path):
    checkpoint = tmp_path / "clip.pth"
    make_deepfakebench(checkpoint, "clip")
    backbone = save_config(tiny("clip_vision_model"), tmp_path / "arch")
    state = torch.load(checkpoint, weights_only=True)
    del state["module.head.bias"]
    torch.save(state, tmp_path / "no_bias.pth")
    # keys are named as the file spells them: DeepfakeBench saves through DataParallel (`module.`)
    with pytest.raises(ConvertError, match="missing key 'module.head.bias'"):
        convert(tmp_path / "no_bias.pth", tmp_path / "o1", format="deepfakebench", detector="clip", backbone=backbone)
    state = torch.load(checkpoint, weights_only=True)
    gone = next(key for key in state if key.endswith("layers.1.self_attn.k_proj.weight"))
    assert gone.startswith("module.backbone.")
    del state[gone]
    torch.save(state, tmp_path / "no_key.pth")
    with pytest.raises(ConvertError) as error:
        convert(tmp_path / "no_key.pth", tmp_path / "o1", format="deepfakebench", detector="clip", backbone=backbone)
    assert str(error.value).startswith(str(tmp_path / "no_key.pth"))
    assert str(error.value).endswith(f"missing key {gone!r} (1 missing)") and "\n" not in str(error.value)
    wider = save_config(tiny("clip_vision_model", hidden_size=48, num_attention_heads=4), tmp_path / "wide")
    with pytest.raises(ConvertError, match=r"has shape .* the encoder expects") as error:
        convert(checkpoint, tmp_path / "o2", backbone=wider)
    assert "'embeddings." in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ConvertError, match="unexpected key 'module.head.bias': DeepfakeBench's xception detector "
                                           "keeps"):
        convert(checkpoint, tmp_path / "o3", format="deepfakebench", detector="xception")
    # no --backbone: a tiny CLIP's hidden size (32) does not say how many 64-wide heads it has
    with pytest.raises(ConvertError, match="not a multiple of 64"):
        convert(checkpoint, tmp_path / "o4")
    (tmp_path / "pe").mkdir()
    (tmp_path / "pe" / "config.json").write_text(json.dumps({"model_type": "GenD", "backbone":
                                                             "vit_pe_core_large_patch14_336", "head": "linear"}))
    with pytest.raises(ConvertError, match="no weight file"):
        convert(tmp_path / "pe", tmp_path / "o5")
    torch.save({"something.else": torch.zeros(3)}, tmp_path / "unknown.pth")
    with pytest.raises(ConvertError, match="--from"):
        convert(tmp_path / "unknown.pth", tmp_path / "o6")
    assert not any((tmp_path / name).exists() for name in ("o1", "o2", "o3", "o4", "o5", "o6"))


def test_clip_architecture_is_read_from_weights_when_no_backbone_is_given(tmp_path):
    from transformers import CLIPVisionModel

    from deepfake_hf.convert.encoders import clip_vision_config_from_weights

    config = tiny("clip_vision_model", hidden_size=64, num_attention_heads=1)
    state = {f"backbone.{k}": v for k, v in CLIPVisionModel(config).state_dict().items()}
    inferred = clip_vision_config_from_weights(state, "backbone.")
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "patch_size",
                "image_size", "hidden_act", "layer_norm_eps"):
        assert getattr(inferred, key) == getattr(config, key), key


def test_cli_lists_formats_and_reports_errors_in_one_line(tmp_path, capsys):
    from deepfake_hf.cli import main

    assert main(["convert", "--list"]) == 0
    listed = capsys.readouterr().out
    for name in ("gend", "deepfakebench", "univfd", "classifier"):
        assert name in listed
    assert list_formats().splitlines()[0].startswith("gend")
    assert main(["convert", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file or folder" in err[0]
    assert main(["convert", "--out", str(tmp_path / "out")]) == 1  # SOURCE is required without --list


# ------------------------------------------------------------------------------------------- fresh process
# The image is a crop already: a face-finding folder's pipeline (pipeline_deepfake.py, e.g. GenD's recorded "gend"
# mode, which would need SCRFD's weights) is told so, as predict --faces none is.
PIPELINE_CHECK = """
import json, os, sys
from transformers import pipeline
results = {}
for name, folder in json.loads(sys.argv[1]).items():
    as_given = {"face_mode": "none"} if os.path.isfile(os.path.join(folder, "pipeline_deepfake.py")) else {}
    classify = pipeline("image-classification", model=folder, trust_remote_code=True, **as_given)
    results[name] = {row["label"]: row["score"] for row in classify(sys.argv[2])}
print(json.dumps(results))
"""


@pytest.mark.slow
def test_timm_conversions_are_exact_and_load_with_pipeline_in_a_fresh_process(tmp_path):
    """DeepfakeBench xception (through the CLI, --backbone a timm name) and GenD's Perception Encoder."""

    from deepfake_hf.cli import main

    checkpoint = tmp_path / "xception_best.pth"
    references = {}
    references["xception"], state = make_deepfakebench_xception(checkpoint)
    assert sorted(state) == sorted(deepfakebench_xception_keys())
    references["gend_pe"], architecture = make_gend_pe(tmp_path / "gend")
    folders = {name: str(tmp_path / f"out_{name}") for name in references}
    assert main(["convert", str(checkpoint), "--out", folders["xception"], "--from", "deepfakebench",
                 "--detector", "xception", "--backbone", "legacy_xception"]) == 0
    assert main(["convert", str(tmp_path / "gend"), "--out", folders["gend_pe"], "--backbone", str(architecture)]) == 0
    x = pixels(size=64, batch=2)
    with torch.no_grad():
        expected = references["xception"](x)
    assert 0.02 < expected.min() and expected.max() < 0.98  # not saturated: the comparisons mean something
    assert (converted_fake_probability(folders["xception"], x) - expected).abs().max() < TOLERANCE

    image = write_image(tmp_path / "face.png", size=(48, 40), seed=3)
    pixel_values = assert_fresh_pipeline_matches(folders, references, image)
    assert pixel_values.shape[-1] == 224  # GenD's PE input, whatever the checkpoint's nominal 336
    assert "0.737" in (tmp_path / "out_xception" / "README.md").read_text()


@pytest.mark.slow
def test_converted_folders_load_with_pipeline_in_a_fresh_process(tmp_path):

    image = write_image(tmp_path / "face.png", size=(40, 40), seed=3)
    # CLIP's published processor at the tiny encoder's input size (its position grid does not interpolate)
    processor = {**PUBLISHED_PROCESSORS["clip"], "size": IMAGE_SIZE, "crop_size": IMAGE_SIZE}
    backbone = backbone_folder(tmp_path / "arch", tiny("clip_vision_model"), processor)
    references = {"gend": make_gend_clip(tmp_path / "gend")}
    references["effort"] = make_deepfakebench(tmp_path / "effort.pth", "effort")
    references["univfd"], clip_folder = make_univfd(tmp_path)
    stock = make_classifier(tmp_path / "clf", {0: "real", 1: "fake"})
    references["classifier"] = lambda x: stock(pixel_values=x).logits.softmax(-1)[:, 1]
    folders = {}
    for name, source, options in (("gend", tmp_path / "gend", {"backbone": backbone}),
                                  ("effort", tmp_path / "effort.pth", {"backbone": backbone}),
                                  ("univfd", tmp_path / "fc_weights.pth", {"backbone": clip_folder}),
                                  ("classifier", tmp_path / "clf", {})):
        folders[name] = str(tmp_path / f"out_{name}")
        convert(source, folders[name], **options)
    assert_fresh_pipeline_matches(folders, references, image)
    assert os.path.isfile(os.path.join(folders["gend"], "modeling_deepfake.py"))
    # the fresh process ran the exact processors from the folders' own remote code
    for name in ("gend", "effort", "univfd"):
        assert os.path.isfile(os.path.join(folders[name], "image_processing_deepfake.py")), name


def assert_fresh_pipeline_matches(folders, references, image):
    """`pipeline` in a fresh process scores `image` with each converted folder as its source's reference
    forward does (on the folder's own preprocessing), within TOLERANCE; returns the last pixel values."""
    from PIL import Image
    from transformers import AutoImageProcessor

    scores = json.loads(run_python(PIPELINE_CHECK, json.dumps(folders), image).stdout.strip().splitlines()[-1])
    for name, folder in folders.items():
        processor = AutoImageProcessor.from_pretrained(folder)
        pixel_values = processor(images=Image.open(image).convert("RGB"), return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            expected = float(references[name](pixel_values)[0])
        assert abs(scores[name]["fake"] - expected) < TOLERANCE, name
        assert abs(scores[name]["real"] - (1 - expected)) < TOLERANCE, name
    return pixel_values


def test_missing_legacy_key_is_named_as_the_source_names_it_with_no_load_report(tmp_path, capfd):
    """A GenD DINOv2 folder saved by transformers 4 (legacy attention names) missing one weight: the error names
    that weight in the folder's own naming, and transformers' multi-line LOAD REPORT is not printed before it."""
    from safetensors.torch import load_file

    _, config = make_gend_dino(tmp_path / "gend", legacy=True)
    weights = tmp_path / "gend" / "model.safetensors"
    state = load_file(weights)
    gone = "feature_extractor.backbone.encoder.layer.1.attention.attention.key.weight"
    del state[gone]
    save_file(state, weights)
    arch = backbone_folder(tmp_path / "arch", config, PUBLISHED_PROCESSORS["dinov2"])
    capfd.readouterr()
    with pytest.raises(ConvertError) as error:
        convert(tmp_path / "gend", tmp_path / "out", backbone=arch)
    assert str(error.value).endswith(f"missing key {gone!r} (1 missing)") and "\n" not in str(error.value)
    printed = capfd.readouterr()
    assert "LOAD REPORT" not in printed.out + printed.err


def test_classifier_missing_a_weight_is_refused_not_initialised_at_random(tmp_path, capfd):
    from safetensors.torch import load_file

    make_classifier(tmp_path / "clf", {0: "real", 1: "fake"})
    weights = tmp_path / "clf" / "model.safetensors"
    state = load_file(weights)
    gone = sorted(key for key in state if key.endswith(".weight") and ".encoder." in key)[0]
    del state[gone]
    save_file(state, weights, metadata={"format": "pt"})
    capfd.readouterr()
    with pytest.raises(ConvertError, match=r"missing key .*\(1 missing\)") as error:
        convert(tmp_path / "clf", tmp_path / "out")
    assert "\n" not in str(error.value) and not (tmp_path / "out").exists()
    printed = capfd.readouterr()
    assert "LOAD REPORT" not in printed.out + printed.err
