"""Face modes, 5-point alignment and crops.

A face mode (`base.FaceMode`) is one module of this package: `dlib` (fast: downscaled search, faces followed
between key frames), `deepfakebench` (DeepfakeBench's preprocessing exactly) and `none` (whole frames); "auto"
is the first installed of the modes that may be picked automatically (`base.face_mode`). Modes are found by
importing the package's modules, so a new mode is one new file with a `@register`ed `FaceMode` subclass.
`align` holds the only crop code (aligned the DeepfakeBench way, or the box with a margin); `tracking` links
faces across the frames of a video.
"""

from deepfake_hf.faces.align import (
    ARCFACE_TEMPLATE,
    align_face,
    aligned_points,
    aligned_template,
    alignment_matrix,
    aligns,
    crop_face,
    margin_crop,
    similarity_transform,
    warp_affine,
)
from deepfake_hf.faces.base import (
    AUTO,
    FACE_CROPS,
    NO_FACES,
    Face,
    FaceDependencyError,
    FaceError,
    FaceMode,
    auto_description,
    face_mode,
    face_mode_names,
    face_modes,
    finds_faces,
    frame_sampling_of,
    get_face_detector,
    input_record,
    prefer_recorded,
    recorded_face_modes,
    register,
)
from deepfake_hf.faces.deepfakebench import DeepfakeBenchFaceDetector
from deepfake_hf.faces.dlib import KEYPOINT_CONVENTIONS, DlibFaceDetector, dlib_available, five_points_from_68
from deepfake_hf.faces.none import NoFaceDetector
from deepfake_hf.faces.tracking import box_iou, detect_video, most_prominent, track_faces

__all__ = [
    "ARCFACE_TEMPLATE",
    "AUTO",
    "FACE_CROPS",
    "KEYPOINT_CONVENTIONS",
    "NO_FACES",
    "DeepfakeBenchFaceDetector",
    "DlibFaceDetector",
    "Face",
    "FaceDependencyError",
    "FaceError",
    "FaceMode",
    "NoFaceDetector",
    "align_face",
    "aligned_points",
    "aligned_template",
    "alignment_matrix",
    "aligns",
    "auto_description",
    "box_iou",
    "crop_face",
    "detect_video",
    "dlib_available",
    "face_mode",
    "face_mode_names",
    "face_modes",
    "finds_faces",
    "five_points_from_68",
    "frame_sampling_of",
    "get_face_detector",
    "input_record",
    "margin_crop",
    "most_prominent",
    "prefer_recorded",
    "recorded_face_modes",
    "register",
    "similarity_transform",
    "track_faces",
    "warp_affine",
]
