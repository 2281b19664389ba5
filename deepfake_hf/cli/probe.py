"""`deepfake-hf probe`: a scikit-learn classifier on frozen encoder features."""

from __future__ import annotations

import argparse

from deepfake_hf.cli.base import Command, print_result, stdout_to_stderr
from deepfake_hf.cli.options import (
    add_faces_option,
    add_frames_option,
    add_json_option,
    add_label_map_option,
    add_output_option,
    add_overwrite_option,
    label_map_of,
)
from deepfake_hf.defaults import DEFAULT_FACES


class ProbeCommand(Command):
    name = "probe"
    order = 100
    help = "frozen-feature probe: SVM / LDA / k-NN / logistic regression on frozen encoder features"
    description = ("Extracts (and caches) pooled features of one or more frozen encoders (concatenated), "
                   "cross-validates a scikit-learn classifier with folds that never split a video, writes the "
                   "evaluate outputs, and saves the probe to OUT/probe (reload: deepfake-hf evaluate OUT/probe DATA). "
                   "A linear probe on one backbone is also saved as a detector in OUT/model that loads with "
                   "pipeline().")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("data", nargs="+", help="training data sources (pooled)")
        parser.add_argument("--backbone", action="append", required=True,
                            help="encoder checkpoint or detector folder; repeat to concatenate features")
        parser.add_argument("--classifier", default="logreg", choices=["logreg", "linear-svm", "lda", "svm", "knn"])
        parser.add_argument("--pca", type=int, default=None, help="reduce features to N components first")
        parser.add_argument("--no-standardize", action="store_true", help="skip feature standardisation")
        parser.add_argument("--folds", type=int, default=5)
        add_faces_option(parser, DEFAULT_FACES)  # no model to read a face mode from
        add_frames_option(parser, "the detector config's default, 32")
        parser.add_argument("--batch-size", type=int, default=32)
        parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for 95%% intervals")
        parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
        add_output_option(parser)
        add_overwrite_option(parser)
        add_json_option(parser, "metrics.json")
        add_label_map_option(parser)

    def run(self, args: argparse.Namespace) -> int:
        from deepfake_hf.evaluation.evaluate import parse_named_sources
        from deepfake_hf.evaluation.probes import run_probe
        from deepfake_hf.evaluation.report import summary_table

        with stdout_to_stderr(args.json):
            result = run_probe(parse_named_sources(args.data), args.backbone, args.out, classifier=args.classifier,
                               folds=args.folds, pca=args.pca, standardize=not args.no_standardize,
                               faces=args.faces, num_frames=args.frames, batch_size=args.batch_size,
                               n_resamples=args.bootstrap, overwrite=args.overwrite, plots=not args.no_plots,
                               label_map=label_map_of(args))
        saved = f"probe saved to {result['probe']['saved']}" + (
            f"; detector (loads with pipeline) in {result['probe']['detector']}"
            if "detector" in result["probe"] else "")
        return print_result(args, result, "\n".join(summary_table(result)), saved)
