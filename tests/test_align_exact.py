"""Aligned crops are made by cv2.warpAffine from the matrix DeepfakeBench's `img_align_crop` computes, so the
same landmarks on the same image file give the same crop, bit for bit.

The reference below follows DeepfakeBench's documented steps (SCLBD/DeepfakeBench, preprocessing/preprocess.py:
the ArcFace template in float32, +8 px in x, scaled to the output size, grown by `scale` around the centre;
skimage's SimilarityTransform fitted from the five key points; cv2.warpAffine of the RGB frame), written here
from that description, starting from the image on disk read with cv2 as DeepfakeBench reads frames.
"""

import numpy as np
import pytest
from PIL import Image

cv2 = pytest.importorskip("cv2")
transform = pytest.importorskip("skimage.transform")

from deepfake_hf.faces import Face, align_face, warp_affine  # noqa: E402
from deepfake_hf.media import open_image  # noqa: E402

# insightface's 112x112 template, as DeepfakeBench writes it (before its +8 px shift in x)
TEMPLATE_112 = [[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366], [33.5493, 92.3655], [62.7299, 92.2041]]


def deepfakebench_crop(bgr, landmarks, size=256, scale=1.3):
    """DeepfakeBench's aligned crop of a BGR frame (as cv2 reads it), returned as RGB."""
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    dst = np.array(TEMPLATE_112, dtype=np.float32)
    dst[:, 0] += 8.0
    dst[:, 0] = dst[:, 0] * size / 112
    dst[:, 1] = dst[:, 1] * size / 112
    margin = size * (scale - 1) / 2.0
    dst[:, 0] += margin
    dst[:, 1] += margin
    dst[:, 0] *= size / (size + 2 * margin)
    dst[:, 1] *= size / (size + 2 * margin)
    similarity = transform.SimilarityTransform()
    similarity.estimate(np.asarray(landmarks).astype(np.float32), dst)
    crop = cv2.warpAffine(rgb, similarity.params[0:2, :], (size, size))
    return cv2.resize(crop, (size, size))


def textured_face_file(path, size=(320, 240), seed=0):
    """A photo-like image on disk: smooth shading plus fine noise, so interpolation differences show."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size[1], 0:size[0]]
    base = 128 + 60 * np.sin(xs / 9.0)[..., None] * np.cos(ys / 13.0)[..., None] * np.array([1.0, 0.7, 0.4])
    pixels = np.clip(base + rng.normal(0, 25, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


# dlib's landmarks are integers; fractional ones exercise the matrix arithmetic harder
LANDMARKS = {
    "integer": [[131, 101], [189, 99], [160, 133], [138, 163], [184, 161]],
    "fractional_tilted": [[120.4, 110.25], [181.7, 93.5], [158.1, 130.9], [141.3, 170.6], [190.8, 155.2]],
    "near_the_border": [[12, 30], [60, 22], [40, 55], [20, 80], [58, 75]],
}


@pytest.mark.parametrize("name", sorted(LANDMARKS))
@pytest.mark.parametrize("size", [256, 224])
def test_aligned_crop_is_bit_identical_to_deepfakebench(tmp_path, name, size):
    path = textured_face_file(tmp_path / "frame.png", seed=len(name))
    landmarks = np.array(LANDMARKS[name], dtype=np.float64)
    ours = np.asarray(align_face(open_image(path), Face(box=(0, 0, 1, 1), landmarks=landmarks), size=size))
    reference = deepfakebench_crop(cv2.imread(str(path)), landmarks, size=size)
    assert ours.shape == reference.shape == (size, size, 3)
    assert np.abs(ours.astype(int) - reference.astype(int)).max() == 0


def test_warp_is_cv2_warp_affine_for_any_matrix():
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    matrix = np.array([[1.37, -0.42, 5.3], [0.42, 1.37, -11.6]])
    expected = cv2.warpAffine(pixels, matrix, (64, 48))
    np.testing.assert_array_equal(np.asarray(warp_affine(Image.fromarray(pixels), matrix, (64, 48))), expected)
    np.testing.assert_array_equal(np.asarray(warp_affine(pixels, matrix, (64, 48))), expected)
