"""Face crops: the only crop code of the package.

`align_face` is the DeepfakeBench convention: the five points are mapped onto the ArcFace 112x112 template by
a least-squares similarity transform, the field of view is enlarged by `scale` (1.3) around the template
centre, and the crop is `size` x `size` (256). `margin_crop` is the DFDC winner's plain box crop with a
relative margin (30%). `crop_face` picks one of the two (faces.base.FACE_CROPS).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepfake_hf.defaults import DEFAULT_CROP, FACE_MARGIN, FACE_SCALE, FACE_SIZE
from deepfake_hf.faces.base import Face, FaceDependencyError, FaceError

# insightface's 5-point template for 96x112 crops: left eye, right eye, nose tip, left mouth corner,
# right mouth corner, in image coordinates (x right, y down). Moved 8 px right it is the ArcFace 112x112 one.
INSIGHTFACE_TEMPLATE = ((30.2946, 51.6963), (65.5318, 51.5014), (48.0252, 71.7366), (33.5493, 92.3655),
                        (62.7299, 92.2041))
ARCFACE_X_SHIFT = 8.0
ARCFACE_TEMPLATE = np.array(INSIGHTFACE_TEMPLATE, dtype=np.float64) + (ARCFACE_X_SHIFT, 0.0)


def similarity_transform(source: Any, target: Any) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, translation) best mapping `source` points onto `target`.

    Least squares (Umeyama, PAMI 1991, eqs. 38-43): centre both point sets, the rotation comes from the SVD
    of their cross-covariance (no reflections), the scale from the ratio of explained to source variance.
    The equations are evaluated in that order and in the inputs' precision (float32 key points and template,
    as DeepfakeBench passes them to scikit-image), so the matrix matches its alignment to the last bit.
    """
    source, target = np.asarray(source), np.asarray(target)
    if not np.issubdtype(source.dtype, np.floating):
        source = source.astype(np.float64)
    if not np.issubdtype(target.dtype, np.floating):
        target = target.astype(np.float64)
    dim = source.shape[1]
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    src, dst = source - source_mean, target - target_mean
    covariance = dst.T @ src / len(source)
    sign = np.ones(dim, dtype=np.float64)
    if np.linalg.det(covariance) < 0:
        sign[-1] = -1
    u, singular, vt = np.linalg.svd(covariance)
    rank = np.count_nonzero(singular > singular.max() * max(covariance.shape) * np.finfo(float).eps)
    if rank == dim - 1:  # collinear points: the rotation is fixed up to the null direction's sign
        flip = np.ones(dim, dtype=np.float64)
        flip[-1] = 1.0 if np.linalg.det(u) * np.linalg.det(vt) > 0 else -1.0
        rotation = u @ np.diag(flip) @ vt
    else:
        rotation = u @ np.diag(sign) @ vt
    variance = src.var(axis=0).sum()
    scale = 1.0 / variance * (singular @ sign) if variance > 0 else 1.0
    translation = target_mean - scale * (rotation @ source_mean.T)
    return np.hstack([rotation * scale, translation[:, None]]).astype(np.float64)


def aligned_template(size: int = FACE_SIZE, scale: float = FACE_SCALE) -> np.ndarray:
    """Where the five points land in an aligned `size` crop: the ArcFace template scaled to `size`,
    shrunk by `scale` around the crop centre so the crop shows `scale` times more around the face.

    Computed step by step in float32, as DeepfakeBench's `img_align_crop` does, so the alignment matrix (and
    hence every crop pixel) is the one its preprocessing gets from the same landmarks.
    """
    template = np.array(INSIGHTFACE_TEMPLATE, dtype=np.float32)
    template[:, 0] += ARCFACE_X_SHIFT
    template[:, 0] = template[:, 0] * size / 112
    template[:, 1] = template[:, 1] * size / 112
    margin = size * (scale - 1) / 2.0
    template += margin
    template *= size / (size + 2 * margin)
    return template


def alignment_matrix(landmarks: Any, size: int = FACE_SIZE, scale: float = FACE_SCALE) -> np.ndarray:
    """2x3 matrix mapping image coordinates into the aligned crop."""
    return similarity_transform(np.asarray(landmarks, dtype=np.float32), aligned_template(size, scale))


def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise FaceDependencyError("aligned face crops need OpenCV: pip install 'deepfake-hf[faces]'") from None
    return cv2


def warp_affine(image: Any, matrix: Any, size: tuple[int, int]) -> Any:
    """Resample `image` (PIL or HxWx3 uint8 array) through the 2x3 image->crop `matrix` into a `size` (w, h) crop.

    `cv2.warpAffine` (bilinear, zeros outside the image), the call DeepfakeBench's crops were made with: the
    same matrix gives the same crop, bit for bit (PIL's affine transform puts pixel centres at +0.5 and
    interpolates differently: ~40 dB off on textured images).
    """
    from PIL import Image

    cv2 = _import_cv2()
    if isinstance(image, Image.Image):
        image = image if image.mode == "RGB" else image.convert("RGB")  # convert() copies even an RGB image
    pixels = np.asarray(image)
    crop = cv2.warpAffine(np.ascontiguousarray(pixels), np.asarray(matrix, dtype=np.float64),
                          tuple(int(v) for v in size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)
    return Image.fromarray(crop)


def align_face(image: Any, face: Face, size: int = FACE_SIZE, scale: float = FACE_SCALE) -> Any:
    """DeepfakeBench-style aligned face crop (`size` x `size`) of a PIL image or RGB array; needs 5 landmarks."""
    if face.landmarks is None:
        raise FaceError("align_face: this face has no landmarks; use margin_crop or a detector with landmarks")
    own = face.aligned_crop(image, size, scale)
    if own is not None:  # a mode with its own template and crop size (faces/gend.py)
        return own
    return warp_affine(image, alignment_matrix(face.landmarks, size, scale), (size, size))


def margin_crop(image: Any, face: Face, margin: float = FACE_MARGIN, size: int | None = None) -> Any:
    """The face box grown by `margin` of its size on every side, clipped to the image, resized to `size` (square)."""
    from PIL import Image

    x0, y0, x1, y1 = face.box
    width, height = x1 - x0, y1 - y0
    box = (
        max(0, math.floor(x0 - margin * width)),
        max(0, math.floor(y0 - margin * height)),
        min(image.width, math.ceil(x1 + margin * width)),
        min(image.height, math.ceil(y1 + margin * height)),
    )
    crop = image.convert("RGB").crop(box)
    if size is not None:
        crop = crop.resize((size, size), Image.Resampling.BILINEAR)
    return crop


def aligns(face: Face, crop: str = DEFAULT_CROP) -> bool:
    """Whether `crop_face` aligns this face (else it cuts the box with a margin)."""
    return crop == "align" and face.landmarks is not None


def aligned_points(landmarks: Any, size: int = FACE_SIZE, scale: float = FACE_SCALE) -> np.ndarray:
    """Where a face's five landmarks lie in its aligned `size` crop (float32 crop pixels)."""
    matrix = alignment_matrix(landmarks, size, scale)
    return (np.asarray(landmarks, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def crop_face(image: Any, face: Face, crop: str = DEFAULT_CROP, size: int = FACE_SIZE, scale: float = FACE_SCALE,
              margin: float = FACE_MARGIN) -> Any:
    """`align_face` when the face has landmarks and `crop == "align"`, else `margin_crop`."""
    if aligns(face, crop):
        return align_face(image, face, size=size, scale=scale)
    return margin_crop(image, face, margin=margin, size=size)
