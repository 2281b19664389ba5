"""Evaluate a detector on named test sets the way the deepfake-detection literature reports it.

`evaluate_model(model, {name: source})` scores every frame of every test set, computes frame- and
video-level metrics (videos grouped by full path) with bootstrap intervals, per manipulation method,
and optionally under perturbations (JPEG, resizing, blur, noise), then writes

    predictions.csv   test_set, path, group, video, frame, label, method, score (calibrated fake probability;
                      `video` is the full-path key video metrics group by, see `video_keys`)
    metrics.json      {"model", "test_sets": {name: {"frame", "video", "per_method"}}, "robustness"}
    report.md         the papers' cross-dataset table (rows: test sets) with 95% intervals
    roc.png, score_histograms.png, reliability.png (and robustness.png with perturbations)

Every file is scored the way `predict` scores it (`scoring.Scorer`, the one scorer): the data source is
decoded to whole frames (`data.load_source` with faces="none": a video's `num_frames` frames sampled as
predict samples them, a still as it is; cached), then the scorer's face policy runs on each file's
frames: faces found, tracked across a video's frames, each person scored, and the file's rows are the
frames of the most suspicious person (frames without that person are left out). So a video's rows
aggregate to exactly `predict`'s fake_probability for that file, and each row's score is `predict`'s
`frame_scores` entry for that frame. With faces=None (the default) the model's recorded face preprocessing
(config `face_preprocessing`) runs, else every frame is scored whole; a
dataset of pre-cropped face images (frame folders, DeepfakeBench JSON) is scored image by image as
predict would score each image file. Perturbations (`perturbations`) degrade the crops the model sees.

The pieces live beside this module: `testsets` (loading a test set, video keys, its metrics.json entry,
predictions.csv), `perturbations`, `report` (report.md and plots), `calibrate` (`calibrate_model`, which
scores validation data with `score_dataset`) and `probes` (`run_probe`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from deepfake_hf.data.datasets import DataSourceError
from deepfake_hf.errors import DeepfakeHFError, one_line
from deepfake_hf.evaluation.errors import EvaluationError
from deepfake_hf.evaluation.metric_defs import in_table
from deepfake_hf.evaluation.metrics import binary_metrics, video_scores
from deepfake_hf.evaluation.perturbations import parse_perturbations, perturb, perturbation_name
from deepfake_hf.evaluation.report import render_report, write_plots
from deepfake_hf.evaluation.testsets import load_test_set, test_set_metrics, video_keys, write_predictions
from deepfake_hf.faces import finds_faces
from deepfake_hf.runtime.outputs import prepare_output_dir, undone_on_failure


# ----------------------------------------------------------------------------------------- model
def load_model(model_path: str | os.PathLike, device: Any = None, **options: Any) -> Any:
    """A `scoring.Scorer` for a saved detector (or any image classifier with a "fake" label, or a saved probe).

    `options` (faces, num_frames, aggregation, batch_size, crop, ...) go to the scorer, as `predict` passes them;
    `face_workers` (None: the scorer's default) is set on it.
    """
    from deepfake_hf.evaluation.probes import PROBE_FILE, load_scorer

    face_workers = options.pop("face_workers", None)
    model_path = os.fspath(model_path)
    if not any(os.path.isfile(os.path.join(model_path, name)) for name in ("config.json", PROBE_FILE)):
        raise EvaluationError(f"{model_path}: not a model folder (no config.json)")
    try:
        scorer = load_scorer(model_path, device=device, **options)
    except DeepfakeHFError:  # ModelLoadError and ProbeError name the folder and the reason
        raise
    except (OSError, KeyError) as error:
        raise EvaluationError(f"{model_path}: cannot load the model ({one_line(error, 300)})") from None
    except ValueError as error:  # no "fake" label, or a bad option
        raise EvaluationError(f"{model_path}: {one_line(error)}") from None
    if face_workers is not None:
        scorer.face_workers = int(face_workers)
    return scorer


# ----------------------------------------------------------------------------------------- data
def parse_named_sources(sources: Iterable[Any] = (), named: Iterable[str] = ()) -> dict[str, str]:
    """{name: spec} from plain specs (named after the file or folder) and NAME=SPEC strings."""
    result = {}
    for spec in sources:
        name = Path(str(spec).split("#")[0].rstrip("/")).stem or str(spec)
        base, suffix = name, 2
        while name in result:
            name, suffix = f"{base}-{suffix}", suffix + 1
        result[name] = str(spec)
    for item in named:
        name, sep, spec = str(item).partition("=")
        if not sep or not name or not spec:
            raise EvaluationError(f"--name {item!r}: expected NAME=DATA")
        if name in result:
            raise EvaluationError(f"--name {name}: test set name used twice")
        result[name] = spec
    if not result:
        raise EvaluationError("no test data given")
    return result


def load_frames_for(scorer: Any, spec: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                    label_map: dict[str, str] | None = None, counts: dict | None = None) -> tuple[Any, bool]:
    """(dataset, frames_are_crops): a test set's whole frames, taken as `scorer` takes a file's frames (its
    number and sampling rule), for the scorer's face policy to run on as it does in predict; except that a
    DeepfakeBench JSON's frames, or a source marked `#crops`, are face crops (`frames_are_crops`), scored as
    they are.
    `counts`, a dict, receives data.load_source's counts (files, skipped, ...)."""
    dataset, report = load_test_set(spec, num_frames=scorer.num_frames, cache_dir=cache_dir, label_map=label_map,
                                    frame_sampling=scorer.frame_sampling, return_report=True)
    if counts is not None:
        counts.update(report["counts"])
    return dataset, report["crops"]


# ----------------------------------------------------------------------------------------- scoring
def score_dataset(scorer: Any, dataset: Any, batch_size: int | None = None,
                  perturbation: tuple[str, float] | None = None, description: str = "scoring",
                  no_face: list[str] | None = None, ranks: Any = None, parts: str | os.PathLike | None = None,
                  find_faces: bool = True) -> np.ndarray:
    """Output margins of `dataset`'s rows scored the way `predict` scores their files, with a progress bar.

    Rows of one file (a video's sampled frames, or one still) go through the scorer's face policy together:
    a row's margin is that of the crop of the person whose score is the file's (the most suspicious one),
    so a video's rows aggregate to `predict`'s fake probability; a row `predict` leaves out (a frame in
    which that person was not found) is NaN. `perturbation` ((kind, strength)) degrades each crop the
    model sees. Returns an array aligned with the dataset's rows; `no_face`, a list, receives the path of
    each file in which a face detector found nobody (scored whole, as predict does and says).
    `find_faces=False` scores rows that are face crops already as they are (no face policy).

    Under torchrun / accelerate (`ranks`, `parts`: the path part files are named after), rank r scores files
    r, r+N, ... and writes their margins to its part file; every rank then returns the merged margins of all
    files, which are the single-process margins (files are scored whole, so each is the same computation).
    """
    # Long docstring: the row/file/rank contract is what callers rely on; the code itself is ~40 lines.
    from tqdm.auto import tqdm

    from deepfake_hf.scoring.scorer import Batcher, PendingScores

    margins = np.full(len(dataset), np.nan)
    paths = dataset["path"]
    batcher = Batcher(scorer, batch_size)
    # (first row, plan, pending scores) of files whose crops are not all scored yet
    waiting: list[tuple[int, Any, Any]] = []

    def settle():
        while waiting and waiting[0][2].unscored == 0:
            first, plan, pending = waiting.pop(0)
            verdict = scorer.decide(plan, pending.margins)
            for frame, crop in enumerate(verdict.frame_crops):
                if crop is not None:
                    margins[first + frame] = pending.margins[crop]

    files = _file_rows(paths, dataset["group"])
    mine = set(range(len(files))) if ranks is None or ranks.world_size == 1 else \
        set(range(ranks.rank, len(files), ranks.world_size))
    missing_faces = set()
    for number, (first, stop) in enumerate(tqdm(files, desc=description, unit="file", leave=False)):
        if number not in mine:
            continue
        frames = [image.convert("RGB") for image in dataset[first:stop]["image"]]
        plan = scorer.plan(frames, find_faces=find_faces)
        if plan.faces == 0:
            missing_faces.add(number)
        crops = plan.crops
        if perturbation is not None:
            crops = [perturb(crop, *perturbation, seed=first + frame) for crop, (frame, _) in zip(crops, plan.owners)]
        pending = PendingScores(scorer.preprocess(crops))
        plan.crops = None
        waiting.append((first, plan, pending))
        batcher.add(pending)
        settle()
    batcher.flush()
    settle()
    if len(mine) < len(files):
        missing_faces = _merge_margins(margins, files, mine, missing_faces, ranks, parts)
    if no_face is not None:
        no_face.extend(paths[files[number][0]] for number in sorted(missing_faces))
    return margins


def _merge_margins(margins, files, mine, missing_faces, ranks, parts):
    """Exchange the ranks' margins through part files (written, then read by every rank); fills `margins`."""
    from deepfake_hf.runtime.distributed import PartWriter, barrier, iter_parts, remove_parts

    with PartWriter(parts, ranks) as part:
        for number in sorted(mine):
            first, stop = files[number]
            part.write(number, {"margins": [None if np.isnan(m) else float(m) for m in margins[first:stop]],
                                "no_face": number in missing_faces})
    barrier(ranks)
    merged = set()
    for number, row in iter_parts(parts, ranks.world_size):
        first, stop = files[number]
        margins[first:stop] = [np.nan if m is None else m for m in row["margins"]]
        if row["no_face"]:
            merged.add(number)
    barrier(ranks)  # every rank has read every part
    if ranks.is_main:
        remove_parts(parts, ranks.world_size)
    return merged


def _file_rows(paths, groups):
    """(first, stop) row ranges of a dataset's files: a video's (or animated image's) frames are consecutive
    rows with its path and group; any other row is a file of its own."""
    ranges, first = [], 0
    for row in range(1, len(paths) + 1):
        if row == len(paths) or (paths[row], groups[row]) != (paths[first], groups[first]):
            ranges.append((first, row))
            first = row
    return ranges


@undone_on_failure  # a missing model or unusable data leaves no empty --out folder behind
def evaluate_model(model_path: str | os.PathLike, test_sets: Mapping[str, str | os.PathLike],
                   out_dir: str | os.PathLike,
                   perturbations: Sequence[str] | Sequence[tuple[str, float]] = (), faces: Any = None,
                   num_frames: int | None = None, batch_size: int = 32, n_resamples: int = 1000,
                   aggregation: str | None = None, overwrite: bool = False, device: Any = None, seed: int = 0,
                   cache_dir: str | os.PathLike | None = None, plots: bool = True,
                   label_map: dict[str, str] | None = None, crop: str | None = None,
                   trust_remote_code: bool = False, face_workers: int | None = None) -> dict[str, Any]:
    """Score `test_sets` ({name: data spec}) with the model and write predictions, metrics, report and plots.

    `faces` ("none", "auto", "dlib" or a detector object) is the scorer's face policy, as in `predict`;
    `label_map` ({folder or label name: "real"/"fake"}) is passed to `data.load_source` for every test set.
    `face_workers`: face detection processes (as the Detector's; None: `Scorer.face_workers`' default).
    Returns the metrics dict (also in metrics.json).
    """
    # Long: one pass per test set keeps its dataset, clean and perturbed scores together (split, it would
    # hand a dozen values between helpers); loading and the robustness entries are helpers below.
    from deepfake_hf.runtime.distributed import current_ranks

    ranks = current_ranks()
    out_dir = Path(out_dir)
    # Every rank checks (so all refuse alike); none writes there before the ranks first meet.
    prepare_output_dir(out_dir, overwrite)
    sources = {str(name): os.fspath(spec) for name, spec in test_sets.items()}
    scorer = load_model(model_path, device=device, faces=faces, num_frames=num_frames, aggregation=aggregation,
                        crop=crop, trust_remote_code=trust_remote_code, face_workers=face_workers)
    aggregation = scorer.aggregation
    aggregation_options = dict(confident_threshold=scorer.confident_threshold,
                               confident_fraction=scorer.confident_fraction)
    perturbation_pairs = _perturbation_list(perturbations)

    datasets_by_name, frames_are_crops, errors, load_counts = _load_test_sets(scorer, sources, ranks, cache_dir,
                                                                            label_map)
    if not datasets_by_name:
        raise EvaluationError("; ".join(errors.values()))
    result = {"model": str(model_path), "threshold": scorer.threshold, "calibration_temperature": scorer.temperature,
              "video_aggregation": aggregation, "test_sets": {}, "sources": dict(sources)}
    if errors:
        result["errors"] = errors
    calibration_record = Path(model_path) / "calibration.json"
    if calibration_record.is_file():  # how the stored threshold and temperature were fitted
        result["calibration"] = json.loads(calibration_record.read_text())
    rows: list[tuple] = []
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    robustness: dict[str, dict[str, Any]] = {}
    for set_number, (name, dataset) in enumerate(datasets_by_name.items()):
        no_face: list[str] = []
        parts = out_dir / f".scores-{set_number}"
        find_faces = not frames_are_crops[name]
        if not find_faces and finds_faces(scorer.face_detector):
            result.setdefault("notes", {})[name] = ("ready-made face crops (a DeepfakeBench JSON's aligned face "
                                                   "crops, or a source marked #crops): scored as they are, "
                                                   "without the "
                                                   f"{scorer.face_detector.name} face policy")
        margins = score_dataset(scorer, dataset, batch_size, description=name, no_face=no_face, ranks=ranks,
                                find_faces=find_faces, parts=parts)
        columns, scores = _scored_rows(dataset, margins, scorer)
        try:
            result["test_sets"][name] = test_set_metrics(
                columns["label"], scores, columns["video"], columns["method"], scorer.threshold, aggregation,
                n_resamples, seed, **aggregation_options)
        except ValueError as error:  # e.g. one video's frames labelled both real and fake
            result.setdefault("errors", {})[name] = f"{sources[name]}: {one_line(error)}"
            continue
        if no_face:  # their rows are whole-frame guesses of a face model, as in predict: say how many
            result["test_sets"][name]["files_without_face"] = len(no_face)
        if load_counts[name].get("skipped"):  # unreadable files, looping links...: a warning line each, counted
            result["test_sets"][name]["files_skipped"] = load_counts[name]["skipped"]
        curves[name] = (np.asarray(columns["label"]), scores)
        rows.extend(zip([name] * len(scores), columns["path"], columns["group"], columns["video"], columns["frame"],
                        columns["label"], columns["method"], scores.tolist()))
        if perturbation_pairs:
            robustness[name] = {"clean": _robustness_entry(columns, scores, scorer.threshold, aggregation,
                                                           aggregation_options)}
            for perturbation_number, perturbation in enumerate(perturbation_pairs):
                key = perturbation_name(*perturbation)
                # Perturbed scores may make another person the most suspicious one: its rows count then.
                perturbed = score_dataset(scorer, dataset, batch_size, perturbation, description=f"{name} {key}",
                                          find_faces=find_faces,
                                          ranks=ranks, parts=out_dir / f".scores-{set_number}-{perturbation_number}")
                perturbed_columns, perturbed_scores = _scored_rows(dataset, perturbed, scorer)
                robustness[name][key] = _robustness_entry(perturbed_columns, perturbed_scores, scorer.threshold,
                                                          aggregation, aggregation_options)
    if not result["test_sets"]:
        raise EvaluationError("; ".join(result["errors"].values()))
    if robustness:
        result["robustness"] = robustness
    if not ranks.is_main:  # rank 0 writes the outputs; every rank returns the same metrics
        return result

    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / "predictions.csv", rows)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    if plots:
        result_plots = write_plots(curves, out_dir, robustness)
    else:
        result_plots = []
    (out_dir / "report.md").write_text(render_report(result, result_plots))
    return result


def _perturbation_list(perturbations: Sequence[str] | Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """--perturb specs ("jpeg:90,70") parsed, or (kind, strength) pairs as given."""
    if perturbations and isinstance(perturbations[0], str):
        return parse_perturbations(cast("Sequence[str]", perturbations))
    return list(cast("Sequence[tuple[str, float]]", perturbations))


def _scored_rows(dataset, margins, scorer):
    """(columns, calibrated scores) of the rows `score_dataset` scored (the NaN rows left out); columns
    label, path, group, method, frame and video (`video_keys`)."""
    kept = np.flatnonzero(~np.isnan(margins))
    columns = {}
    for key in ("label", "path", "group", "method", "frame"):
        values = dataset[key]
        columns[key] = values if len(kept) == len(values) else [values[row] for row in kept]
    columns["video"] = video_keys(columns["path"], columns["group"])
    return columns, scorer.probabilities(margins[kept])


def _robustness_entry(columns, scores, threshold, aggregation, aggregation_options):
    """metrics.json's robustness entry of one scoring: the "robustness" metrics (`metric_defs`) at frame level,
    and `video_<name>` of those with a video column when rows group into videos."""
    shown = in_table("robustness")
    frame = binary_metrics(columns["label"], scores, threshold)
    entry = {metric.name: frame[metric.name] for metric in shown}
    if len(set(columns["video"])) < len(scores):
        _, v_scores, v_labels = video_scores(scores, columns["video"], aggregation, columns["label"],
                                             **aggregation_options)
        video = binary_metrics(v_labels, v_scores, threshold)
        entry.update({f"video_{metric.name}": video[metric.name] for metric in shown if metric.video_column})
    return entry


def _load_test_sets(scorer, test_sets, ranks, cache_dir, label_map):
    """({name: dataset}, {name: frames_are_crops}, {name: error}, {name: load counts}) of the test sets that load."""
    from deepfake_hf.runtime.distributed import barrier

    datasets_by_name, frames_are_crops, errors, load_counts = {}, {}, {}, {}
    for turn in ("main", "others") if ranks.world_size > 1 else ("all",):
        # Data-parallel: rank 0 decodes into the cache first, the other ranks then memory-map it.
        if turn != "all":
            barrier(ranks)
        if turn == "main" and not ranks.is_main or turn == "others" and ranks.is_main:
            continue
        for name, spec in test_sets.items():  # a broken source is reported; the other test sets still run
            try:
                # Whole frames, sampled as predict samples them: the scorer's face policy runs on them below.
                datasets_by_name[name], frames_are_crops[name] = load_frames_for(
                    scorer, spec, cache_dir=cache_dir, label_map=label_map, counts=load_counts.setdefault(name, {}))
            except DataSourceError as error:
                errors[name] = str(error)
    return datasets_by_name, frames_are_crops, errors, load_counts
