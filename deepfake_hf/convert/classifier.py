"""A stock transformers image classifier with two labels (ViT, CLIP, ConvNeXt, ResNet).

The label that means fake is read from `id2label` or given with `fake_label`; the classifier's encoder and head
are taken from the model transformers' own loader builds (no custom code is ever run).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from deepfake_hf.convert.base import Converted, ConvertError, Match, SourceFormat, SourceInfo
from deepfake_hf.convert.loading import head, read_config
from deepfake_hf.errors import one_line

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

CLASSIFIER = SourceInfo(
    title="image classifier",
    paper="not stated (a stock transformers classifier)",
    code="",
    licence="as stated by the source checkpoint",
    backbone="the classifier's own encoder",
    input="the classifier's own image processor",
)


class Classifier(SourceFormat):
    name = "classifier"
    description = ("stock transformers two-label image classifier (vit, clip, convnext, resnet); "
                   "--fake-label when id2label does not say")
    # The most general format: any folder whose config names labels or an image-classification architecture.
    order = 90

    def recognise_config(self, path: Path, config: dict[str, Any]) -> Match | None:
        if config.get("id2label") or any(a.endswith("ForImageClassification")
                                         for a in config.get("architectures") or []):
            return Match()
        return None

    def load(self, path: Path, variant: str | None = None, backbone: str | None = None,
             fake_label: str | None = None) -> Converted:
        """The classifier's encoder and its head's rows reordered to (real, fake)."""
        from transformers import AutoConfig, AutoModelForImageClassification

        read_config(path)  # its sizes checked before AutoConfig builds it
        try:  # False, not None: a classifier's auto_map is refused in one line, never asked about on stdin or run
            config = AutoConfig.from_pretrained(str(path), trust_remote_code=False)
        except Exception as error:
            if "custom code" in str(error):
                raise ConvertError(f"{path}: its config.json names custom model code (auto_map) that would run on "
                                   "this machine; convert never runs it (refused)") from None
            raise ConvertError(f"{path}: cannot load the classifier's config ({one_line(error, 200)})") from None
        model_type = config.model_type
        if model_type not in CLASSIFIER_LAYOUTS:
            raise ConvertError(f"{path}: a {model_type!r} classifier is not converted (supported: "
                               f"{', '.join(CLASSIFIER_LAYOUTS)}; its head or pooling has no exact detector "
                               "equivalent)")
        fake_index = fake_label_of(config.id2label, fake_label)
        encoder_name, pooling, head_prefix = CLASSIFIER_LAYOUTS[model_type]
        # transformers' own loader reads the weights (safetensors, or torch weights-only) and renames legacy keys,
        # so the encoder and head are taken from the loaded model rather than from the files' key names.
        model = _load_classifier(path, AutoModelForImageClassification)
        state = model.state_dict()
        weight, bias = head(state, head_prefix, path)
        order = [1 - fake_index, fake_index]  # detector rows: 0 real, 1 fake
        weight, bias = weight[order], bias[order]
        encoder_state = getattr(model, encoder_name).state_dict()
        backbone_config = config.vision_config if model_type == "clip" else config
        processor = own_processor(path)
        return Converted(backbone_config, pooling, False, encoder_state, weight.clone(), bias.clone(), processor,
                         "classifier", f"{model_type} image classifier (fake label: {config.id2label[fake_index]!r})",
                         CLASSIFIER)


def _load_classifier(path: Path, auto_class: Any) -> Any:
    """The classifier loaded by transformers (quietly: its LOAD REPORT would precede our one-line error); ConvertError
    naming the first weight the files lack or do not use, which transformers would otherwise initialise at random
    or drop."""
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        model, info = auto_class.from_pretrained(str(path), use_safetensors=None, trust_remote_code=False,
                                                 output_loading_info=True)
    except Exception as error:
        raise ConvertError(f"{path}: cannot load the classifier ({one_line(error, 200)})") from None
    finally:
        transformers_logging.set_verbosity(verbosity)
    for kind, keys in (("missing", info.get("missing_keys")), ("unexpected", info.get("unexpected_keys")),
                       ("mis-shaped", info.get("mismatched_keys"))):
        if keys:
            first = sorted(keys)[0]
            first = first[0] if isinstance(first, (tuple, list)) else first
            raise ConvertError(f"{path}: {kind} key {first!r} ({len(keys)} {kind}); the classifier's weights do not "
                               "match its config.json")
    return model.eval()


def own_processor(path: Path) -> Any:
    """The classifier's own processor, as `pipeline` loads it from its folder (the class and backend transformers
    picks by default); ConvertError naming the file when there is none."""
    from transformers import AutoImageProcessor

    if not (Path(path) / "preprocessor_config.json").is_file():
        raise ConvertError(f"{path}: no preprocessor_config.json; the classifier's preprocessing is unknown")
    try:  # False, not None: a processor auto_map is refused, never asked about on stdin or run
        return AutoImageProcessor.from_pretrained(str(path), trust_remote_code=False)
    except Exception as error:
        raise ConvertError(f"{path}: cannot load its preprocessor_config.json ({one_line(error, 160)})") from None


def fake_label_of(id2label: dict[Any, str], fake_label: str | None = None) -> int:
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


__all__ = ["CLASSIFIER_LAYOUTS", "Classifier", "fake_label_of", "own_processor"]
