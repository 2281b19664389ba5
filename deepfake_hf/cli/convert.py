"""`deepfake-hf convert`: a published detector checkpoint into a deepfake-hf detector folder."""

from __future__ import annotations

import argparse

from deepfake_hf.cli.base import EXIT_OK, Command, CommandError
from deepfake_hf.cli.options import add_output_option, add_overwrite_option
from deepfake_hf.convert import format_names


class ConvertCommand(Command):
    name = "convert"
    order = 40
    help = "convert a published detector (GenD, DeepfakeBench, UnivFD, Hub classifier) into a detector folder"
    description = ("Reads a published checkpoint in its own layout (safetensors or torch weights-only; pickles that "
                   "would run code are refused) and writes a detector folder that loads with pipeline(..., "
                   "trust_remote_code=True), scores exactly as the source, keeps its preprocessing and has a model "
                   "card.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("source", nargs="?", help="local file or folder, or a Hub id")
        add_output_option(parser, required=False)
        parser.add_argument("--from", dest="source_format", default="auto",
                            choices=["auto", *format_names()], help="source format")
        parser.add_argument("--detector", help="DeepfakeBench detector: clip, effort or xception (when the keys do "
                            "not tell)")
        parser.add_argument("--backbone", metavar="ID_OR_DIR",
                            help="encoder architecture (Hub id, folder with its config, or a timm model name) when "
                            "the checkpoint lacks it")
        parser.add_argument("--fake-label", help="classifier label that means fake, when id2label does not say")
        add_overwrite_option(parser)
        parser.add_argument("--list", action="store_true", help="print the known formats and exit")

    def run(self, args: argparse.Namespace) -> int:
        from deepfake_hf.convert import convert, list_formats

        if args.list:
            print(list_formats())
            return EXIT_OK
        if not args.source or not args.out:
            raise CommandError("SOURCE and --out are required (or --list)")
        result = convert(args.source, args.out, format=args.source_format, detector=args.detector,
                         backbone=args.backbone, fake_label=args.fake_label, overwrite=args.overwrite)
        print(f"{result['description']} -> {result['out']} (format {result['format']})")
        return EXIT_OK
