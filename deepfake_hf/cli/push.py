"""`deepfake-hf push`: publish a model or run folder to the Hugging Face Hub."""

from __future__ import annotations

import argparse
import sys

from deepfake_hf.cli.base import EXIT_OK, Command
from deepfake_hf.cli.options import add_overwrite_option


class PushCommand(Command):
    name = "push"
    order = 80
    help = "publish a model or run folder to the Hugging Face Hub (weights, code, card, metrics)"
    description = ("Assembles the repo folder (safetensors weights, config with auto_map and the code files or the "
                   "native export, image processor, README.md model card, metrics.json, plots) and uploads it in one "
                   "commit. Needs a token (`hf auth login` or HF_TOKEN) unless --dry-run.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("source", metavar="RUN_OR_MODEL_DIR", help="a saved detector folder or a run folder")
        parser.add_argument("--repo-id", required=True, help="the Hub repo, e.g. your-name/deepfake-detector")
        parser.add_argument("--native", action="store_true",
                            help="upload the stock transformers export (no remote code)")
        parser.add_argument("--private", action="store_true", help="create the repo as private")
        parser.add_argument("--revision", metavar="BRANCH", help="push to this branch (created if missing)")
        parser.add_argument("--create-pr", action="store_true",
                            help="open a pull request instead of committing directly")
        parser.add_argument("--example", metavar="IMAGE", help="an example image for the card's widget (scored here)")
        parser.add_argument("--dry-run", metavar="OUT_DIR", help="write the folder that would be uploaded; upload "
                            "nothing")
        add_overwrite_option(parser, "a non-empty --dry-run OUT_DIR")

    def run(self, args: argparse.Namespace) -> int:
        from deepfake_hf.publish.hub import assemble_model_repo, push_model, repo_files

        if args.dry_run:
            skipped: list[str] = []
            out = assemble_model_repo(args.source, args.dry_run, args.repo_id, native=args.native,
                                      overwrite=args.overwrite, example_image=args.example, skipped=skipped)
            files = repo_files(out)
            print(f"dry run: {len(files)} files that would be uploaded to {args.repo_id} are in {out}")
            for name in files:
                print(f"  {name}")
            for line in skipped:
                print(f"  skipped {line}")
            return EXIT_OK
        result = push_model(args.source, args.repo_id, native=args.native, private=args.private,
                            revision=args.revision, create_pr=args.create_pr, example_image=args.example)
        for line in result["skipped"]:
            print(f"skipped {line}", file=sys.stderr)
        print(f"pushed {len(result['files'])} files to {result['repo_url']}")
        print(f"commit: {result['commit_url']}")
        if result["pr_url"]:
            print(f"pull request: {result['pr_url']}")
        return EXIT_OK
