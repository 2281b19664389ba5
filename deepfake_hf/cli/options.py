"""Option builders shared by the commands: one definition per idea, so every command spells it, defaults it
and documents it the same way. Choices are read from the registries (face modes, crops, aggregations)."""

from __future__ import annotations

import argparse

from deepfake_hf.defaults import AGGREGATIONS, DEFAULT_CROP, MODEL_FACES, MODEL_FACES_TEXT
from deepfake_hf.faces import AUTO, FACE_CROPS, auto_description, face_mode_names, face_modes

# The CLI's own defaults of ideas whose default is the model's (frames, aggregation) are None: "the model's".


def _integer_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} must be >= {minimum}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a usage error otherwise)."""
    return _integer_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (a usage error otherwise)."""
    return _integer_at_least(text, 0)


def add_face_workers_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--face-workers", type=non_negative_int, default=None, metavar="N",
                        help="face detection processes (0: in this process's threads); N applies to every face "
                        "mode (dlib, which follows faces from frame to frame, sends each video whole to one worker). "
                        "Default: for a mode whose frames are independent (deepfakebench) DEEPFAKE_HF_FACE_WORKERS "
                        "if set, else this process's share of the cores (cores / local ranks); dlib stays in the "
                        "threads. See docs/performance.md")


def add_faces_option(parser: argparse.ArgumentParser, default: str | None = MODEL_FACES) -> None:
    """--faces; `default` None (a command that scores with a model) is "the model's", resolved by the scorer
    (scoring.scorer.resolve_faces) as at every other door; a command without a model gives "auto"."""
    # the choices and their descriptions come from the face-mode registry (a new mode file shows up here)
    described = [f"{AUTO} ({auto_description()})"]
    described += [f"{name} ({mode.description})" for name, mode in face_modes().items()]
    parser.add_argument("--faces", choices=face_mode_names(), default=default,
                        help=f"face detection: {', '.join(described)}; default {default or MODEL_FACES_TEXT}")


def add_crop_option(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    default_text = default or f"the model's recorded crop, else {DEFAULT_CROP}"
    parser.add_argument("--crop", choices=FACE_CROPS, default=default,
                        help="face crop: 5-point aligned 256x256 (DeepfakeBench) or box + 30%% margin; "
                        f"default {default_text}")


def add_frames_option(parser: argparse.ArgumentParser, default_text: str = "the model's") -> None:
    parser.add_argument("--frames", type=positive_int, default=None, metavar="N",
                        help=f"frames sampled evenly over each video (default: {default_text})")


def add_aggregation_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--aggregation", choices=AGGREGATIONS, default=None, metavar="NAME",
                        help="video score from frame scores: %(choices)s (the DFDC winner's); default: the model's")


def add_output_option(parser: argparse.ArgumentParser, what: str = "output folder", required: bool = True,
                      default: str | None = None) -> None:
    parser.add_argument("--out", required=required, default=default, help=what)


def add_json_option(parser: argparse.ArgumentParser, what: str = "the result") -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON on stdout (progress goes to stderr)")


def add_trust_remote_code_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="run the model folder's or Hub repo's own Python code (only if you trust its author); "
                        "without it such a model is refused before any of its code runs")


def add_overwrite_option(parser: argparse.ArgumentParser, what: str = "a non-empty output folder") -> None:
    parser.add_argument("--overwrite", action="store_true", help=f"replace {what}")


def add_label_map_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--label-map", action="append", default=[], metavar="NAME=real|fake",
                        help="read folders (or manifest labels) named NAME as real or fake, e.g. --label-map "
                        "original=real --label-map Deepfakes=fake (repeatable)")


def label_map_of(args: argparse.Namespace) -> dict[str, str]:
    """The --label-map items as a dict; a malformed item is a one-line DataSourceError."""
    from deepfake_hf.data.datasets import parse_label_map

    return parse_label_map(args.label_map)
