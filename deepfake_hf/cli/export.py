"""`deepfake-hf export`: a trained detector as a stock transformers checkpoint."""

from __future__ import annotations

import argparse

from deepfake_hf.cli.base import EXIT_OK, Command
from deepfake_hf.cli.options import add_output_option, add_overwrite_option


class ExportCommand(Command):
    name = "export"
    order = 30
    help = "export a trained detector (stock transformers classes where exact)"
    description = ("Write a stock ViTForImageClassification / CLIPForImageClassification checkpoint that loads with "
                   "pipeline() and no remote code. Refuses, with the reason, when that would change scores.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model", help="folder of a saved deepfake-hf detector")
        parser.add_argument("--native", action="store_true", required=True, help="write a stock transformers class")
        add_output_option(parser)
        add_overwrite_option(parser)

    def run(self, args: argparse.Namespace) -> int:
        from deepfake_hf.publish.export import export_native

        out = export_native(args.model, args.out, overwrite=args.overwrite)
        print(f"native checkpoint written to {out}")
        return EXIT_OK
