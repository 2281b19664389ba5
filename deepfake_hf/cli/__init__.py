"""`deepfake-hf` command line: parses arguments and calls the package's functions.

Each subcommand has an `add_<name>` function that declares its arguments and a `run_<name>` function
that calls into the modules; heavy imports happen inside `run_*` so `--help` stays fast.
Exit codes: 0 success, 1 usage or fatal error, 2 some inputs failed (the rest were processed).
"""

import argparse
import json
import sys

from deepfake_hf.data.datasets import FACE_CROPS
from deepfake_hf.defaults import AGGREGATIONS, DEFAULT_CROP, DEFAULT_FACES
from deepfake_hf.errors import DeepfakeHFError, one_line
from deepfake_hf.faces import FACE_DETECTORS

EXIT_OK, EXIT_ERROR, EXIT_PARTIAL = 0, 1, 2
# Errors that are not the package's own but that user input causes (a missing or existing path, a missing
# extra): main() prints them as one line, like a DeepfakeHFError. Anything else is a bug and keeps its traceback.
USER_INPUT_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError,
                     ImportError)
# The CLI's own defaults of ideas whose default is the model's (frames, aggregation) are None: "the model's".


class CommandError(DeepfakeHFError):
    """A problem the user can fix; printed as one line, exit code 1."""


# ------------------------------------------------------------------------------------ shared options
# One definition per idea, so every subcommand spells it, defaults it and documents it the same way.
class _DeprecatedAlias(argparse.Action):
    """An old spelling of an option: stores into the new option's dest and says so in one line on stderr."""

    def __init__(self, option_strings, dest, new_option, **kwargs):
        self.new_option = new_option
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: {option_string} is deprecated and will be removed in the next release; "
              f"use {self.new_option}", file=sys.stderr)
        setattr(namespace, self.dest, True if self.nargs == 0 else values)


def _add_deprecated_alias(parser, old, new, dest, **kwargs):
    parser.add_argument(old, dest=dest, action=_DeprecatedAlias, new_option=new, default=argparse.SUPPRESS, **kwargs)


def add_faces_option(parser):
    parser.add_argument("--faces", choices=FACE_DETECTORS, default=DEFAULT_FACES,
                        help="face detection: auto (the model's recorded face preprocessing, else dlib if installed, "
                        "else whole frames), dlib (fast: downscaled search, faces followed between key frames), "
                        "deepfakebench (DeepfakeBench's preprocessing exactly: full-resolution dlib, largest face, "
                        f"its frames), or none (whole frames); default {DEFAULT_FACES}")


def add_crop_option(parser):
    parser.add_argument("--crop", choices=FACE_CROPS, default=DEFAULT_CROP,
                        help="face crop: 5-point aligned 256x256 (DeepfakeBench) or box + 30%% margin; "
                        f"default {DEFAULT_CROP}")


def add_frames_option(parser, default_text="the model's"):
    parser.add_argument("--frames", type=_positive_int, default=None, metavar="N",
                        help=f"frames sampled evenly over each video (default: {default_text})")
    _add_deprecated_alias(parser, "--num-frames", "--frames", "frames", type=_positive_int, metavar="N")


def add_aggregation_option(parser):
    parser.add_argument("--aggregation", choices=AGGREGATIONS, default=None, metavar="NAME",
                        help="video score from frame scores: %(choices)s (the DFDC winner's); default: the model's")
    _add_deprecated_alias(parser, "--aggregate", "--aggregation", "aggregation", choices=AGGREGATIONS,
                          metavar="NAME")


def add_output_option(parser, what="output folder", required=True, default=None, legacy=()):
    """--out; `legacy` old spellings (e.g. --output-dir) stay as hidden aliases for one release."""
    parser.add_argument("--out", required=required and not legacy, default=default, help=what)
    for old in legacy:
        _add_deprecated_alias(parser, old, "--out", "out")


def add_json_option(parser, what="the result"):
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON on stdout (progress goes to stderr)")


def add_trust_remote_code_option(parser):
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="run the model folder's or Hub repo's own Python code (only if you trust its author); "
                        "without it such a model is refused before any of its code runs")


def add_overwrite_option(parser, what="a non-empty output folder"):
    parser.add_argument("--overwrite", action="store_true", help=f"replace {what}")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


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
    add_output_option(parser)
    add_overwrite_option(parser)
    parser.set_defaults(run=run_export)


def run_export(args):
    from deepfake_hf.publish.export import export_native

    out = export_native(args.model, args.out, overwrite=args.overwrite)
    print(f"native checkpoint written to {out}")
    return EXIT_OK


# ------------------------------------------------------------------------------------------ convert
def add_convert(subparsers):
    parser = subparsers.add_parser(
        "convert",
        help="convert a published detector (GenD, DeepfakeBench, UnivFD, Hub classifier) into a detector folder",
        description="Reads a published checkpoint in its own layout (safetensors or torch weights-only; pickles that "
        "would run code are refused) and writes a detector folder that loads with pipeline(..., "
        "trust_remote_code=True), scores exactly as the source, keeps its preprocessing and has a model card.",
    )
    parser.add_argument("source", nargs="?", help="local file or folder, or a Hub id")
    add_output_option(parser, required=False)
    parser.add_argument("--from", dest="source_format", default="auto",
                        choices=["auto", "gend", "deepfakebench", "univfd", "classifier"], help="source format")
    parser.add_argument("--detector", help="DeepfakeBench detector: clip, effort or xception (when the keys do not "
                        "tell)")
    parser.add_argument("--backbone", metavar="ID_OR_DIR",
                        help="encoder architecture (Hub id, folder with its config, or a timm model name) when the "
                        "checkpoint lacks it")
    parser.add_argument("--fake-label", help="classifier label that means fake, when id2label does not say")
    add_overwrite_option(parser)
    parser.add_argument("--list", action="store_true", help="print the known formats and exit")
    parser.set_defaults(run=run_convert)


def run_convert(args):
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


# --------------------------------------------------------------------------------------- quickstart
def add_quickstart(subparsers):
    parser = subparsers.add_parser(
        "quickstart",
        help="offline end-to-end run: synthesise faces, train, evaluate, predict (no downloads)",
        description="Synthesises self-blended fakes from public-domain face photos that installed packages ship, "
        "trains a tiny detector from random init with the built-in `quickstart` recipe, evaluates it on held-out "
        "identities and predicts one sample. Writes DIR/model (loads with pipeline), DIR/eval/metrics.json and "
        "DIR/data. A few minutes on 2 CPU cores.",
    )
    add_output_option(parser, "output folder (default: quickstart-run)", required=False, default="quickstart-run")
    add_overwrite_option(parser)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of the quickstart recipe, e.g. --set training.num_train_epochs=2")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthesis, split and training (default 0)")
    add_json_option(parser, "the summary")
    parser.set_defaults(run=run_quickstart)


def run_quickstart(args):
    from deepfake_hf.training.quickstart import run_quickstart as quickstart

    with _stdout_to_stderr(args.json):  # keep stdout pure JSON: progress and tables go to stderr
        summary = quickstart(args.out, overwrite=args.overwrite, overrides=args.overrides, seed=args.seed)
    if args.json:
        print(json.dumps(summary, indent=2))
        return EXIT_OK
    print()
    for key, value in summary.items():
        print(f"{key:>18}: {value}")
    return EXIT_OK


# -------------------------------------------------------------------------------------------- train
def add_train(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="train a detector from a recipe (built-in name or YAML file)",
        description="Builds data, model, PEFT tuning and TrainingArguments from a recipe and runs the stock "
        "Trainer; selects the best checkpoint on the validation split and writes DIR/model (plain merged "
        "checkpoint), DIR/adapter, DIR/recipe.yaml, DIR/trainer_state.json, DIR/val_metrics.json. Runs the same "
        "under torchrun / accelerate launch.",
    )
    parser.add_argument("recipe", help="built-in recipe name (e.g. clip-l14-ln, quickstart) or a recipe YAML file")
    add_output_option(parser, "run folder (default: runs/RECIPE_NAME)", required=False, legacy=("--output-dir",))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe field, e.g. --set training.learning_rate=1e-4 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the run folder")
    parser.add_argument("--random-init", action="store_true",
                        help="build the encoder from the recipe's architecture with random weights (no download)")
    parser.add_argument("--dry-run", action="store_true", help="build model and tuning only; no data, no training")
    add_json_option(parser)
    _add_label_map(parser)  # added to the recipe's data.label_map
    parser.set_defaults(run=run_train)


def run_train(args):
    import os
    import warnings

    from deepfake_hf.training.recipes import load_recipe
    from deepfake_hf.training.train import dry_run, train

    warnings.filterwarnings("ignore", message="Unsupported layer type")  # peft on LayerNorms: harmless
    recipe = load_recipe(args.recipe, args.overrides)
    if args.label_map:
        recipe.data.label_map = {**(recipe.data.label_map or {}), **_label_map(args)}
    with _stdout_to_stderr(args.json):  # keep stdout pure JSON: progress and tables go to stderr
        if args.dry_run:
            result = dry_run(recipe, random_init=args.random_init)
        else:
            result = train(recipe, args.out or f"runs/{recipe.name}", resume=args.resume,
                           random_init=args.random_init)
    if os.environ.get("RANK", "0") != "0":  # under torchrun / accelerate launch only the main process reports
        return EXIT_OK
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return EXIT_OK


def _add_label_map(parser):
    parser.add_argument("--label-map", action="append", default=[], metavar="NAME=real|fake",
                        help="read folders (or manifest labels) named NAME as real or fake, e.g. --label-map "
                        "original=real --label-map Deepfakes=fake (repeatable)")


def _label_map(args):
    """The --label-map items as a dict; a malformed item is a one-line DataSourceError."""
    from deepfake_hf.data.datasets import parse_label_map

    return parse_label_map(args.label_map)


def _stdout_to_stderr(enabled):
    """Send what training prints (Trainer logs, data tables) to stderr while `enabled`."""
    import contextlib

    return contextlib.redirect_stdout(sys.stderr) if enabled else contextlib.nullcontext()


def _print_result(args, result, *lines):
    """`result` as JSON on stdout with --json, else the lines for people; the exit code (2: some sets failed)."""
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, default=str))
    else:
        for line in lines:
            print(line)
    return EXIT_PARTIAL if result.get("errors") else EXIT_OK


# ----------------------------------------------------------------------------------------- evaluate
def add_evaluate(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a detector on named test sets: metrics, cross-dataset table, plots, robustness",
        description="Each DATA (folder with real/ and fake/, CSV/JSONL manifest, video folder, DeepfakeBench "
        "JSON) is one test set, named after it or given as --name NAME=DATA. Writes predictions.csv, "
        "metrics.json, report.md and PNG plots to --out.",
    )
    parser.add_argument("model", help="folder of a saved detector (or any image classifier with a 'fake' label)")
    parser.add_argument("data", nargs="*", help="test data sources")
    parser.add_argument("--name", action="append", default=[], metavar="NAME=DATA", help="a named test set")
    add_output_option(parser)
    parser.add_argument("--perturb", nargs="+", default=[], metavar="KIND:V1,V2",
                        help="re-score under perturbations, e.g. jpeg:90,70,50 resize:0.5,0.25 blur:1,2 noise:0.02")
    add_faces_option(parser)
    add_crop_option(parser)
    add_frames_option(parser)
    add_aggregation_option(parser)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for 95%% intervals (0: none)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    add_overwrite_option(parser)
    add_json_option(parser, "metrics.json")
    _add_label_map(parser)
    add_trust_remote_code_option(parser)
    parser.set_defaults(run=run_evaluate)


def run_evaluate(args):
    from transformers.utils import logging as transformers_logging

    from deepfake_hf.evaluation.evaluate import evaluate_model, parse_named_sources
    from deepfake_hf.evaluation.perturbations import parse_perturbations
    from deepfake_hf.evaluation.report import summary_table
    from deepfake_hf.runtime.outputs import counted

    transformers_logging.disable_progress_bar()  # as in predict: the scoring bar is the one that matters

    test_sets = parse_named_sources(args.data, args.name)
    with _stdout_to_stderr(args.json):
        result = evaluate_model(args.model, test_sets, args.out, perturbations=parse_perturbations(args.perturb),
                                faces=args.faces, num_frames=args.frames, batch_size=args.batch_size,
                                n_resamples=args.bootstrap, aggregation=args.aggregation, overwrite=args.overwrite,
                                plots=not args.no_plots, label_map=_label_map(args), crop=args.crop,
                                trust_remote_code=args.trust_remote_code)
    if _main_process():  # under torchrun / accelerate launch every rank has the result; one reports it
        for name, message in result.get("errors", {}).items():
            print(f"{name}: not evaluated: {message}", file=sys.stderr)
        for name, message in result.get("notes", {}).items():
            print(f"{name}: {message}", file=sys.stderr)
        for name, entry in result["test_sets"].items():
            if entry.get("files_skipped"):
                print(f"{name}: {counted(entry['files_skipped'], 'file')} skipped (one line each above)",
                      file=sys.stderr)
        _print_result(args, result, "\n".join(summary_table(result)),
                      f"predictions.csv, metrics.json, report.md and plots written to {args.out}")
    return EXIT_PARTIAL if result.get("errors") else EXIT_OK


def _main_process():
    """False in the ranks other than 0 of a torchrun / accelerate launch."""
    import os

    return os.environ.get("RANK", "0") == "0"


# --------------------------------------------------------------------------------------- preprocess
def add_preprocess(subparsers):
    parser = subparsers.add_parser(
        "preprocess",
        help="videos and images -> aligned face crops in DeepfakeBench's layout, with a manifest",
        description="Crops the most prominent face of N frames per video into OUT/<dataset>/<method>/<video>/"
        "<frame>.png (key points beside them as .npy) and writes OUT/manifest.csv (train/evaluate read it), "
        "OUT/<dataset>.json (DeepfakeBench format) and OUT/summary.json. Inputs are data sources as evaluate "
        "reads them. Runs data-parallel under torchrun / accelerate launch; --resume continues a killed run.",
    )
    parser.add_argument("data", nargs="+", help="data sources: folders with real/ and fake/, manifests, DeepfakeBench JSON")
    add_output_option(parser)
    add_faces_option(parser)
    add_crop_option(parser)
    add_frames_option(parser, default_text="32")
    parser.add_argument("--size", type=_positive_int, default=256, help="crop size in pixels (default 256)")
    parser.add_argument("--dataset", help="dataset name in the layout and JSON (default: the first input's name)")
    parser.add_argument("--split", default="test", help="the DeepfakeBench JSON split the videos go under (default test)")
    parser.add_argument("--resume", action="store_true", help="skip the videos an interrupted run finished")
    add_overwrite_option(parser, "what an earlier preprocess wrote in --out")
    add_json_option(parser, "the summary")
    _add_label_map(parser)
    parser.set_defaults(run=run_preprocess)


def run_preprocess(args):
    from deepfake_hf.data.preprocess import preprocess

    try:
        summary = preprocess(args.data, args.out, faces=args.faces, num_frames=args.frames or 32, crop=args.crop,
                             size=args.size, dataset=args.dataset, split=args.split, label_map=_label_map(args),
                             overwrite=args.overwrite, resume=args.resume)
    except KeyboardInterrupt:
        if _main_process():
            print(f"deepfake-hf preprocess: interrupted; the crops made so far are kept in {args.out}; run the same "
                  "command with --resume to continue", file=sys.stderr)
        raise _ReportedInterrupt from None
    from deepfake_hf.runtime.outputs import counted

    if _main_process():
        _print_result(args, summary, f"{counted(summary['videos'], 'video')}, {counted(summary['crops'], 'face crop')}, "
                      f"{counted(summary['frames_without_face'], 'frame')} without a face, "
                      f"{counted(summary['skipped'], 'file')} skipped",
                      f"manifest.csv, the DeepfakeBench JSON and summary.json written to {args.out}")
    return EXIT_PARTIAL if summary["skipped"] else EXIT_OK


# ---------------------------------------------------------------------------------------- calibrate
def add_calibrate(subparsers):
    parser = subparsers.add_parser(
        "calibrate",
        help="fit temperature scaling and a decision threshold on validation data, stored in the model",
        description="Fits the temperature on validation data, then the threshold at the equal-error point "
        "(--method eer) or at a target false-positive rate (--method fpr --target-fpr 0.05), and writes both "
        "into MODEL/config.json (previous values kept in MODEL/calibration.json). Use validation data only.",
    )
    parser.add_argument("model", help="folder of a saved deepfake-hf detector (updated in place)")
    parser.add_argument("data", nargs="+", help="validation data sources")
    parser.add_argument("--method", choices=["eer", "fpr"], default="eer")
    parser.add_argument("--target-fpr", type=float, default=None, help="with --method fpr, e.g. 0.05")
    add_faces_option(parser)
    add_crop_option(parser)
    add_frames_option(parser)
    parser.add_argument("--batch-size", type=int, default=32)
    add_json_option(parser, "the calibration record")
    _add_label_map(parser)
    add_trust_remote_code_option(parser)
    parser.set_defaults(run=run_calibrate)


def run_calibrate(args):
    from transformers.utils import logging as transformers_logging

    from deepfake_hf.evaluation.calibrate import calibrate_model
    from deepfake_hf.evaluation.evaluate import parse_named_sources

    transformers_logging.disable_progress_bar()

    with _stdout_to_stderr(args.json):
        record = calibrate_model(args.model, parse_named_sources(args.data), method=args.method,
                                 target_fpr=args.target_fpr, faces=args.faces, num_frames=args.frames,
                                 batch_size=args.batch_size, label_map=_label_map(args), crop=args.crop,
                                 trust_remote_code=args.trust_remote_code)
    if args.json:
        return _print_result(args, record)
    print(f"calibration_temperature {record['previous']['calibration_temperature']:g} -> "
          f"{record['calibration_temperature']:.4g}; threshold {record['previous']['threshold']:g} -> "
          f"{record['threshold']:.4g} (validation FPR {record['false_positive_rate']:.3f}, "
          f"TPR {record['true_positive_rate']:.3f}, n={record['n']})")
    print(f"written to {args.model}/config.json")
    return EXIT_OK


# --------------------------------------------------------------------------------------------- push
def add_push(subparsers):
    parser = subparsers.add_parser(
        "push",
        help="publish a model or run folder to the Hugging Face Hub (weights, code, card, metrics)",
        description="Assembles the repo folder (safetensors weights, config with auto_map and the code files or "
        "the native export, image processor, README.md model card, metrics.json, plots) and uploads it in one "
        "commit. Needs a token (`hf auth login` or HF_TOKEN) unless --dry-run.",
    )
    parser.add_argument("source", metavar="RUN_OR_MODEL_DIR", help="a saved detector folder or a run folder")
    parser.add_argument("--repo-id", required=True, help="the Hub repo, e.g. your-name/deepfake-detector")
    parser.add_argument("--native", action="store_true", help="upload the stock transformers export (no remote code)")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", metavar="BRANCH", help="push to this branch (created if missing)")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing directly")
    parser.add_argument("--example", metavar="IMAGE", help="an example image for the card's widget (scored here)")
    parser.add_argument("--dry-run", metavar="OUT_DIR", help="write the folder that would be uploaded; upload nothing")
    add_overwrite_option(parser, "a non-empty --dry-run OUT_DIR")
    parser.set_defaults(run=run_push)


def run_push(args):
    from deepfake_hf.publish.hub import assemble_model_repo, push_model, repo_files

    if args.dry_run:
        skipped = []
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


def add_push_space(subparsers):
    parser = subparsers.add_parser(
        "push-space",
        help="create a Gradio Space demo for a model on the Hub",
        description="Uploads README.md (Space front matter), app.py, this installed package (deepfake_hf/) and "
        "requirements.txt with its dependencies (app, video, faces and timm extras).",
    )
    parser.add_argument("--model", required=True, help="the model's Hub id")
    parser.add_argument("--space-id", required=True, help="the Space to create or update, e.g. your-name/deepfake-demo")
    parser.add_argument("--private", action="store_true", help="create the Space as private")
    parser.add_argument("--title", help="the Space's title")
    parser.add_argument("--dry-run", metavar="OUT_DIR", help="write the Space folder; upload nothing")
    add_overwrite_option(parser, "a non-empty --dry-run OUT_DIR")
    parser.set_defaults(run=run_push_space)


def run_push_space(args):
    from deepfake_hf.publish.hub import assemble_space, push_space, repo_files

    if args.dry_run:
        skipped = []
        out = assemble_space(args.model, args.dry_run, title=args.title, overwrite=args.overwrite, skipped=skipped)
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


# -------------------------------------------------------------------------------------------- probe
def add_probe(subparsers):
    parser = subparsers.add_parser(
        "probe",
        help="frozen-feature probe: SVM / LDA / k-NN / logistic regression on frozen encoder features",
        description="Extracts (and caches) pooled features of one or more frozen encoders (concatenated), "
        "cross-validates a scikit-learn classifier with folds that never split a video, writes the evaluate "
        "outputs, and saves the probe to OUT/probe (reload: deepfake-hf evaluate OUT/probe DATA). A linear "
        "probe on one backbone is also saved as a detector in OUT/model that loads with pipeline().",
    )
    parser.add_argument("data", nargs="+", help="training data sources (pooled)")
    parser.add_argument("--backbone", action="append", required=True,
                        help="encoder checkpoint or detector folder; repeat to concatenate features")
    parser.add_argument("--classifier", default="logreg", choices=["logreg", "linear-svm", "lda", "svm", "knn"])
    parser.add_argument("--pca", type=int, default=None, help="reduce features to N components first")
    parser.add_argument("--no-standardize", action="store_true", help="skip feature standardisation")
    parser.add_argument("--folds", type=int, default=5)
    add_faces_option(parser)
    add_frames_option(parser, "the detector config's default, 32")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for 95%% intervals")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    add_output_option(parser)
    add_overwrite_option(parser)
    add_json_option(parser, "metrics.json")
    _add_label_map(parser)
    parser.set_defaults(run=run_probe)


def run_probe(args):
    from deepfake_hf.evaluation.evaluate import parse_named_sources
    from deepfake_hf.evaluation.probes import run_probe as probe
    from deepfake_hf.evaluation.report import summary_table

    with _stdout_to_stderr(args.json):
        result = probe(parse_named_sources(args.data), args.backbone, args.out, classifier=args.classifier,
                       folds=args.folds, pca=args.pca, standardize=not args.no_standardize, faces=args.faces,
                       num_frames=args.frames, batch_size=args.batch_size, n_resamples=args.bootstrap,
                       overwrite=args.overwrite, plots=not args.no_plots, label_map=_label_map(args))
    saved = f"probe saved to {result['probe']['saved']}" + (
        f"; detector (loads with pipeline) in {result['probe']['detector']}" if "detector" in result["probe"] else "")
    return _print_result(args, result, "\n".join(summary_table(result)), saved)


# ------------------------------------------------------------------------------------------ explain
def add_explain(subparsers):
    parser = subparsers.add_parser(
        "explain",
        help="heatmap of where a detector looks (attention rollout or Grad-CAM) as an overlay PNG",
        description="Attention rollout for ViT-family backbones (vit, deit, dinov2, clip_vision_model; "
        "loaded with eager attention) and Grad-CAM for every backbone, drawn over the crop the model saw.",
    )
    parser.add_argument("model", help="folder of a saved deepfake-hf detector")
    parser.add_argument("image", help="image file")
    add_output_option(parser, "output PNG")
    parser.add_argument("--method", choices=["auto", "rollout", "gradcam"], default="auto",
                        help="auto: rollout for ViT-family backbones, else Grad-CAM")
    add_faces_option(parser)
    add_crop_option(parser)
    add_overwrite_option(parser, "an existing output file")
    add_trust_remote_code_option(parser)
    parser.set_defaults(run=run_explain)


def run_explain(args):
    from deepfake_hf.scoring.explain import explain_to_file

    result = explain_to_file(args.model, args.image, args.out, method=args.method, overwrite=args.overwrite,
                             faces=args.faces, crop=args.crop, trust_remote_code=args.trust_remote_code)
    print(f"{args.image}: {result['label']} (fake score {result['fake_probability']:.3f}); "
          f"{result['method']} heatmap written to {args.out}")
    return EXIT_OK


# ------------------------------------------------------------------------------------------ predict
PREDICT_EPILOG = """\
exit codes:
  0  every input was scored
  2  some inputs failed (one line each on stderr; the rest are still reported)
  1  usage error (bad option, model that cannot be loaded, no media found, output exists)

Folders are searched recursively for images and videos; URLs are refused (download first).
--faces auto uses the model's recorded face preprocessing (converted DeepfakeBench/GenD models:
deepfakebench), else dlib when installed (pip install 'deepfake-hf[faces]'), else scores whole frames.
"""


def add_predict(subparsers):
    parser = subparsers.add_parser(
        "predict",
        help="score images and videos: real or fake",
        description="Score image and video files (or folders of them) with a detector folder or Hub id. "
        "Videos are sampled evenly over their whole duration; with face detection each person is scored "
        "and a file's score is its most suspicious person's.",
        epilog=PREDICT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="detector folder or Hub id")
    parser.add_argument("inputs", metavar="INPUT", nargs="+", help="image/video files or folders")
    add_faces_option(parser)
    add_crop_option(parser)
    add_frames_option(parser)
    add_aggregation_option(parser)
    parser.add_argument("--format", choices=("table", "json", "jsonl", "csv"), default="table",
                        help="output format; with --out, json/jsonl/csv results are written as they are produced")
    parser.add_argument("--resume", action="store_true",
                        help="with --out: skip the inputs an interrupted run already wrote (same inputs and options)")
    add_output_option(parser, "write the results to this file instead of stdout", required=False,
                      legacy=("--output",))
    add_overwrite_option(parser, "an existing --out file")
    parser.add_argument("--frame-scores", action="store_true", help="include per-frame scores (json/csv)")
    parser.add_argument("--batch-size", type=_positive_int, default=None, metavar="N",
                        help="crops per model call (default: 8 on a CPU, 32 on a GPU)")
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    add_trust_remote_code_option(parser)
    parser.set_defaults(run=run_predict)


def _print_error(result):
    if result["error"] is not None:
        print(f"error: {result['path']}: {result['error']}", file=sys.stderr)


def run_predict(args):
    import os

    from transformers.utils import logging as transformers_logging

    from deepfake_hf.scoring.detector import STREAM_FORMATS, PredictInterrupted, predict
    from deepfake_hf.runtime.outputs import counted

    transformers_logging.disable_progress_bar()  # our own bar is the one that matters
    if args.resume and not (args.out and args.format in STREAM_FORMATS):
        raise CommandError(f"--resume continues a run that streamed its results to a file: give --out FILE and "
                           f"--format {' or '.join(STREAM_FORMATS)}, as that run did")
    if args.out and os.path.exists(args.out) and not (args.overwrite or args.resume):
        raise CommandError(f"{args.out}: exists (pass --overwrite to replace it)")
    try:
        text, results = predict(args.model, args.inputs, faces=args.faces, crop=args.crop, num_frames=args.frames,
                                aggregate=args.aggregation, fmt=args.format, frame_scores=args.frame_scores,
                                batch_size=args.batch_size, device=args.device,
                                trust_remote_code=args.trust_remote_code, out=args.out, resume=args.resume,
                                on_result=_print_error)
    except PredictInterrupted as stopped:
        return _report_interrupted(args, stopped)
    if text is None:  # streamed to --out; `results` are the counts (every rank reports its own errors)
        if "files" in results:
            print(f"{counted(results['files'], 'file')}: {results['scored']} scored, {results['failed']} failed; "
                  f"results in {args.out}", file=sys.stderr)
        # Under torchrun / accelerate a non-zero exit is a crashed rank (the launcher prints a failure
        # report and stops the others), so a finished data-parallel run exits 0; failed inputs are in the file.
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            return EXIT_OK
        return EXIT_PARTIAL if results.get("failed") else EXIT_OK
    if not args.out:
        sys.stdout.write(text)
    failed = [result for result in results if result["error"] is not None]
    for result in failed:
        _print_error(result)
    if args.out or args.format != "table":
        print(f"{counted(len(results), 'file')}: {len(results) - len(failed)} scored, {len(failed)} failed"
              + (f"; results in {args.out}" if args.out else ""), file=sys.stderr)
    return EXIT_PARTIAL if failed else EXIT_OK


def _report_interrupted(args, stopped):
    """After Ctrl-C: the results so far (printed, or already in --out) and one line on how to go on."""
    from deepfake_hf.scoring.detector import STREAM_FORMATS
    from deepfake_hf.runtime.outputs import counted

    if stopped.text is not None and not args.out:
        sys.stdout.write(stopped.text)
    for result in stopped.results or ():  # a streamed run printed its errors as they came
        _print_error(result)
    done = "" if stopped.counts is None and stopped.results is None else f" after {counted(stopped.done, 'file')}"
    if stopped.resumable:
        where = f"the results so far are in {args.out}" if stopped.counts is not None else \
            f"each rank's results so far are in its part file beside {args.out}"
        how = "run the same command with --resume to score the rest"
    else:
        where = f"the results so far are in {args.out}" if args.out else "the results so far are above"
        how = f"to be able to resume, write with --out FILE --format {'/'.join(STREAM_FORMATS)}, then use --resume"
    print(f"deepfake-hf predict: interrupted{done}; {where}; {how}", file=sys.stderr)
    raise _ReportedInterrupt from None


class _ReportedInterrupt(KeyboardInterrupt):
    """Ctrl-C after the command said what it kept and how to go on; its work is saved and its threads stopped."""


def _exit_now(code):
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


# -------------------------------------------------------------------------------------------- bench
def add_bench(subparsers):
    parser = subparsers.add_parser(
        "bench",
        help="speed and memory benchmarks (inference, training, start-up) written as JSON",
        description="Random weights of published encoder sizes; nothing is downloaded. Ratios are measured side by "
        "side in one run. See the README's Performance section.",
    )
    kinds = parser.add_subparsers(dest="bench_kind", metavar="KIND", required=True)
    inference = kinds.add_parser("inference", help="pipeline vs Detector vs raw forward, same weights")
    inference.add_argument("--models", default="vit-b16,clip-b32", help="comma list of vit-b16, clip-b32")
    inference.add_argument("--images", type=int, default=32, help="files scored per round")
    inference.add_argument("--rounds", type=int, default=3)
    inference.add_argument("--latency-images", type=int, default=10, help="files timed one by one at batch 1")
    inference.add_argument("--textures", default="smooth,noise",
                           help="JPEG kinds: smooth (photo-like) and/or noise (every pixel random, costly to decode)")
    inference.add_argument("--no-peak-memory", action="store_true", help="skip the per-mode fresh-process memory runs")
    training = kinds.add_parser("training", help="LN-tuning vs full fine-tuning vs LoRA step time and memory")
    training.add_argument("--model", default="vit-b16", choices=["vit-b16", "clip-b32"])
    training.add_argument("--methods", default="ln_tuning,full,lora")
    training.add_argument("--batch", type=int, default=8)
    training.add_argument("--steps", type=int, default=3)
    training.add_argument("--rounds", type=int, default=2)
    training.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    video = kinds.add_parser("video", help="video end to end (decode + faces + model) vs the model alone")
    video.add_argument("videos", nargs="*", help="extra clips (e.g. ../shared/media/videos/ffpp/*/*.mp4)")
    video.add_argument("--model", default="vit-b16", choices=["vit-b16", "clip-b32", "tiny-vit"])
    add_frames_option(video, "32")
    video.add_argument("--batch", type=int, default=8)
    video.add_argument("--no-generated", action="store_true", help="skip the generated 10 s 720p clip")
    video.add_argument("--faces", default="none,dlib-per-frame,dlib,deepfakebench",
                       help="comma list of face modes: none, dlib-per-frame, dlib, deepfakebench (the exact mode)")
    video.add_argument("--rounds", type=int, default=1, help="rounds over all clips and modes (medians kept)")
    startup = kinds.add_parser("startup", help="import and --help times, heavy modules imported")
    startup.add_argument("--repeats", type=int, default=5)
    threads = kinds.add_parser("threads", help="two runs sharing the cores: default vs configured threads")
    threads.add_argument("--steps", type=int, default=30)
    threads.add_argument("--rounds", type=int, default=3)
    threads.add_argument("--workload", choices=["forward-loop", "predict"], default="forward-loop",
                         help="forward-loop: a predict-like loop, torch default vs configured threads; predict: "
                         "whole `deepfake-hf predict` runs, one alone vs two at once")
    threads.add_argument("--images", type=int, default=48, help="images per predict run (--workload predict)")
    scaleout = kinds.add_parser("scaleout", help="memory vs input count, kill + --resume, 1 vs 2 processes")
    scaleout.add_argument("--small", type=int, default=200, help="inputs of the small memory run")
    scaleout.add_argument("--large", type=int, default=2000, help="inputs of the large memory, resume and scaling runs")
    scaleout.add_argument("--faces", type=int, default=120, help="face images preprocessed with dlib")
    scaleout.add_argument("--rounds", type=int, default=2)
    for kind in (inference, training, video, startup, threads, scaleout):
        add_output_option(kind, "the JSON file the results are written to", required=False)
        # --json is the shared switch; its old use, `--json PATH`, is still read as --out PATH for one release
        kind.add_argument("--json", nargs="?", const=True, default=False, metavar="",
                          help="also print the results as JSON on stdout (progress goes to stderr)")
    parser.set_defaults(run=run_bench)


def bench_output(args):
    """(JSON file, print JSON on stdout) from bench's --out and --json, reading the old `--json PATH` as --out."""
    if isinstance(args.json, str):
        print(f"deepfake-hf bench {args.bench_kind}: --json PATH is deprecated and will be removed in the next "
              "release; use --out PATH (and --json to print the results)", file=sys.stderr)
        return args.out or args.json, False
    if args.out is None:
        raise CommandError("--out FILE is required (where the JSON results are written)")
    return args.out, args.json


def run_bench(args):
    from deepfake_hf.cli.bench import measure as benchmark

    out, print_json = bench_output(args)
    with _stdout_to_stderr(print_json):
        if args.bench_kind == "inference":
            result = benchmark.run_inference_benchmark(out, args.models.split(","), args.images, args.rounds,
                                                       args.latency_images, peak_memory=not args.no_peak_memory,
                                                       textures=args.textures.split(","))
        elif args.bench_kind == "training":
            result = benchmark.run_training_benchmark(out, args.model, args.methods.split(","), args.batch,
                                                      args.steps, args.rounds, args.dtype)
        elif args.bench_kind == "video":
            result = benchmark.run_video_benchmark(out, args.model, args.videos, args.frames or 32, args.batch,
                                                   generated=not args.no_generated,
                                                   face_modes=benchmark.video_face_modes(args.faces),
                                                   rounds=args.rounds)
        elif args.bench_kind == "threads" and args.workload == "predict":
            result = benchmark.run_predict_concurrency_benchmark(out, images=args.images, rounds=args.rounds)
        elif args.bench_kind == "threads":
            result = benchmark.run_threads_benchmark(out, steps=args.steps, rounds=args.rounds)
        elif args.bench_kind == "scaleout":
            result = benchmark.run_scaleout_benchmark(out, args.small, args.large, args.faces, args.rounds)
        else:
            result = benchmark.run_startup_benchmark(out, args.repeats)
    if print_json:
        print(json.dumps(result, indent=2, default=str))
    return EXIT_OK


# ------------------------------------------------------------------------------------------- main
COMMANDS = [add_quickstart, add_train, add_export, add_convert, add_preprocess, add_evaluate, add_calibrate, add_push,
            add_push_space, add_probe, add_explain, add_predict, add_bench]


class _ArgumentParser(argparse.ArgumentParser):
    """Usage errors exit with 1: this CLI keeps 2 for "some inputs failed" (argparse's own default is 2)."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def build_parser():
    from deepfake_hf import __version__

    parser = _ArgumentParser(
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
    from deepfake_hf.runtime.threads import configure_threads

    # Before torch is imported, so OpenMP reads the thread count and the passive wait policy: two runs
    # sharing the cores then each take about their share instead of spinning against each other.
    configure_threads()
    try:
        return args.run(args)
    except DeepfakeHFError as error:  # every error the package raises on purpose: one line, no traceback
        print(f"deepfake-hf {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except USER_INPUT_ERRORS as error:  # a missing or existing path, a missing extra: also the user's to fix
        print(f"deepfake-hf {args.command}: error: {one_line(error, 300)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as interrupt:
        if not isinstance(interrupt, _ReportedInterrupt):
            print("interrupted", file=sys.stderr)
        elif argv is None:  # this is the process (the console script), not a caller's function call
            _exit_now(EXIT_ERROR)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
