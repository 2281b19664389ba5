"""`deepfake-hf train`: train a detector from a recipe."""

from __future__ import annotations

import argparse
import json

from deepfake_hf.cli.base import EXIT_OK, Command, main_process, stdout_to_stderr
from deepfake_hf.cli.options import add_json_option, add_label_map_option, add_output_option, label_map_of


class TrainCommand(Command):
    name = "train"
    order = 20
    help = "train a detector from a recipe (built-in name or YAML file)"
    description = ("Builds data, model, PEFT tuning and TrainingArguments from a recipe and runs the stock Trainer; "
                   "selects the best checkpoint on the validation split and writes DIR/model (plain merged "
                   "checkpoint), DIR/adapter, DIR/recipe.yaml, DIR/trainer_state.json, DIR/val_metrics.json. Runs "
                   "the same under torchrun / accelerate launch.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("recipe", help="built-in recipe name (e.g. clip-l14-ln, quickstart) or a recipe YAML file")
        add_output_option(parser, "run folder (default: runs/RECIPE_NAME)", required=False)
        parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                            help="override a recipe field, e.g. --set training.learning_rate=1e-4 (repeatable)")
        parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the run folder")
        parser.add_argument("--random-init", action="store_true",
                            help="build the encoder from the recipe's architecture with random weights (no download)")
        parser.add_argument("--dry-run", action="store_true", help="build model and tuning only; no data, no training")
        add_json_option(parser)
        add_label_map_option(parser)  # added to the recipe's data.label_map

    def run(self, args: argparse.Namespace) -> int:
        import warnings

        from deepfake_hf.training.recipes import load_recipe
        from deepfake_hf.training.train import dry_run, train

        warnings.filterwarnings("ignore", message="Unsupported layer type")  # peft on LayerNorms: harmless
        recipe = load_recipe(args.recipe, args.overrides)
        if args.label_map:
            recipe.data.label_map = {**(recipe.data.label_map or {}), **label_map_of(args)}
        with stdout_to_stderr(args.json):  # keep stdout pure JSON: progress and tables go to stderr
            if args.dry_run:
                result = dry_run(recipe, random_init=args.random_init)
            else:
                result = train(recipe, args.out or f"runs/{recipe.name}", resume=args.resume,
                               random_init=args.random_init)
        if not main_process():  # under torchrun / accelerate launch only the main process reports
            return EXIT_OK
        if args.json:
            print(json.dumps(result, indent=2, default=str))
        else:
            for key, value in result.items():
                print(f"{key}: {value}")
        return EXIT_OK
