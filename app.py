"""Gradio demo of a deepfake detector (also the entry point of the Hugging Face Space).

    python app.py --model path/or/hub-id          # or DEEPFAKE_HF_MODEL=... python app.py

Tabs: Image (upload, webcam or clipboard -> verdict, probability bar, face boxes, heatmap), Video (verdict,
per-frame scores over time, the most suspicious frames), Batch (several files -> table + CSV) and About
(model summary, threshold, limitations). Gradio's own GRADIO_SERVER_NAME / GRADIO_SERVER_PORT choose where
it listens. Requests are queued (DEEPFAKE_HF_CONCURRENCY at a time), uploads are capped at
DEEPFAKE_HF_MAX_FILE_SIZE and each request at DEEPFAKE_HF_TIME_LIMIT seconds (an abandoned request is
cancelled, freeing its worker); a bad file gets a message on the page, never a crash. Works offline on a
local model folder.

What it opens: only files that reached this server through its upload route. A request that names any
other path (an API call with {"path": ...}, with or without `meta`) is refused with one message, whether or
not that path exists, before gradio itself touches it. The app decodes its inputs itself, within the time
limit and under deepfake_hf.media's pixel limits (gradio's own input decoding is skipped), and one HTTP
request carries at most DEEPFAKE_HF_MAX_REQUEST_SIZE. What it shows: file names only, never the server's
folders, and images downscaled for display.
"""

import argparse
import os
import re
import signal
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deepfake_hf.scoring.detector import Detector
    from deepfake_hf.scoring.results import FileResult

DEFAULT_MODEL = None  # `deepfake-hf push-space` writes the Space's model id here
CONCURRENCY_LIMIT = int(os.environ.get("DEEPFAKE_HF_CONCURRENCY", "2"))
MAX_FILE_SIZE = os.environ.get("DEEPFAKE_HF_MAX_FILE_SIZE", "100mb")
# All files of one upload request, or all files one analysis names, together; unset: twice the file cap, so the
# largest file always fits with its multipart framing (3 x 99 MB in one upload was accepted before).
MAX_REQUEST_SIZE = os.environ.get("DEEPFAKE_HF_MAX_REQUEST_SIZE")
TIME_LIMIT_S = float(os.environ.get("DEEPFAKE_HF_TIME_LIMIT", "120"))
MAX_BATCH_FILES = int(os.environ.get("DEEPFAKE_HF_MAX_BATCH_FILES", "32"))
SUSPICIOUS_FRAMES = 4
# Longest side of the images shown back (faces found, suspicious frames): gradio encodes each shown image,
# and AnnotatedImage builds a float mask of the image's size per face, outside the request's time limit.
DISPLAY_SIDE = 1280
NO_MODEL_MESSAGE = (
    "No model is set. Start the demo with `python app.py --model FOLDER_OR_HUB_ID` or set the "
    "`DEEPFAKE_HF_MODEL` environment variable."
)
LIMITATIONS = """\
- The score is a **signal for a human reviewer, never proof**. Do not use it as the sole basis for any
  decision about a person.
- The detector knows the manipulations in its training data; other kinds of fakes (for a face-swap
  detector: fully synthetic images), new generators, heavy compression and other domains lower its accuracy.
- It is not hardened against adversarial attacks: small deliberate changes can flip the verdict.
- "Real" is not a certificate of authenticity.
"""
CSS = ".verdict h3 {margin: 0.2em 0;}"
NOT_UPLOADED_MESSAGE = "Only files uploaded to this page can be analysed."
# Files this app writes (batch CSVs) live in gradio's own cache, which `delete_cache` empties on a
# schedule and at shutdown: (every N seconds, files older than N seconds).
CACHE_CLEANUP = (600, 1800)
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[^\s/:'\"()]+/)+([^\s/:'\"()]*)")


class RefusedUpload(str):
    """What an input component hands the demo instead of files it must not analyse; the string is the message
    (a path not uploaded to this server, or files over the request size cap)."""


_SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024 ** 2, "gb": 1024 ** 3, "tb": 1024 ** 4}


def _parse_size(text, name):
    """Bytes in "100mb"-style sizes, with gradio's units (1024-based), as DEEPFAKE_HF_MAX_FILE_SIZE takes them."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgt]?b)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(f"{name}: {text!r} is not a size such as 200mb")
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]


def request_size_limit():
    """The request cap in bytes: DEEPFAKE_HF_MAX_REQUEST_SIZE, else twice DEEPFAKE_HF_MAX_FILE_SIZE."""
    if MAX_REQUEST_SIZE:
        return _parse_size(MAX_REQUEST_SIZE, "DEEPFAKE_HF_MAX_REQUEST_SIZE")
    return 2 * _parse_size(MAX_FILE_SIZE, "DEEPFAKE_HF_MAX_FILE_SIZE")


def _size_text(size):
    return f"{size / 1024 ** 2:,.1f} MB"


def _too_large_message(size, limit):
    return (f"This request carries {_size_text(size)} of files; one request may carry at most {_size_text(limit)} "
            f"(DEEPFAKE_HF_MAX_REQUEST_SIZE). Send fewer or smaller files at a time.")


def resolve_model(cli_model=None):
    """The model to serve: --model, else DEEPFAKE_HF_MODEL, else the Space's DEFAULT_MODEL (None if unset)."""
    return cli_model or os.environ.get("DEEPFAKE_HF_MODEL") or DEFAULT_MODEL


class _FoundFaces:
    """A face detector that returns faces already found, so explain's face policy picks among them without
    running the detector again."""

    name = "found"

    def __init__(self, faces):
        self.faces = list(faces)

    def detect(self, image):
        return list(self.faces)


class DeepfakeDemo:
    """The demo's logic, independent of the UI: each `analyse_*` returns what the page shows."""

    def __init__(self, model_id, faces=None, time_limit=TIME_LIMIT_S):
        self.model_id = model_id
        # None: the model's recorded face mode, resolved by the scorer as at every other door
        self.faces = faces or os.environ.get("DEEPFAKE_HF_FACES") or None
        self.time_limit = time_limit
        self._detector = None
        self._explainer = None
        self._explain_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max(1, CONCURRENCY_LIMIT), thread_name_prefix="demo")

    # ---------------------------------------------------------------------------------- model
    @property
    def detector(self) -> "Detector":
        if self._detector is None:
            from deepfake_hf.scoring.detector import Detector

            self._detector = Detector.from_pretrained(self.model_id, faces=self.faces, progress=False)
        return self._detector

    def _run(self, function, *args):
        """Run `function(*args, cancel=event)` with the per-request time limit; on timeout the event is set,
        so the work stops at its next frame or batch and frees the worker, and the page gets a message."""
        cancel = threading.Event()
        future = self._pool.submit(function, *args, cancel=cancel)
        try:
            return future.result(timeout=self.time_limit)
        except FutureTimeout:
            cancel.set()
            future.cancel()
            raise TimeoutError(f"the analysis took longer than {self.time_limit:g} s and was abandoned") from None

    def about(self):
        """Markdown summary of the model: id, threshold, temperature, video settings, card title."""
        if not self.model_id:
            return f"**{NO_MODEL_MESSAGE}**\n\n## Limitations\n\n{LIMITATIONS}"
        scorer = self.detector.scorer
        config = scorer.model.config
        lines = [f"**Model:** `{_public_model_name(self.model_id)}`"]
        title = _card_title(self.model_id)
        if title:
            lines.append(f"**Card:** {title}")
        lines.append(f"**Decision threshold:** a file is called *fake* when its fake probability is at least "
                     f"**{scorer.threshold:g}**.")
        if getattr(config, "calibration_temperature", None):
            lines.append(f"**Calibration temperature:** {config.calibration_temperature:g}")
        lines.append(f"**Videos:** {scorer.num_frames} frames sampled uniformly, aggregated with "
                     f"`{scorer.aggregation}`. **Faces:** {scorer.face_detector.name}.")
        return "\n\n".join(lines) + f"\n\n## Limitations\n\n{LIMITATIONS}"

    # ---------------------------------------------------------------------------------- image
    def analyse_image(self, image_path):
        """(verdict markdown, {fake, real} probabilities, (image, face boxes), heatmap image or None)."""
        if not self.model_id:
            return _message(NO_MODEL_MESSAGE, escape=False), None, None, None
        if not image_path:
            return "Upload an image first.", None, None, None
        if isinstance(image_path, RefusedUpload):
            return _message(image_path), None, None, None
        try:
            return self._run(self._analyse_image, image_path)
        except Exception as error:  # anything unexpected is still answered on the page
            return _message(_public_text(_one_line(error), image_path)), None, None, None

    def _analyse_image(self, image_path, cancel=None):
        from deepfake_hf.media import MediaError, open_image

        (result,) = self.detector(image_path, cancel=cancel)
        if result.error:
            return _message(_file_error(image_path, result.error)), None, None, None
        try:
            image = open_image(image_path)
        except MediaError as error:
            return _message(_file_error(image_path, error.problem)), None, None, None
        faces = self.detector.scorer.face_detector.detect(image)
        shown, scale = _display_copy(image)
        boxes = [((int(x0 * scale), int(y0 * scale), int(x1 * scale), int(y1 * scale)), f"face {index + 1}")
                 for index, (x0, y0, x1, y1) in enumerate(face.box for face in faces)]
        return (_verdict(result, self.detector.scorer.threshold), _probabilities(result), (shown, boxes),
                self._heatmap(image, faces))

    def _heatmap(self, image, faces):
        """Heatmap overlay (deepfake_hf.scoring.explain: attention rollout or Grad-CAM) on the crop of the face whose
        score is the verdict (the most suspicious one), or on the whole image when no face was found; None for
        models explain does not support."""
        import copy

        from deepfake_hf.scoring.explain import explain

        scorer = self.detector.scorer
        if not hasattr(scorer.model, "get_image_features"):  # a native export: no deepfake-hf heads to explain
            return None
        with self._explain_lock:  # Grad-CAM hooks and eager attention: a private copy, one request at a time
            if self._explainer is None:
                self._explainer = copy.deepcopy(scorer.model).eval()
            try:
                return explain(self._explainer, image, processor=scorer.image_processor, faces=_FoundFaces(faces),
                               crop=scorer.crop, face_size=scorer.face_size, face_scale=scorer.face_scale,
                               margin=scorer.margin)["overlay"]
            except Exception:  # a heatmap is a bonus: never let it hide the verdict
                return None

    # ---------------------------------------------------------------------------------- video
    def analyse_video(self, video_path):
        """(verdict markdown, {fake, real}, per-frame scores table, gallery [(frame, caption)])."""
        if not self.model_id:
            return _message(NO_MODEL_MESSAGE, escape=False), None, None, []
        if not video_path:
            return "Upload a video first.", None, None, []
        if isinstance(video_path, RefusedUpload):
            return _message(video_path), None, None, []
        try:
            return self._run(self._analyse_video, video_path)
        except Exception as error:
            return _message(_public_text(_one_line(error), video_path)), None, None, []

    def _analyse_video(self, video_path, cancel=None):
        import pandas as pd

        from deepfake_hf.media import MediaError

        (result,) = self.detector(video_path, frame_scores=True, cancel=cancel)
        if result.error:
            return _message(_file_error(video_path, result.error)), None, None, []
        scores = result.frame_scores or []
        # Frames without a score (no face while other frames had one) are left out rather than drawn as
        # gaps: a line plot shows no mark for a point whose neighbours are both missing.
        scored = [(index, score) for index, score in enumerate(scores) if score is not None]
        table = pd.DataFrame({"frame": [index for index, _ in scored],
                              "fake probability": [score for _, score in scored]})
        table.attrs["frames"] = len(scores)
        gallery = []
        if result.kind == "video" and scores:
            try:
                frames, _ = self.detector.scorer.read(video_path, cancel=cancel)  # the frames the scores belong to
            except MediaError:
                frames = []
            ranked = sorted((i for i, s in enumerate(scores) if s is not None and i < len(frames)),
                            key=lambda i: -scores[i])
            gallery = [(_display_copy(frames[i])[0], f"frame {i}: {scores[i]:.1%} fake")
                       for i in ranked[:SUSPICIOUS_FRAMES]]
        return _verdict(result, self.detector.scorer.threshold), _probabilities(result), table, gallery

    # ---------------------------------------------------------------------------------- batch
    def analyse_batch(self, paths):
        """(rows [file, kind, label, fake probability, frames, faces, note or error], CSV path or None)."""
        if not self.model_id:
            return [["", "", "", None, None, None, NO_MODEL_MESSAGE]], None
        if isinstance(paths, RefusedUpload):
            return [["", "", "", None, None, None, str(paths)]], None
        paths = [p if isinstance(p, str) else getattr(p, "name", str(p)) for p in (paths or [])]
        if not paths:
            return [["", "", "", None, None, None, "Upload one or more files first."]], None
        note = ""
        if len(paths) > MAX_BATCH_FILES:
            note = f"only the first {MAX_BATCH_FILES} of {len(paths)} files were analysed"
            paths = paths[:MAX_BATCH_FILES]
        try:
            results = self._run(self._score_files, paths)
        except Exception as error:
            return [["", "", "", None, None, None, _public_text(_one_line(error), *paths)]], None
        rows = []
        for result in results:
            probability = None if result.fake_probability is None else round(result.fake_probability, 4)
            label = result.label or "error"
            if result.face_found is False:
                label = f"no face ({label}?)"
            remark = result.error or result.note or note or ""
            rows.append([Path(result.path).name, result.kind or "", label, probability,
                         result.frames, result.faces, _public_text(remark, result.path)])
        return rows, self._write_csv(rows)

    def _score_files(self, paths: list[str], cancel: threading.Event | None = None) -> "list[FileResult]":
        return self.detector(paths, cancel=cancel)

    def _write_csv(self, rows):
        """The batch table as a CSV in gradio's cache folder (served from there, removed by its cleanup)."""
        from gradio.utils import get_upload_folder

        folder = Path(get_upload_folder()) / "deepfake-hf"
        folder.mkdir(parents=True, exist_ok=True)
        csv_path = folder / f"deepfake_scores-{uuid.uuid4().hex[:12]}.csv"
        from deepfake_hf.runtime.outputs import SafeCsvWriter

        with open(csv_path, "w", newline="") as handle:
            writer = SafeCsvWriter(handle)
            writer.writerow(BATCH_HEADERS)
            writer.writerows(rows)
        return str(csv_path)


BATCH_HEADERS = ["file", "kind", "label", "fake probability", "frames", "faces", "note"]


def _one_line(error):
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, (ValueError, OSError, TimeoutError)) else f"{type(error).__name__}: {text}"


def _message(text, escape=True):
    """The page's error Markdown; `text` escaped unless it is the app's own Markdown (file names and library
    messages must not become links, images or HTML)."""
    return f"### Could not analyse this file\n\n{_escape_markdown(str(text)) if escape else text}"


# Characters that open inline Markdown (emphasis, code, links, images, HTML, strikethrough, tables, LaTeX,
# entities); "_" only at a word's edge, where it can open emphasis (so DEEPFAKE_HF_MAX_PIXELS stays readable).
_MARKDOWN_INLINE = re.compile(r"[\\`*\[\]<>~|$&]|(?<!\w)_|_(?!\w)")
# Bare links that GitHub-flavoured Markdown turns into anchors: www.x, scheme://x, someone@x.
_MARKDOWN_AUTOLINK = re.compile(r"(?i)(?<=\bwww)\.|:(?=//)|@")
# What starts a heading, list, rule or numbered item at the beginning of the text.
_MARKDOWN_BLOCK = re.compile(r"^(\s*\d*)((?<=\d)[.)]|(?<!\d)[#+\-=])")


def _escape_markdown(text):
    """`text` rendered as itself by Markdown: a backslash before every character that could start markup."""
    text = _MARKDOWN_INLINE.sub(lambda match: "\\" + match.group(0), text)
    text = _MARKDOWN_AUTOLINK.sub(lambda match: "\\" + match.group(0), text)
    return _MARKDOWN_BLOCK.sub(lambda match: match.group(1) + "\\" + match.group(2), text)


def _public_text(text, *paths):
    """`text` with server paths replaced by file names: the browser sees what the user uploaded, by name."""
    text = str(text)
    for path in sorted({str(p) for p in paths if p}, key=len, reverse=True):
        text = text.replace(path, Path(path).name)
    return _ABSOLUTE_PATH.sub(lambda match: match.group(1) or "(a server folder)", text)


def _file_error(path, problem):
    """'NAME: problem' for an uploaded file, by its name only."""
    return _public_text(f"{Path(str(path)).name}: {problem}", path)


def _public_model_name(model_id):
    """A Hub id as it is; a local model folder by its name only."""
    return Path(model_id).name if Path(str(model_id)).exists() else str(model_id)


def _plural(count, word):
    return f"{count} {word}{'' if count == 1 else 's'}"


def _verdict(result: "FileResult", threshold: float) -> str:
    probability = result.fake_probability
    frames, scored = result.frames, result.frames_scored
    details = [f"{_plural(scored, 'frame')} scored" + (f" of {frames} sampled" if scored != frames else "")]
    if result.faces is not None:
        details.append(f"{_plural(result.faces, 'face')} found")
    if result.note and result.face_found is not False:
        details.append(result.note)
    tail = f"Threshold {threshold:g}; {'; '.join(details)}. A signal for a human reviewer, not proof."
    if result.face_found is False:  # no face: that is the headline, the score only a footnote
        return (f"### {result.note[0].upper()}{result.note[1:]}\n\n"
                f"Whole-{'frame' if result.kind == 'video' else 'image'} score, not a verdict: "
                f"{result.label}, {probability:.1%} fake probability. {tail}")
    return f"### Verdict: {result.label.upper()}, {probability:.1%} fake probability\n\n{tail}"


def _display_copy(image):
    """(`image` at most DISPLAY_SIDE on its longest side, the scale applied) for showing on the page."""
    from PIL import Image

    longest = max(image.size)
    if longest <= DISPLAY_SIDE:
        return image, 1.0
    scale = DISPLAY_SIDE / longest
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0), scale


def _probabilities(result: "FileResult") -> dict[str, float]:
    probability = float(result.fake_probability)
    return {"fake": probability, "real": 1.0 - probability}


def _card_title(model_id):
    """The model card's first heading, from a local folder's README.md (no network needed)."""
    readme = Path(model_id) / "README.md"
    if not readme.is_file():
        return None
    for line in readme.read_text(errors="replace").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return None


# -------------------------------------------------------------------------------------- UI
def _payload_paths(payload):
    """Every file path an input payload names (FileData, ImageData, VideoData, lists of them, or dicts)."""
    if payload is None:
        return []
    if isinstance(payload, (list, tuple)):
        return [path for item in payload for path in _payload_paths(item)]
    if isinstance(payload, dict):
        found = [payload["path"]] if isinstance(payload.get("path"), str) else []
        return found + [path for key, value in payload.items() if key != "path" and isinstance(value, (dict, list))
                        for path in _payload_paths(value)]
    found = [payload.path] if isinstance(getattr(payload, "path", None), str) else []
    for attribute in ("video", "subtitles", "root"):
        value = getattr(payload, attribute, None)
        if value is not None and value is not payload:
            found += _payload_paths(value)
    return found


def _was_uploaded(path, blocks):
    """True only for a file this server received through its upload route (gradio records each one) that
    still lies in gradio's upload folder; links are resolved first, so none can lead elsewhere."""
    from gradio.utils import get_upload_folder

    try:
        resolved = Path(path).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return False
    folder = Path(get_upload_folder()).resolve()
    uploaded = getattr(blocks, "upload_file_set", ())
    return resolved.is_relative_to(folder) and resolved.is_file() and (
        str(path) in uploaded or str(resolved) in uploaded)


def _guard_uploads(component, blocks):
    """Make a gradio input hand the demo the paths of files uploaded to this server, and nothing else.

    Anything not uploaded becomes `RefusedUpload`, answered with one message whether or not the path exists;
    so do files that together exceed the request cap. The files are handed over undecoded: the demo decodes
    them itself, within the time limit and media's pixel limits (gr.Image re-encoded a grayscale or palette
    upload at full size before the limit applied, ~27 s for a 13000x13000 PNG; gr.File's own preprocessing
    leaves an empty temporary file and an open handle behind per file in gradio 6.31).
    (Wrapping the instance, not subclassing: a component subclass makes gradio write a .pyi stub here.)
    """
    multiple = getattr(component, "file_count", "single") == "multiple"

    def preprocess(payload):
        paths = _payload_paths(payload)
        if any(not _was_uploaded(path, blocks) for path in paths):
            return RefusedUpload(NOT_UPLOADED_MESSAGE)
        total, limit = sum(os.path.getsize(path) for path in paths), request_size_limit()
        if total > limit:  # uploaded one by one, they still add up in one analysis
            return RefusedUpload(_too_large_message(total, limit))
        if not paths:
            return None
        return paths if multiple else paths[0]

    component.preprocess = preprocess
    return component


def _refuse_foreign_files_first(blocks):
    """Keep gradio's own file handling away from any path that was not uploaded, before any component runs.

    gradio processes a file object that carries `meta` ({"path": ..., "meta": {"_type": "gradio.FileData"}})
    before preprocess: it checks the path, copies it into its cache and adds it to the list its cleanup deletes.
    The upload folder itself passed that check, so a folder reached the list and every later cleanup failed
    on it (IsADirectoryError), at shutdown too, leaving users' files behind; a path elsewhere got an error
    naming the server's working directory. Here an input that names any such path is handed to gradio as
    empty and becomes `RefusedUpload`, answered with the app's one message.
    """
    process = blocks.preprocess_data

    async def preprocess_data(block_fn, inputs, state, explicit_call=False):
        foreign = {index for index, value in enumerate(inputs)
                   if any(not _was_uploaded(path, blocks) for path in _payload_paths(value))}
        processed = await process(block_fn, [None if index in foreign else value for index, value in enumerate(inputs)],
                                  state, explicit_call)
        return [RefusedUpload(NOT_UPLOADED_MESSAGE) if index in foreign else value
                for index, value in enumerate(processed)]

    blocks.preprocess_data = preprocess_data


class RequestSizeCap:
    """ASGI middleware: a request whose body is declared larger than `limit` bytes gets a 413 with one line
    before its body is read, and a body of undeclared length (chunked) a 411; the server reads no more than
    the declared length, so the cap holds on every route (gradio caps each file, not a request of many)."""

    # A refused body up to this many times the cap is read and dropped first, so the client, still sending,
    # gets the answer instead of a reset connection; a larger one is answered at once.
    DRAIN_FACTOR = 4

    def __init__(self, app, limit):
        self.app, self.limit = app, int(limit)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            declared = headers.get(b"content-length", b"0").decode("latin-1").strip()
            if b"transfer-encoding" in headers:
                await self._answer(send, 411, "Send the request with a Content-Length header (the server caps "
                                              "the size of each request).")
                return
            size = int(declared) if declared.isdigit() else 0
            if size > self.limit:
                if size <= self.DRAIN_FACTOR * self.limit:
                    await self._drain(receive)
                await self._answer(send, 413, _too_large_message(size, self.limit))
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def _drain(receive):
        import asyncio

        try:
            while True:
                message = await asyncio.wait_for(receive(), timeout=10)
                if message["type"] != "http.request" or not message.get("more_body"):
                    return
        except asyncio.TimeoutError:  # a client that stopped sending is answered all the same
            return

    @staticmethod
    async def _answer(send, status, text):
        body = (text + "\n").encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _frame_plot(table):
    """The per-frame LinePlot update: the axis spans exactly the sampled frames."""
    import gradio as gr

    if table is None:
        return None
    last = max(int(table.attrs.get("frames", 1)) - 1, 1)
    return gr.LinePlot(value=table, x_lim=[0, last])


def build_demo(model_id=None, faces=None):
    """The Gradio Blocks app for `model_id` (a folder or Hub id; None shows how to set one)."""
    import gradio as gr

    demo_logic = DeepfakeDemo(model_id, faces=faces)

    def analyse_video(video_path):
        verdict, probabilities, table, gallery = demo_logic.analyse_video(video_path)
        return verdict, probabilities, _frame_plot(table), gallery

    with gr.Blocks(title="Deepfake detector", delete_cache=CACHE_CLEANUP) as demo:
        gr.Markdown("# Deepfake detector\nIs this image or video manipulated? Upload it and read the verdict, "
                    "then the limitations in the About tab.")
        if not model_id:
            gr.Markdown(f"**{NO_MODEL_MESSAGE}**", elem_id="no-model")
        with gr.Tab("Image"):
            with gr.Row():
                with gr.Column():
                    image_in = _guard_uploads(gr.Image(
                        sources=["upload", "webcam", "clipboard"], type="filepath", label="Image",
                        elem_id="image-input"), demo)
                    image_button = gr.Button("Analyse image", variant="primary", elem_id="image-button")
                with gr.Column():
                    image_verdict = gr.Markdown(elem_classes="verdict", elem_id="image-verdict")
                    image_bar = gr.Label(num_top_classes=2, label="Probability")
                    image_faces = gr.AnnotatedImage(label="Faces found")
                    image_heatmap = gr.Image(label="Where the model looked (heatmap)", interactive=False)
            image_button.click(demo_logic.analyse_image, image_in,
                               [image_verdict, image_bar, image_faces, image_heatmap], api_name="analyse_image")
        with gr.Tab("Video"):
            with gr.Row():
                with gr.Column():
                    video_in = _guard_uploads(gr.Video(sources=["upload"], label="Video", elem_id="video-input"), demo)
                    video_button = gr.Button("Analyse video", variant="primary", elem_id="video-button")
                with gr.Column():
                    video_verdict = gr.Markdown(elem_classes="verdict", elem_id="video-verdict")
                    video_bar = gr.Label(num_top_classes=2, label="Probability")
            video_plot = gr.LinePlot(x="frame", y="fake probability", y_lim=[0, 1],
                                     label="Fake probability per sampled frame")
            video_gallery = gr.Gallery(label="Most suspicious frames", columns=SUSPICIOUS_FRAMES)
            video_button.click(analyse_video, video_in, [video_verdict, video_bar, video_plot,
                                                                   video_gallery], api_name="analyse_video")
        with gr.Tab("Batch"):
            batch_in = _guard_uploads(gr.File(file_count="multiple", label=f"Images and videos (up to "
                                                                           f"{MAX_BATCH_FILES})"), demo)
            batch_button = gr.Button("Analyse files", variant="primary")
            batch_table = gr.Dataframe(headers=BATCH_HEADERS, label="Results", interactive=False)
            batch_csv = gr.File(label="Download CSV")
            batch_button.click(demo_logic.analyse_batch, batch_in, [batch_table, batch_csv], api_name="analyse_batch")
        with gr.Tab("About"):
            about = gr.Markdown()
        demo.load(lambda: _safe_about(demo_logic), None, about, api_name="about")
    _refuse_foreign_files_first(demo)
    return demo


def _safe_about(demo_logic):
    try:
        return demo_logic.about()
    except Exception as error:
        name = _public_model_name(demo_logic.model_id)
        return _message(f"could not load {name}: {_public_text(_one_line(error), demo_logic.model_id)}")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    from deepfake_hf.faces import face_mode_names

    parser = argparse.ArgumentParser(description="Gradio demo of a deepfake detector.")
    parser.add_argument("--model", help="model folder or Hub id (default: $DEEPFAKE_HF_MODEL)")
    parser.add_argument("--faces", choices=face_mode_names(),
                        help="face detection (default: the model's recorded face mode, else the picture as given)")
    # SIGTERM (a stopped container or Space) shuts gradio down like Ctrl-C, so its cache cleanup runs.
    signal.signal(signal.SIGTERM, _interrupt)
    args = parser.parse_args(argv)
    model_id = resolve_model(args.model)
    if not model_id:
        print(f"app.py: {NO_MODEL_MESSAGE}", file=sys.stderr)
    demo = build_demo(model_id, faces=args.faces)
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=64)
    from starlette.middleware import Middleware

    # server_name / server_port stay None so gradio reads GRADIO_SERVER_NAME / GRADIO_SERVER_PORT itself.
    demo.launch(max_file_size=MAX_FILE_SIZE, css=CSS, theme="soft", show_error=True,
                app_kwargs={"middleware": [Middleware(RequestSizeCap, limit=request_size_limit())]})


if __name__ == "__main__":
    main()
