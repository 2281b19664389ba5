"""Shared constants that the command line needs before anything heavy is imported (this module imports
nothing): `--help` of every command is built from these, so it never imports transformers or torch.

`configuration_deepfake.py` is remote code copied into model folders and cannot import this module, so it
keeps its own copy of the model's defaults; tests/test_cli.py checks that the two agree.
"""

# How a video's frame scores become one score: the mean, or the DFDC winner's "confident" strategy.
AGGREGATIONS = ("mean", "confident")
DEFAULT_AGGREGATION = "mean"
DEFAULT_THRESHOLD = 0.5
DEFAULT_NUM_FRAMES = 32  # DeepfakeBench's frames per video, linspace over the video
DEFAULT_CONFIDENT_THRESHOLD = 0.8
DEFAULT_CONFIDENT_FRACTION = 0.5

# Faces: found with dlib when installed ("auto"), aligned the DeepfakeBench way (256 px, field of view x1.3),
# or cut as the box plus 30% on each side (the DFDC winner's margin). "auto" is the default only where no model
# says how it is fed (preprocess, probe: data prepared before a model exists).
DEFAULT_FACES = "auto"
# A scoring door's face option when the caller gives none: None, "the model's". Every door (predict, evaluate,
# calibrate, explain, the Detector, the pipelines, the endpoint handler, the app) passes it on unresolved and
# scoring.scorer.resolve_faces decides, in one place: the face mode the model's config records, else the picture
# as given ("none"), so a model recording nothing gets the same number at every door (a stock pipeline, which
# cannot look for faces, included). "auto" is still there to be asked for by name.
MODEL_FACES = None
MODEL_FACES_TEXT = "the model's recorded face mode, else (a model recording none) the picture as given"
DEFAULT_CROP = "align"
FACE_SIZE = 256
FACE_SCALE = 1.3
FACE_MARGIN = 0.3
