"""Publish detectors and demos on the Hugging Face Hub.

`assemble_model_repo` writes the exact folder a model repo gets: safetensors weights, the config with
`auto_map` and the two remote-code files (or, with `native=True`, a stock transformers checkpoint), the
image processor, README.md (the model card), metrics.json, the evaluation's plots, the resolved recipe and the
Inference Endpoints handler (handler.py and requirements.txt, `publish.endpoint`).
`push_model` uploads that folder with `HfApi().upload_folder` in one commit. `assemble_space` /
`push_space` do the same for a Gradio Space running `app.py` on a published model.

Hub failures become one-line `HubError`s: a missing or rejected token, a repo owned by someone else,
permission errors, and network failures (transient ones, 5xx, 429 and connection errors, are retried).
"""

import json
import shutil
import tempfile
import time
from pathlib import Path

from deepfake_hf.errors import DeepfakeHFError, one_line
from deepfake_hf.publish.endpoint import write_handler
from deepfake_hf.publish.model_card import default_face_mode, find_metrics, locate_run, public_paths, render_model_card
from deepfake_hf.runtime.outputs import OUTPUT_RECORD, owned_output_dir
from deepfake_hf.safety import UnsafeFileError, check_model_folder, read_json

# Files of a model folder that are not part of a published stock checkpoint.
SKIP_FILES = ("metrics.json", "trainer_state.json", "training_args.json", "val_metrics.json")
TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)
SPACE_APP_FILE = "app.py"
# The line of app.py that push-space rewrites so a Space knows its model without any settings.
DEFAULT_MODEL_LINE = "DEFAULT_MODEL = None"
# What a Space installs besides the vendored package: the core dependencies and these extras (faces,
# because the app finds faces by default and a face detector scored on whole frames is off its training; timm,
# because a detector on a timm encoder cannot load without it).
SPACE_EXTRAS = ("app", "video", "faces", "gend-faces", "timm")
# Installed by the Space itself from the card's sdk_version; listing it again can pull a second version.
SPACE_PROVIDED = ("gradio",)


class HubError(DeepfakeHFError, RuntimeError):
    """A Hub problem the user can act on; str() is one line."""


# ------------------------------------------------------------------------------------------ folders
def assemble_model_repo(source, out_dir, repo_id, native=False, overwrite=False, example_image=None,
                        endpoint=None, skipped=None):
    """Write the folder that `push_model` uploads; returns its path.

    `source` is a saved detector folder or a run folder (model/, recipe.yaml, eval/metrics.json, plots).
    With `native=True` the weights are the stock transformers export (`export_native`), which needs no
    remote code; it is refused with a one-line reason when it would change the scores.
    `example_image`: a photo whose aligned face crop (the model's face mode, as `predict` cuts it; the picture as
    given where no face is found) is written as example.png and scored here with the assembled model: the card's
    widget example. A native repo given none uses scikit-image's astronaut portrait when scikit-image is installed.
    Symbolic links that lead out of the run (or model) folder are not published; each one is appended to
    `skipped` as "NAME: why". metrics.json is published with local absolute paths made relative to the run
    folder (or cut to the file name).
    """
    with owned_output_dir(out_dir, overwrite) as out:
        return _assemble_model_repo(source, out, repo_id, native, example_image, endpoint,
                                    [] if skipped is None else skipped)


def _assemble_model_repo(source, out, repo_id, native, example_image, endpoint, skipped):
    model_path, run_path = locate_run(source)
    root = (run_path or model_path).resolve()

    def inside(path):
        """True when `path` (after following links) lies in the run folder; else noted in `skipped`."""
        if Path(path).resolve().is_relative_to(root):
            return True
        skipped.append(f"{Path(path).relative_to(run_path or model_path)}: a link to a file outside "
                       f"{(run_path or model_path).name}/; not published")
        return False

    try:
        # Sizes and safetensors headers are checked before anything is read in full or built.
        model_type = (check_model_folder(model_path) or {}).get("model_type")
    except UnsafeFileError as error:
        raise HubError(str(error)) from None
    _write_weights(model_path, out, model_type, native, inside, skipped)
    write_handler(out)

    metrics_path = find_metrics(model_path, run_path)
    if metrics_path is not None and not inside(metrics_path):
        metrics_path = None
    if metrics_path is not None:
        try:
            metrics = public_paths(read_json(metrics_path), run_path or model_path)
        except UnsafeFileError as error:
            raise HubError(str(error)) from None
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        plots = [plot for plot in sorted(metrics_path.parent.glob("*.png")) if inside(plot)]
        if plots:
            (out / "plots").mkdir(exist_ok=True)
            for plot in plots:
                shutil.copyfile(plot, out / "plots" / plot.name)
    recipe = run_path / "recipe.yaml" if run_path is not None else None
    if recipe is not None and recipe.is_file() and inside(recipe):
        recipe = _publish_recipe(recipe, out / "recipe.yaml", run_path)
    else:
        recipe = None

    faces = default_face_mode(model_path)  # the source's: a native export's stock config records none
    example = _widget_example(out, example_image or (_default_example_photo() if native else None), repo_id,
                              endpoint, faces)
    card = render_model_card(out, metrics=out / "metrics.json" if metrics_path is not None else None,
                             recipe=recipe, repo_id=repo_id, example=example, run_dir=run_path, face_mode=faces,
                             source_card=model_path / "README.md")
    card.save(out / "README.md")
    return out


def _write_weights(model_path, out, model_type, native, inside, skipped):
    """The model's files in `out`: a stock checkpoint as it is, the native export, or the detector re-saved."""
    from deepfake_hf import register
    from deepfake_hf.publish.export import NativeExportError, export_native

    if model_type != "deepfake_detector":
        # Already a stock transformers checkpoint (e.g. an earlier native export): publish it as it is.
        for path in sorted(model_path.iterdir()):
            if path.is_file() and (path.suffix in (".safetensors", ".json") and path.name not in SKIP_FILES) \
                    and inside(path):
                _copy_stock_file(path, out, skipped)
    elif native:
        try:
            export_native(model_path, out, overwrite=True)
        except NativeExportError as error:
            raise HubError(str(error)) from None
    else:
        # Re-saving writes safetensors, `auto_map`, this package's code files and the matching processor.
        register()
        from deepfake_hf.configuration_deepfake import DeepfakeDetectorConfig
        from deepfake_hf.modeling_deepfake import AUTO_MAP, DeepfakeDetectorForImageClassification

        processor = _published_processor(model_path, skipped)  # refused, if it must be, before any weight is read
        model = DeepfakeDetectorForImageClassification.from_pretrained(model_path)
        # save_pretrained writes this package's own auto_map entries back; any other names code nobody reviewed.
        own = {"AutoConfig": f"configuration_deepfake.{DeepfakeDetectorConfig.__name__}", **AUTO_MAP}
        foreign = {key: value for key, value in (model.config.auto_map or {}).items() if value != own.get(key)}
        if foreign:
            skipped.append(_auto_map_note("config.json", foreign))
        model.config.auto_map = None
        model.image_processor = processor
        model.save_pretrained(out)


def _auto_map_note(name, entries):
    listed = ", ".join(f"{key}: {value}" for key, value in entries.items())
    return (f"{name}: auto_map entries ({listed}) name code deepfake-hf did not write; removed (that code is "
            "neither run nor published)")


OWN_PROCESSOR, OWN_PROCESSOR_MODULE = "DeepfakeImageProcessor", "image_processing_deepfake"


def _published_processor(model_path, skipped):
    """The folder's image processor rebuilt from preprocessor_config.json as the transformers class it names,
    its `auto_map` removed (and noted in `skipped`); None without the file. Publishing never runs the folder's
    code, so a processor that only its own code could build is refused."""
    import transformers

    path = model_path / "preprocessor_config.json"
    if not path.is_file():
        return None
    try:
        settings = read_json(path)
    except UnsafeFileError as error:
        raise HubError(str(error)) from None
    if not isinstance(settings, dict):
        raise HubError(f"{path}: not a JSON object")
    auto_map = settings.pop("auto_map", None)
    own_class = settings.get("image_processor_type") == OWN_PROCESSOR
    if auto_map and auto_map != {"AutoImageProcessor": f"{OWN_PROCESSOR_MODULE}.{OWN_PROCESSOR}"}:
        skipped.append(_auto_map_note(path.name, auto_map if isinstance(auto_map, dict) else {"auto_map": auto_map}))
    if own_class:  # this package's own processor (converted detectors), rebuilt from the package, not the folder
        from deepfake_hf import register
        from deepfake_hf.image_processing_deepfake import DeepfakeImageProcessor

        register()  # saving it then writes its auto_map entry and the package's copy of its code
        try:
            return DeepfakeImageProcessor.from_dict(settings)
        except Exception as error:  # noqa: BLE001 - a processor's own validation, in one line
            raise HubError(f"{path}: not a valid {OWN_PROCESSOR} ({one_line(error, 200)})") from None
    name = settings.get("image_processor_type")
    name = name.removesuffix("Fast") if isinstance(name, str) and name.isidentifier() else None
    processor_class = getattr(transformers, name, None) if name else None
    if not (isinstance(processor_class, type) and issubclass(processor_class, transformers.ImageProcessingMixin)
            and processor_class.__module__.startswith("transformers.")):
        raise HubError(f"{path}: image_processor_type {settings.get('image_processor_type')!r} is not a transformers "
                       "image processor; deepfake-hf publishes only processors it can rebuild without running the "
                       "folder's own code")
    try:
        return processor_class.from_dict(settings)
    except Exception as error:  # noqa: BLE001 - a processor's own validation, in one line
        raise HubError(f"{path}: not a valid {name} ({one_line(error, 200)})") from None


def _copy_stock_file(path, out, skipped):
    """Copy one file of a stock checkpoint; a JSON file loses its `auto_map` (the code it names is not published),
    and a config whose model type transformers does not know is refused (it only loads with that code)."""
    if path.suffix != ".json":
        shutil.copyfile(path, out / path.name)
        return
    try:
        data = read_json(path)
    except UnsafeFileError as error:
        raise HubError(str(error)) from None
    if path.name == "config.json" and isinstance(data, dict):
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        if data.get("model_type") not in CONFIG_MAPPING:
            raise HubError(f"{path}: model_type {data.get('model_type')!r} is not a transformers model; it loads "
                           "only with its own code, which deepfake-hf does not publish")
    if isinstance(data, dict) and "auto_map" in data:
        auto_map = data.pop("auto_map")
        skipped.append(_auto_map_note(path.name, auto_map if isinstance(auto_map, dict) else {"auto_map": auto_map}))
        (out / path.name).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        shutil.copyfile(path, out / path.name)


def _publish_recipe(recipe, target, run_path):
    """Write the run's recipe with local absolute paths made relative to the run (or cut to the file name)."""
    import yaml

    text = recipe.read_text()
    data = yaml.safe_load(text)
    public = public_paths(data, run_path)
    if public == data:
        target.write_text(text)  # unchanged: keep the author's comments and layout
    else:
        target.write_text(yaml.safe_dump(public, sort_keys=False))
    return target


def _default_example_photo():
    """The widget example of a native export given no --example: scikit-image's public-domain astronaut portrait
    (NASA), when scikit-image (the quickstart extra) is installed; else None (no widget example)."""
    try:
        from skimage import data
    except ImportError:
        return None
    from PIL import Image

    return Image.fromarray(data.astronaut())


def _example_crop(repo_dir, image, faces):
    """(picture, what it is): the aligned face crop `predict` scores for the most prominent face of `image` with the
    face mode `faces`, or the picture as given (a stand-in) when the mode finds no face or finds none at all."""
    from deepfake_hf.media import open_image
    from deepfake_hf.scoring.scorer import Scorer

    picture = open_image(image)
    if faces == "none":
        return picture, ("a stand-in, the picture as given: this model scores whole pictures (face mode `none`), "
                         "so there is no face crop to make")
    # trust_remote_code=False: the folder's processor had its auto_map removed; nothing in it runs here.
    scorer = Scorer.from_pretrained(str(repo_dir), faces=faces, device="cpu", trust_remote_code=False)
    plan = scorer.plan([picture])
    if not plan.faces:
        return picture, (f"a stand-in, the picture as given: the `{faces}` face mode found no face in it, so the "
                         "example is not the aligned face crop the model expects")
    return plan.crops[0], (f"an aligned face crop made by the `{faces}` face mode, exactly as `deepfake-hf predict` "
                           "crops the face it scores")


def _widget_example(repo_dir, image, repo_id, endpoint, faces="none"):
    """Write example.png (the face crop of `image`, `_example_crop`) and score it with the assembled model as the
    widget does: the card's static widget output (None without an image)."""
    from transformers import pipeline

    from deepfake_hf import register

    if image is None:
        return None
    register()
    try:
        crop, what = _example_crop(repo_dir, image, faces)
    except DeepfakeHFError:
        raise
    except Exception as error:  # noqa: BLE001 - transformers' messages run to many lines
        name = image if isinstance(image, (str, Path)) else "the example photo"
        raise HubError(f"--example {name}: the assembled model cannot crop it ({one_line(error, 300)})") from None
    crop.save(repo_dir / "example.png")
    # trust_remote_code=False: the detector's classes are registered in this process, and nothing in the folder
    # being published may run here (a stock folder has had its auto_map removed).
    try:
        classify = pipeline("image-classification", model=str(repo_dir), trust_remote_code=False)
        rows = classify(str(repo_dir / "example.png"))
    except Exception as error:  # noqa: BLE001 - transformers' messages run to many lines
        raise HubError(f"--example {image}: the assembled model cannot score it ({one_line(error, 300)})") from None
    output = [{"label": row["label"], "score": round(float(row["score"]), 4)} for row in rows]
    base = (endpoint or _default_endpoint()).rstrip("/")
    return {"src": f"{base}/{repo_id}/resolve/main/example.png", "title": "Example", "output": output,
            "description": what}


def _default_endpoint():
    from huggingface_hub import constants

    return constants.ENDPOINT


def _space_app_source():
    """The app.py shipped in the wheel (deepfake_hf/app.py) or at the top of the source tree."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / SPACE_APP_FILE, package.parent / SPACE_APP_FILE):
        if candidate.is_file():
            return candidate
    raise HubError(f"{SPACE_APP_FILE} not found next to {package}: reinstall deepfake-hf")


def space_requirements(extras=SPACE_EXTRAS):
    """requirements.txt lines for a Space: this package's own dependencies and those of `extras`, read
    from the installed distribution's metadata (the package itself is vendored into the Space)."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    try:
        declared = requires("deepfake-hf") or []
    except PackageNotFoundError:
        raise HubError("deepfake-hf is not installed (pip install -e .): its dependencies for the Space "
                       "come from the installed metadata") from None
    lines = []
    for text in declared:
        requirement = Requirement(text)
        if requirement.name in ("deepfake-hf", "deepfake_hf") or requirement.name in SPACE_PROVIDED:
            continue
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras):
            requirement.marker = None
            line = str(requirement)
            if line not in lines:
                lines.append(line)
    return lines


def _vendor_package(out, skipped, package=None):
    """Copy this package's Python files (or those of the folder `package`), subpackages included, into
    out/deepfake_hf, so the Space runs exactly this version."""
    package = Path(package) if package is not None else Path(__file__).resolve().parents[1]
    target = out / "deepfake_hf"
    target.mkdir()
    _vendor_folder(package, target, "deepfake_hf", skipped)


def _vendor_folder(folder, target, shown, skipped):
    for source in sorted(folder.iterdir()):
        name = f"{shown}/{source.name}"
        if source.is_symlink():  # its target may be any file on this machine: the package's own files are regular
            if source.suffix == ".py" or source.is_dir():
                skipped.append(f"{name}: a link, not one of the package's own files; not published")
        elif source.is_dir():
            if (source / "__init__.py").is_file() and not source.is_symlink():
                (target / source.name).mkdir()
                _vendor_folder(source, target / source.name, name, skipped)
        elif source.suffix == ".py" and source.name != SPACE_APP_FILE:  # the wheel carries app.py; the Space its own
            shutil.copyfile(source, target / source.name)


def assemble_space(model_id, out_dir, title=None, overwrite=False, skipped=None):
    """Write a Gradio Space folder: README.md (Space front matter), app.py, the package itself (deepfake_hf/,
    copied from this installation, since the Space may not reach a package index that has it) and
    requirements.txt with its dependencies, including the `SPACE_EXTRAS` the app uses. Links among the package's
    files are not copied; each is appended to `skipped` as "NAME: why"."""
    if Path(model_id).exists():
        raise HubError(f"{model_id}: is a local folder; a Space needs a Hub model id (push the model first)")
    with owned_output_dir(out_dir, overwrite) as out:
        _assemble_space(model_id, out, title, [] if skipped is None else skipped)
    return out


def _assemble_space(model_id, out, title, skipped):
    from huggingface_hub import SpaceCard, SpaceCardData

    app = _space_app_source().read_text()
    if DEFAULT_MODEL_LINE not in app:
        raise HubError(f"{_space_app_source().name}: has no line {DEFAULT_MODEL_LINE!r} to set the Space's model")
    (out / SPACE_APP_FILE).write_text(app.replace(DEFAULT_MODEL_LINE, f"DEFAULT_MODEL = {model_id!r}", 1))
    _vendor_package(out, skipped)
    (out / "requirements.txt").write_text("\n".join(space_requirements()) + "\n")
    data = SpaceCardData(
        title=title or f"Deepfake detector: {model_id.split('/')[-1]}"[:60],
        sdk="gradio",
        sdk_version=_installed_version("gradio"),
        app_file=SPACE_APP_FILE,
        license="apache-2.0",
        models=[model_id],
        tags=["deepfake-detection"],
        emoji="🔍",
        colorFrom="gray",
        colorTo="blue",
        pinned=False,
        short_description="Real or fake? A deepfake detector demo",
    )
    body = (
        f"\n# {data.title}\n\nUpload an image or a video and the detector "
        f"[`{model_id}`](https://huggingface.co/{model_id}) says whether it looks manipulated. The score is a "
        "signal for a human reviewer, never proof: read the model card's limitations before relying on it.\n"
    )
    SpaceCard(f"---\n{data.to_yaml()}\n---\n{body}").save(out / "README.md")


def _installed_version(distribution):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


# ------------------------------------------------------------------------------------------ Hub calls
def _is_network_error(error):
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"TransportError", "NetworkError", "TimeoutException"}) or (
        isinstance(error, (ConnectionError, TimeoutError)) and "HfHubHTTPError" not in names
    )


def _http_status(error):
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _server_message(error):
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    message = headers.get("X-Error-Message")
    if not message:
        try:
            message = response.json().get("error")
        except Exception:  # not JSON, or no response body
            message = None
    return one_line(message or str(error).splitlines()[0], 300)


def _root_cause(error):
    """The HTTP or network error behind wrappers such as 'Error while uploading X to the Hub'."""
    seen = error
    while seen is not None:
        if _http_status(seen) is not None or _is_network_error(seen):
            return seen
        seen = seen.__cause__ or seen.__context__
    return error


def _call(what, function, *args, retries=3, retry_wait=2.0, endpoint=None, **kwargs):
    """Run a Hub call, retrying transient failures; raise `HubError` with one line otherwise."""
    for attempt in range(1, retries + 1):
        try:
            return function(*args, **kwargs)
        except HubError:
            raise
        except Exception as error:  # mapped to one line below
            cause = _root_cause(error)
            status = _http_status(cause)
            transient = status in TRANSIENT_STATUS or (status is None and _is_network_error(cause))
            if transient and attempt < retries:
                time.sleep(retry_wait * 2 ** (attempt - 1))
                continue
            raise HubError(_describe(what, cause, status, attempt, endpoint)) from None


def _describe(what, error, status, attempts, endpoint):
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if status == 401:
        return (f"{what}: the Hub rejected the token (401 Unauthorized): it is invalid or expired; "
                "run `hf auth login` or set HF_TOKEN")
    if status == 403:
        return (f"{what}: permission denied (403 Forbidden): {_server_message(error)} "
                "(a read-only token, or a repo you cannot write to)")
    if status == 404:
        return f"{what}: not found (404): {_server_message(error)}"
    if status is not None:
        return f"{what}: the Hub answered HTTP {status}{tries}: {_server_message(error)}"
    if _is_network_error(error):
        reason = one_line(error, 300)
        return f"{what}: cannot reach the Hub at {endpoint or _default_endpoint()}{tries} ({reason})"
    return f"{what}: {type(error).__name__}: {one_line(error, 300)}"


def _authenticated_api(token, endpoint, retries, retry_wait):
    """(HfApi, user name, writable namespaces); a missing or rejected token is a one-line HubError."""
    from huggingface_hub import HfApi, constants, get_token

    if constants.HF_HUB_OFFLINE:
        raise HubError("HF_HUB_OFFLINE is set: unset it to publish to the Hub")
    token = token or get_token()
    if not token:
        raise HubError("no Hugging Face token: run `hf auth login` or set the HF_TOKEN environment variable")
    api = HfApi(endpoint=endpoint, token=token)
    me = _call("checking the token", api.whoami, retries=retries, retry_wait=retry_wait, endpoint=api.endpoint)
    namespaces = [me["name"], *(org["name"] for org in me.get("orgs", []))]
    return api, me["name"], namespaces


def _check_namespace(repo_id, user, namespaces, kind="repo"):
    if "/" not in repo_id:
        return f"{user}/{repo_id}"
    namespace = repo_id.split("/")[0]
    if namespace not in namespaces:
        orgs = ", ".join(namespaces[1:]) or "none"
        raise HubError(f"{repo_id}: this {kind} belongs to {namespace!r}, not to you ({user}) or your "
                       f"organisations ({orgs}); choose a repo id under your own namespace")
    return repo_id


def push_model(source, repo_id, native=False, private=False, revision=None, create_pr=False, token=None,
               endpoint=None, commit_message=None, example_image=None, retries=3, retry_wait=2.0):
    """Assemble the repo folder of `source` and upload it to `repo_id` in one commit.

    Returns {"repo_url", "commit_url", "pr_url", "files"}. Raises `HubError` (one line).
    """
    api, user, namespaces = _authenticated_api(token, endpoint, retries, retry_wait)
    repo_id = _check_namespace(repo_id, user, namespaces)
    options = dict(retries=retries, retry_wait=retry_wait, endpoint=api.endpoint)
    skipped = []
    with tempfile.TemporaryDirectory(prefix="deepfake-hf-push-") as tmp:
        folder = assemble_model_repo(source, Path(tmp) / "repo", repo_id, native=native,
                                     example_image=example_image, endpoint=api.endpoint, skipped=skipped)
        files = repo_files(folder)
        repo_url = _call(f"creating {repo_id}", api.create_repo, repo_id, private=private, exist_ok=True, **options)
        if revision:
            _call(f"creating branch {revision} of {repo_id}", api.create_branch, repo_id, branch=revision,
                  exist_ok=True, **options)
        info = _call(
            f"uploading to {repo_id}", api.upload_folder, repo_id=repo_id, folder_path=str(folder),
            revision=revision, create_pr=create_pr, ignore_patterns=[OUTPUT_RECORD],
            commit_message=commit_message or ("Upload deepfake detector (native transformers export)" if native
                                              else "Upload deepfake detector"),
            **options,
        )
    return {"repo_url": str(repo_url), "commit_url": info.commit_url, "pr_url": info.pr_url, "files": files,
            "skipped": skipped}


def repo_files(folder):
    """The files of an assembled folder that an upload publishes (relative, sorted): those the assembling command
    recorded writing, since a --dry-run folder may also hold the user's own files, which push never uploads
    (it assembles into a fresh folder)."""
    folder = Path(folder)
    present = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*")
                     if path.is_file() and path.name != OUTPUT_RECORD)
    try:
        written = set(json.loads((folder / OUTPUT_RECORD).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):  # no record: everything here was assembled
        return present
    return [name for name in present if name in written]


def push_space(model_id, space_id, private=False, token=None, endpoint=None, title=None, retries=3,
               retry_wait=2.0):
    """Create (or update) a Gradio Space that runs app.py on `model_id`; returns {"space_url", "commit_url",
    "skipped"}."""
    api, user, namespaces = _authenticated_api(token, endpoint, retries, retry_wait)
    space_id = _check_namespace(space_id, user, namespaces, kind="Space")
    options = dict(retries=retries, retry_wait=retry_wait, endpoint=api.endpoint)
    exists = _call(f"looking up {model_id}", api.repo_exists, model_id, **options)
    if not exists:
        raise HubError(f"{model_id}: no such model on {api.endpoint} (push it first with `deepfake-hf push`)")
    skipped = []
    with tempfile.TemporaryDirectory(prefix="deepfake-hf-space-") as tmp:
        folder = assemble_space(model_id, Path(tmp) / "space", title=title, skipped=skipped)
        url = _call(f"creating Space {space_id}", api.create_repo, space_id, repo_type="space", space_sdk="gradio",
                    private=private, exist_ok=True, **options)
        info = _call(f"uploading to Space {space_id}", api.upload_folder, repo_id=space_id, repo_type="space",
                     folder_path=str(folder), ignore_patterns=[OUTPUT_RECORD],
                     commit_message=f"Deepfake detector demo for {model_id}", **options)
    return {"space_url": str(url), "commit_url": info.commit_url, "skipped": skipped}


__all__ = ["HubError", "assemble_model_repo", "assemble_space", "push_model", "push_space", "repo_files",
           "space_requirements"]
