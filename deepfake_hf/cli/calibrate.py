"""`deepfake-hf calibrate`: temperature scaling and a decision threshold, stored in the model."""

from __future__ import annotations

import argparse

from deepfake_hf.cli.base import EXIT_OK, Command, print_result, stdout_to_stderr
from deepfake_hf.cli.options import (
    add_crop_option,
    add_face_workers_option,
    add_faces_option,
    add_frames_option,
    add_json_option,
    add_label_map_option,
    add_trust_remote_code_option,
    label_map_of,
)


class CalibrateCommand(Command):
    name = "calibrate"
    order = 70
    help = "fit temperature scaling and a decision threshold on validation data, stored in the model"
    description = ("Fits the temperature on validation data, then the threshold at the equal-error point "
                   "(--method eer) or at a target false-positive rate (--method fpr --target-fpr 0.05), and writes "
                   "both into MODEL/config.json (previous values kept in MODEL/calibration.json). Use validation data "
                   "only.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model", help="folder of a saved deepfake-hf detector (updated in place)")
        parser.add_argument("data", nargs="+", help="validation data sources")
        parser.add_argument("--method", choices=["eer", "fpr"], default="eer")
        parser.add_argument("--target-fpr", type=float, default=None, help="with --method fpr, e.g. 0.05")
        add_faces_option(parser)
        add_crop_option(parser)
        add_frames_option(parser)
        add_face_workers_option(parser)
        parser.add_argument("--batch-size", type=int, default=32)
        add_json_option(parser, "the calibration record")
        add_label_map_option(parser)
        add_trust_remote_code_option(parser)

    def run(self, args: argparse.Namespace) -> int:
        from transformers.utils import logging as transformers_logging

        from deepfake_hf.evaluation.calibrate import calibrate_model
        from deepfake_hf.evaluation.evaluate import parse_named_sources

        transformers_logging.disable_progress_bar()

        with stdout_to_stderr(args.json):
            record = calibrate_model(args.model, parse_named_sources(args.data), method=args.method,
                                     target_fpr=args.target_fpr, faces=args.faces, num_frames=args.frames,
                                     batch_size=args.batch_size, label_map=label_map_of(args), crop=args.crop,
                                     trust_remote_code=args.trust_remote_code, face_workers=args.face_workers)
        if args.json:
            return print_result(args, record)
        print(f"calibration_temperature {record['previous']['calibration_temperature']:g} -> "
              f"{record['calibration_temperature']:.4g}; threshold {record['previous']['threshold']:g} -> "
              f"{record['threshold']:.4g} (validation FPR {record['false_positive_rate']:.3f}, "
              f"TPR {record['true_positive_rate']:.3f}, n={record['n']})")
        print(f"written to {args.model}/config.json")
        return EXIT_OK
