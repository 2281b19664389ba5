"""Hugging Face Inference Endpoints handler for a deepfake-hf detector.

`deepfake-hf push`, `convert` and `export --native` copy this file, unchanged, as `handler.py` into the model
folder, with a `requirements.txt` naming `deepfake-hf` and the extras it needs; an endpoint created from the
repo installs those and runs `EndpointHandler(model_dir)(data)` for each request.

A request's `data["inputs"]` is an image or a video: raw bytes, a base64 string (a JSON body
`{"inputs": "<base64>"}`; a `data:...;base64,` prefix is accepted), or the PIL image the toolkit decodes from an
`image/*` body. A URL is fetched only when the caller opts in with `"parameters": {"allow_url": true}`, and
never while HF_HUB_OFFLINE is set. The answer is `deepfake-hf predict`'s JSON result for the file (the fields of
`deepfake_hf.scoring.results.FileResult`: label, fake_probability, frames, faces, face_found, note, ...), computed
by the same `Detector` with predict's defaults, so the same file gets the same number; videos also carry
`frame_scores` (`"frame_scores": false` leaves them out, `true` adds them for images). Another face mode:
`"parameters": {"faces": "none"}` (e.g. for ready-made face crops), as `predict --faces` takes it.

A payload that cannot be scored (not an image or a video, a truncated file, over DEEPFAKE_HF_MAX_FILE_SIZE bytes,
default 100mb, or over DEEPFAKE_HF_MAX_PIXELS pixels) gives the same fields with `error` set to one line, never a
traceback. Bytes are decoded from a temporary folder that is removed before the answer is returned.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import shutil
import tempfile
import threading
from typing import Any

from deepfake_hf.errors import DeepfakeHFError, one_line

# The request body size a caller may send, in the Gradio app's units ("100mb", 1024-based), or plain bytes.
MAX_BYTES_ENV = "DEEPFAKE_HF_MAX_FILE_SIZE"
DEFAULT_MAX_BYTES = "100mb"
PARAMETERS = ("allow_url", "frame_scores", "faces")
URL_TIMEOUT_S = 20.0
# Pillow's name of an image format -> the file extension `deepfake_hf.media` reads it by.
IMAGE_SUFFIXES = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp",
                  "TIFF": ".tiff"}
# Leading bytes of the video containers PyAV reads -> an extension `deepfake_hf.media` takes for a video (the
# decoder itself probes the content, so MOV under .mp4 or WebM under .mkv decode the same).
VIDEO_SIGNATURES = (
    (4, b"ftyp", ".mp4"), (4, b"moov", ".mov"), (4, b"mdat", ".mov"), (4, b"wide", ".mov"), (4, b"free", ".mov"),
    (0, b"\x1a\x45\xdf\xa3", ".mkv"), (0, b"FLV", ".flv"), (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", ".wmv"),
    (0, b"\x00\x00\x01\xba", ".mpg"), (0, b"\x00\x00\x01\xb3", ".mpg"),
)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*$", re.IGNORECASE)


class PayloadError(DeepfakeHFError, ValueError):
    """A request this handler cannot score (or a size setting it cannot read); str() is one line."""


def parse_size(text: str, name: str = MAX_BYTES_ENV) -> int:
    """Bytes in a "100mb"-style size (k, m, g, t: powers of 1024) or a plain number of bytes."""
    match = _SIZE.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise PayloadError(f"{name}: {text!r} is not a size such as 100mb, 2gb or 5000000")
    return int(float(match.group(1)) * 1024 ** " kmgt".index(match.group(2).lower() or " "))


class EndpointHandler:
    """`EndpointHandler(model_dir)(data)` as Inference Endpoints calls it: one file in, predict's result out."""

    def __init__(self, path: str = "", **detector_options: Any) -> None:
        from deepfake_hf.defaults import MODEL_FACES
        from deepfake_hf.scoring.detector import Detector

        self.path = path or "."
        self.max_bytes = parse_size(os.environ.get(MAX_BYTES_ENV) or DEFAULT_MAX_BYTES)
        # predict's defaults: the face mode and the crop the model records, resolved by Scorer.set_policy
        options = {"faces": MODEL_FACES, "progress": False, **detector_options}
        self.detector = Detector.from_pretrained(self.path, **options)
        self._detectors: dict[Any, Any] = {None: self.detector}
        # The toolkit may call from several threads; the face detectors are not thread-safe.
        self._lock = threading.Lock()

    def __call__(self, data: Any) -> dict[str, Any]:
        name, kind = "inputs", None
        try:
            inputs, parameters = _request(data)
            name, payload = self._payload(inputs, parameters.get("allow_url") is True)
            detector = self._detector(parameters.get("faces"))
            result = self._score(detector, name, payload)
        except DeepfakeHFError as error:  # PayloadError, an unknown face mode, ...: already one line
            return _failed(name, kind, str(error))
        except Exception as error:  # noqa: BLE001 - an endpoint answers every request with one line, never a traceback
            return _failed(name, kind, f"{type(error).__name__}: {one_line(error, 300)}")
        wanted = parameters.get("frame_scores")
        frame_scores = result.kind == "video" if wanted is None else bool(wanted)
        if not frame_scores:
            result.frame_scores = None
        return result.to_dict(frame_scores and result.error is None)

    # ------------------------------------------------------------------------------------------ inputs
    def _payload(self, inputs: Any, allow_url: bool) -> tuple[str, Any]:
        """(name shown in the result, bytes or a PIL image) of the request's inputs."""
        from PIL import Image

        if isinstance(inputs, Image.Image):
            return "<image>", inputs
        if isinstance(inputs, (bytes, bytearray, memoryview)):
            raw = bytes(inputs)
            self._check_size(len(raw))
            return "<bytes>", raw
        if not isinstance(inputs, str):
            raise PayloadError(f"inputs: expected an image or a video as bytes, a base64 string or an image, "
                               f"got {type(inputs).__name__}")
        text = inputs.strip()
        if re.match(r"^[a-z][a-z0-9+.-]*://", text, re.IGNORECASE):
            if not allow_url:
                raise PayloadError('inputs: a URL is fetched only with "parameters": {"allow_url": true}; '
                                   "send the file's bytes or base64 instead")
            return text, self._fetch(text)
        if text.startswith("data:") and "," in text:
            text = text.split(",", 1)[1]
        text = "".join(text.split())
        if len(text) * 3 // 4 > self.max_bytes:  # refused before decoding
            self._check_size(len(text) * 3 // 4)
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise PayloadError("inputs: a string must be the file's content in base64 (or a URL with "
                               '"allow_url": true); this one is not base64') from None
        self._check_size(len(raw))
        return "<base64>", raw

    def _check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise PayloadError(f"inputs: {size:,} bytes is over the limit of {self.max_bytes:,} bytes "
                               f"({MAX_BYTES_ENV}); not decoded")
        if size == 0:
            raise PayloadError("inputs: empty (0 bytes)")

    def _fetch(self, url: str) -> bytes:
        """The body of an http(s) URL, at most `max_bytes`; refused at once while HF_HUB_OFFLINE is set."""
        import urllib.error
        import urllib.request

        from huggingface_hub import constants

        if not url.lower().startswith(("http://", "https://")):
            raise PayloadError(f"{url}: only http and https URLs are fetched")
        if constants.HF_HUB_OFFLINE:
            raise PayloadError(f"{url}: not fetched: HF_HUB_OFFLINE is set (offline); send the file's bytes instead")
        try:
            with urllib.request.urlopen(urllib.request.Request(url), timeout=URL_TIMEOUT_S) as response:
                raw = response.read(self.max_bytes + 1)
        except urllib.error.HTTPError as error:
            raise PayloadError(f"{url}: cannot fetch (HTTP {error.code})") from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = one_line(getattr(error, "reason", error), 200)
            raise PayloadError(f"{url}: cannot fetch ({reason}); the endpoint may be offline") from None
        self._check_size(len(raw))
        return raw

    # ------------------------------------------------------------------------------------------ scoring
    def _detector(self, faces: Any) -> Any:
        """The Detector for a face mode the request names (built once, on the same loaded model)."""
        from deepfake_hf.scoring.detector import Detector
        from deepfake_hf.scoring.scorer import Scorer

        if faces not in self._detectors:
            if not isinstance(faces, str):
                raise PayloadError(f'parameters: "faces" must be a face mode name, got {type(faces).__name__}')
            base = self.detector.scorer
            scorer = Scorer(base.model, base.image_processor, faces=faces, device=base.device, name=base.name)
            self._detectors[faces] = Detector(scorer, progress=False)
        return self._detectors[faces]

    def _score(self, detector: Any, name: str, payload: Any) -> Any:
        if not isinstance(payload, bytes):  # a decoded image: scored as given
            with self._lock:
                result = detector([payload], frame_scores=True)[0]
            result.path = name
            return result
        kind, suffix = sniff(payload)
        folder = tempfile.mkdtemp(prefix="deepfake-hf-endpoint-")
        try:
            file = os.path.join(folder, f"input{suffix}")
            with open(file, "wb") as handle:
                handle.write(payload)
            with self._lock:
                result = detector([file], frame_scores=True)[0]
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        result.path = name
        result.kind = result.kind or kind
        for field in ("error", "note"):  # the temporary file is no name the caller knows
            value = getattr(result, field)
            if value:
                setattr(result, field, value.replace(file, name).replace(folder, name))
        return result


def sniff(raw: bytes) -> tuple[str, str]:
    """("image" or "video", a file extension) from a file's leading bytes; PayloadError when it is neither."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as image:
            image_format = image.format
    except Image.DecompressionBombError:
        raise PayloadError("inputs: image too large, refused as a possible decompression bomb") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        image_format = None
    if image_format is not None:
        if image_format not in IMAGE_SUFFIXES:
            raise PayloadError(f"inputs: {image_format} images are not read; send "
                               f"{', '.join(sorted(set(IMAGE_SUFFIXES) - {'MPO'}))}")
        return "image", IMAGE_SUFFIXES[image_format]
    for offset, signature, suffix in VIDEO_SIGNATURES:
        if raw[offset:offset + len(signature)] == signature:
            return "video", suffix
    if raw[:4] == b"RIFF" and raw[8:12] == b"AVI ":
        return "video", ".avi"
    if len(raw) > 188 and raw[0] == 0x47 and raw[188] == 0x47:  # MPEG transport stream packets
        return "video", ".mpg"
    raise PayloadError("inputs: not an image or a video (expected JPEG, PNG, GIF, WebP, BMP or TIFF; "
                       "MP4, MOV, WebM, MKV, AVI, FLV, WMV or MPEG)")


def _request(data: Any) -> tuple[Any, dict[str, Any]]:
    """(inputs, parameters) of the toolkit's request dict, the parameters checked."""
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        return data, {}
    if not isinstance(data, dict) or "inputs" not in data:
        raise PayloadError('request: expected {"inputs": <image or video>, "parameters": {...}}')
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise PayloadError(f"parameters: expected an object, got {type(parameters).__name__}")
    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        raise PayloadError(f"parameters: unknown {', '.join(map(repr, unknown))}; known: {', '.join(PARAMETERS)}")
    return data["inputs"], parameters


def _failed(name: str, kind: str | None, error: str) -> dict[str, Any]:
    from deepfake_hf.scoring.results import FileResult

    return FileResult(name, kind, error=error).to_dict(False)


__all__ = ["EndpointHandler", "PayloadError", "parse_size", "sniff"]
