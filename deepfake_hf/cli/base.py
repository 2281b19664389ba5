"""The command base class and the registry of `deepfake-hf` commands.

A command is a `Command` subclass with a `name`, defined in a module of the `deepfake_hf.cli` package (a file
such as `cli/predict.py`, or a subpackage's `__init__.py` such as `cli/bench/`). `discover_commands` imports
every module of the package and collects them, so adding a command is one new file and no edit elsewhere.
Heavy imports go inside `run` so that `deepfake-hf COMMAND --help` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import os
import pkgutil
import sys
from collections.abc import Iterable
from typing import Any, ClassVar

from deepfake_hf.errors import DeepfakeHFError

EXIT_OK, EXIT_ERROR, EXIT_PARTIAL = 0, 1, 2


class CommandError(DeepfakeHFError):
    """A problem the user can fix; printed as one line, exit code 1."""


class ReportedInterrupt(KeyboardInterrupt):
    """Ctrl-C after the command said what it kept and how to go on; its work is saved and its threads stopped."""


class Command:
    """One `deepfake-hf` subcommand: its name and help, its arguments, and what it runs.

    `order` places it in `deepfake-hf --help` (then the name); a new command without one comes last.
    `run` returns the exit code: EXIT_OK, EXIT_PARTIAL (some inputs failed), or raises a DeepfakeHFError.
    """

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    description: ClassVar[str | None] = None
    epilog: ClassVar[str | None] = None
    formatter_class: ClassVar[type[argparse.HelpFormatter] | None] = None
    order: ClassVar[int] = 1000

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the command's arguments (use the shared builders of deepfake_hf.cli.options)."""

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError(f"{type(self).__name__}.run")

    def add_to(self, subparsers: Any) -> argparse.ArgumentParser:
        """Add this command's parser to `subparsers` (an argparse subparsers action)."""
        options: dict[str, Any] = {"help": self.help, "description": self.description, "epilog": self.epilog}
        if self.formatter_class is not None:
            options["formatter_class"] = self.formatter_class
        parser = subparsers.add_parser(self.name, **options)
        self.add_arguments(parser)
        parser.set_defaults(handler=self)
        return parser


def commands_in(module: Any) -> list[type[Command]]:
    """The named Command subclasses a module defines itself (not those it imports)."""
    return [value for value in vars(module).values()
            if inspect.isclass(value) and issubclass(value, Command) and value.name
            and value.__module__ == module.__name__]


def discover_commands(path: Iterable[str], prefix: str) -> list[Command]:
    """Import every module on the package `path` (named `prefix` + module) and return its commands, in
    `deepfake-hf --help` order. Modules whose name starts with `_` (such as `__main__`) are skipped."""
    found: dict[str, type[Command]] = {}
    for module_info in pkgutil.iter_modules(list(path)):
        if module_info.name.startswith("_"):
            continue
        for command in commands_in(importlib.import_module(prefix + module_info.name)):
            if command.name in found and found[command.name] is not command:
                raise RuntimeError(f"two commands are named {command.name!r}: {found[command.name].__module__} "
                                   f"and {command.__module__}")
            found[command.name] = command
    return [command() for command in sorted(found.values(), key=lambda command: (command.order, command.name))]


# ------------------------------------------------------------------------------- helpers of the commands
def stdout_to_stderr(enabled: bool) -> contextlib.AbstractContextManager:
    """Send what training prints (Trainer logs, data tables) to stderr while `enabled`."""
    return contextlib.redirect_stdout(sys.stderr) if enabled else contextlib.nullcontext()


def print_result(args: argparse.Namespace, result: dict, *lines: str) -> int:
    """`result` as JSON on stdout with --json, else the lines for people; the exit code (2: some sets failed)."""
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, default=str))
    else:
        for line in lines:
            print(line)
    return EXIT_PARTIAL if result.get("errors") else EXIT_OK


def main_process() -> bool:
    """False in the ranks other than 0 of a torchrun / accelerate launch."""
    return os.environ.get("RANK", "0") == "0"
