"""Published deepfake detectors -> deepfake-hf detector folders, exactly.

`convert(source, out)` reads a published checkpoint in its own key layout and writes a
`DeepfakeDetectorForImageClassification` folder (weights, config with `auto_map` and the code files,
image processor with the source's preprocessing, README.md model card) that loads with
`pipeline("image-classification", model=out, trust_remote_code=True)` and scores what the source's
own forward scores.

Each source format is one module here defining a `SourceFormat` subclass (base.py), found by the registry:
gend.py (GenD), deepfakebench.py (DeepfakeBench clip, effort, xception), univfd.py (UnivFD), classifier.py
(stock two-label transformers classifiers). Shared pieces: loading.py (safe weight and config reading),
encoders.py (encoder configs and exact weight loading), processors.py (each source's own test-time transform, as a
stock processor or the remote-code `DeepfakeImageProcessor`), card.py (model card),
api.py (`convert`, `detect_format`, `list_formats`).

Checkpoints are read with safetensors or `torch.load(weights_only=True)`; anything that would need
arbitrary unpickling is refused, never executed. Every problem is a one-line `ConvertError` naming
the file, key or option.
"""

from deepfake_hf.convert.api import convert, detect_format, list_formats
from deepfake_hf.convert.base import Converted, ConvertError, Match, SourceFormat, SourceInfo, format_names, formats
from deepfake_hf.convert.loading import load_state_dict

__all__ = ["ConvertError", "Converted", "Match", "SourceFormat", "SourceInfo", "convert", "detect_format",
           "format_names", "formats", "list_formats", "load_state_dict"]
