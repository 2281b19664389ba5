"""Gradio demo of a deepfake detector (also the entry point of the Hugging Face Space).

    python app.py --model path/or/hub-id          # or DEEPFAKE_HF_MODEL=... python app.py

Tabs: Image (upload, webcam or clipboard -> verdict, probability bar, face boxes, heatmap), Video (verdict,
per-frame scores over time, the most suspicious frames), Batch (several files -> table + CSV) and About
(model summary, threshold, limitations). Gradio's own GRADIO_SERVER_NAME / GRADIO_SERVER_PORT choose where
it listens. Requests are queued (DEEPFAKE_HF_CONCURRENCY at a time), uploads are capped at
DEEPFAKE_HF_MAX_FILE_SIZE and each request at DEEPFAKE_HF_TIME_LIMIT seconds; a bad file gets a message
on the page, never a crash. Works offline on a local model folder.
"""

import argparse
import csv
import os
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

DEFAULT_MODEL = None  # `deepfake-hf push-space` writes the Space's model id here
CONCURRENCY_LIMIT = int(os.environ.get("DEEPFAKE_HF_CONCURRENCY", "2"))
MAX_FILE_SIZE = os.environ.get("DEEPFAKE_HF_MAX_FILE_SIZE", "100mb")
TIME_LIMIT_S = float(os.environ.get("DEEPFAKE_HF_TIME_LIMIT", "120"))
MAX_BATCH_FILES = int(os.environ.get("DEEPFAKE_HF_MAX_BATCH_FILES", "32"))
SUSPICIOUS_FRAMES = 4
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


def resolve_model(cli_model=None):
    """The model to serve: --model, else DEEPFAKE_HF_MODEL, else the Space's DEFAULT_MODEL (None if unset)."""
    return cli_model or os.environ.get("DEEPFAKE_HF_MODEL") or DEFAULT_MODEL


class DeepfakeDemo:
    """The demo's logic, independent of the UI: each `analyse_*` returns what the page shows."""

    def __init__(self, model_id, faces=None, time_limit=TIME_LIMIT_S):
        self.model_id = model_id
        self.faces = faces or os.environ.get("DEEPFAKE_HF_FACES", "auto")
        self.time_limit = time_limit
        self._detector = None
        self._explainer = None
        self._explain_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max(1, CONCURRENCY_LIMIT), thread_name_prefix="demo")

    # ---------------------------------------------------------------------------------- model
    @property
    def detector(self):
        if self._detector is None:
            from deepfake_hf.inference import Detector

            self._detector = Detector.from_pretrained(self.model_id, faces=self.faces, progress=False)
        return self._detector

    def _run(self, function, *args):
        """Run `function` with the per-request time limit; a timeout becomes a message, not a hung page."""
        future = self._pool.submit(function, *args)
        try:
            return future.result(timeout=self.time_limit)
        except FutureTimeout:
            raise TimeoutError(f"the analysis took longer than {self.time_limit:g} s and was abandoned") from None

    def about(self):
        """Markdown summary of the model: id, threshold, temperature, video settings, card title."""
        if not self.model_id:
            return f"**{NO_MODEL_MESSAGE}**\n\n## Limitations\n\n{LIMITATIONS}"
        config = self.detector.model.config
        lines = [f"**Model:** `{self.model_id}`"]
        title = _card_title(self.model_id)
        if title:
            lines.append(f"**Card:** {title}")
        lines.append(f"**Decision threshold:** a file is called *fake* when its fake probability is at least "
                     f"**{self.detector.threshold:g}**.")
        if getattr(config, "calibration_temperature", None):
            lines.append(f"**Calibration temperature:** {config.calibration_temperature:g}")
        lines.append(f"**Videos:** {self.detector.num_frames} frames sampled uniformly, aggregated with "
                     f"`{self.detector.aggregate}`. **Faces:** {self.detector.face_detector.name}.")
        return "\n\n".join(lines) + f"\n\n## Limitations\n\n{LIMITATIONS}"

    # ---------------------------------------------------------------------------------- image
    def analyse_image(self, image_path):
        """(verdict markdown, {fake, real} probabilities, (image, face boxes), heatmap image or None)."""
        if not self.model_id:
            return _message(NO_MODEL_MESSAGE), None, None, None
        if not image_path:
            return "Upload an image first.", None, None, None
        try:
            return self._run(self._analyse_image, image_path)
        except Exception as error:  # anything unexpected is still answered on the page
            return _message(_one_line(error)), None, None, None

    def _analyse_image(self, image_path):
        from deepfake_hf.media import MediaError, open_image

        (result,) = self.detector(image_path)
        if result["error"]:
            return _message(result["error"]), None, None, None
        try:
            image = open_image(image_path)
        except MediaError as error:
            return _message(str(error)), None, None, None
        faces = self.detector.face_detector.detect(image)
        boxes = [((int(x0), int(y0), int(x1), int(y1)), f"face {index + 1}")
                 for index, (x0, y0, x1, y1) in enumerate(face.box for face in faces)]
        return (_verdict(result, self.detector.threshold), _probabilities(result), (image, boxes),
                self._heatmap(image, faces))

    def _heatmap(self, image, faces):
        """Heatmap overlay (deepfake_hf.explain: attention rollout or Grad-CAM) on the first face crop, or on
        the whole image when no face was found; None for models explain does not support."""
        import copy

        from deepfake_hf.explain import explain
        from deepfake_hf.faces import crop_face

        detector = self.detector
        if not hasattr(detector.model, "get_image_features"):  # a native export: no deepfake-hf heads to explain
            return None
        target = image
        if faces:
            target = crop_face(image, faces[0], crop=detector.crop, size=detector.face_size,
                               scale=detector.face_scale, margin=detector.margin)
        with self._explain_lock:  # Grad-CAM hooks and eager attention: a private copy, one request at a time
            if self._explainer is None:
                self._explainer = copy.deepcopy(detector.model).eval()
            try:
                return explain(self._explainer, target, processor=detector.image_processor)["overlay"]
            except Exception:  # a heatmap is a bonus: never let it hide the verdict
                return None

    # ---------------------------------------------------------------------------------- video
    def analyse_video(self, video_path):
        """(verdict markdown, {fake, real}, per-frame scores table, gallery [(frame, caption)])."""
        if not self.model_id:
            return _message(NO_MODEL_MESSAGE), None, None, []
        if not video_path:
            return "Upload a video first.", None, None, []
        try:
            return self._run(self._analyse_video, video_path)
        except Exception as error:
            return _message(_one_line(error)), None, None, []

    def _analyse_video(self, video_path):
        import pandas as pd

        from deepfake_hf.media import MediaError, read_video_frames

        (result,) = self.detector(video_path, frame_scores=True)
        if result["error"]:
            return _message(result["error"]), None, None, []
        scores = result.get("frame_scores") or []
        table = pd.DataFrame({"frame": list(range(len(scores))),
                              "fake probability": [float("nan") if s is None else s for s in scores]})
        gallery = []
        if result["kind"] == "video" and scores:
            try:
                frames = read_video_frames(video_path, num_frames=self.detector.num_frames)
            except MediaError:
                frames = []
            ranked = sorted((i for i, s in enumerate(scores) if s is not None and i < len(frames)),
                            key=lambda i: -scores[i])
            gallery = [(frames[i], f"frame {i}: {scores[i]:.1%} fake") for i in ranked[:SUSPICIOUS_FRAMES]]
        return _verdict(result, self.detector.threshold), _probabilities(result), table, gallery

    # ---------------------------------------------------------------------------------- batch
    def analyse_batch(self, paths):
        """(rows [file, kind, label, fake probability, frames, faces, note or error], CSV path or None)."""
        if not self.model_id:
            return [["", "", "", None, None, None, NO_MODEL_MESSAGE]], None
        paths = [p if isinstance(p, str) else getattr(p, "name", str(p)) for p in (paths or [])]
        if not paths:
            return [["", "", "", None, None, None, "Upload one or more files first."]], None
        note = ""
        if len(paths) > MAX_BATCH_FILES:
            note = f"only the first {MAX_BATCH_FILES} of {len(paths)} files were analysed"
            paths = paths[:MAX_BATCH_FILES]
        try:
            results = self._run(self.detector, paths)
        except Exception as error:
            return [["", "", "", None, None, None, _one_line(error)]], None
        rows = []
        for result in results:
            probability = None if result["fake_probability"] is None else round(result["fake_probability"], 4)
            rows.append([Path(result["path"]).name, result["kind"] or "", result["label"] or "error", probability,
                         result["frames"], result["faces"], result["error"] or result.get("note") or note or ""])
        csv_path = Path(tempfile.mkdtemp(prefix="deepfake-hf-batch-")) / "deepfake_scores.csv"
        with open(csv_path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(BATCH_HEADERS)
            writer.writerows(rows)
        return rows, str(csv_path)


BATCH_HEADERS = ["file", "kind", "label", "fake probability", "frames", "faces", "note"]


def _one_line(error):
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, (ValueError, OSError, TimeoutError)) else f"{type(error).__name__}: {text}"


def _message(text):
    return f"### Could not analyse this file\n\n{text}"


def _verdict(result, threshold):
    probability = result["fake_probability"]
    details = [f"{result['frames']} frame{'s' if result['frames'] != 1 else ''} scored"]
    if result.get("faces") is not None:
        details.append(f"{result['faces']} face{'s' if result['faces'] != 1 else ''} found")
    if result.get("note"):
        details.append(result["note"])
    return (f"### Verdict: {result['label'].upper()}, {probability:.1%} fake probability\n\n"
            f"Threshold {threshold:g}; {'; '.join(details)}. A signal for a human reviewer, not proof.")


def _probabilities(result):
    probability = float(result["fake_probability"])
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
def _tolerate_bad_uploads(component):
    """Make a gradio input pass an undecodable upload through as its path instead of failing the request,
    so the app answers the bad file with a message. (Wrapping the instance, not subclassing: a component
    subclass makes gradio write a .pyi stub next to this file.)"""
    decode = component.preprocess

    def preprocess(payload):
        try:
            return decode(payload)
        except Exception:
            return getattr(payload, "path", None)

    component.preprocess = preprocess
    return component


def build_demo(model_id=None, faces=None):
    """The Gradio Blocks app for `model_id` (a folder or Hub id; None shows how to set one)."""
    import gradio as gr

    demo_logic = DeepfakeDemo(model_id, faces=faces)
    with gr.Blocks(title="Deepfake detector") as demo:
        gr.Markdown("# Deepfake detector\nIs this image or video manipulated? Upload it and read the verdict, "
                    "then the limitations in the About tab.")
        if not model_id:
            gr.Markdown(f"**{NO_MODEL_MESSAGE}**", elem_id="no-model")
        with gr.Tab("Image"):
            with gr.Row():
                with gr.Column():
                    image_in = _tolerate_bad_uploads(gr.Image(
                        sources=["upload", "webcam", "clipboard"], type="filepath", label="Image",
                        elem_id="image-input"))
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
                    video_in = _tolerate_bad_uploads(gr.Video(sources=["upload"], label="Video", elem_id="video-input"))
                    video_button = gr.Button("Analyse video", variant="primary", elem_id="video-button")
                with gr.Column():
                    video_verdict = gr.Markdown(elem_classes="verdict", elem_id="video-verdict")
                    video_bar = gr.Label(num_top_classes=2, label="Probability")
            video_plot = gr.LinePlot(x="frame", y="fake probability", y_lim=[0, 1],
                                     label="Fake probability per sampled frame")
            video_gallery = gr.Gallery(label="Most suspicious frames", columns=SUSPICIOUS_FRAMES)
            video_button.click(demo_logic.analyse_video, video_in, [video_verdict, video_bar, video_plot,
                                                                   video_gallery], api_name="analyse_video")
        with gr.Tab("Batch"):
            batch_in = gr.File(file_count="multiple", label=f"Images and videos (up to {MAX_BATCH_FILES})")
            batch_button = gr.Button("Analyse files", variant="primary")
            batch_table = gr.Dataframe(headers=BATCH_HEADERS, label="Results", interactive=False)
            batch_csv = gr.File(label="Download CSV")
            batch_button.click(demo_logic.analyse_batch, batch_in, [batch_table, batch_csv], api_name="analyse_batch")
        with gr.Tab("About"):
            about = gr.Markdown()
        demo.load(lambda: _safe_about(demo_logic), None, about, api_name="about")
    return demo


def _safe_about(demo_logic):
    try:
        return demo_logic.about()
    except Exception as error:
        return _message(f"could not load {demo_logic.model_id}: {_one_line(error)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Gradio demo of a deepfake detector.")
    parser.add_argument("--model", help="model folder or Hub id (default: $DEEPFAKE_HF_MODEL)")
    parser.add_argument("--faces", choices=["auto", "dlib", "none"], help="face detection (default: auto)")
    args = parser.parse_args(argv)
    model_id = resolve_model(args.model)
    if not model_id:
        print(f"app.py: {NO_MODEL_MESSAGE}", file=sys.stderr)
    demo = build_demo(model_id, faces=args.faces)
    demo.queue(default_concurrency_limit=CONCURRENCY_LIMIT, max_size=64)
    # server_name / server_port stay None so gradio reads GRADIO_SERVER_NAME / GRADIO_SERVER_PORT itself.
    demo.launch(max_file_size=MAX_FILE_SIZE, css=CSS, theme="soft", show_error=True)


if __name__ == "__main__":
    main()
