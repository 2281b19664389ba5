"""`deepfake-hf preprocess`: videos and images into aligned face crops in DeepfakeBench's layout."""

from __future__ import annotations

import argparse
import sys

from deepfake_hf.cli.base import EXIT_OK, EXIT_PARTIAL, Command, ReportedInterrupt, main_process, print_result
from deepfake_hf.cli.options import (
    add_crop_option,
    add_face_workers_option,
    add_faces_option,
    add_frames_option,
    add_json_option,
    add_label_map_option,
    add_output_option,
    add_overwrite_option,
    label_map_of,
    positive_int,
)
from deepfake_hf.defaults import DEFAULT_FACES


class PreprocessCommand(Command):
    name = "preprocess"
    order = 50
    help = "videos and images -> aligned face crops in DeepfakeBench's layout, with a manifest"
    description = ("Crops the most prominent face of N frames per video into OUT/<dataset>/<method>/frames/<video>/"
                   "<frame number>.png, with the crop's landmarks in .../landmarks/<video>/<frame number>.npy as "
                   "DeepfakeBench writes them, and writes OUT/manifest.csv (train/evaluate read it), "
                   "OUT/<dataset>.json (DeepfakeBench's dataset JSON) and OUT/summary.json. Inputs are data sources "
                   "as evaluate reads them. Runs data-parallel under torchrun / accelerate launch; --resume "
                   "continues a killed run.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("data", nargs="+",
                            help="data sources: folders with real/ and fake/, manifests, DeepfakeBench JSON")
        add_output_option(parser)
        add_faces_option(parser, DEFAULT_FACES)  # no model to read a face mode from
        add_crop_option(parser, default="align")  # preprocess has no model to read a crop from
        add_frames_option(parser, default_text="32")
        add_face_workers_option(parser)
        parser.add_argument("--size", type=positive_int, default=256, help="crop size in pixels (default 256)")
        parser.add_argument("--dataset", help="dataset name in the layout and JSON (default: the first input's name)")
        parser.add_argument("--split", default="test",
                            help="the DeepfakeBench JSON split the videos go under (default test)")
        parser.add_argument("--landmarks-model", metavar="PATH",
                            help="dlib shape predictor for the crops' landmarks, e.g. DeepfakeBench's "
                                 "shape_predictor_81_face_landmarks.dat (default: dlib's 68-point model); with "
                                 "--faces deepfakebench it also places the alignment key points, as DeepfakeBench does")
        parser.add_argument("--no-landmarks", dest="landmarks", action="store_false",
                            help="write no landmarks (finding them in each crop costs about as much as a frame's "
                                 "face detection with --faces dlib)")
        parser.add_argument("--json-prefix", default="", metavar="PREFIX",
                            help="text before each frame path in the DeepfakeBench JSON (default none: paths "
                                 "relative to --out, as evaluate and train read them); DeepfakeBench opens paths "
                                 "that start with '.' from where it runs, e.g. ./datasets/crops/")
        parser.add_argument("--resume", action="store_true", help="skip the videos an interrupted run finished")
        add_overwrite_option(parser, "what an earlier preprocess wrote in --out")
        add_json_option(parser, "the summary")
        add_label_map_option(parser)

    def run(self, args: argparse.Namespace) -> int:
        from deepfake_hf.data.preprocess import preprocess

        try:
            summary = preprocess(args.data, args.out, faces=args.faces, num_frames=args.frames or 32, crop=args.crop,
                                 size=args.size, dataset=args.dataset, split=args.split,
                                 label_map=label_map_of(args), overwrite=args.overwrite, resume=args.resume,
                                 landmarks=args.landmarks, landmarks_model=args.landmarks_model,
                                 json_prefix=args.json_prefix, face_workers=args.face_workers)
        except KeyboardInterrupt:
            if main_process():
                print(f"deepfake-hf preprocess: interrupted; the crops made so far are kept in {args.out}; run the "
                      "same command with --resume to continue", file=sys.stderr)
            raise ReportedInterrupt from None
        from deepfake_hf.runtime.outputs import counted

        if main_process():
            print_result(args, summary, f"{counted(summary['videos'], 'video')}, "
                         f"{counted(summary['crops'], 'face crop')}, "
                         f"{counted(summary['frames_without_face'], 'frame')} without a face, "
                         f"{counted(summary['skipped'], 'file')} skipped",
                         f"manifest.csv, the DeepfakeBench JSON and summary.json written to {args.out} "
                         f"(score the crops as given: evaluate MODEL '{args.out}/manifest.csv#crops')")
        return EXIT_PARTIAL if summary["skipped"] else EXIT_OK
