"""`deepfake-hf evaluate`: metrics, cross-dataset table, plots and robustness on named test sets."""

from __future__ import annotations

import argparse
import sys

from deepfake_hf.cli.base import EXIT_OK, EXIT_PARTIAL, Command, main_process, print_result, stdout_to_stderr
from deepfake_hf.cli.options import (
    add_aggregation_option,
    add_crop_option,
    add_face_workers_option,
    add_faces_option,
    add_frames_option,
    add_json_option,
    add_label_map_option,
    add_output_option,
    add_overwrite_option,
    add_trust_remote_code_option,
    label_map_of,
)


class EvaluateCommand(Command):
    name = "evaluate"
    order = 60
    help = "evaluate a detector on named test sets: metrics, cross-dataset table, plots, robustness"
    description = ("Each DATA (folder with real/ and fake/, CSV/JSONL manifest, video folder, DeepfakeBench JSON) "
                   "is one test set, named after it or given as --name NAME=DATA. Writes predictions.csv, "
                   "metrics.json, report.md and PNG plots to --out.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model", help="folder of a saved detector (or any image classifier with a 'fake' label)")
        parser.add_argument("data", nargs="*", help="test data sources")
        parser.add_argument("--name", action="append", default=[], metavar="NAME=DATA", help="a named test set")
        add_output_option(parser)
        parser.add_argument("--perturb", nargs="+", default=[], metavar="KIND:V1,V2",
                            help="re-score under perturbations, e.g. jpeg:90,70,50 resize:0.5,0.25 blur:1,2 "
                            "noise:0.02")
        add_faces_option(parser)
        add_crop_option(parser)
        add_frames_option(parser)
        add_face_workers_option(parser)
        add_aggregation_option(parser)
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--bootstrap", type=int, default=1000,
                            help="bootstrap resamples for 95%% intervals (0: none)")
        parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
        add_overwrite_option(parser)
        add_json_option(parser, "metrics.json")
        add_label_map_option(parser)
        add_trust_remote_code_option(parser)

    def run(self, args: argparse.Namespace) -> int:
        from transformers.utils import logging as transformers_logging

        from deepfake_hf.evaluation.evaluate import evaluate_model, parse_named_sources
        from deepfake_hf.evaluation.perturbations import parse_perturbations
        from deepfake_hf.evaluation.report import summary_table
        from deepfake_hf.runtime.outputs import counted

        transformers_logging.disable_progress_bar()  # as in predict: the scoring bar is the one that matters

        test_sets = parse_named_sources(args.data, args.name)
        with stdout_to_stderr(args.json):
            result = evaluate_model(args.model, test_sets, args.out, perturbations=parse_perturbations(args.perturb),
                                    faces=args.faces, num_frames=args.frames, batch_size=args.batch_size,
                                    n_resamples=args.bootstrap, aggregation=args.aggregation,
                                    overwrite=args.overwrite, plots=not args.no_plots, label_map=label_map_of(args),
                                    crop=args.crop, trust_remote_code=args.trust_remote_code,
                                    face_workers=args.face_workers)
        if main_process():  # under torchrun / accelerate launch every rank has the result; one reports it
            for name, message in result.get("errors", {}).items():
                print(f"{name}: not evaluated: {message}", file=sys.stderr)
            for name, message in result.get("notes", {}).items():
                print(f"{name}: {message}", file=sys.stderr)
            for name, entry in result["test_sets"].items():
                if entry.get("files_skipped"):
                    print(f"{name}: {counted(entry['files_skipped'], 'file')} skipped (one line each above)",
                          file=sys.stderr)
            print_result(args, result, "\n".join(summary_table(result)),
                         f"predictions.csv, metrics.json, report.md and plots written to {args.out}")
        return EXIT_PARTIAL if result.get("errors") else EXIT_OK
