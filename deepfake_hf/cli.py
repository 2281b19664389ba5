"""`deepfake-hf` command line: parses arguments and calls the package's functions.

Each subcommand has an `add_<name>` function that declares its arguments and a `run_<name>` function
that calls into the modules; heavy imports happen inside `run_*` so `--help` stays fast.
Exit codes: 0 success, 1 usage or fatal error, 2 some inputs failed (the rest were processed).
"""

import argparse
import sys

EXIT_OK, EXIT_ERROR, EXIT_PARTIAL = 0, 1, 2


class CommandError(Exception):
    """A problem the user can fix; printed as one line, exit code 1."""


# ------------------------------------------------------------------------------------------- export
def add_export(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a trained detector (stock transformers classes where exact)",
        description="Write a stock ViTForImageClassification / CLIPForImageClassification checkpoint that "
        "loads with pipeline() and no remote code. Refuses, with the reason, when that would change scores.",
    )
    parser.add_argument("model", help="folder of a saved deepfake-hf detector")
    parser.add_argument("--native", action="store_true", required=True, help="write a stock transformers class")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    parser.set_defaults(run=run_export)


def run_export(args):
    from .export import NativeExportError, export_native

    try:
        out = export_native(args.model, args.out, overwrite=args.overwrite)
    except (NativeExportError, FileExistsError, OSError) as error:
        raise CommandError(str(error)) from None
    print(f"native checkpoint written to {out}")
    return EXIT_OK


# --------------------------------------------------------------------------------------- quickstart
def add_quickstart(subparsers):
    parser = subparsers.add_parser(
        "quickstart",
        help="offline end-to-end demo: build, save, export and run a small detector",
        description="Runs offline with no downloads.",
    )
    parser.add_argument("--out", default="quickstart-run", help="output folder (default: quickstart-run)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    parser.set_defaults(run=run_quickstart)


def run_quickstart(args):
    from .quickstart import run_quickstart as quickstart

    try:
        summary = quickstart(args.out, overwrite=args.overwrite)
    except FileExistsError as error:
        raise CommandError(str(error)) from None
    for key, value in summary.items():
        print(f"{key}: {value}")
    return EXIT_OK


# ------------------------------------------------------------------------------------------- main
COMMANDS = [add_quickstart, add_export]


def build_parser():
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="deepfake-hf",
        description="Deepfake detectors from Hugging Face vision encoders: train, evaluate, predict, publish.",
        epilog="Exit codes: 0 success; 1 usage or fatal error; 2 some inputs failed (the others were processed).",
    )
    parser.add_argument("--version", action="version", version=f"deepfake-hf {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_ERROR
    try:
        return args.run(args)
    except CommandError as error:
        print(f"deepfake-hf {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
