"""Self-blended images (SBI): fake faces made from real ones.

Shiohara and Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022. A real face is
blended with a slightly altered copy of itself: the copy (the "source") gets colour and sharpness
jitter and a small scale/shift, and is pasted back onto the untouched original (the "target")
through a soft face mask. The result carries the traces every face swap leaves (a blending
boundary, colour and sharpness mismatch, a slight misalignment) without any identity change, so a
detector trained on real faces vs their self-blends learns those traces rather than one
generator's fingerprint. This is how a user who only has real faces gets fake training data, and
how the offline quickstart works. (Written from the paper's description; the blend ratios
{0.25, 0.5, 0.75, 1, 1, 1} are the paper's.)

The mask is the convex hull of facial landmarks when they are given (from the `faces` extra), or a
detector-free ellipse over the centre of a face crop; either way it is randomly eroded or dilated
and blurred into a soft matte.

`make_sbi_dataset` builds a small real/fake dataset from public-domain photos that installed
packages ship (scikit-image's astronaut, camera and LFW subset; matplotlib's Grace Hopper),
holding whole identities out for validation and test.
"""

import csv
from pathlib import Path

import numpy as np

from deepfake_hf.errors import DeepfakeHFError
from deepfake_hf.runtime.outputs import prepare_output_dir

# Blend ratios from the SBI paper: a third of fakes use a partial blend.
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)


class SynthesisError(DeepfakeHFError, ValueError):
    """Landmarks or an image a self-blended fake cannot be made from."""


def _as_rng(rng):
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


# ------------------------------------------------------------------------------------------- masks
def _convex_hull(points):
    """Vertices of the convex hull of 2-D points, counter-clockwise (Andrew's monotone chain)."""
    points = sorted(set(map(tuple, np.asarray(points, dtype=np.float64).tolist())))
    if len(points) < 3:
        return np.asarray(points)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for point in points:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], point) <= 0:
            lower.pop()
        lower.append(point)
    for point in reversed(points):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], point) <= 0:
            upper.pop()
        upper.append(point)
    return np.asarray(lower[:-1] + upper[:-1])


def _polygon_mask(size, polygon):
    from PIL import Image, ImageDraw

    canvas = Image.new("L", size, 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in np.asarray(polygon, dtype=np.float64)], fill=1)
    return np.asarray(canvas, dtype=bool)


def _landmark_region(size, landmarks, rng):
    """Filled convex hull of the landmarks, enlarged about its centre and its corners jittered.

    Five points (eyes, nose, mouth corners) span only the inner face, so their hull is enlarged
    about 1.5-1.9x to reach brows and chin; dense (68/81-point) landmarks already trace the outline.
    """
    points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    hull = _convex_hull(points)
    if len(hull) < 3:
        raise SynthesisError(f"landmarks: need at least 3 distinct points, got {len(hull)}")
    centre = hull.mean(0)
    scale = rng.uniform(1.5, 1.9) if len(points) <= 5 else rng.uniform(0.95, 1.05)
    extent = np.ptp(hull, axis=0).max()
    hull = centre + (hull - centre) * scale + rng.normal(0, 0.03 * extent, hull.shape)
    if len(points) <= 5:
        hull = centre + (hull - centre) * np.array([1.0, 1.15])  # faces are taller than eyes-to-mouth
    return _polygon_mask(size, hull)


def _ellipse_region(size, rng):
    """An ellipse over the face of a centred face crop (aligned or margin crop), slightly random."""
    width, height = size
    cx = width * (0.5 + rng.uniform(-0.04, 0.04))
    cy = height * (0.53 + rng.uniform(-0.04, 0.04))
    ax = width * rng.uniform(0.27, 0.36)
    ay = height * rng.uniform(0.34, 0.44)
    angle = np.deg2rad(rng.uniform(-10, 10))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    u = (xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle)
    v = -(xs - cx) * np.sin(angle) + (ys - cy) * np.cos(angle)
    return (u / ax) ** 2 + (v / ay) ** 2 <= 1.0


def face_mask(size, rng, landmarks=None, blend_ratios=BLEND_RATIOS):
    """Soft face mask (H x W float32 in [0, 1]) for an image of `size` (width, height).

    Convex hull of `landmarks` (N x 2 pixel coordinates) when given, else an ellipse; randomly
    eroded or dilated, blurred, and scaled by a blend ratio drawn from `blend_ratios`.
    """
    from scipy import ndimage

    rng = _as_rng(rng)
    region = _landmark_region(size, landmarks, rng) if landmarks is not None else _ellipse_region(size, rng)
    side = min(size)
    steps = int(rng.integers(0, max(2, round(0.05 * side)) + 1))
    if steps and rng.random() < 0.5:
        eroded = ndimage.binary_erosion(region, iterations=steps)
        region = eroded if eroded.sum() > 0.3 * region.sum() else region  # never erase the face
    elif steps:
        region = ndimage.binary_dilation(region, iterations=steps)
    mask = region.astype(np.float32)
    # Two blurs of random strength (a wide and a narrow one) give a soft, irregular boundary.
    for sigma in (rng.uniform(0.02, 0.06) * side, rng.uniform(0.005, 0.02) * side):
        mask = ndimage.gaussian_filter(mask, sigma=max(sigma, 0.5), truncate=3.0)
    peak = mask.max()
    if peak <= 0:
        raise SynthesisError("face mask is empty: the landmarks lie outside the image")
    mask = np.clip(mask / peak, 0.0, 1.0) * rng.choice(np.asarray(blend_ratios, dtype=np.float64))
    mask[mask < 1e-3] = 0.0  # exact zeros outside the face: the blend leaves those pixels untouched
    return mask.astype(np.float32)


# ------------------------------------------------------------------------------------------- source jitter
def _jitter_colour(pixels, rng, strength=1.0):
    """Per-channel shift, brightness, contrast and saturation jitter on float RGB in [0, 255].

    Grayscale faces get one shift for all channels: a face pasted into a gray picture stays gray,
    and a tint would be a cue that no real forgery of such a picture has.
    """
    grayscale = np.ptp(pixels, axis=2).max() < 1
    shift = 20 * strength
    pixels = pixels + (rng.uniform(-shift, shift) if grayscale else rng.uniform(-shift, shift, size=3))
    gray = pixels.mean(axis=2, keepdims=True)
    pixels = gray + (pixels - gray) * max(0.0, 1 + 0.3 * strength * rng.uniform(-1, 1))  # saturation
    mean = pixels.mean()
    pixels = mean + (pixels - mean) * (1 + 0.1 * strength * rng.uniform(-1, 1))  # contrast
    return pixels * (1 + 0.1 * strength * rng.uniform(-1, 1))  # brightness


def _jitter_sharpness(pixels, rng, strength=1.0):
    """Blur, sharpen or down-and-up-sample: the frequency mismatch of a pasted face."""
    from scipy import ndimage

    side = min(pixels.shape[:2])
    choice = rng.integers(0, 3)
    if choice == 0:
        sigma = rng.uniform(0.4, 1.2) * max(side / 128, 0.5) * strength
        return ndimage.gaussian_filter(pixels, sigma=(sigma, sigma, 0))
    if choice == 1:
        blurred = ndimage.gaussian_filter(pixels, sigma=(1.0, 1.0, 0))
        return pixels + rng.uniform(0.5, 1.5) * strength * (pixels - blurred)
    factor = rng.uniform(0.4, 0.8) ** strength
    small = ndimage.zoom(pixels, (factor, factor, 1), order=1)
    back = ndimage.zoom(small, (pixels.shape[0] / small.shape[0], pixels.shape[1] / small.shape[1], 1), order=1)
    return back[: pixels.shape[0], : pixels.shape[1]]


def _jitter_geometry(pixels, rng, strength=1.0):
    """Scale by 0.95-1.05 and shift by up to 3% around the centre (edges reflected), times `strength`."""
    from scipy import ndimage

    height, width = pixels.shape[:2]
    scale = 1 + 0.05 * strength * rng.uniform(-1, 1)
    shift = 0.03 * strength * rng.uniform(-1, 1, size=2) * np.array([height, width])
    centre = np.array([height, width]) / 2.0
    # output[o] = input[o / scale + offset]: scaling about the centre, then the shift.
    offset = centre - centre / scale - shift
    return np.stack([ndimage.affine_transform(pixels[..., c], np.full(2, 1.0 / scale), offset=offset, order=1,
                                              mode="reflect") for c in range(pixels.shape[2])], axis=2)


def self_blend(pil_face, rng, landmarks=None, strength=1.0, blend_ratios=BLEND_RATIOS):
    """A self-blended fake of a face crop: returns `(fake_pil, mask)`.

    `pil_face` is a face crop (aligned, margin or centred crop); `rng` a `numpy.random.Generator`
    or a seed; `landmarks` optional N x 2 pixel coordinates (5, 68 or 81 points) for a hull mask.
    `strength` scales the source's colour, sharpness and position jitter (1: the paper's ranges);
    `blend_ratios` are the mask's peak values to draw from.
    `mask` is H x W float32 in [0, 1]; pixels where it is 0 are exactly the original's.
    """
    from PIL import Image

    rng = _as_rng(rng)
    target = np.asarray(pil_face.convert("RGB"), dtype=np.float64)
    mask = face_mask(pil_face.size, rng, landmarks, blend_ratios)
    source = _jitter_colour(target, rng, strength)
    source = _jitter_sharpness(source, rng, strength)
    source = _jitter_geometry(source, rng, strength)
    alpha = mask[..., None].astype(np.float64)
    fake = source * alpha + target * (1.0 - alpha)
    return Image.fromarray(np.clip(np.rint(fake), 0, 255).astype(np.uint8)), mask


# ------------------------------------------------------------------------------------------- public photos
# Face boxes (x0, y0, x1, y1) in the shipped photos: astronaut and Grace Hopper from dlib's HOG detector
# (upsample 0); the cameraman's profile face, which dlib misses, measured by eye.
_PHOTO_FACES = {
    "astronaut": (179, 83, 266, 170),
    "camera": (190, 95, 260, 190),
    "grace_hopper": (161, 137, 376, 352),
}
# The LFW subset ships 100 face crops (then 100 non-faces) without identity labels.
LFW_FACES = 100


def public_face_photos():
    """[(identity, PIL RGB image, face box or None)] from scikit-image and matplotlib sample data."""
    from PIL import Image

    try:
        from skimage import data as skdata
    except ImportError:
        raise ImportError("the offline face photos come from scikit-image: "
                          "pip install 'deepfake-hf[quickstart]'") from None
    photos = [
        ("astronaut", Image.fromarray(skdata.astronaut()).convert("RGB"), _PHOTO_FACES["astronaut"]),
        ("camera", Image.fromarray(skdata.camera()).convert("RGB"), _PHOTO_FACES["camera"]),
    ]
    try:
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
            photos.append(("grace_hopper", Image.open(handle).convert("RGB"), _PHOTO_FACES["grace_hopper"]))
    except (ImportError, OSError, ValueError):
        pass  # matplotlib is optional: one identity fewer
    faces = skdata.lfw_subset()[:LFW_FACES]
    for index, face in enumerate(faces):
        pixels = np.clip(np.rint(face * 255), 0, 255).astype(np.uint8)
        photos.append((f"lfw_{index:03d}", Image.fromarray(pixels).convert("RGB"), None))
    return photos


def _random_face_crop(image, box, size, rng, noise=0.0):
    """A square crop around the face (random zoom, shift, rotation, flip), resized to `size`."""
    from PIL import Image

    if box is None:  # the image is already a tight face crop (LFW)
        box = (0, 0, image.width, image.height)
        zoom = rng.uniform(0.85, 1.05)
    else:
        zoom = rng.uniform(1.2, 1.6)  # detector boxes are tight (brows to chin)
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * zoom
    cx = (x0 + x1) / 2 + rng.uniform(-0.06, 0.06) * side
    cy = (y0 + y1) / 2 + rng.uniform(-0.06, 0.06) * side
    angle = np.deg2rad(rng.uniform(-10, 10))
    # Affine map from output pixels to input pixels: rotate and scale about the crop centre.
    scale = side / size
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    half = size / 2
    coefficients = (cos, -sin, cx - cos * half + sin * half, sin, cos, cy - sin * half - cos * half)
    crop = image.transform((size, size), Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BICUBIC,
                           fillcolor=tuple(int(v) for v in np.asarray(image).reshape(-1, 3).mean(0)))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    # Photometric jitter applied to reals (and so inherited by their fakes): no global cue separates them.
    from PIL import ImageEnhance

    crop = ImageEnhance.Brightness(crop).enhance(rng.uniform(0.8, 1.2))
    crop = ImageEnhance.Contrast(crop).enhance(rng.uniform(0.8, 1.2))
    if noise:
        # Sensor-like noise: upscaled small photos are smooth everywhere, and a camera's noise is
        # what a blended (blurred, resampled) face region visibly lacks.
        pixels = np.asarray(crop, dtype=np.float64)
        grain = rng.normal(0, rng.uniform(0.5, 1.0) * noise, pixels.shape[:2] + (1,))
        crop = Image.fromarray(np.clip(np.rint(pixels + grain), 0, 255).astype(np.uint8))
    return crop


def _assign_identities(identities, val_identities, test_identities, rng):
    """{identity: split}: the named photos go to fixed splits, LFW faces are shuffled 70/15/15."""
    fixed = {"astronaut": "train", "camera": "validation", "grace_hopper": "test"}
    lfw = [name for name in identities if name not in fixed]
    order = rng.permutation(len(lfw))
    n_test = test_identities if test_identities is not None else round(0.15 * len(lfw))
    n_val = val_identities if val_identities is not None else round(0.15 * len(lfw))
    split = {name: fixed[name] for name in identities if name in fixed}
    for rank, index in enumerate(order):
        split[lfw[index]] = "test" if rank < n_test else "validation" if rank < n_test + n_val else "train"
    return split


def make_sbi_dataset(out_dir=None, size=64, crops_per_photo=48, crops_per_face=3, seed=0, val_identities=None,
                     test_identities=None, noise=6.0, strength=1.0, blend_ratios=BLEND_RATIOS, overwrite=False,
                     verbose=True):
    """A small real vs self-blended dataset from public-domain photos shipped in installed packages.

    Identities: scikit-image's astronaut (train), camera (validation), matplotlib's Grace Hopper
    (test) and the 100 faces of scikit-image's LFW subset (about 70/15/15). Whole identities are
    held out, so validation and test score unseen faces. Each real crop is randomly zoomed,
    shifted, rotated, flipped and jittered (`crops_per_photo` per photo, `crops_per_face` per LFW
    face), and every real crop has one SBI fake, so each split is balanced.

    `noise` is the largest standard deviation (grey levels) of sensor-like noise added to the real
    crops before blending: the upscaled 25x25 LFW faces are smooth everywhere, and the noise a
    blended region loses is a trace real face swaps leave too. Measured with a tiny random-init
    ResNet (150 steps, batch 32, 64 px): held-out test AUROC 0.58 with `noise=0`, 0.71 with 6.
    `strength` and `blend_ratios` are passed to `self_blend`.

    Returns a `datasets.DatasetDict` (train / validation / test) with the columns of
    `data.load_source` (group = identity, method = "sbi" for fakes). With `out_dir`, also writes
    the PNGs and one manifest per split (`{split}.csv`: path,label,group,method) that
    `load_source` reads.
    """
    import datasets

    from deepfake_hf.data.datasets import features

    rng = np.random.default_rng(seed)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        prepare_output_dir(out, overwrite)
    photos = public_face_photos()
    split_of = _assign_identities([name for name, _, _ in photos], val_identities, test_identities, rng)
    records = {"train": [], "validation": [], "test": []}
    manifests = {name: [] for name in records}
    for identity, image, box in photos:
        split = split_of[identity]
        for index in range(crops_per_photo if box is not None else crops_per_face):
            real = _random_face_crop(image, box, size, rng, noise=noise)
            fake, _ = self_blend(real, rng, strength=strength, blend_ratios=blend_ratios)
            for label, picture in ((0, real), (1, fake)):
                kind = ("real", "fake")[label]
                name = f"{identity}_{index:03d}.png"
                if out is not None:
                    path = out / split / kind / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    picture.save(path)
                    manifests[split].append((f"{split}/{kind}/{name}", kind, identity, "sbi" if label else ""))
                    path = str(path)
                else:
                    path = f"sbi://{identity}/{kind}/{name}"
                records[split].append({"image": picture, "label": label, "path": path, "group": identity,
                                       "method": "sbi" if label else "", "frame": -1})
    if out is not None:
        for split, lines in manifests.items():
            with open(out / f"{split}.csv", "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["path", "label", "group", "method"])
                writer.writerows(lines)
    result = datasets.DatasetDict({split: datasets.Dataset.from_list(rows, features=features())
                                   for split, rows in records.items()})
    if verbose:
        _print_summary(result, split_of)
    return result


def _print_summary(splits, split_of):
    from deepfake_hf.data.datasets import split_report

    named = sorted(name for name in split_of if not name.startswith("lfw_"))
    lfw = sum(name.startswith("lfw_") for name in split_of)
    print(f"SBI dataset: {len(split_of)} identities ({len(named)} photos: {', '.join(named)}; {lfw} LFW faces "
          "without identity labels, so a person may appear in more than one LFW face). Few identities: every "
          "face is heavily augmented, and validation/test hold out whole identities.")
    split_report(splits)


def contact_sheet(reals, fakes, masks=None, tile=96):
    """A PIL image with one column per sample: real on top, its fake below (and the mask, when given)."""
    from PIL import Image

    rows = 3 if masks is not None else 2
    sheet = Image.new("RGB", (tile * len(reals), tile * rows), (255, 255, 255))
    for column, (real, fake) in enumerate(zip(reals, fakes)):
        sheet.paste(real.resize((tile, tile)), (column * tile, 0))
        sheet.paste(fake.resize((tile, tile)), (column * tile, tile))
        if masks is not None:
            matte = Image.fromarray(np.clip(np.rint(masks[column] * 255), 0, 255).astype(np.uint8)).convert("RGB")
            sheet.paste(matte.resize((tile, tile)), (column * tile, 2 * tile))
    return sheet


__all__ = ["BLEND_RATIOS", "contact_sheet", "face_mask", "make_sbi_dataset", "public_face_photos", "self_blend"]
