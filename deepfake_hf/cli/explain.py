"""`deepfake-hf explain`: a heatmap of where a detector looks, as an overlay PNG."""

from __future__ import annotations

import argparse

from deepfake_hf.cli.base import EXIT_OK, Command
from deepfake_hf.cli.options import (
    add_crop_option,
    add_faces_option,
    add_output_option,
    add_overwrite_option,
    add_trust_remote_code_option,
)


class ExplainCommand(Command):
    name = "explain"
    order = 110
    help = "heatmap of where a detector looks (attention rollout or Grad-CAM) as an overlay PNG"
    description = ("Attention rollout for ViT-family backbones (vit, deit, dinov2, clip_vision_model; loaded with "
                   "eager attention) and Grad-CAM for every backbone, drawn over the crop the model saw.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model", help="folder of a saved deepfake-hf detector")
        parser.add_argument("image", help="image file")
        add_output_option(parser, "output PNG")
        parser.add_argument("--method", choices=["auto", "rollout", "gradcam"], default="auto",
                            help="auto: rollout for ViT-family backbones, else Grad-CAM")
        add_faces_option(parser)
        add_crop_option(parser)
        add_overwrite_option(parser, "an existing output file")
        add_trust_remote_code_option(parser)

    def run(self, args: argparse.Namespace) -> int:
        from deepfake_hf.scoring.explain import explain_to_file

        result = explain_to_file(args.model, args.image, args.out, method=args.method, overwrite=args.overwrite,
                                 faces=args.faces, crop=args.crop, trust_remote_code=args.trust_remote_code)
        print(f"{args.image}: {result['label']} (fake score {result['fake_probability']:.3f}); "
              f"{result['method']} heatmap written to {args.out}")
        return EXIT_OK
