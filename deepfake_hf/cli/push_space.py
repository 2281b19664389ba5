"""`deepfake-hf push-space`: a Gradio Space demo for a model on the Hub."""

from __future__ import annotations

import argparse
import sys

from deepfake_hf.cli.base import EXIT_OK, Command
from deepfake_hf.cli.options import add_overwrite_option


class PushSpaceCommand(Command):
    name = "push-space"
    order = 90
    help = "create a Gradio Space demo for a model on the Hub"
    description = ("Uploads README.md (Space front matter), app.py, this installed package (deepfake_hf/) and "
                   "requirements.txt with its dependencies (app, video, faces, gend-faces and timm extras).")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--model", required=True, help="the model's Hub id")
        parser.add_argument("--space-id", required=True,
                            help="the Space to create or update, e.g. your-name/deepfake-demo")
        parser.add_argument("--private", action="store_true", help="create the Space as private")
        parser.add_argument("--title", help="the Space's title")
        parser.add_argument("--dry-run", metavar="OUT_DIR", help="write the Space folder; upload nothing")
        add_overwrite_option(parser, "a non-empty --dry-run OUT_DIR")

    def run(self, args: argparse.Namespace) -> int:
        from deepfake_hf.publish.hub import assemble_space, push_space, repo_files

        if args.dry_run:
            skipped: list[str] = []
            out = assemble_space(args.model, args.dry_run, title=args.title, overwrite=args.overwrite,
                                 skipped=skipped)
            print(f"dry run: the Space folder for {args.space_id} is in {out}")
            for name in repo_files(out):
                print(f"  {name}")
            for line in skipped:
                print(f"  skipped {line}")
            return EXIT_OK
        result = push_space(args.model, args.space_id, private=args.private, title=args.title)
        for line in result["skipped"]:
            print(f"skipped {line}", file=sys.stderr)
        print(f"Space: {result['space_url']}")
        print(f"commit: {result['commit_url']}")
        return EXIT_OK
