"""`deepfake-hf` command line: parses arguments and runs one command.

Each command is one module of this package (see `deepfake_hf.cli.base.Command`); `build_parser` discovers
them, so adding a command is one new file. `main` is the one place that turns the errors a user can cause
into one stderr line and exit code 1.
Exit codes: 0 success, 1 usage or fatal error, 2 some inputs failed (the rest were processed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from deepfake_hf.cli.base import EXIT_ERROR, Command, ReportedInterrupt, discover_commands
from deepfake_hf.errors import DeepfakeHFError, one_line

# Errors that are not the package's own but that user input causes (a missing or existing path, a missing
# extra): main() prints them as one line, like a DeepfakeHFError. Anything else is a bug and keeps its traceback.
USER_INPUT_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError,
                     ImportError)


def commands() -> list[Command]:
    """The registered commands, in `deepfake-hf --help` order (every command module of this package)."""
    return discover_commands(__path__, f"{__name__}.")


class _ArgumentParser(argparse.ArgumentParser):
    """Usage errors exit with 1: this CLI keeps 2 for "some inputs failed" (argparse's own default is 2)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from deepfake_hf import __version__

    parser = _ArgumentParser(
        prog="deepfake-hf",
        description="Deepfake detectors from Hugging Face vision encoders: train, evaluate, predict, publish.",
        epilog="Exit codes: 0 success; 1 usage or fatal error; 2 some inputs failed (the others were processed).",
    )
    parser.add_argument("--version", action="version", version=f"deepfake-hf {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in commands():
        command.add_to(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_ERROR
    from deepfake_hf.runtime.threads import configure_threads

    # Before torch is imported, so OpenMP reads the thread count and the passive wait policy: two runs
    # sharing the cores then each take about their share instead of spinning against each other.
    configure_threads()
    try:
        return args.handler.run(args)
    except DeepfakeHFError as error:  # every error the package raises on purpose: one line, no traceback
        print(f"deepfake-hf {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except USER_INPUT_ERRORS as error:  # a missing or existing path, a missing extra: also the user's to fix
        print(f"deepfake-hf {args.command}: error: {one_line(error, 300)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as interrupt:
        if not isinstance(interrupt, ReportedInterrupt):
            print("interrupted", file=sys.stderr)
        elif argv is None:  # this is the process (the console script), not a caller's function call
            _exit_now(EXIT_ERROR)
        return EXIT_ERROR


def _exit_now(code: int) -> None:
    """End the process at once: Python's and torch's teardown after `import torch` takes 0.5-2.5 s more, which
    a user who pressed Ctrl-C should not wait for (everything is written and flushed by then)."""
    import logging
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
