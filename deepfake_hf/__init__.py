"""deepfake-hf: turn transformers vision encoders into deepfake detectors.

The public names load on first use, so `deepfake-hf --help` and light modules start without
importing torch. Touching any of them (or calling `register()`) registers the detector with
transformers' Auto classes, so `pipeline("image-classification", model=folder)` works in-process
without `trust_remote_code`.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "DeepfakeDetectorConfig": ".configuration_deepfake",
    "DeepfakeDetectorForImageClassification": ".modeling_deepfake",
    "DeepfakeDetectorForVideoClassification": ".modeling_deepfake",
    "DeepfakeVideoProcessor": ".modeling_deepfake",
    "DeepfakeImageProcessor": ".image_processing_deepfake",
    "Detector": ".scoring.detector",
    "Scorer": ".scoring.scorer",
    "export_native": ".publish.export",
    "NativeExportError": ".publish.export",
}
_registered = False


def register():
    """Register with AutoConfig, AutoModelFor{Image,Video}Classification, AutoVideoProcessor and AutoImageProcessor
    (idempotent)."""
    global _registered
    if _registered:
        return
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
        AutoModelForImageClassification,
        AutoModelForVideoClassification,
        AutoVideoProcessor,
    )

    from deepfake_hf.configuration_deepfake import DeepfakeDetectorConfig
    from deepfake_hf.image_processing_deepfake import DeepfakeImageProcessor
    from deepfake_hf.modeling_deepfake import (
        DeepfakeDetectorForImageClassification,
        DeepfakeDetectorForVideoClassification,
        DeepfakeVideoProcessor,
    )

    AutoConfig.register(DeepfakeDetectorConfig.model_type, DeepfakeDetectorConfig, exist_ok=True)
    AutoModelForImageClassification.register(
        DeepfakeDetectorConfig, DeepfakeDetectorForImageClassification, exist_ok=True
    )
    AutoModelForVideoClassification.register(
        DeepfakeDetectorConfig, DeepfakeDetectorForVideoClassification, exist_ok=True
    )
    AutoVideoProcessor.register(DeepfakeDetectorConfig, DeepfakeVideoProcessor, exist_ok=True)
    # A converted detector's exact source transform: found by name in-process, copied as remote code when saved.
    AutoImageProcessor.register(DeepfakeDetectorConfig, image_processor_classes={"pil": DeepfakeImageProcessor,
                                "torchvision": DeepfakeImageProcessor}, exist_ok=True)
    # Saved folders carry `auto_map` and the two code files, so they load anywhere with trust_remote_code=True.
    DeepfakeDetectorConfig.register_for_auto_class()
    DeepfakeDetectorForImageClassification.register_for_auto_class("AutoModelForImageClassification")
    DeepfakeDetectorForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")
    DeepfakeVideoProcessor.register_for_auto_class("AutoVideoProcessor")
    DeepfakeImageProcessor.register_for_auto_class("AutoImageProcessor")
    _registered = True


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'deepfake_hf' has no attribute {name!r}")
    register()
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_LAZY])


__all__ = [
    "DeepfakeDetectorConfig",
    "DeepfakeDetectorForImageClassification",
    "DeepfakeDetectorForVideoClassification",
    "DeepfakeVideoProcessor",
    "DeepfakeImageProcessor",
    "Detector",
    "Scorer",
    "export_native",
    "register",
    "__version__",
]
