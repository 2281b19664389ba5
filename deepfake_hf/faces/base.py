"""The face-mode interface and its registry: the one place that knows face-mode names.

A face mode is a `FaceMode` subclass in its own module of this package, decorated with `@register`: its
class attributes say what the rest of the package asks of a mode (which video frames its crops come from,
which crops it allows, whether it finds faces at all, whether "auto" may pick it, whether a model trained
on its crops records it as its `face_preprocessing`), and an instance is the detector
(`detect(image) -> list[Face]`, optionally `detect_video(frames)`). The modules of the package are
imported when the registry is first read (`pkgutil`), so a new mode is one new file.

"auto" is not a mode: `face_mode("auto")` is the first mode, in order, with `auto = True` that is installed
(dlib, else whole frames); `prefer_recorded` puts a model's recorded preprocessing before that.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from deepfake_hf.errors import DeepfakeHFError
from deepfake_hf.media import EVEN_FRAMES


class FaceError(DeepfakeHFError, ValueError):
    """A bad face option or a face without what the operation needs."""


class FaceDependencyError(DeepfakeHFError, ImportError):
    """dlib or its landmark models are not installed (the `faces` extra)."""


# The crops a face can be cut as (faces.align.crop_face): 5-point aligned (DeepfakeBench) or box + margin (DFDC).
FACE_CROPS = ("align", "margin")
# The choice that picks a mode at run time, and the mode that finds no faces (whole frames are scored).
AUTO = "auto"
NO_FACES = "none"


@dataclass
class Face:
    """A detected face: `box` (x0, y0, x1, y1) in pixels, detector `score`, `landmarks` (5, 2) or None."""

    box: tuple
    score: float = 1.0
    landmarks: np.ndarray | None = field(default=None, repr=False)

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)

    def aligned_crop(self, image: Any, size: int, scale: float) -> Any | None:
        """This face's own aligned crop, for a mode whose alignment is not align.align_face's (faces/gend.py);
        None: align_face cuts it the DeepfakeBench way."""
        return None


class FaceMode:
    """One face mode: class attributes describe it, an instance detects faces.

    Any object with `detect(image)` (and a `name`) also works where a detector is taken; it is treated as a
    mode with this class's defaults (finds faces, even frame sampling, any crop).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""  # one line for --help
    order: ClassVar[int] = 50  # position among the names (the CLI's choices, "auto"'s preference)
    frame_sampling: ClassVar[str] = EVEN_FRAMES  # which video frames its crops come from (media.FRAME_SAMPLINGS)
    crops: ClassVar[tuple[str, ...]] = FACE_CROPS  # the crops it allows
    finds_faces: ClassVar[bool] = True  # False: whole frames are scored, nothing is cropped
    auto: ClassVar[bool] = False  # "auto" may pick it (when installed)
    recorded: ClassVar[bool] = False  # a model trained on its crops records it as `face_preprocessing`

    @classmethod
    def available(cls) -> bool:
        """Whether what it needs is installed (cheap: no import of the heavy library)."""
        return True

    @classmethod
    def build(cls, size: int, scale: float) -> FaceMode:
        """The detector a scorer runs, given its crop geometry (only modes that look inside the crop use it)."""
        return cls()

    def detect(self, image: Any) -> list[Face]:
        """Faces in a PIL image, largest first."""
        raise NotImplementedError

    def detect_video(self, frames: Iterable[Any]) -> Iterator[list[Face]]:
        """The faces of each frame of one video, in order (a mode may follow faces between frames)."""
        return (self.detect(frame) for frame in frames)

    def worker_options(self) -> dict[str, Any] | None:
        """The constructor options that rebuild this detector in another process (`face_mode(name)(**options)`,
        what `faces.workers` does), or None when it cannot be rebuilt from its name (then it runs in-thread)."""
        return {} if type(self).__init__ is FaceMode.__init__ else None

    @property
    def independent_frames(self) -> bool:
        """Whether each frame's faces depend on that frame only (no following between frames), so the frames of
        one video may be searched by several processes at once."""
        return type(self).detect_video is FaceMode.detect_video


_MODES: dict[str, type[FaceMode]] = {}


def register(mode: type[FaceMode]) -> type[FaceMode]:
    """Class decorator: add a face mode to the registry under its `name`."""
    if not mode.name or mode.name == AUTO:
        raise FaceError(f"face mode {mode.__qualname__}: needs a name other than {AUTO!r}")
    known = _MODES.get(mode.name)
    if known is not None and (known.__module__, known.__qualname__) != (mode.__module__, mode.__qualname__):
        raise FaceError(f"face mode {mode.name!r}: already registered by {known.__module__}.{known.__qualname__}")
    _MODES[mode.name] = mode
    return mode


def _discover() -> None:
    """Import every module of the faces package (each mode registers itself when imported)."""
    package = importlib.import_module(__name__.rpartition(".")[0])
    for module in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)


def face_modes() -> dict[str, type[FaceMode]]:
    """The registered modes by name, in order."""
    _discover()
    return dict(sorted(_MODES.items(), key=lambda item: (item[1].order, item[0])))


def face_mode_names() -> tuple[str, ...]:
    """What a user may ask for: "auto", then every mode's name, in order (the CLI's --faces choices)."""
    return (AUTO, *face_modes())


def auto_description() -> str:
    """What "auto" picks, in words, for --help."""
    candidates = [name for name, mode in face_modes().items() if mode.auto]
    return f"the model's recorded face preprocessing, else the first installed of {', '.join(candidates)}"


def recorded_face_modes() -> tuple[str, ...]:
    """The modes a model may record as its `face_preprocessing` (configuration_deepfake.FACE_PREPROCESSINGS)."""
    return tuple(name for name, mode in face_modes().items() if mode.recorded)


def face_mode(name: str) -> type[FaceMode]:
    """The mode class of a name; "auto" is the first installed mode that "auto" may pick."""
    modes = face_modes()
    if name == AUTO:
        return next(mode for mode in modes.values() if mode.auto and mode.available())
    if name not in modes:
        raise FaceError(f"faces: {name!r} is not one of {', '.join(face_mode_names())}.")
    return modes[name]


def prefer_recorded(faces: str | None, recorded: str | None) -> str:
    """The face mode asked for, with a model's recorded preprocessing in place of None ("the model's") and
    "auto"; None with nothing recorded is whole frames, "auto" with nothing recorded stays "auto".

    The one rule for a door's default: every door passes None (defaults.MODEL_FACES) unless the caller names a
    mode, and the scorer resolves it here (scoring.scorer.resolve_faces), so no door starts from its own."""
    if faces is None:
        return recorded or NO_FACES
    if faces == AUTO and recorded:
        return recorded
    return faces


def input_record(faces: str, num_frames: int | None = None) -> dict[str, Any]:
    """The config keys (`configuration_deepfake.INPUT_KEYS`) of a model fitted on data read with face mode `faces`
    ("auto" as it resolves here): that mode, the crop geometry the data loaders cut with when it finds faces, and
    the frames per video. Empty of face keys for a mode that is not recorded. `train` and `probe` write it, so
    every door later feeds the model what it was fitted on."""
    from deepfake_hf.defaults import DEFAULT_CROP, FACE_SCALE, FACE_SIZE

    mode = face_mode(faces)
    record: dict[str, Any] = {"num_frames": num_frames} if num_frames else {}
    if not mode.recorded:
        return record
    record["face_preprocessing"] = mode.name
    if mode.finds_faces:  # data.load_source's crop: aligned, FACE_SIZE pixels at FACE_SCALE
        record.update(face_crop=DEFAULT_CROP, face_size=FACE_SIZE, face_scale=FACE_SCALE)
    return record


def get_face_detector(name: str | Any = AUTO, **options: Any) -> Any:
    """A detector by mode name (`options` go to the mode's constructor); a detector object is returned as is."""
    if not isinstance(name, str):
        return name
    return face_mode(name)(**options)


def frame_sampling_of(detector: Any) -> str:
    """The video frames a detector's crops come from (media.sample_frame_indices' `sampling`)."""
    return getattr(detector, "frame_sampling", FaceMode.frame_sampling)


def finds_faces(detector: Any) -> bool:
    """False for the mode that scores whole frames."""
    return getattr(detector, "finds_faces", FaceMode.finds_faces)
