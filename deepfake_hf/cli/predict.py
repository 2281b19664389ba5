"""`deepfake-hf predict`: score images and videos, real or fake."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from deepfake_hf.cli.base import EXIT_OK, EXIT_PARTIAL, Command, CommandError, ReportedInterrupt
from deepfake_hf.cli.options import (
    add_aggregation_option,
    add_crop_option,
    add_face_workers_option,
    add_faces_option,
    add_frames_option,
    add_output_option,
    add_overwrite_option,
    add_trust_remote_code_option,
    positive_int,
)

if TYPE_CHECKING:
    from deepfake_hf.scoring.results import FileResult

PREDICT_EPILOG = """\
exit codes:
  0  every input was scored
  2  some inputs failed (one line each on stderr; the rest are still reported)
  1  usage error (bad option, model that cannot be loaded, no media found, output exists)

Folders are searched recursively for images and videos; URLs are refused (download first).
By default faces are found the way the model's config records (converted DeepfakeBench models:
deepfakebench); a model recording nothing scores the picture as given, as every other door does
(--faces auto: dlib when installed, pip install 'deepfake-hf[faces]'). A folder or manifest ending in
#crops holds ready-made face crops: scored as given.
"""


def _print_error(result: FileResult) -> None:
    if result.error is not None:
        print(f"error: {result.path}: {result.error}", file=sys.stderr)


class PredictCommand(Command):
    name = "predict"
    order = 120
    help = "score images and videos: real or fake"
    description = ("Score image and video files (or folders of them) with a detector folder or Hub id. Videos are "
                   "sampled evenly over their whole duration; with face detection each person is scored and a "
                   "file's score is its most suspicious person's.")
    epilog = PREDICT_EPILOG
    formatter_class = argparse.RawDescriptionHelpFormatter

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model", metavar="MODEL", help="detector folder or Hub id")
        parser.add_argument("inputs", metavar="INPUT", nargs="+", help="image/video files or folders")
        add_faces_option(parser)
        add_crop_option(parser)
        add_frames_option(parser)
        add_face_workers_option(parser)
        add_aggregation_option(parser)
        parser.add_argument("--format", choices=("table", "json", "jsonl", "csv"), default="table",
                            help="output format; with --out, json/jsonl/csv results are written as they are produced")
        parser.add_argument("--resume", action="store_true",
                            help="with --out: skip the inputs an interrupted run already wrote (same inputs and "
                            "options)")
        add_output_option(parser, "write the results to this file instead of stdout", required=False)
        add_overwrite_option(parser, "an existing --out file")
        parser.add_argument("--frame-scores", action="store_true", help="include per-frame scores (json/csv)")
        parser.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                            help="crops per model call (default: 8 on a CPU, 32 on a GPU)")
        parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
        add_trust_remote_code_option(parser)

    def run(self, args: argparse.Namespace) -> int:
        import os

        from transformers.utils import logging as transformers_logging

        from deepfake_hf.runtime.outputs import counted
        from deepfake_hf.scoring.predict import PredictInterrupted, predict
        from deepfake_hf.scoring.results import STREAM_FORMATS

        transformers_logging.disable_progress_bar()  # our own bar is the one that matters
        if args.resume and not (args.out and args.format in STREAM_FORMATS):
            raise CommandError(f"--resume continues a run that streamed its results to a file: give --out FILE and "
                               f"--format {' or '.join(STREAM_FORMATS)}, as that run did")
        if args.out and os.path.exists(args.out) and not (args.overwrite or args.resume):
            raise CommandError(f"{args.out}: exists (pass --overwrite to replace it)")
        try:
            outcome = predict(args.model, args.inputs, faces=args.faces, crop=args.crop,
                              num_frames=args.frames, aggregation=args.aggregation, fmt=args.format,
                              frame_scores=args.frame_scores, batch_size=args.batch_size, device=args.device,
                              trust_remote_code=args.trust_remote_code, out=args.out, resume=args.resume,
                              on_result=_print_error, face_workers=args.face_workers)
        except PredictInterrupted as stopped:
            return _report_interrupted(args, stopped)
        if outcome[0] is None:  # streamed to --out; the counts come back (every rank reports its own errors)
            counts = outcome[1]
            if "files" in counts:
                print(f"{counted(counts['files'], 'file')}: {counts['scored']} scored, {counts['failed']} "
                      f"failed; results in {args.out}", file=sys.stderr)
            # Under torchrun / accelerate a non-zero exit is a crashed rank (the launcher prints a failure
            # report and stops the others), so a finished data-parallel run exits 0; failed inputs are in the file.
            if int(os.environ.get("WORLD_SIZE", "1")) > 1:
                return EXIT_OK
            return EXIT_PARTIAL if counts.get("failed") else EXIT_OK
        text, results = outcome
        if not args.out:
            sys.stdout.write(text)
        failed = [result for result in results if result.error is not None]
        for result in failed:
            _print_error(result)
        if args.out or args.format != "table":
            print(f"{counted(len(results), 'file')}: {len(results) - len(failed)} scored, {len(failed)} failed"
                  + (f"; results in {args.out}" if args.out else ""), file=sys.stderr)
        return EXIT_PARTIAL if failed else EXIT_OK


def _report_interrupted(args: argparse.Namespace, stopped: Any) -> int:
    """After Ctrl-C: the results so far (printed, or already in --out) and one line on how to go on."""
    from deepfake_hf.runtime.outputs import counted
    from deepfake_hf.scoring.results import STREAM_FORMATS

    if stopped.text is not None and not args.out:
        sys.stdout.write(stopped.text)
    for result in stopped.results or ():  # a streamed run printed its errors as they came
        _print_error(result)
    done = "" if stopped.counts is None and stopped.results is None else f" after {counted(stopped.done, 'file')}"
    if stopped.resumable:
        where = f"the results so far are in {args.out}" if stopped.counts is not None else \
            f"each rank's results so far are in its part file beside {args.out}"
        how = "run the same command with --resume to score the rest"
    else:
        where = f"the results so far are in {args.out}" if args.out else "the results so far are above"
        how = f"to be able to resume, write with --out FILE --format {'/'.join(STREAM_FORMATS)}, then use --resume"
    print(f"deepfake-hf predict: interrupted{done}; {where}; {how}", file=sys.stderr)
    raise ReportedInterrupt from None
