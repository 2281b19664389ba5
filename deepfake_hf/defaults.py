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
# or cut as the box plus 30% on each side (the DFDC winner's margin).
DEFAULT_FACES = "auto"
DEFAULT_CROP = "align"
FACE_SIZE = 256
FACE_SCALE = 1.3
FACE_MARGIN = 0.3
