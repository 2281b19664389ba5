"""Training recipes: YAML files that name the encoder, the detector options, the tuning method, the data,
the augmentation, the TrainingArguments and the evaluation of one published method.

A recipe is loaded into the dataclasses below. Unknown keys and wrong types fail with one line naming the
key and the file; `overrides` ("a.b=value", the CLI's `--set`) are applied to the YAML before validation,
with `value` parsed as YAML (so `3`, `1e-4`, `true`, `[a, b]` get their natural types).

Built-in recipes live in the top-level `recipes/` folder of the source tree and ship in the wheel as
`deepfake_hf/recipes/`; `load_recipe("clip-l14-ln")` finds them in either place.
"""

import copy
import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from deepfake_hf.configuration_deepfake import DEFAULT_NUM_FRAMES
from deepfake_hf.errors import DeepfakeHFError, one_line
from deepfake_hf.faces import face_mode_names

TUNING_METHODS = ("ln_tuning", "lora", "full", "linear_probe")
AUGMENTATIONS = ("hflip", "affine", "blur", "color_jitter", "jpeg", "random_resized_crop", "rotation", "sharpness")


class RecipeError(DeepfakeHFError, ValueError):
    """A recipe problem; str() is one line "FILE: key: problem"."""


@dataclass
class ModelRecipe:
    """The encoder and the detector built on it."""

    backbone: str | None = None  # Hub id or local folder of the pretrained encoder; None: random init only
    architecture: dict | None = None  # known encoder hyperparameters (model_type + config fields) for --random-init
    detector: dict = field(default_factory=dict)  # DeepfakeDetectorConfig options (pooling, losses, ...)


@dataclass
class LoraRecipe:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] | None = None  # default: the attention query/value projections of the family


@dataclass
class TuningRecipe:
    method: str = "full"  # ln_tuning | lora | full | linear_probe
    lora: LoraRecipe = field(default_factory=LoraRecipe)


@dataclass
class DataRecipe:
    train: list[str] = field(default_factory=list)  # sources (folders, manifests, video folders, DeepfakeBench JSON)
    validation: list[str] = field(default_factory=list)  # explicit validation sources; else split off `train`
    val_fraction: float = 0.1  # share of `train` groups held out for model selection when `validation` is empty
    label_map: dict | None = None  # folder name -> 0 (real) / 1 (fake)
    faces: str = "none"  # face detector for video frames and photos: none | auto | dlib | deepfakebench
    num_frames: int = DEFAULT_NUM_FRAMES  # frames sampled per video
    cache_dir: str | None = None  # Arrow cache of decoded frames
    seed: int = 0
    sbi: dict | None = None  # synthesise self-blended fakes offline (options of synthesis.make_sbi_dataset)


@dataclass
class EvaluationRecipe:
    metric: str = "auroc"  # validation metric that selects the best checkpoint
    test: list[str] = field(default_factory=list)  # test sources for `deepfake-hf evaluate`; never used in training


@dataclass
class Recipe:
    name: str = "recipe"
    reference: str = ""  # the paper / model card the recipe reproduces, and its published numbers
    model: ModelRecipe = field(default_factory=ModelRecipe)
    tuning: TuningRecipe = field(default_factory=TuningRecipe)
    data: DataRecipe = field(default_factory=DataRecipe)
    augmentation: list[dict] = field(default_factory=list)  # [{name: {param: value}}, ...] in order
    training: dict = field(default_factory=dict)  # transformers.TrainingArguments fields
    evaluation: EvaluationRecipe = field(default_factory=EvaluationRecipe)
    source_file: str | None = field(default=None, repr=False)

    def to_dict(self):
        data = dataclasses.asdict(self)
        data.pop("source_file")
        return data

    def to_yaml(self):
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# ---------------------------------------------------------------------------------------------- finding
def builtin_recipes_dir():
    """The folder of built-in recipes: inside the installed package, or the source tree's `recipes/`."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "recipes", package.parent / "recipes"):
        if candidate.is_dir():
            return candidate
    return package / "recipes"


def builtin_recipes():
    """Names of the built-in recipes."""
    return sorted(path.stem for path in builtin_recipes_dir().glob("*.yaml"))


def find_recipe(path_or_name):
    path = Path(path_or_name)
    if path.is_file():
        return path
    builtin = builtin_recipes_dir() / f"{path.name.removesuffix('.yaml')}.yaml"
    if path.parent == Path(".") and builtin.is_file():
        return builtin
    raise RecipeError(f"{path_or_name}: no such recipe file or built-in recipe "
                      f"(built-in: {', '.join(builtin_recipes())})")


# ---------------------------------------------------------------------------------------------- loading
def load_recipe(path_or_name, overrides=()):
    """Read, override and validate a recipe (a YAML path or a built-in name); returns a `Recipe`."""
    if isinstance(path_or_name, Recipe):
        raw, source = path_or_name.to_dict(), path_or_name.source_file or "<recipe>"
    elif isinstance(path_or_name, dict):
        raw, source = copy.deepcopy(path_or_name), "<recipe>"
    else:
        path = find_recipe(path_or_name)
        source = str(path)
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise RecipeError(f"{source}: not valid YAML ({one_line(error)})") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: a recipe is a mapping of sections, got {type(raw).__name__}")
    for override in overrides:
        apply_override(raw, override, source)
    recipe = _build(Recipe, raw, "", source)
    recipe.source_file = source
    _check_semantics(recipe, source)
    return recipe


def apply_override(raw, override, source="<recipe>"):
    """Set `a.b.c=value` in the raw recipe mapping; the value is parsed as YAML."""
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise RecipeError(f"--set {override!r}: expected KEY=VALUE, e.g. training.learning_rate=1e-4")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    parts = key.split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise RecipeError(f"{source}: --set {key}: {'.'.join(parts[:depth + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def _type_name(annotation):
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _coerce(value, annotation, key, source):
    """Check `value` against a dataclass field annotation (and convert int -> float)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key, source)
            except RecipeError as error:
                errors.append(error)
        raise errors[0]
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, key, source)
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{source}: {key}: expected a list, got {type(value).__name__} {value!r}")
        (item,) = typing.get_args(annotation) or (typing.Any,)
        return [_coerce(v, item, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if annotation is typing.Any:
        return value
    expected = origin or annotation
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is float and isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
        try:
            return float(value)
        except ValueError:
            pass
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise RecipeError(f"{source}: {key}: expected {_type_name(annotation)}, got {type(value).__name__} {value!r}")
    return value


def _build(cls, raw, prefix, source):
    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: {prefix or 'recipe'}: expected a mapping, got {type(raw).__name__} {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.name != "source_file"}
    unknown = sorted(set(raw) - names)
    if unknown:
        where = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise RecipeError(f"{source}: {where}: unknown key (allowed here: {', '.join(sorted(names))})")
    values = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}" if prefix else name
        values[name] = _coerce(value, hints[name], key, source)
    return cls(**values)


# ------------------------------------------------------------------------------------------- semantics
def _check_semantics(recipe, source):
    """Checks that need more than types: allowed values, detector options, TrainingArguments fields."""

    def fail(key, problem):
        raise RecipeError(f"{source}: {key}: {problem}")

    if recipe.tuning.method not in TUNING_METHODS:
        fail("tuning.method", f"{recipe.tuning.method!r} is not one of {', '.join(TUNING_METHODS)}")
    if recipe.model.backbone is None and recipe.model.architecture is None:
        fail("model", "needs `backbone` (Hub id or folder) or `architecture` (encoder hyperparameters)")
    if recipe.model.architecture is not None and "model_type" not in recipe.model.architecture:
        fail("model.architecture", "needs a `model_type` (e.g. vit, clip_vision_model, convnext)")
    if not 0.0 < recipe.data.val_fraction < 1.0:
        fail("data.val_fraction", f"{recipe.data.val_fraction!r} must be in (0, 1)")
    if recipe.data.faces not in face_mode_names():
        fail("data.faces", f"{recipe.data.faces!r} is not one of {', '.join(face_mode_names())}")
    _check_detector_options(recipe, fail)
    _check_augmentation_items(recipe, fail)
    _check_training_arguments(recipe, fail)
    try:
        build_augmentation(recipe.augmentation, image_size=224)
    except (TypeError, ValueError) as error:
        fail("augmentation", one_line(error))


def _check_detector_options(recipe, fail):
    """model.detector: known DeepfakeDetectorConfig options of the right kind, valid on the architecture."""
    from deepfake_hf.configuration_deepfake import DeepfakeDetectorConfig

    detector_options = inspect.signature(DeepfakeDetectorConfig.__init__).parameters
    allowed = [name for name in detector_options if name not in ("self", "kwargs", "backbone_config")]
    for name, value in recipe.model.detector.items():
        if name not in allowed:
            fail(f"model.detector.{name}", f"unknown detector option (allowed: {', '.join(allowed)})")
        default = detector_options[name].default
        if default is not None and not _same_kind(value, default):
            fail(f"model.detector.{name}", f"expected {type(default).__name__}, got {type(value).__name__} {value!r}")
    if recipe.model.architecture is not None:
        try:  # the detector's own validation (ranges, pooling per family) on the known architecture
            DeepfakeDetectorConfig(backbone_config=dict(recipe.model.architecture), **recipe.model.detector)
        except (TypeError, ValueError) as error:
            fail("model", one_line(error))


def _check_augmentation_items(recipe, fail):
    """augmentation: a list of one-key mappings {name: parameters} naming known augmentations."""
    for index, item in enumerate(recipe.augmentation):
        if not isinstance(item, dict) or len(item) != 1:
            fail(f"augmentation[{index}]", f"expected a one-key mapping like {{hflip: {{p: 0.5}}}}, got {item!r}")
        ((name, params),) = item.items()
        if name not in AUGMENTATIONS:
            fail(f"augmentation[{index}].{name}", f"unknown augmentation (allowed: {', '.join(AUGMENTATIONS)})")
        if params is not None and not isinstance(params, dict):
            fail(f"augmentation[{index}].{name}", f"expected a mapping of parameters, got {params!r}")


def _check_training_arguments(recipe, fail):
    """training: TrainingArguments fields of the right kind (a float given as text, "1e-4", is converted)."""
    from transformers import TrainingArguments

    argument_fields = {f.name: f for f in dataclasses.fields(TrainingArguments) if f.init}
    for name, value in recipe.training.items():
        if name == "output_dir":
            fail("training.output_dir", "set by `deepfake-hf train --out`, not in the recipe")
        if name not in argument_fields:
            fail(f"training.{name}", "not a transformers.TrainingArguments field")
        default = argument_fields[name].default
        if isinstance(default, (bool, int, float, str)) and not _same_kind(value, default):
            if isinstance(default, float) and isinstance(value, str):
                try:
                    recipe.training[name] = float(value)
                    continue
                except ValueError:
                    pass
            fail(f"training.{name}", f"expected {type(default).__name__}, got {type(value).__name__} {value!r}")


# --------------------------------------------------------------------------------------------- augmentation
def build_augmentation(items, image_size):
    """torchvision v2 transforms from the recipe's `augmentation` list (on uint8 CHW tensors), or None."""
    from torchvision.transforms import v2

    def tuples(params):
        return {k: tuple(v) if isinstance(v, list) else v for k, v in (params or {}).items()}

    builders = {
        "hflip": lambda p: v2.RandomHorizontalFlip(**p),
        "affine": lambda p: v2.RandomAffine(**{"degrees": 10, **p}),
        "blur": lambda p: v2.GaussianBlur(**{"kernel_size": 3, **p}),
        "color_jitter": lambda p: v2.ColorJitter(**p),
        "jpeg": lambda p: v2.JPEG(**{"quality": (40, 100), **p}),
        "random_resized_crop": lambda p: v2.RandomResizedCrop(**{"size": image_size, **p}),
        "rotation": lambda p: v2.RandomRotation(**{"degrees": 90, **p}),
        "sharpness": lambda p: v2.RandomAdjustSharpness(**{"sharpness_factor": 2.0, **p}),
    }
    transforms = []
    for item in items:
        ((name, params),) = item.items()
        params = tuples(params)
        probability = params.pop("p", None) if name not in ("hflip", "sharpness") else None
        try:
            transform = builders[name](params)
        except (TypeError, ValueError) as error:
            raise RecipeError(f"{name}: {one_line(error)}") from None
        if probability is not None:
            transform = v2.RandomApply([transform], p=probability)
        transforms.append(transform)
    return v2.Compose(transforms) if transforms else None


def _same_kind(value, default):
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float))
    if isinstance(default, str):
        return isinstance(value, str) or (value is None)
    return True


__all__ = ["Recipe", "RecipeError", "apply_override", "build_augmentation", "builtin_recipes", "builtin_recipes_dir",
           "load_recipe"]
