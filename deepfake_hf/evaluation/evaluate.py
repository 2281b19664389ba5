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
predict would score each image file. Perturbations degrade the crops the model sees.

`calibrate_model` fits temperature scaling and a decision threshold on validation data and stores
them in the model's config.json, where the model applies them (pipeline, predict and the app).
"""

import io
import json
import os
from pathlib import Path

import numpy as np

from deepfake_hf.configuration_deepfake import (
    DEFAULT_AGGREGATION,
    DEFAULT_CALIBRATION_TEMPERATURE,
    DEFAULT_CONFIDENT_FRACTION,
    DEFAULT_CONFIDENT_THRESHOLD,
    DEFAULT_NUM_FRAMES,
    DEFAULT_THRESHOLD,
    DeepfakeDetectorConfig,
)
from deepfake_hf.data.datasets import DataSourceError, load_source
from deepfake_hf.errors import DeepfakeHFError, one_line
from deepfake_hf.faces import finds_faces
from deepfake_hf.evaluation.metrics import binary_metrics, evaluate_scores, fit_temperature, threshold_at_fpr, video_scores
from deepfake_hf.runtime.outputs import SafeCsvWriter, prepare_output_dir, undone_on_failure
from deepfake_hf.scoring.scorer import sigmoid

PERTURBATIONS = {
    # name: (what the strength is, whether a smaller value is a stronger perturbation, the unperturbed value)
    "jpeg": ("JPEG quality", True, 100.0),
    "resize": ("scale factor", True, 1.0),
    "blur": ("Gaussian blur sigma (px)", False, 0.0),
    "noise": ("Gaussian noise std (0-1 range)", False, 0.0),
}
TABLE_COLUMNS = (("frame", "auroc", "frame AUROC"), ("video", "auroc", "video AUROC"), ("frame", "eer", "EER"),
                 ("frame", "eer_deepfakebench", "EER (DeepfakeBench)"), ("frame", "ap", "AP"), ("frame", "accuracy", "accuracy"))


class EvaluationError(DeepfakeHFError, ValueError):
    """A one-line problem with the model or a data source."""


# ----------------------------------------------------------------------------------------- model
def load_model(model_path, device=None, **options):
    """A `scoring.Scorer` for a saved detector (or any image classifier with a "fake" label, or a saved probe).

    `options` (faces, num_frames, aggregation, batch_size, crop, ...) go to the scorer, as `predict` passes them.
    """
    from deepfake_hf.evaluation.probes import PROBE_FILE, load_scorer

    model_path = os.fspath(model_path)
    if not any(os.path.isfile(os.path.join(model_path, name)) for name in ("config.json", PROBE_FILE)):
        raise EvaluationError(f"{model_path}: not a model folder (no config.json)")
    try:
        return load_scorer(model_path, device=device, **options)
    except DeepfakeHFError:  # ModelLoadError and ProbeError name the folder and the reason
        raise
    except (OSError, KeyError) as error:
        raise EvaluationError(f"{model_path}: cannot load the model ({one_line(error, 300)})") from None
    except ValueError as error:  # no "fake" label, or a bad option
        raise EvaluationError(f"{model_path}: {one_line(error)}") from None


# ----------------------------------------------------------------------------------------- data
def parse_named_sources(sources=(), named=()):
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


def load_test_set(spec, faces="none", num_frames=DEFAULT_NUM_FRAMES, cache_dir=None, label_map=None,
                  frame_sampling=None, return_report=False):
    """One data source as a dataset with columns image, label, path, group, method, frame (DataSourceError if
    unusable); with `return_report`, (dataset, data.load_source's report)."""
    return load_source(spec, label_map=label_map, faces=faces, num_frames=num_frames, cache_dir=cache_dir,
                       default_split="test", verbose=False, frame_sampling=frame_sampling,
                       return_report=return_report)


def load_frames_for(scorer, spec, cache_dir=None, label_map=None, counts=None):
    """(dataset, frames_are_crops): a test set's whole frames, taken as `scorer` takes a file's frames (its
    number and sampling rule), for the scorer's face policy to run on as it does in predict; except that a
    DeepfakeBench JSON's frames are its aligned face crops (`frames_are_crops`), scored as they are.
    `counts`, a dict, receives data.load_source's counts (files, skipped, ...)."""
    dataset, report = load_test_set(spec, num_frames=scorer.num_frames, cache_dir=cache_dir, label_map=label_map,
                                    frame_sampling=scorer.frame_sampling, return_report=True)
    if counts is not None:
        counts.update(report["counts"])
    return dataset, report["kind"] == "deepfakebench"


def video_keys(paths, groups):
    """The video each row belongs to, as a full path: video-level metrics average over these.

    A video file's (or animated image's) frames share its path. Images (face crops, frame folders) belong
    to their folder when their `group` is shared with other image files, else each still is its own item. Folder names alone
    are not enough: FF++ fakes of one source video sit in folders of the same name under each method
    (DeepfakeBench's grouping merges them), and a manifest's video id can repeat across methods, so
    the key is the full folder path, split further by group where one folder holds several groups.
    """
    from deepfake_hf.media import media_kind

    paths = [str(p) for p in paths]
    groups = [str(g) for g in groups]
    files_of = {}  # group -> the distinct files of its rows (an animated image's frames share one file)
    for path, group in zip(paths, groups):
        files_of.setdefault(group, set()).add(path)
    containers = []
    for path, group in zip(paths, groups):
        if media_kind(path) == "video" or len(files_of[group]) == 1:
            containers.append(path)
        else:
            containers.append(os.path.dirname(path))
    groups_in = {}
    for container, group in zip(containers, groups):
        groups_in.setdefault(container, set()).add(group)
    return [container if len(groups_in[container]) == 1 else f"{container}#{group}"
            for container, group in zip(containers, groups)]


# ----------------------------------------------------------------------------------------- perturbations
def parse_perturbations(items):
    """["jpeg:90,70", "blur:1"] -> [("jpeg", 90.0), ("jpeg", 70.0), ("blur", 1.0)], validated."""
    parsed = []
    for item in items or ():
        kind, sep, values = str(item).partition(":")
        if kind not in PERTURBATIONS or not sep:
            raise EvaluationError(f"--perturb {item!r}: expected KIND:V1,V2 with KIND one of "
                                  f"{', '.join(PERTURBATIONS)}")
        for value in values.split(","):
            try:
                strength = float(value)
            except ValueError:
                raise EvaluationError(f"--perturb {item!r}: {value!r} is not a number") from None
            valid = {"jpeg": 1 <= strength <= 100, "resize": 0 < strength <= 1, "blur": strength > 0,
                     "noise": strength > 0}[kind]
            if not valid:
                raise EvaluationError(f"--perturb {item!r}: {value} out of range for {kind} "
                                      "(jpeg 1-100, resize (0, 1], blur > 0, noise > 0)")
            parsed.append((kind, strength))
    return parsed


def perturbation_name(kind, strength):
    return f"{kind}:{strength:g}"


def perturb(image, kind, strength, seed=0):
    """A degraded copy of a PIL RGB image: JPEG re-encoding, down-then-up resizing, Gaussian blur or noise."""
    from PIL import Image, ImageFilter

    image = image.convert("RGB")
    if kind == "jpeg":
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(round(strength)))
        return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    if kind == "resize":  # lose resolution, keep the size the processor expects
        small = (max(1, round(image.width * strength)), max(1, round(image.height * strength)))
        return image.resize(small, Image.BILINEAR).resize(image.size, Image.BILINEAR)
    if kind == "blur":
        return image.filter(ImageFilter.GaussianBlur(radius=strength))
    if kind == "noise":
        rng = np.random.default_rng(seed)
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        noisy = np.clip(pixels + rng.normal(0.0, strength, pixels.shape), 0.0, 1.0)
        return Image.fromarray((noisy * 255.0 + 0.5).astype(np.uint8))
    raise EvaluationError(f"unknown perturbation {kind!r}")


# ----------------------------------------------------------------------------------------- scoring
def score_dataset(scorer, dataset, batch_size=None, perturbation=None, description="scoring", no_face=None,
                  ranks=None, parts=None, find_faces=True):
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
    from tqdm.auto import tqdm

    from deepfake_hf.scoring.scorer import Batcher, PendingScores

    margins = np.full(len(dataset), np.nan)
    paths = dataset["path"]
    batcher = Batcher(scorer, batch_size)
    waiting = []  # (first row, plan, pending scores) of files whose crops are not all scored yet

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


def test_set_metrics(labels, scores, groups, methods, threshold, aggregation=DEFAULT_AGGREGATION, n_resamples=1000,
                     seed=0, confident_threshold=DEFAULT_CONFIDENT_THRESHOLD,
                     confident_fraction=DEFAULT_CONFIDENT_FRACTION):
    """metrics.json's entry for one test set: frame, video and per-method metrics.

    A method's metrics compare the set's real samples with that method's fakes (as FF++ per-method tables do).
    """
    options = dict(threshold=threshold, aggregation=aggregation, confident_threshold=confident_threshold,
                   confident_fraction=confident_fraction)
    labels = np.asarray(labels, dtype=int)
    scores = np.asarray(scores, dtype=float)
    groups = np.asarray(groups, dtype=object)
    methods = np.asarray(methods, dtype=object)
    entry = evaluate_scores(labels, scores, groups, n_resamples=n_resamples, seed=seed, **options)
    _explain_missing_intervals(entry, labels, groups, n_resamples)
    entry["per_method"] = {}
    fake_methods = sorted({m for m, y in zip(methods, labels) if y == 1 and m})
    if len(fake_methods) > 1 or (fake_methods and (labels == 0).any()):
        for method in fake_methods:
            rows = (labels == 0) | (methods == method)
            # Intervals resample whole videos of this comparison, as the set's own intervals do.
            method_entry = evaluate_scores(labels[rows], scores[rows], groups[rows], n_resamples=n_resamples,
                                           seed=seed, **options)
            _explain_missing_intervals(method_entry, labels[rows], groups[rows], n_resamples)
            entry["per_method"][method] = method_entry
    return entry


def _explain_missing_intervals(entry, labels, groups, n_resamples):
    """Add "ci_reasons" {metric: why its interval is null} to the frame and video levels of `entry`."""
    videos = {}
    for group, label in zip(groups, labels):
        videos.setdefault(str(group), set()).add(int(label))
    real_videos = sum(1 for found in videos.values() if 0 in found)
    fake_videos = sum(1 for found in videos.values() if 1 in found)
    for level in ("frame", "video"):
        metrics = entry.get(level)
        if not metrics:
            continue
        reasons = {}
        for key, interval in (metrics.get("ci") or {}).items():
            if interval is not None:
                continue
            if metrics.get(key) is None:
                reasons[key] = metrics.get("reasons", {}).get(key, "the metric itself is undefined")
            elif n_resamples <= 0:
                reasons[key] = "no bootstrap resamples (--bootstrap 0)"
            elif not (real_videos and fake_videos):
                reasons[key] = f"only one class among its videos ({'fake' if fake_videos else 'real'} only)"
            else:
                reasons[key] = (f"too few resamples define it: {real_videos} real and {fake_videos} fake videos "
                                f"(a resample often draws one class only)")
        metrics["ci_reasons"] = reasons


@undone_on_failure  # a missing model or unusable data leaves no empty --out folder behind
def evaluate_model(model_path, test_sets, out_dir, perturbations=(), faces=None, num_frames=None,
                   batch_size=32, n_resamples=1000, aggregation=None, overwrite=False, device=None, seed=0,
                   cache_dir=None, plots=True, label_map=None, crop="align", trust_remote_code=False):
    """Score `test_sets` ({name: data spec}) with the model and write predictions, metrics, report and plots.

    `faces` ("none", "auto", "dlib" or a detector object) is the scorer's face policy, as in `predict`;
    `label_map` ({folder or label name: "real"/"fake"}) is passed to `data.load_source` for every test set.
    Returns the metrics dict (also in metrics.json).
    """
    from deepfake_hf.runtime.distributed import barrier, current_ranks

    ranks = current_ranks()
    out_dir = Path(out_dir)
    # Every rank checks (so all refuse alike); none writes there before the ranks first meet.
    prepare_output_dir(out_dir, overwrite)
    test_sets = {str(name): os.fspath(spec) for name, spec in test_sets.items()}
    scorer = load_model(model_path, device=device, faces=faces, num_frames=num_frames, aggregation=aggregation,
                        crop=crop, trust_remote_code=trust_remote_code)
    aggregation = scorer.aggregation
    aggregation_options = dict(confident_threshold=scorer.confident_threshold,
                               confident_fraction=scorer.confident_fraction)
    perturbations = parse_perturbations(perturbations) if perturbations and isinstance(perturbations[0], str) \
        else list(perturbations)

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
    if not datasets_by_name:
        raise EvaluationError("; ".join(errors.values()))
    result = {"model": str(model_path), "threshold": scorer.threshold, "calibration_temperature": scorer.temperature,
              "video_aggregation": aggregation, "test_sets": {}, "sources": dict(test_sets)}
    if errors:
        result["errors"] = errors
    calibration_record = Path(model_path) / "calibration.json"
    if calibration_record.is_file():  # how the stored threshold and temperature were fitted
        result["calibration"] = json.loads(calibration_record.read_text())
    rows, curves = [], {}
    robustness = {}
    for set_number, (name, dataset) in enumerate(datasets_by_name.items()):
        no_face = []
        parts = out_dir / f".scores-{set_number}"
        find_faces = not frames_are_crops[name]
        if not find_faces and finds_faces(scorer.face_detector):
            result.setdefault("notes", {})[name] = ("DeepfakeBench frames are aligned face crops: scored as they "
                                                   f"are, without the {scorer.face_detector.name} face policy")
        margins = score_dataset(scorer, dataset, batch_size, description=name, no_face=no_face, ranks=ranks,
                                find_faces=find_faces, parts=parts)
        columns, scores = _scored_rows(dataset, margins, scorer)
        try:
            result["test_sets"][name] = test_set_metrics(
                columns["label"], scores, columns["video"], columns["method"], scorer.threshold, aggregation,
                n_resamples, seed, **aggregation_options)
        except ValueError as error:  # e.g. one video's frames labelled both real and fake
            result.setdefault("errors", {})[name] = f"{test_sets[name]}: {one_line(error)}"
            continue
        if no_face:  # their rows are whole-frame guesses of a face model, as in predict: say how many
            result["test_sets"][name]["files_without_face"] = len(no_face)
        if load_counts[name].get("skipped"):  # unreadable files, looping links...: a warning line each, counted
            result["test_sets"][name]["files_skipped"] = load_counts[name]["skipped"]
        curves[name] = (np.asarray(columns["label"]), scores)
        rows.extend(zip([name] * len(scores), columns["path"], columns["group"], columns["video"], columns["frame"],
                        columns["label"], columns["method"], scores.tolist()))
        if perturbations:
            robustness[name] = {"clean": _robustness_entry(columns, scores, scorer.threshold, aggregation,
                                                           aggregation_options)}
            for perturbation_number, perturbation in enumerate(perturbations):
                key = perturbation_name(*perturbation)
                # Perturbed scores may make another person the most suspicious one: its rows count then.
                perturbed = score_dataset(scorer, dataset, batch_size, perturbation, description=f"{name} {key}",
                                          find_faces=find_faces,
                                          ranks=ranks, parts=out_dir / f".scores-{set_number}-{perturbation_number}")
                robustness[name][key] = _robustness_entry(*_scored_rows(dataset, perturbed, scorer), scorer.threshold,
                                                          aggregation, aggregation_options)
    if not result["test_sets"]:
        raise EvaluationError("; ".join(result["errors"].values()))
    if robustness:
        result["robustness"] = robustness
    if not ranks.is_main:  # rank 0 writes the outputs; every rank returns the same metrics
        return result

    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "predictions.csv", "w", newline="") as handle:
        writer = SafeCsvWriter(handle)
        writer.writerow(["test_set", "path", "group", "video", "frame", "label", "method", "score"])
        writer.writerows(rows)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    if plots:
        result_plots = write_plots(curves, out_dir, robustness)
    else:
        result_plots = []
    (out_dir / "report.md").write_text(render_report(result, result_plots))
    return result


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
    frame = binary_metrics(columns["label"], scores, threshold)
    entry = {key: frame[key] for key in ("auroc", "ap", "eer", "accuracy")}
    if len(set(columns["video"])) < len(scores):
        _, v_scores, v_labels = video_scores(scores, columns["video"], aggregation, columns["label"],
                                             **aggregation_options)
        entry["video_auroc"] = binary_metrics(v_labels, v_scores, threshold)["auroc"]
    return entry


# ----------------------------------------------------------------------------------------- report
def _cell(metrics, key, percent=True):
    if not metrics or metrics.get(key) is None:
        return "n/a"
    scale, digits = (100.0, 1) if percent else (1.0, 3)
    text = f"{metrics[key] * scale:.{digits}f}"
    interval = (metrics.get("ci") or {}).get(key)
    if interval:
        text += f" [{interval[0] * scale:.{digits}f}, {interval[1] * scale:.{digits}f}]"
    return text


def summary_table(result):
    """The cross-dataset table as markdown lines: rows test sets, columns as in the papers."""
    lines = ["| test set | frames | videos | " + " | ".join(label for _, _, label in TABLE_COLUMNS) + " |",
             "|---|---|---|" + "---|" * len(TABLE_COLUMNS)]
    for name, entry in result["test_sets"].items():
        videos = entry["video"]["n"] if entry["video"] else "-"
        cells = [_cell(entry[level], key) for level, key, _ in TABLE_COLUMNS]
        lines.append(f"| {name} | {entry['frame']['n']} | {videos} | " + " | ".join(cells) + " |")
    return lines


def render_report(result, plots=()):
    """report.md: cross-dataset table (percent, 95% bootstrap intervals), per-method and robustness tables."""
    lines = [f"# Evaluation of `{result['model']}`", "",
             f"Decision threshold {result['threshold']:g} (fake probability), calibration temperature "
             f"{result['calibration_temperature']:g}, video score: {result['video_aggregation']} of frame "
             "scores per video (grouped by full path). Values in percent; brackets: 95% bootstrap intervals "
             "that resample whole videos (stills: single images).", ""]
    lines += summary_table(result)
    for name, message in result.get("errors", {}).items():
        lines += ["", f"**{name} not evaluated**: {message}"]
    undefined = {(name, level, key): reason for name, entry in result["test_sets"].items()
                 for level in ("frame", "video") if entry[level]
                 for key, reason in entry[level]["reasons"].items() if key in ("auroc", "eer", "ap")}
    if undefined:
        lines += ["", "n/a: " + "; ".join(sorted({f"{name} {level}: {reason}"
                                                   for (name, level, _), reason in undefined.items()}))]
    method_rows = [(name, method, m) for name, entry in result["test_sets"].items()
                   for method, m in entry["per_method"].items()]
    if method_rows:
        lines += ["", "## Per manipulation method (real samples vs. that method's fakes)", "",
                  "| test set | method | frame AUROC | video AUROC | EER | AP |", "|---|---|---|---|---|---|"]
        for name, method, m in method_rows:
            lines.append(f"| {name} | {method} | {_cell(m['frame'], 'auroc')} | {_cell(m['video'], 'auroc')} | "
                         f"{_cell(m['frame'], 'eer')} | {_cell(m['frame'], 'ap')} |")
        missing = sorted({f"{name} {method} {level}: {reason}" for name, method, m in method_rows
                          for level in ("frame", "video") if m[level]
                          for key, reason in m[level].get("ci_reasons", {}).items() if key in ("auroc", "eer", "ap")})
        if missing:
            lines += ["", "No interval: " + "; ".join(missing)]
    if result.get("robustness"):
        keys = list(next(iter(result["robustness"].values())))
        lines += ["", "## Robustness (frame AUROC under perturbation)", "",
                  "| test set | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
        for name, entries in result["robustness"].items():
            lines.append(f"| {name} | " + " | ".join(_cell(entries[key], "auroc") for key in keys) + " |")
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    lines += ["", "Metric definitions: AUROC and AP (average precision) from the ranking of fake probabilities; "
              "EER is the interpolated ROC point where FPR = 1 - TPR; EER (DeepfakeBench) is the FPR of the "
              "existing ROC point nearest to that line (no interpolation), as DeepfakeBench reports it; "
              "accuracy at the decision threshold. "
              "Full values, log loss, Brier score and ECE: metrics.json.", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------- plots
def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise EvaluationError("plots need matplotlib: pip install 'deepfake-hf[app]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(curves, out_dir, robustness=None):
    """ROC curves, score histograms per class, reliability diagram (and robustness) as PNG files."""
    from sklearn.calibration import calibration_curve

    plt = _pyplot()
    out_dir = Path(out_dir)
    written = []

    figure, axis, _ = roc_figure(curves, plt)
    written.append(_save(figure, out_dir / "roc.png", plt))

    count = len(curves)
    figure, axes = plt.subplots(1, count, figsize=(4.5 * count, 3.5), squeeze=False)
    bins = np.linspace(0, 1, 26)
    for axis, (name, (labels, scores)) in zip(axes[0], curves.items()):
        axis.hist(scores[labels == 0], bins=bins, alpha=0.6, label=f"real (n={int((labels == 0).sum())})")
        axis.hist(scores[labels == 1], bins=bins, alpha=0.6, label=f"fake (n={int((labels == 1).sum())})")
        axis.set(title=name, xlabel="fake probability", ylabel="frames")
        axis.legend(fontsize=8)
    figure.suptitle("Score distribution per class")
    written.append(_save(figure, out_dir / "score_histograms.png", plt))

    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="perfectly calibrated")
    for name, (labels, scores) in curves.items():
        if labels.size:
            prob_true, prob_pred = calibration_curve(labels, scores, n_bins=15, strategy="uniform")  # ECE's bins
            ece = binary_metrics(labels, scores)["ece"]
            axis.plot(prob_pred, prob_true, "o-", label=f"{name} (ECE {ece:.3f})")
    axis.set(xlabel="mean predicted fake probability", ylabel="fraction fake", title="Reliability diagram",
             xlim=(0, 1), ylim=(0, 1))
    axis.legend(loc="upper left", fontsize=8)
    written.append(_save(figure, out_dir / "reliability.png", plt))

    if robustness:
        written.append(plot_robustness(robustness, out_dir / "robustness.png"))
    return written


def roc_figure(curves, plt=None):
    """(figure, ROC axis, legend) for {name: (labels, scores)}.

    The legend sits in its own panel below the plot: inside the axes, a corner legend with several
    test sets covered the curves (a weak detector's curve runs through every corner).
    """
    from sklearn.metrics import roc_curve

    plt = plt or _pyplot()
    entries = 2 + len(curves)
    legend_height = 0.25 + 0.2 * entries
    figure, (axis, legend_axis) = plt.subplots(2, 1, figsize=(5, 5 + legend_height),
                                               gridspec_kw={"height_ratios": [5, legend_height]})
    for name, (labels, scores) in curves.items():
        if 0 < labels.sum() < labels.size:
            fpr, tpr, _ = roc_curve(labels, scores)
            auroc = binary_metrics(labels, scores)["auroc"]
            axis.plot(fpr, tpr, label=f"{name} (AUROC {auroc:.3f})")
    axis.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="chance")
    axis.plot([0, 1], [1, 0], ":", color="grey", linewidth=0.8, label="EER line")
    axis.set(xlabel="false-positive rate (real called fake)", ylabel="true-positive rate (fake caught)",
             title="ROC (frame level)", xlim=(0, 1), ylim=(0, 1.01))
    legend_axis.axis("off")
    legend = legend_axis.legend(*axis.get_legend_handles_labels(), loc="center", fontsize=8, frameon=False)
    return figure, axis, legend


def plot_robustness(robustness, path):
    """AUROC against perturbation strength, one panel per perturbation kind, one line per test set."""
    plt = _pyplot()
    kinds = [kind for kind in PERTURBATIONS
             if any(key.startswith(kind + ":") for entries in robustness.values() for key in entries)]
    figure, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 3.5), squeeze=False)
    for axis, kind in zip(axes[0], kinds):
        label, smaller_is_stronger, unperturbed = PERTURBATIONS[kind]
        for name, entries in robustness.items():
            points = sorted((float(key.split(":")[1]), entry["auroc"]) for key, entry in entries.items()
                            if key.startswith(kind + ":") and entry["auroc"] is not None)
            if entries["clean"]["auroc"] is not None:  # the unperturbed score starts each line
                points = sorted(points + [(unperturbed, entries["clean"]["auroc"])])
            if points:
                axis.plot(*zip(*points), "o-", label=name)
        if smaller_is_stronger:
            axis.invert_xaxis()
        axis.set(title=kind, xlabel=f"{label} (stronger ->)", ylabel="frame AUROC", ylim=(0, 1.02))
        axis.legend(fontsize=8)
    figure.suptitle("Robustness: frame AUROC against perturbation strength")
    return _save(figure, path, plt)


def _save(figure, path, plt):
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return str(path)


# ----------------------------------------------------------------------------------------- probes
@undone_on_failure
def run_probe(data, backbones, out_dir, classifier="logreg", folds=5, pca=None, standardize=True, seed=0,
              faces="none", num_frames=None, batch_size=32, n_resamples=1000, overwrite=False, cache_dir=None,
              plots=True, label_map=None, **params):
    """Extract features, cross-validate, report like `evaluate`, fit on everything and save the probe.

    `data` is {name: spec}; all sources are pooled into one training set (`label_map` as in `data.load_source`).
    Returns the metrics dict.
    """
    from deepfake_hf.data.datasets import linked_groups
    from deepfake_hf.evaluation.probes import (
        CLASSIFIERS,
        LINEAR_CLASSIFIERS,
        ProbeError,
        build_probe,
        cross_validated_scores,
        extract_features,
        probe_to_detector,
        save_probe,
    )

    out_dir = Path(out_dir)
    prepare_output_dir(out_dir, overwrite)
    num_frames = num_frames or DEFAULT_NUM_FRAMES
    if not backbones:
        raise ProbeError("give at least one --backbone")
    if classifier not in CLASSIFIERS:
        raise ProbeError(f"classifier {classifier!r} is not one of {', '.join(CLASSIFIERS)}")
    features, labels, paths, groups, methods, frames = [], [], [], [], [], []
    for name, spec in data.items():
        dataset = load_test_set(spec, faces=faces, num_frames=num_frames, label_map=label_map)
        features.append(extract_features(backbones, dataset, batch_size, cache_dir=cache_dir))
        labels += dataset["label"]
        paths += dataset["path"]
        groups += dataset["group"]
        methods += dataset["method"]
        frames += dataset["frame"]
    features = np.concatenate(features)
    labels = np.asarray(labels, dtype=int)
    videos = video_keys(paths, groups)
    # folds keep linked groups together (an FF++ fake A_B with its source videos A and B), as split_by_group does
    components = linked_groups(groups)
    fold_groups = [components[group] for group in groups]
    scores, used_folds = cross_validated_scores(features, labels, fold_groups, classifier, folds, pca, standardize,
                                                seed, **params)
    name = f"{used_folds}-fold CV"
    description = f"probe {classifier} on {' + '.join(map(str, backbones))}" + (f", PCA {pca}" if pca else "")
    result = {"model": description, "threshold": DEFAULT_THRESHOLD,
              "calibration_temperature": DEFAULT_CALIBRATION_TEMPERATURE, "video_aggregation": DEFAULT_AGGREGATION,
              "test_sets": {name: test_set_metrics(labels, scores, videos, methods, DEFAULT_THRESHOLD,
                                                   n_resamples=n_resamples, seed=seed)},
              "probe": {"classifier": classifier, "backbones": [str(b) for b in backbones], "pca": pca,
                        "standardize": standardize, "folds": used_folds, "feature_dim": int(features.shape[1]),
                        "n": int(labels.size), "sources": {k: str(v) for k, v in data.items()}}}

    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "predictions.csv", "w", newline="") as handle:
        writer = SafeCsvWriter(handle)
        writer.writerow(["test_set", "path", "group", "video", "frame", "label", "method", "score"])
        writer.writerows(zip([name] * labels.size, paths, groups, videos, frames, labels.tolist(), methods,
                             scores.tolist()))
    n_components = min(pca, labels.size, features.shape[1]) if pca else None
    final = build_probe(classifier, n_components, standardize, seed, **params).fit(features, labels)
    save_probe(out_dir / "probe", backbones, classifier, n_components, standardize, seed, params, features, labels)
    result["probe"]["saved"] = str(out_dir / "probe")
    if classifier in LINEAR_CLASSIFIERS and len(backbones) == 1:
        probe_to_detector(backbones[0], final, out_dir / "model")
        result["probe"]["detector"] = str(out_dir / "model")
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    written = write_plots({name: (labels, scores)}, out_dir) if plots else []
    (out_dir / "report.md").write_text(render_report(result, written))
    return result


# ----------------------------------------------------------------------------------------- calibration
def calibrate_model(model_path, val_sources, method="eer", target_fpr=None, faces=None, num_frames=None,
                    batch_size=32, device=None, cache_dir=None, label_map=None, crop="align", trust_remote_code=False):
    """Fit temperature scaling and a threshold on validation data; store both in the model's config.json.

    method "eer": the threshold at the equal-error point; "fpr": the lowest threshold whose false-positive
    rate on the validation reals is at most `target_fpr`. `label_map` as in `evaluate_model`. The previous values and the fit's numbers are
    written to calibration.json next to the config. Returns that record.
    """
    from deepfake_hf.evaluation.metrics import equal_error_rate

    if method not in ("eer", "fpr"):
        raise EvaluationError(f"calibration method must be 'eer' or 'fpr', got {method!r}")
    if method == "fpr" and (target_fpr is None or not 0.0 <= target_fpr < 1.0):
        raise EvaluationError("--target-fpr in [0, 1) is needed with --method fpr")
    val_sources = {str(name): os.fspath(spec) for name, spec in val_sources.items()}
    scorer = load_model(model_path, device=device, faces=faces, num_frames=num_frames, crop=crop,
                        trust_remote_code=trust_remote_code)
    if not hasattr(getattr(scorer.model, "config", None), "calibration_temperature"):
        raise EvaluationError(f"{model_path}: not a deepfake-hf detector (no calibration_temperature in its config)")
    labels, margins = [], []
    for name, spec in val_sources.items():
        dataset, crops = load_frames_for(scorer, spec, cache_dir=cache_dir, label_map=label_map)
        scored = score_dataset(scorer, dataset, batch_size, description=f"calibrate {name}", find_faces=not crops)
        kept = ~np.isnan(scored)  # the rows predict scores (see score_dataset)
        margins.append(scored[kept])
        labels.append(np.asarray(dataset["label"])[kept])
    labels, margins = np.concatenate(labels), np.concatenate(margins)
    if not 0 < labels.sum() < labels.size:
        raise EvaluationError("validation data must contain both real and fake samples")

    raw = scorer.raw_margins(margins)
    temperature = fit_temperature(labels, raw)
    probabilities = sigmoid(raw / temperature)
    if method == "eer":
        threshold = equal_error_rate(labels, probabilities)[1]
    else:
        threshold = threshold_at_fpr(labels, probabilities, target_fpr)
    threshold = float(min(max(threshold, 1e-6), 1 - 1e-6))
    before = binary_metrics(labels, scorer.probabilities(margins), scorer.threshold)
    after = binary_metrics(labels, probabilities, threshold)

    # Through the config class, not raw JSON: its validation refuses a value the model could not load with.
    try:
        config = DeepfakeDetectorConfig.from_pretrained(model_path)
        calibrated = DeepfakeDetectorConfig.from_dict(
            {**config.to_dict(), "calibration_temperature": temperature, "threshold": threshold})
    except (OSError, ValueError, TypeError) as error:
        raise EvaluationError(f"{model_path}: calibration not stored ({one_line(error, 300)})") from None
    record = {
        "method": method, "target_fpr": target_fpr, "validation": dict(val_sources), "n": int(labels.size),
        "previous": {"calibration_temperature": config.calibration_temperature, "threshold": config.threshold},
        "calibration_temperature": temperature, "threshold": threshold,
        "before": {key: before[key] for key in ("log_loss", "ece", "accuracy", "balanced_accuracy")},
        "after": {key: after[key] for key in ("log_loss", "ece", "accuracy", "balanced_accuracy")},
        "false_positive_rate": float((probabilities[labels == 0] >= threshold).mean()),
        "true_positive_rate": float((probabilities[labels == 1] >= threshold).mean()),
    }
    calibrated.save_pretrained(model_path)
    (Path(model_path) / "calibration.json").write_text(json.dumps(record, indent=2))
    return record
