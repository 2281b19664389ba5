"""Each converted source's saved image processor against the source's own test-time transform, written here from
the source's documented steps with the library the source uses (not from the sources' code), on image files on
disk: a 256x256 crop and 255x255, 301x257 and 200x200 images. Pixels must agree within 1e-6, and the converted
probability (through `pipeline`, `Detector` and `predict --faces none`) within 1e-5 of a reference forward on the
reference pixels. The checkpoints are tiny random encoders in each source's layout, at the source's real input
size, built by tests/test_convert.py's helpers."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfake_hf.convert import ConvertError, convert

from .test_convert import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PUBLISHED_PROCESSORS,
    backbone_folder,
    make_deepfakebench,
    make_deepfakebench_xception,
    make_gend_clip,
    make_gend_dino,
    make_gend_pe,
    make_univfd,
    save_config,
    tiny,
)

PIXELS = 1e-6
PROBABILITY = 1e-5
SIZES = ((256, 256), (255, 255), (301, 257), (200, 200))  # (width, height)
# The tiny encoders take the sources' real input sizes with a coarse patch grid (fast on a CPU).
REAL_SIZE = dict(image_size=224, patch_size=32)

@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """PNG files: smooth shading plus noise (a face crop is smooth; noise stresses the resampling filters)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for width, height in SIZES:
        yy, xx = np.mgrid[0:height, 0:width]
        shade = 127 + 100 * np.sin(xx / 7.0) * np.cos(yy / 11.0)
        pixels = np.clip(shade[..., None] + rng.normal(0, 30, (height, width, 3)), 0, 255).astype(np.uint8)
        paths.append(folder / f"image_{width}x{height}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


# ------------------------------------------------------------------------------------------- references
def to_tensor_normalize(array, mean, std):
    """torchvision's ToTensor then Normalize, the last two steps every source here documents."""
    from torchvision import transforms

    return transforms.Normalize(mean, std)(transforms.ToTensor()(array))


def deepfakebench_reference(path, size, mean, std):
    """DeepfakeBench's abstract_dataset: cv2.imread, cv2.cvtColor(BGR2RGB), cv2.resize((size, size), INTER_CUBIC),
    ToTensor, Normalize(the detector yaml's mean and std)."""
    import cv2

    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    return to_tensor_normalize(cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC), mean, std)


def univfd_reference(path, size=224):
    """UnivFD's validate.py: PIL image (RGB), CenterCrop(224), ToTensor, Normalize(CLIP's statistics)."""
    from PIL import Image
    from torchvision import transforms

    image = Image.open(path).convert("RGB")
    return to_tensor_normalize(transforms.CenterCrop(size)(image), CLIP_MEAN, CLIP_STD)


def timm_reference(path, data_config):
    """GenD's Perception Encoder: timm.data.create_transform(**data_config, is_training=False) on the PIL image."""
    import timm.data
    from PIL import Image

    return timm.data.create_transform(**data_config, is_training=False)(Image.open(path).convert("RGB"))


def transformers_pil_reference(path, shortest_edge, crop, mean, std):
    """transformers 4.56's PIL ("slow") CLIPImageProcessor / BitImageProcessor, as GenD runs them: PIL resize of the
    short side to `shortest_edge` (bicubic, long side floored), centre crop with floored offsets, x/255, normalise."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    width, height = image.size
    scale = shortest_edge / min(width, height)
    new = (shortest_edge, int(shortest_edge * height / width)) if width <= height else (
        int(shortest_edge * width / height), shortest_edge)
    assert abs(new[0] - width * scale) < 1 and abs(new[1] - height * scale) < 1
    array = np.asarray(image.resize(new, resample=Image.BICUBIC))
    top, left = (array.shape[0] - crop) // 2, (array.shape[1] - crop) // 2
    return to_tensor_normalize(np.ascontiguousarray(array[top:top + crop, left:left + crop]), mean, std)


def torchvision_resize_reference(path, size, interpolation, mean, std):
    """A stock ViT classifier's processor as transformers 5 loads it (torchvision backend):
    torchvision resize of the uint8 image to size x size with antialiasing, x/255, normalise."""
    from PIL import Image
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional

    image = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)
    mode = {"bilinear": InterpolationMode.BILINEAR, "bicubic": InterpolationMode.BICUBIC}[interpolation]
    resized = functional.resize(image, [size, size], interpolation=mode, antialias=True)
    return to_tensor_normalize(resized.permute(1, 2, 0).numpy(), mean, std)


def dinov3_reference(path, size=224):
    """transformers 4.56's DINOv3ViTImageProcessorFast (GenD's DINOv3): the image as float32 times 1/255, torchvision
    resize to size x size (bilinear, antialias) of that float image, then Normalize(ImageNet statistics)."""
    from PIL import Image
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional

    image = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)
    resized = functional.resize(image.to(torch.float32) * (1 / 255), [size, size],
                                interpolation=InterpolationMode.BILINEAR, antialias=True)
    return functional.normalize(resized, IMAGENET_MEAN, IMAGENET_STD)


# ------------------------------------------------------------------------------------------- sources
def tiny_dinov3():
    from transformers import AutoConfig

    return AutoConfig.for_model("dinov3_vit", hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=37, **REAL_SIZE)


def make_gend_dinov3(folder, seed=0):
    """GenD's save_pretrained layout on a DINOv3 backbone: features = CLS of last_hidden_state."""
    from safetensors.torch import save_file
    from transformers import AutoModel

    torch.manual_seed(seed)
    config = tiny_dinov3()
    dino = AutoModel.from_config(config).eval()
    linear = torch.nn.Linear(32, 2)
    state = {f"feature_extractor.backbone.{k}": v for k, v in dino.state_dict().items()}
    state.update({"model.linear.weight": linear.weight.detach(), "model.linear.bias": linear.bias.detach()})
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"model_type": "GenD", "backbone":
                                                    "facebook/dinov3-vitb16-pretrain-lvd1689m", "head": "linear"}))
    return lambda x: linear(dino(pixel_values=x).last_hidden_state[:, 0]).softmax(-1)[:, 1], config


def build(name, root):
    """Convert source `name` from a tiny checkpoint under `root`: (converted folder, reference forward,
    reference transform path -> (3, H, W))."""
    out = root / "out"
    if name in ("deepfakebench-clip", "deepfakebench-effort"):
        detector = name.split("-")[1]
        checkpoint = root / f"{detector}.pth"
        forward = make_deepfakebench(checkpoint, detector, config=tiny("clip_vision_model", **REAL_SIZE))
        convert(checkpoint, out, backbone=save_config(tiny("clip_vision_model", **REAL_SIZE), root / "arch"))
        mean, std = ([0.5] * 3, [0.5] * 3) if detector == "clip" else (CLIP_MEAN, CLIP_STD)
        return out, forward, lambda path: deepfakebench_reference(path, 224, mean, std)
    if name == "deepfakebench-xception":
        forward, _ = make_deepfakebench_xception(root / "xception.pth")
        convert(root / "xception.pth", out, detector="xception")
        return out, forward, lambda path: deepfakebench_reference(path, 256, [0.5] * 3, [0.5] * 3)
    if name == "gend-clip":
        forward = make_gend_clip(root / "gend", config=tiny("clip_vision_model", projection_dim=16, **REAL_SIZE))
        arch = backbone_folder(root / "arch", tiny("clip_vision_model", **REAL_SIZE), PUBLISHED_PROCESSORS["clip"])
        convert(root / "gend", out, backbone=arch)
        return out, forward, lambda path: transformers_pil_reference(path, 224, 224, CLIP_MEAN, CLIP_STD)
    if name == "gend-dinov2":
        forward, config = make_gend_dino(root / "gend", legacy=True, config=tiny("dinov2", **REAL_SIZE))
        convert(root / "gend", out, backbone=backbone_folder(root / "arch", config, PUBLISHED_PROCESSORS["dinov2"]))
        return out, forward, lambda path: transformers_pil_reference(path, 256, 224, IMAGENET_MEAN, IMAGENET_STD)
    if name == "gend-dinov3":
        forward, config = make_gend_dinov3(root / "gend")
        convert(root / "gend", out, backbone=backbone_folder(root / "arch", config, PUBLISHED_PROCESSORS["dinov3"]))
        return out, forward, dinov3_reference
    if name == "gend-pe":
        import timm.data

        forward, architecture = make_gend_pe(root / "gend")
        convert(root / "gend", out, backbone=architecture)
        data_config = timm.data.resolve_data_config(
            pretrained_cfg=timm.models.get_pretrained_cfg("vit_pe_core_large_patch14_336").to_dict())
        data_config["input_size"] = (3, 224, 224)  # GenD's img_size=224
        return out, forward, lambda path: timm_reference(path, data_config)
    if name == "univfd":
        forward, clip_folder = make_univfd(root, vision=dict(REAL_SIZE))
        convert(root / "fc_weights.pth", out, backbone=clip_folder)
        return out, forward, univfd_reference
    if name == "classifier":
        from transformers import ViTForImageClassification, ViTImageProcessor

        torch.manual_seed(0)
        labels = {0: "real", 1: "fake"}
        stock = ViTForImageClassification(tiny("vit", id2label=labels, label2id={v: k for k, v in labels.items()},
                                               **REAL_SIZE)).eval()
        stock.save_pretrained(root / "clf")
        ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(root / "clf")  # bilinear, 0.5 / 0.5
        convert(root / "clf", out)
        return out, (lambda x: stock(pixel_values=x).logits.softmax(-1)[:, 1]), (
            lambda path: torchvision_resize_reference(path, 224, "bilinear", [0.5] * 3, [0.5] * 3))
    raise AssertionError(name)


SOURCES = ["deepfakebench-clip", "deepfakebench-effort", "deepfakebench-xception", "gend-clip", "gend-dinov2",
           "gend-dinov3", "gend-pe", "univfd", "classifier"]


@pytest.fixture(scope="module")
def converted(request, tmp_path_factory):
    """(name, converted folder, reference forward, reference transform) of source `request.param`, built once for
    this module (tests that change the folder build their own)."""
    name = request.param
    return (name, *build(name, tmp_path_factory.mktemp(name)))


def saved_pixels(out, paths):
    """Pixel values of the converted folder's processor, loaded as a pipeline loads it (remote code allowed)."""
    from PIL import Image
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(out, trust_remote_code=True)
    return [processor(images=Image.open(path).convert("RGB"), return_tensors="pt")["pixel_values"][0]
            for path in paths]


@pytest.mark.parametrize("converted", SOURCES, indirect=True)
def test_saved_processor_is_the_sources_transform(images, converted):
    name, out, _, reference = converted
    for path, got in zip(images, saved_pixels(out, images), strict=True):
        expected = reference(path)
        assert got.shape == expected.shape, (name, path.name)
        assert (got - expected).abs().max() <= PIXELS, (name, path.name, float((got - expected).abs().max()))
    # the card's preprocessing row is written from the saved processor
    card = (out / "README.md").read_text()
    row = next(line for line in card.splitlines() if line.startswith("| preprocessing saved"))
    from transformers import AutoImageProcessor

    from deepfake_hf.convert.processors import describe_processor

    assert describe_processor(AutoImageProcessor.from_pretrained(out, trust_remote_code=True)) in row
    assert ("no resize" in row) is (name == "univfd")  # UnivFD only crops
    assert ("x/255 (before the resize" in row) is (name == "gend-dinov3")  # the steps in the order they run
    assert "CLIP" not in row or not name.startswith("gend-dino")
    if name.startswith("gend-"):  # the backbone row names this checkpoint's encoder, not a list of families
        backbone_row = next(line for line in card.splitlines() if line.startswith("| backbone "))
        assert {"gend-clip": "clip_vision_model", "gend-dinov2": "dinov2", "gend-dinov3": "dinov3",
                "gend-pe": "vit_pe"}[name] in backbone_row, backbone_row
        assert ("clip" in backbone_row.lower()) is (name == "gend-clip"), backbone_row
    settings = json.loads((out / "preprocessor_config.json").read_text())
    if settings["image_processor_type"] == "DeepfakeImageProcessor":  # remote code saved beside the model's
        assert (out / "image_processing_deepfake.py").is_file()
        assert settings["auto_map"]["AutoImageProcessor"] == "image_processing_deepfake.DeepfakeImageProcessor"


def fake_probabilities(out, paths, tmp_path):
    """The converted folder's fake probability of each file through pipeline, Detector and predict, faces "none"."""
    from transformers import pipeline

    from deepfake_hf import Detector
    from deepfake_hf.cli import main

    # the inputs are crops already: a face-finding model's pipeline (pipeline_deepfake.py) is told so, as predict is
    # (a GenD folder's recorded "gend" mode would otherwise need SCRFD's weights)
    as_given = {"face_mode": "none"} if (Path(out) / "pipeline_deepfake.py").is_file() else {}
    classify = pipeline("image-classification", model=str(out), trust_remote_code=True, **as_given)
    through = {"pipeline": [next(row["score"] for row in classify(str(path)) if row["label"] == "fake")
                            for path in paths]}
    through["Detector"] = [result.fake_probability for result in Detector.from_pretrained(out, faces="none")(
        [str(path) for path in paths])]
    report = tmp_path / "predict.json"
    assert main(["predict", str(out), *map(str, paths), "--faces", "none", "--format", "json", "--out",
                 str(report)]) == 0
    rows = {row["file"] if "file" in row else row["path"]: row["fake_probability"]
            for row in json.loads(report.read_text())["results"]}
    through["predict --faces none"] = [rows[str(path)] for path in paths]
    return through


FAST = [name for name in SOURCES if name not in ("deepfakebench-xception",)]


@pytest.mark.parametrize("converted", [*FAST, pytest.param("deepfakebench-xception", marks=pytest.mark.slow)],
                         indirect=True)
def test_probability_matches_the_reference_forward_through_every_entry_point(tmp_path, images, converted):
    name, out, forward, reference = converted
    with torch.no_grad():
        expected = forward(torch.stack([reference(path) for path in images])).tolist()
    assert 0.01 < min(expected) and max(expected) < 0.99  # not saturated: the comparison means something
    for entry, got in fake_probabilities(out, images, tmp_path).items():
        assert np.abs(np.array(got) - np.array(expected)).max() < PROBABILITY, (name, entry, got, expected)


def test_dinov3_backbone_without_its_processor_file_is_refused_in_one_line(tmp_path):
    _, config = make_gend_dinov3(tmp_path / "gend")
    arch = backbone_folder(tmp_path / "arch", config)  # config.json only
    with pytest.raises(ConvertError, match="preprocessor_config.json") as error:
        convert(tmp_path / "gend", tmp_path / "out", backbone=arch)
    assert "\n" not in str(error.value) and str(arch) in str(error.value) and not (tmp_path / "out").exists()


def test_gend_clip_backbone_without_its_processor_file_is_refused(tmp_path):
    make_gend_clip(tmp_path / "gend")
    arch = backbone_folder(tmp_path / "arch", tiny("clip_vision_model"))
    with pytest.raises(ConvertError, match=r"has no readable preprocessor_config.json.*pass --backbone"):
        convert(tmp_path / "gend", tmp_path / "out", backbone=arch)


def test_processor_steps_follow_torchvision_and_opencv_conventions():
    """The remote-code processor's own steps on arrays: torchvision's CenterCrop offsets (round half to even) and
    zero padding, and OpenCV's resize, each against the library itself."""
    import cv2
    from torchvision import transforms

    from deepfake_hf.image_processing_deepfake import DeepfakeImageProcessor

    rng = np.random.default_rng(1)
    crop = DeepfakeImageProcessor(do_resize=False, do_center_crop=True, crop_size={"height": 224, "width": 224})
    for height, width in ((255, 255), (257, 301), (200, 200), (201, 230), (224, 225)):
        array = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        expected = transforms.CenterCrop(224)(torch.from_numpy(array).permute(2, 0, 1)).permute(1, 2, 0).numpy()
        assert np.array_equal(crop.center_crop_array(array), expected), (height, width)
    resize = DeepfakeImageProcessor(size={"height": 224, "width": 224}, resize_library="opencv")
    array = rng.integers(0, 256, (257, 301, 3), dtype=np.uint8)
    assert np.array_equal(resize.resize_array(array), cv2.resize(array, (224, 224), interpolation=cv2.INTER_CUBIC))
    with pytest.raises(ValueError, match="resize_library"):
        DeepfakeImageProcessor(resize_library="skimage")


def test_processor_file_is_self_contained_remote_code():
    """image_processing_deepfake.py is copied into model folders and run from the Hub: it imports nothing of the
    package (not even relatively), and cv2 only inside the function that resizes with it."""
    import ast
    from pathlib import Path

    import deepfake_hf.image_processing_deepfake as module

    tree = ast.parse(Path(module.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not (node.module or "").startswith("deepfake_hf"), ast.unparse(node)
        if isinstance(node, ast.Import):
            assert not any(alias.name.startswith("deepfake_hf") for alias in node.names), ast.unparse(node)
    top_level = {alias.name for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
                 for alias in node.names}
    assert "cv2" not in top_level and "torch" not in top_level


def test_push_publishes_the_converted_processor_rebuilt_from_the_package(tmp_path, images):
    """push never runs a folder's code: DeepfakeImageProcessor is rebuilt from this package's own class, and the
    published folder gives the same pixels as the converted one."""
    from deepfake_hf.cli import main

    out, _, reference = build("deepfakebench-clip", tmp_path)
    (out / "image_processing_deepfake.py").write_text("raise SystemExit('the folder code ran')\n")  # never run
    published = tmp_path / "published"
    assert main(["push", str(out), "--repo-id", "alice/dfb-clip", "--dry-run", str(published)]) == 0
    settings = json.loads((published / "preprocessor_config.json").read_text())
    assert settings["image_processor_type"] == "DeepfakeImageProcessor"
    assert settings["auto_map"] == {"AutoImageProcessor": "image_processing_deepfake.DeepfakeImageProcessor"}
    assert "SystemExit" not in (published / "image_processing_deepfake.py").read_text()  # the package's copy
    for path, got in zip(images, saved_pixels(published, images), strict=True):
        assert (got - reference(path)).abs().max() <= PIXELS, path.name


@pytest.mark.parametrize("converted", ["univfd", "gend-dinov3", "deepfakebench-clip"], indirect=True)
def test_published_card_keeps_the_source_and_states_the_saved_transform(tmp_path, converted):
    """push re-renders a converted folder's card: the source, paper, licence, input and test-time transform of the
    converted card are carried over, the text on how pictures are fed states the saved processor's steps (not a
    template's "resized to its input size"), and no path of this machine is published."""
    from transformers import AutoImageProcessor

    from deepfake_hf.cli import main
    from deepfake_hf.convert.processors import describe_processor

    name, out, _, _ = converted
    published = tmp_path / "published"
    assert main(["push", str(out), "--repo-id", "alice/converted", "--dry-run", str(published)]) == 0
    card = (published / "README.md").read_text()
    saved = describe_processor(AutoImageProcessor.from_pretrained(published, trust_remote_code=True))
    assert f"prepared by its saved image processor ({saved})" in card and "resized to its input size" not in card
    converted_card = (out / "README.md").read_text()
    for line in converted_card.splitlines():
        if line.startswith(("# ", "| paper ", "| preprocessing saved ", "| face preprocessing recorded ")):
            assert line in card, line
    assert "## Source" in card and "trained with deepfake-hf" not in card
    assert "\nlicense: other\n" in card  # the source's terms, never this package's apache-2.0
    assert str(out.parent) not in card and str(out.parent) in converted_card  # the backbone folder's path
    if name == "univfd":  # whole pictures: the card does not send people to face crops
        assert "whole images" in card and "no resize" in card and "It expects face crops" not in card


@pytest.mark.slow
def test_converted_folder_runs_its_processor_from_a_hub_repo(tmp_path, images, monkeypatch):
    """Pushed to a (local, fake) Hub and loaded by id in a fresh process, a converted folder's remote-code processor
    and model give the reference probability."""
    from huggingface_hub import constants

    from deepfake_hf.cli import main
    from tests.conftest import run_python
    from tests.fake_hub import FakeHub

    script = ("import json, sys\nfrom transformers import pipeline\nclassify = pipeline('image-classification', "
              "model=sys.argv[1], trust_remote_code=True)\nprint(json.dumps([{r['label']: r['score'] for r in "
              "classify(path)}['fake'] for path in sys.argv[2:]]))")
    with FakeHub(tokens={"hf_alice": "alice"}) as hub:
        for key, value in (("ENDPOINT", hub.url), ("HF_HUB_DISABLE_XET", True), ("HF_HUB_OFFLINE", False),
                           ("HF_TOKEN_PATH", str(tmp_path / "no-token-file"))):
            monkeypatch.setattr(constants, key, value)
        monkeypatch.setenv("HF_TOKEN", "hf_alice")
        env = {"HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "hf_alice",
               "HF_HOME": str(tmp_path / "hf-home")}
        for name in ("deepfakebench-clip", "univfd"):
            (tmp_path / name).mkdir()
            out, forward, reference = build(name, tmp_path / name)
            assert main(["push", str(out), "--repo-id", f"alice/{name}"]) == 0
            assert "image_processing_deepfake.py" in hub.files(f"alice/{name}")
            got = json.loads(run_python(script, f"alice/{name}", *images, env=env).stdout.strip().splitlines()[-1])
            with torch.no_grad():
                expected = forward(torch.stack([reference(path) for path in images])).tolist()
            assert np.abs(np.array(got) - np.array(expected)).max() < PROBABILITY, (name, got, expected)
