"""Model cards: the Hub page of a detector, rendered from its folder, its run and its metrics.

`render_model_card(model_dir)` reads the model's config (and weights header, for the size), the run's
resolved recipe, `metrics.json` (the evaluation's output) and `trainer_state.json` when they are there,
merges the per-recipe card source in `model_cards/<recipe>.yaml` (description, citation) and renders
`model_cards/template.md` with `huggingface_hub.ModelCard`. Every number on the card comes from those
files: a metric the run did not compute is not shown, and a model without an evaluation gets a valid card
without `model-index`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from deepfake_hf.configuration_deepfake import DEFAULT_NUM_FRAMES, DEFAULT_THRESHOLD
from deepfake_hf.evaluation.metric_defs import in_table, model_index_metrics

MODEL_CARD_DIRNAME = "model_cards"
TEMPLATE_NAME = "template.md"

# Which metrics go where comes from the metric registry (`evaluation.metric_defs`): `model-index` holds those
# with a `model_index_type`; the body's evaluation tables those whose `tables` name "card", the
# probability-quality table (shown with the threshold and calibration) those naming "card_calibration".
# Trainer bookkeeping in val_metrics.json that is not a metric of the model.
VALIDATION_SKIP = ("runtime", "samples_per_second", "steps_per_second", "epoch")
LEVELS = ("frame", "video")
# Recipe keys that never go into the card's training table (the published numbers live in `reference`:
# they are not this run's, so the card does not repeat them).
# `model.architecture` only matters for random-init runs; the card states the saved config instead.
RECIPE_SKIP_KEYS = ("reference", "source_file", "model.architecture")


# ------------------------------------------------------------------------------------------ files
def model_cards_dir():
    """`model_cards/`: inside the installed package, or at the top of the source tree."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / MODEL_CARD_DIRNAME, package.parent / MODEL_CARD_DIRNAME):
        if (candidate / TEMPLATE_NAME).is_file():
            return candidate
    raise FileNotFoundError(f"{MODEL_CARD_DIRNAME}/{TEMPLATE_NAME} not found next to {package}")


def load_card_source(recipe_name):
    """The per-recipe card source (title, description, citation, references, base_model, license) or {}."""
    import yaml

    if not recipe_name:
        return {}
    path = model_cards_dir() / f"{recipe_name}.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def locate_run(model_dir):
    """(model folder, run folder or None) for a model folder, or a run folder holding `model/`."""
    path = Path(model_dir)
    if (path / "config.json").is_file():
        parent = path.parent
        is_run = any((parent / name).exists() for name in ("recipe.yaml", "eval", "trainer_state.json"))
        return path, (parent if is_run else None)
    if (path / "model" / "config.json").is_file():
        return path / "model", path
    raise FileNotFoundError(f"{path}: no config.json here or in {path / 'model'} (not a saved model or run folder)")


def _read_json(path):
    from deepfake_hf.safety import read_json

    return read_json(path)  # one-line UnsafeFileError (a ValueError) for invalid, huge or deeply nested JSON


def saved_preprocessing(model_path: str | os.PathLike) -> str | None:
    """What the folder's saved image processor does, in one line (from preprocessor_config.json, never running the
    folder's code), or None when it has none or it cannot be read."""
    from deepfake_hf.image_processing_deepfake import describe_settings
    from deepfake_hf.safety import UnsafeFileError

    path = Path(model_path) / "preprocessor_config.json"
    if not path.is_file():
        return None
    try:
        settings = _read_json(path)
        return describe_settings(settings) if isinstance(settings, dict) else None
    except (UnsafeFileError, ValueError, TypeError, KeyError):  # a malformed file: the card says nothing of it
        return None


def converted_source(card_path: str | os.PathLike | None) -> dict | None:
    """What a `deepfake-hf convert` card (convert/card.py: front matter tagged `converted`) says of the source:
    title, description, the paper (as the citation) and its table and notes (`provenance`); None for other cards."""
    if card_path is None or not Path(card_path).is_file():
        return None
    text = Path(card_path).read_text(encoding="utf-8", errors="replace")
    front = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
    if not front or not re.search(r"^tags:.*\bconverted\b", front.group(1), re.MULTILINE):
        return None
    body = text[front.end():]
    title = re.search(r"^# (.+)$", body, re.MULTILINE)
    description = re.search(r"^Converted with .+$", body, re.MULTILINE)
    table = body.find("| | |")
    paper = re.search(r"^\| paper \| (.+?) \|$", body, re.MULTILINE)
    if not (title and description and table >= 0):
        return None
    licence = re.search(r"^\| licence \| ([a-z0-9][a-z0-9.+-]*) \|$", body, re.MULTILINE)
    scope = re.search(r"^\| input the source was evaluated on \| (.+?) \|$", body, re.MULTILINE)
    return {"title": title.group(1).strip(), "description": _file_names(description.group(0).strip()),
            "citation": paper.group(1).strip() if paper else None, "provenance": _file_names(body[table:].strip()),
            # an identifier the source declared, else "other": the source's terms, not this package's
            "license": licence.group(1) if licence else "other", "scope": scope.group(1) if scope else None}


def _file_names(text: str) -> str:
    """`text` with this machine's absolute paths (the files convert was given) cut to their last part; URLs and Hub
    ids are kept."""
    return re.sub(r"(?<![\w:/.~-])~?/[^\s`|,;()]*", lambda m: Path(m.group(0)).name or m.group(0), text)


def find_metrics(model_path, run_path):
    """The evaluation's metrics.json next to the model or in the run's eval/ folder, or None."""
    candidates = [model_path / "metrics.json"]
    if run_path is not None:
        candidates += [run_path / "eval" / "metrics.json", run_path / "metrics.json"]
    return next((path for path in candidates if path.is_file()), None)


def load_metrics(metrics, model_path=None, run_path=None):
    """metrics.json contents from a dict, a path, or (None) the run's own file; None when there is none."""
    if metrics is None:
        if model_path is None:
            return None
        metrics = find_metrics(model_path, run_path)
        if metrics is None:
            return None
    if isinstance(metrics, (str, Path)):
        metrics = _read_json(metrics)
    if not isinstance(metrics, dict):
        raise TypeError(f"metrics: expected a metrics.json dict or path, got {type(metrics).__name__}")
    return metrics


def load_recipe_dict(recipe, run_path=None):
    """The resolved recipe as a plain dict: from a Recipe, a dict, a YAML path, a built-in name, or the run."""
    import yaml

    if recipe is None:
        if run_path is None or not (run_path / "recipe.yaml").is_file():
            return None
        recipe = run_path / "recipe.yaml"
    if hasattr(recipe, "to_dict"):
        return recipe.to_dict()
    if isinstance(recipe, dict):
        return dict(recipe)
    path = Path(recipe)
    if not path.is_file():
        from deepfake_hf.training.recipes import find_recipe  # a built-in recipe name

        path = find_recipe(str(recipe))
    data = yaml.safe_load(path.read_text()) or {}
    data.setdefault("name", path.stem)
    return data


def count_parameters(model_path):
    """Number of parameters from the safetensors headers (no weights are loaded); None when unknown.

    Each header is checked first (`safety.safetensors_header`): a broken one is a one-line `UnsafeFileError`."""
    from deepfake_hf.safety import count_parameters as count

    return count(sorted(Path(model_path).glob("*.safetensors")))


def public_paths(value, root):
    """`value` (parsed JSON or YAML) with every local absolute path (or `~` path) made relative to `root`, or cut
    to its file name when it lies elsewhere: what is published must not carry this machine's folders."""
    if isinstance(value, dict):
        return {key: public_paths(item, root) for key, item in value.items()}
    if isinstance(value, list):
        return [public_paths(item, root) for item in value]
    if isinstance(value, str) and (os.path.isabs(value) or value.startswith("~")):
        path = Path(os.path.expanduser(value))
        try:
            return path.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            return path.name
    return value


# A Hub repo id: namespace/name of letters, digits, "-", "_" and "." (as huggingface_hub validates them).
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


def is_hub_id(text, *folders):
    """True when `text` reads as a Hub repo id and names no existing local path (here or under `folders`)."""
    if not isinstance(text, str) or not HUB_ID.match(text) or ".." in text or "--" in text or text.endswith("."):
        return False
    return not any((Path(folder) / text).exists() for folder in (".", *[f for f in folders if f is not None]))


def default_face_mode(model_path: str | os.PathLike) -> str:
    """The face mode `predict` (and every other door) runs for the model at `model_path` by default: the one its
    config records, else the picture as given ("none"): `faces.prefer_recorded`, the rule every door's scorer
    applies."""
    from deepfake_hf.defaults import MODEL_FACES
    from deepfake_hf.faces import face_mode, prefer_recorded
    from deepfake_hf.safety import UnsafeFileError

    try:
        recorded = _read_json(Path(model_path) / "config.json").get("face_preprocessing")
    except (UnsafeFileError, AttributeError):
        recorded = None
    return face_mode(prefer_recorded(MODEL_FACES, recorded if isinstance(recorded, str) else None)).name


def _endpoint_requirements(model_path: Path) -> list[str] | None:
    """The requirement lines of the folder's Inference Endpoints handler, or None when it has no handler.py."""
    from deepfake_hf.publish.endpoint import HANDLER_FILE, REQUIREMENTS_FILE

    if not (model_path / HANDLER_FILE).is_file() or not (model_path / REQUIREMENTS_FILE).is_file():
        return None
    return [line.strip() for line in (model_path / REQUIREMENTS_FILE).read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------ formatting
def _number(value):
    if value is None:
        return "undefined"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def _human_count(count):
    if count is None:
        return "an unknown number of"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count / size:.1f}{unit}"
    return str(count)


def _with_interval(values, key):
    text = _number(values.get(key))
    interval = (values.get("ci") or {}).get(key)
    if interval and values.get(key) is not None:
        text += f" ({_number(interval[0])}–{_number(interval[1])})"
    return text


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _labels(table):
    """{metrics.json key: display label} of the registered metrics shown in `table`, in column order."""
    return {metric.name: metric.label for metric in in_table(table)}


def _present_metrics(level_dicts, catalogue):
    """Metric keys (in catalogue order) that at least one of the level dicts computed."""
    return [key for key in catalogue if any(key in values for values in level_dicts)]


def _flatten(data, prefix=""):
    rows = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows += _flatten(value, f"{name}.")
        elif value not in (None, {}, []):
            rows.append((name, value))
    return rows


def _slug(name):
    return re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-") or "test-set"


# ------------------------------------------------------------------------------------------ sections
def eval_results(metrics, model_name):
    """`EvalResult`s for model-index: frame and video AUROC / EER / AP / accuracy of each test set."""
    from huggingface_hub import EvalResult

    results = []
    for set_name, levels in (metrics or {}).get("test_sets", {}).items():
        for level in LEVELS:
            values = (levels or {}).get(level) or {}
            for metric in model_index_metrics():
                value = values.get(metric.name)
                if value is None:  # not computed, or undefined (e.g. one class only): never invented
                    continue
                results.append(
                    EvalResult(
                        task_type="image-classification",
                        task_name="Deepfake detection",
                        dataset_type=_slug(set_name),
                        dataset_name=str(set_name),
                        dataset_split="test",
                        metric_type=metric.model_index_type,
                        metric_value=value,
                        metric_name=f"{level.capitalize()} {metric.label}",
                        metric_config=level,
                    )
                )
    return results


def evaluation_section(metrics):
    """Markdown tables: per test set and level, per manipulation method, robustness, with intervals."""
    # Long: three tables (levels, methods, robustness) built the same way from the same registry columns.
    test_sets = (metrics or {}).get("test_sets") or {}
    if not test_sets:
        return ("This model has not been evaluated yet, so this card reports no metrics. Run "
                "`deepfake-hf evaluate` and push again to add them.")
    table_metrics = _labels("card")
    parts = []
    rows, level_dicts = [], []
    for set_name, levels in test_sets.items():
        for level in LEVELS:
            values = (levels or {}).get(level)
            if values:
                level_dicts.append(values)
                rows.append((set_name, level, values))
    columns = _present_metrics(level_dicts, table_metrics)
    parts.append(_table(
        ["Test set", "Level", "n (real / fake)"] + [table_metrics[key] for key in columns],
        [[name, level, _counts(values)] + [_with_interval(values, key) if key in values else "–" for key in columns]
         for name, level, values in rows],
    ))
    if any("ci" in values for values in level_dicts):
        parts.append("Intervals in parentheses are the bootstrap confidence intervals computed by the evaluation.")
    notes = ["Frame metrics score every frame or image."]
    if any(level == "video" for _, level, _ in rows):
        notes.append("Video metrics average the frame probabilities of each video (grouped by the full source path).")
    if "accuracy" in columns:
        notes.append("Accuracy is at the model's decision threshold.")
    parts.append(" ".join(notes))

    method_rows = []
    for set_name, levels in test_sets.items():
        for method, by_level in ((levels or {}).get("per_method") or {}).items():
            for level in LEVELS:
                values = (by_level or {}).get(level)
                if values:
                    method_rows.append((set_name, method, level, values))
    # One method per test set repeats the overall rows: the table only helps when there are several.
    if any(len((levels or {}).get("per_method") or {}) > 1 for levels in test_sets.values()):
        columns = _present_metrics([row[3] for row in method_rows], table_metrics)
        parts.append("### Per manipulation method")
        parts.append(_table(
            ["Test set", "Method", "Level"] + [table_metrics[key] for key in columns],
            [[s, m, lv] + [_with_interval(v, key) if key in v else "–" for key in columns]
             for s, m, lv, v in method_rows],
        ))

    robustness = (metrics or {}).get("robustness") or {}
    if robustness:
        perturbations = list(dict.fromkeys(p for sweep in robustness.values() for p in (sweep or {})))
        sets = list(robustness)
        metric_keys = _present_metrics([v for sweep in robustness.values() for v in (sweep or {}).values()],
                                       table_metrics)
        parts.append("### Robustness")
        parts.append("The same test data after each perturbation (`name:strength`).")
        parts.append(_table(
            ["Perturbation"] + [f"{s} {table_metrics[k]}" for s in sets for k in metric_keys],
            [[p] + [_with_interval((robustness[s] or {}).get(p) or {}, k) if k in ((robustness[s] or {}).get(p) or {})
                    else "–" for s in sets for k in metric_keys] for p in perturbations],
        ))
    return "\n\n".join(parts)


def _counts(values):
    if "n_real" in values and "n_fake" in values:
        return f"{values['n_real']} / {values['n_fake']}"
    return str(values["n"]) if "n" in values else "–"


def calibration_section(config, metrics):
    lines = []
    if config.get("model_type") == "deepfake_detector":
        threshold = config.get("threshold", DEFAULT_THRESHOLD)
        temperature = config.get("calibration_temperature", 1.0)
        lines.append(
            f"The label is `fake` when the calibrated fake probability is at least the threshold "
            f"**{float(threshold):g}**; logits are divided by the temperature **{float(temperature):g}** "
            "first. The `fake` score that `pipeline` returns is re-centred so that 0.5 is the threshold."
        )
        lines.append(
            f"Videos: {config.get('num_frames', DEFAULT_NUM_FRAMES)} frames sampled uniformly, aggregated with "
            f"`{config.get('video_aggregation', 'mean')}`."
        )
    else:
        lines.append("The threshold and temperature of the detector are folded into this checkpoint's classifier: "
                     "the `fake` score crosses 0.5 exactly at the decision threshold.")
    rows = [(name, level, values) for name, levels in ((metrics or {}).get("test_sets") or {}).items()
            for level in LEVELS if (values := (levels or {}).get(level))]
    calibration_metrics = _labels("card_calibration")
    columns = _present_metrics([values for _, _, values in rows], calibration_metrics)
    if columns:
        lines.append("Quality of the probabilities on the test sets (lower is better):")
        lines.append(_table(["Test set", "Level"] + [calibration_metrics[key] for key in columns],
                            [[name, level] + [_with_interval(values, key) if key in values else "–" for key in columns]
                             for name, level, values in rows]))
    calibration = (metrics or {}).get("calibration") or {}
    if calibration:
        lines.append("Calibration measured by the evaluation:")
        lines.append(_table(["Quantity", "Value"], [[k, _number(v)] for k, v in _flatten(calibration)]))
    return "\n\n".join(lines)


def training_section(recipe, run_path):
    parts = []
    if recipe:
        skip = RECIPE_SKIP_KEYS + (() if (recipe.get("tuning") or {}).get("method") == "lora" else ("tuning.lora",))
        rows = [(key, value) for key, value in _flatten(recipe)
                if not any(key == prefix or key.startswith(prefix + ".") for prefix in skip)]
        rows = [(key, json.dumps(value) if isinstance(value, (list, dict)) else value) for key, value in rows]
        parts.append("The resolved training recipe (`deepfake-hf train` re-runs it):")
        parts.append(_table(["Setting", "Value"], [[f"`{k}`", f"`{v}`"] for k, v in rows]))
    else:
        parts.append("No training recipe was recorded with this model.")
    validation = run_path / "val_metrics.json" if run_path is not None else None
    if validation is not None and validation.is_file():
        values = _read_json(validation)
        numeric = [(k.removeprefix("eval_"), v) for k, v in _flatten(values)
                   if isinstance(v, (int, float)) and not k.removeprefix("eval_").endswith(VALIDATION_SKIP)]
        if numeric:
            parts.append("Validation metrics of the selected checkpoint (the validation split chose it; test sets "
                         "were not used in training):")
            parts.append(_table(["Metric", "Value"], [[k, _number(v)] for k, v in numeric]))
    return "\n\n".join(parts)


def hardware_section(run_path):
    state_path = run_path / "trainer_state.json" if run_path is not None else None
    if state_path is None or not state_path.is_file():
        return "Not recorded for this model."
    state = _read_json(state_path)
    facts = []
    runtime = next((entry["train_runtime"] for entry in reversed(state.get("log_history", []))
                    if "train_runtime" in entry), None)
    if runtime is not None:
        facts.append(f"training time {runtime / 60:.1f} min ({runtime:.0f} s)")
    if state.get("global_step"):
        facts.append(f"{state['global_step']} optimisation steps")
    if state.get("epoch"):
        facts.append(f"{float(state['epoch']):g} epochs")
    if state.get("train_batch_size"):
        facts.append(f"batch size {state['train_batch_size']} per device")
    for key in ("hardware", "device"):
        if state.get(key):
            facts.append(f"hardware: {state[key]}")
    return ("From trainer_state.json: " + ", ".join(facts) + ".") if facts else "Not recorded for this model."


# ------------------------------------------------------------------------------------------ card
def _hub_dataset_ids(recipe):
    """Training sources that name Hub datasets explicitly (`hf://datasets/ORG/NAME`); local paths stay private."""
    sources = list(((recipe or {}).get("data") or {}).get("train") or [])
    prefix = "hf://datasets/"
    return [s[len(prefix):] for s in sources if isinstance(s, str) and s.startswith(prefix)]


def _base_model(config, recipe, source, run_path=None):
    """The Hub id the encoder came from, or the card source's; a local folder (existing or not) is never named."""
    backbone = ((recipe or {}).get("model") or {}).get("backbone")
    if is_hub_id(backbone, run_path):
        return backbone
    name = (config.get("backbone_config") or {}).get("_name_or_path")
    if is_hub_id(name, run_path):
        return name
    return source.get("base_model")


def render_model_card(model_dir, metrics=None, recipe=None, *, repo_id=None, example=None, license=None,
                      run_dir=None, face_mode=None, source_card=None):
    """Render the model card of a saved detector (a model folder, or a run folder holding `model/`).

    Args:
        model_dir: the model folder (config.json + weights) or a run folder (model/, recipe.yaml, eval/).
        metrics: metrics.json contents or path; default: the run's own (model/metrics.json, RUN/eval/metrics.json).
        recipe: a `Recipe`, dict, YAML path or built-in name; default: RUN/recipe.yaml.
        repo_id: the Hub id used in the usage snippets (default: the folder name).
        example: a widget example `{"src": URL, "title": str, "output": [{"label", "score"}, ...]}` whose
            output the caller computed with this model.
        license: overrides the card source's license (default apache-2.0).
        run_dir: the run folder (recipe.yaml, trainer_state.json, eval/) when `model_dir` is not inside it,
            e.g. a repo folder being assembled for upload.
        face_mode: the face mode `predict` runs for this model (default: `default_face_mode(model_dir)`); a native
            export's stock config records none, so `push` passes the source model's.
        source_card: the README.md of the folder being published (default: the model folder's own); when it is a
            `deepfake-hf convert` card, its source, paper, licence and test-time transform are carried over.

    Returns a `huggingface_hub.ModelCard`; `card.save(path)` writes README.md.
    """
    # Long: it gathers every input of the card (config, metrics, recipe, card source) in one place; the
    # sections are rendered by the helpers above.
    from huggingface_hub import ModelCard, ModelCardData

    model_path, run_path = locate_run(model_dir)
    if run_dir is not None:
        run_path = Path(run_dir)
    config = _read_json(model_path / "config.json")
    metrics = load_metrics(metrics, model_path, run_path)
    recipe = load_recipe_dict(recipe, run_path)
    recipe_name = (recipe or {}).get("name")
    if not recipe_name and run_path is not None and (run_path / "summary.json").is_file():
        recipe_name = "quickstart"
    source = load_card_source(recipe_name)
    converted = converted_source(model_path / "README.md" if source_card is None else source_card)
    if converted and not recipe_name:  # a converted detector: the source's title, words, paper, licence and input
        source = {**source, **{key: converted[key] for key in ("title", "description", "citation", "license",
                                                                 "scope") if converted[key]}}

    remote_code = config.get("model_type") == "deepfake_detector"
    backbone_type = (config.get("backbone_config") or {}).get("model_type") or config.get("model_type")
    # Without a Hub id the snippets load the local folder; the model-index name is the run's (not "model").
    local_name = run_path.name if (run_path is not None and model_path.name == "model") else model_path.resolve().name
    model_name = repo_id.split("/")[-1] if repo_id else local_name
    repo_id = repo_id or str(model_path)
    results = eval_results(metrics, model_name)
    base_model = _base_model(config, recipe, source, run_path)
    # The card's training table shows the recipe: its data and backbone paths are this machine's folders.
    recipe = public_paths(recipe, run_path or model_path) if recipe else recipe

    tags = ["deepfake-detection", "image-classification", "vision", backbone_type]
    if remote_code:
        tags.append("custom_code")
    present = {r.metric_type for r in results}
    data = ModelCardData(
        license=license or source.get("license") or "apache-2.0",
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=tags,
        base_model=base_model,
        datasets=_hub_dataset_ids(recipe) or None,
        metrics=[metric.model_index_type for metric in model_index_metrics() if metric.model_index_type in present]
        or None,
        model_name=model_name if results else None,
        eval_results=results or None,
    )
    face_mode = face_mode or default_face_mode(model_path)
    if example:
        data.widget = [{"src": example["src"], "example_title": example.get("title", "Example"),
                        "output": [{"label": row["label"], "score": row["score"]} for row in example["output"]]}]

    title = source.get("title") or f"Deepfake detector ({backbone_type})"
    description = source.get("description") or (
        f"A binary real/fake classifier on a `{backbone_type}` encoder, trained with deepfake-hf"
        + (f" (recipe `{recipe_name}`)." if recipe_name else ".")
    )
    template = (model_cards_dir() / TEMPLATE_NAME).read_text()
    card = ModelCard.from_template(
        data,
        template_str=template,
        title=title,
        description=description.strip(),
        repo_id=repo_id,
        remote_code=remote_code,
        face_pipeline=bool(remote_code and config.get("custom_pipelines")),
        architecture=(config.get("architectures") or [""])[0],
        backbone_type=backbone_type,
        face_preprocessing=config.get("face_preprocessing"),
        face_mode=face_mode,
        preprocessing=saved_preprocessing(model_path),
        provenance=(converted or {}).get("provenance") if not recipe_name else None,
        num_frames=config.get("num_frames", DEFAULT_NUM_FRAMES),
        example_description=(example or {}).get("description"),
        endpoint_requirements=_endpoint_requirements(model_path),
        parameters=_human_count(count_parameters(model_path)),
        calibration=calibration_section(config, metrics),
        training=training_section(recipe, run_path),
        evaluation=evaluation_section(metrics),
        hardware=hardware_section(run_path),
        scope=source.get("scope") or "face swaps and face reenactment, on face crops",
        citation=(source.get("citation") or "").strip(),
        references=source.get("references") or [],
    )
    return card


__all__ = ["converted_source", "default_face_mode", "render_model_card", "saved_preprocessing", "eval_results",
           "is_hub_id", "load_metrics", "locate_run", "model_cards_dir", "public_paths"]
