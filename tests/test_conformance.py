"""transformers' own common tests, run against `DeepfakeDetectorForImageClassification`.

`ModelTesterMixin` (tests/test_modeling_common.py) and `ConfigTester` (tests/test_configuration_common.py)
come from the source distribution of the installed transformers version, so the detector is held to the
conventions of the library it is loaded by (return_dict, get_image_features, output_hidden_states
indices, base-model loading, config serialisation). The sdist is fetched once with pip into
`$DEEPFAKE_HF_CACHE/transformers-tests` (default `~/.cache/deepfake_hf`) and reused; without it (no index,
a dev build of transformers, no `parameterized`) the module is skipped with the reason.

The testers follow transformers' ModelTester pattern (tests/models/vit/test_modeling_vit.py) with the
project's tiny sizes: hidden size 32, 2 layers, 32 px images.

Skips: one here, written below with its reason (the detector's fixed two labels). The others are the mixin's
own, each with transformers' reason: an accelerator, several accelerators, MPS, flash attention 2/3/4,
deepspeed or the kernels library is needed; `@slow` (torch.compile training); no token embeddings to resize
(`test_resize_embeddings = False`, as for every vision model); not composite, no rotary embeddings, no
sparse experts, no tensor-parallel plan, no cache, no inputs_embeds; and `test_torch_save_load`, which needs
the config in MODEL_MAPPING, where a remote-code model never is.
"""

import importlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import types
import unittest
import warnings
from pathlib import Path

import pytest
import torch
import transformers

from deepfake_hf import DeepfakeDetectorConfig, DeepfakeDetectorForImageClassification

# About 45 s on two shared CPU cores: over the budget of the quick suite.
pytestmark = pytest.mark.slow

SDIST_TIMEOUT_S = 300
# The package name the sdist's tests/ folder is imported under: its files use relative imports
# (`from .generation.test_utils import ...`), and this project's own `tests` package owns the plain name.
COMMON_TESTS_PACKAGE = "transformers_common_tests"


def _cache_root():
    return Path(os.environ.get("DEEPFAKE_HF_CACHE") or os.path.join("~", ".cache", "deepfake_hf")).expanduser()


def _download_common_tests(version):
    """The sdist's tests/ folder for `version`, downloaded and unpacked once; raises RuntimeError with the reason."""
    target = _cache_root() / "transformers-tests" / version
    if (target / "tests" / "test_modeling_common.py").is_file():
        return target / "tests"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
                   f"transformers=={version}", "--dest", scratch]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=SDIST_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"pip download of transformers=={version} took over {SDIST_TIMEOUT_S} s") from None
        archives = sorted(Path(scratch).glob("transformers-*.tar.gz"))
        if result.returncode != 0 or not archives:
            last = (result.stderr.strip().splitlines() or ["no archive written"])[-1]
            raise RuntimeError(f"pip could not download the transformers=={version} sdist: {last}")
        unpacked = Path(scratch) / "unpacked"
        with tarfile.open(archives[0]) as archive:
            # Only the tests/ folder, through tarfile's "data" filter (no absolute paths, links out or devices).
            members = [m for m in archive.getmembers() if m.name.split("/")[1:2] == ["tests"]]
            archive.extractall(unpacked, members=members, filter="data")
        tests_dir = next(unpacked.glob("*/tests"))
        # `direct_transformers_import(tests/)` in test_configuration_common.py executes tests/__init__.py, which the
        # repository has (empty) and the sdist lacks.
        (tests_dir / "__init__.py").touch()
        staged = Path(scratch) / "staged"
        staged.mkdir()
        shutil.move(str(tests_dir), staged / "tests")
        if target.exists():  # a half-written folder from an interrupted run
            shutil.rmtree(target)
        os.replace(staged, target)
    return target / "tests"


def _install_stand_ins():
    """The three helper modules the sdist lacks, reduced to what the two common files import from them.

    - exporters/test_export.py: `ExportTesterMixin` (torch.export tests; none run here),
    - generation/test_utils.py: `GenerationTesterMixin` (the detector cannot generate, and
      `test_generation_tester_mixin_inheritance` checks the tester does not inherit it),
    - utils/test_configuration_utils.py: `config_common_kwargs` (read only by `check_config_arguments_init`,
      which returns early for composite configs such as this one).
    """
    stand_ins = {
        "exporters.test_export": {"ExportTesterMixin": type("ExportTesterMixin", (), {})},
        "generation.test_utils": {"GenerationTesterMixin": type("GenerationTesterMixin", (), {})},
        "utils.test_configuration_utils": {
            "config_common_kwargs": {"return_dict": False, "output_hidden_states": True, "output_attentions": True,
                                     "dtype": "float16", "id2label": {0: "label"}, "label2id": {"label": "0"}},
        },
    }
    for dotted, names in stand_ins.items():
        folder = dotted.split(".")[0]
        package = types.ModuleType(f"{COMMON_TESTS_PACKAGE}.{folder}")
        package.__path__ = []
        sys.modules.setdefault(package.__name__, package)
        module = types.ModuleType(f"{COMMON_TESTS_PACKAGE}.{dotted}")
        module.__dict__.update(names)
        sys.modules[module.__name__] = module


def _import_common_tests():
    """(test_modeling_common, test_configuration_common) of the installed version, or pytest.skip with the reason."""
    version = transformers.__version__
    if importlib.util.find_spec("parameterized") is None:
        pytest.skip("transformers' common tests need `parameterized` (pip install parameterized)",
                    allow_module_level=True)
    if any(tag in version for tag in ("dev", "+")):
        pytest.skip(f"transformers {version} is not a release: no sdist on the package index",
                    allow_module_level=True)
    try:
        tests_dir = _download_common_tests(version)
    except (RuntimeError, OSError, tarfile.TarError) as error:
        print(f"test_conformance: skipped: {error}", file=sys.stderr)
        pytest.skip(str(error), allow_module_level=True)
    package = types.ModuleType(COMMON_TESTS_PACKAGE)
    package.__path__ = [str(tests_dir)]
    sys.modules[COMMON_TESTS_PACKAGE] = package
    _install_stand_ins()
    with warnings.catch_warnings():
        # The files use marks registered by transformers' own conftest (flash_attn_test, torch_compile_test, ...).
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        modeling = importlib.import_module(f"{COMMON_TESTS_PACKAGE}.test_modeling_common")
        configuration = importlib.import_module(f"{COMMON_TESTS_PACKAGE}.test_configuration_common")
    return modeling, configuration


test_modeling_common, test_configuration_common = _import_common_tests()
ModelTesterMixin = test_modeling_common.ModelTesterMixin
ConfigTester = test_configuration_common.ConfigTester
floats_tensor = test_modeling_common.floats_tensor
ids_tensor = test_modeling_common.ids_tensor


class DeepfakeDetectorModelTester:
    """Tiny detector configs and inputs, in the shape transformers' ModelTesters give them."""

    def __init__(
        self,
        parent,
        backbone_type="vit",
        batch_size=3,
        image_size=32,
        patch_size=8,
        num_channels=3,
        is_training=True,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        dropout=0.1,
        detector_kwargs=None,
    ):
        self.parent = parent
        self.backbone_type = backbone_type
        self.batch_size = batch_size
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.is_training = is_training
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.dropout = dropout
        self.detector_kwargs = dict(detector_kwargs or {})
        self.num_labels = 2
        # patch tokens plus the CLS token
        self.seq_length = (image_size // patch_size) ** 2 + 1

    def get_backbone_config(self):
        """The backbone as a dict of values that all differ from the family's defaults (so a diff keeps them all)."""
        shared = dict(hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
                      num_attention_heads=self.num_attention_heads, intermediate_size=self.intermediate_size,
                      image_size=self.image_size, patch_size=self.patch_size)
        if self.backbone_type == "vit":
            dropouts = dict(hidden_dropout_prob=self.dropout, attention_probs_dropout_prob=self.dropout)
        else:
            dropouts = dict(dropout=self.dropout, attention_dropout=self.dropout)
        return dict(model_type=self.backbone_type, **shared, **dropouts)

    def get_config_kwargs(self):
        return dict(backbone_config=self.get_backbone_config(), **self.detector_kwargs)

    def get_config(self):
        return DeepfakeDetectorConfig(**self.get_config_kwargs())

    def prepare_config_and_inputs(self):
        pixel_values = floats_tensor([self.batch_size, self.num_channels, self.image_size, self.image_size])
        labels = ids_tensor([self.batch_size], self.num_labels)
        return self.get_config(), pixel_values, labels

    def create_and_check_for_image_classification(self, config, pixel_values, labels):
        model = DeepfakeDetectorForImageClassification(config).eval()
        with torch.no_grad():
            result = model(pixel_values, labels=labels)
        self.parent.assertEqual(result.logits.shape, (self.batch_size, self.num_labels))
        self.parent.assertEqual(result.image_features.shape, (self.batch_size, self.hidden_size))
        self.parent.assertTrue(torch.isfinite(result.loss))

    def prepare_config_and_inputs_for_common(self):
        config, pixel_values, _ = self.prepare_config_and_inputs()
        return config, {"pixel_values": pixel_values}


class DeepfakeDetectorCommonTests(ModelTesterMixin):
    """Shared settings and the skips that cannot apply to a detector, each with its reason."""

    backbone_type = None
    detector_kwargs = {}
    all_model_classes = (DeepfakeDetectorForImageClassification,)
    # An image model has no token embeddings to resize.
    test_resize_embeddings = False
    # The mixin runs `test_can_init_all_missing_weights` only for models added since 2023 (read from a copyright
    # line this package's files do not carry) unless asked: _init_weights must cover every weight here.
    test_can_init_all_missing_weights_before_2023 = True

    def setUp(self):
        self.model_tester = DeepfakeDetectorModelTester(self, self.backbone_type,
                                                        detector_kwargs=self.detector_kwargs)
        self.config_tester = ConfigTester(self, config_class=DeepfakeDetectorConfig, has_text_modality=False,
                                          common_properties=["hidden_size"], **self.model_tester.get_config_kwargs())

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        # A remote-code class is never in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING, which is how the mixin decides
        # to add labels; add them the way it does for image-classification classes.
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels:
            inputs_dict["labels"] = torch.zeros(self.model_tester.batch_size, dtype=torch.long)
        return inputs_dict

    # ConfigTester.run_common_tests, one check per test so a failure names the convention it breaks.
    def test_config_common_properties(self):
        self.config_tester.create_and_test_config_common_properties()

    def test_config_to_json_string(self):
        # Every value passed in is serialised as given: with the backbone's values all differing from its
        # defaults, this also checks that backbone_config is written as a diff against those defaults.
        self.config_tester.create_and_test_config_to_json_string()

    def test_config_to_json_file(self):
        self.config_tester.create_and_test_config_to_json_file()

    def test_config_from_and_save_pretrained(self):
        self.config_tester.create_and_test_config_from_and_save_pretrained()

    def test_config_from_and_save_pretrained_subfolder(self):
        self.config_tester.create_and_test_config_from_and_save_pretrained_subfolder()

    def test_config_from_and_save_pretrained_composite(self):
        self.config_tester.create_and_test_config_from_and_save_pretrained_composite()

    @unittest.skip(reason="A deepfake detector has exactly the labels {0: real, 1: fake}; its config refuses "
                          "num_labels=5 by design (tests/test_configuration.py checks that refusal).")
    def test_config_with_num_labels(self):
        self.config_tester.create_and_test_config_with_num_labels()

    def test_config_arguments_init(self):
        self.config_tester.check_config_arguments_init()

    def test_config_from_pretrained_custom_kwargs(self):
        self.config_tester.create_and_test_config_from_pretrained_custom_kwargs()

    def test_config_can_be_init_without_params(self):
        self.config_tester.check_config_can_be_init_without_params()

    def test_model_get_set_embeddings(self):
        # The vision-model form of this test (as ViT's and CLIP's testers override it): the input
        # "embeddings" are the patch embedding, not an nn.Embedding that could be swapped for another.
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            model = model_class(config)
            self.assertIsInstance(model.get_input_embeddings(), torch.nn.Module)
            output_embeddings = model.get_output_embeddings()
            self.assertTrue(output_embeddings is None or isinstance(output_embeddings, torch.nn.Linear))

    def test_for_image_classification(self):
        self.model_tester.create_and_check_for_image_classification(*self.model_tester.prepare_config_and_inputs())


class DeepfakeDetectorViTTest(DeepfakeDetectorCommonTests, unittest.TestCase):
    backbone_type = "vit"


class DeepfakeDetectorCLIPVisionTest(DeepfakeDetectorCommonTests, unittest.TestCase):
    backbone_type = "clip_vision_model"
    # The CLIP LN-tuning recipe: pooler_output (CLS after post_layernorm), L2-normalised before the head.
    detector_kwargs = {"normalize_features": True}
