"""Safe image opening and uniform video frame sampling.

Every problem with an input file becomes a `MediaError` whose message is one line, "PATH: problem",
so a batch can report it and go on. Images go through Pillow (EXIF orientation applied; grayscale,
palette, RGBA, CMYK and 16-bit converted to 8-bit RGB; Pillow's decompression-bomb limit kept;
truncated files rejected). Videos go through PyAV (the `video` extra): the packet index is read
first (cheap, no decoding), frames are chosen by `sample_frame_indices` on presentation times so
variable frame rates are sampled evenly (the package's one sampling rule: data/datasets.py's frame folders
and the video processor use it too), and the decoder seeks to the keyframe before each chosen frame
only when that skips work, and leaves out the frames that are neither chosen nor referenced by others.
Rotation metadata (portrait phone video) is applied to the returned frames.

Decoding limits, so that a small file cannot demand gigabytes or minutes (a decompression bomb): every image
and every video frame is at most `MAX_PIXELS` (env DEEPFAKE_HF_MAX_PIXELS, 40 megapixels by default), and an
animated image at most `MAX_ANIMATION_FRAMES` frames and `MAX_ANIMATION_PIXELS` pixels over all its frames.
All are checked from the file's header (image size, GIF block layout, the video stream's codec parameters)
before a pixel is decoded. Readers given `cancel` (a threading.Event) poll it between frames and packets
and raise `AnalysisCancelled` once it is set, so an abandoned request stops within a frame.
"""

from __future__ import annotations

import errno
import heapq
import os
import re
import stat
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepfake_hf.errors import AnalysisCancelled, DeepfakeHFError, one_line

if TYPE_CHECKING:
    from PIL.Image import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")
# Smaller images carry no usable face and break resizing/cropping downstream.
MIN_IMAGE_SIDE = 8


def _pixels_from_env(name, default):
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        pixels = int(float(value))
    except ValueError:
        pixels = 0
    if pixels < 1:
        raise MediaError(name, f"{value!r} is not a positive number of pixels (e.g. 40000000)")
    return pixels


# 40 megapixels: above any camera a face detector needs (the shared 1080p clips are 2 MP, a 48 MP phone
# photo is usually stored binned at 12 MP), far below Pillow's own bomb limit (179 MP, ~0.5 GB as RGB).
MAX_PIXELS = _pixels_from_env("DEEPFAKE_HF_MAX_PIXELS", 40_000_000)
# An animated image is decoded frame after frame onto its whole canvas (twice: frame durations, then the
# sampled frames), so its cost is frames x canvas: 500 megapixels take ~5-9 s of Pillow on one core here
# (a 1080p GIF of 240 frames); the frame cap bounds the per-frame overhead of tiny canvases.
MAX_ANIMATION_FRAMES = 3000
MAX_ANIMATION_PIXELS = 500_000_000
# A scheme of two or more letters, so Windows drive letters ("C:/") are not taken for URLs.
_URL = re.compile(r"^[a-z][a-z0-9+.-]+:/", re.IGNORECASE)


class MediaError(DeepfakeHFError, ValueError):
    """A file that cannot be used, with a one-line message "PATH: problem"."""

    def __init__(self, path, problem):
        self.path = str(path)
        self.problem = one_line(problem)  # always one line
        super().__init__(f"{self.path}: {self.problem}")


def is_url(value):
    """True for "scheme://..." strings (also after pathlib collapsed the double slash)."""
    return bool(_URL.match(os.fspath(value))) if isinstance(value, (str, os.PathLike)) else False


def media_kind(path):
    """"image", "video" or None, from the file extension (case-insensitive)."""
    suffix = Path(str(path)).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    return None


def list_media_files(inputs, not_media=None, skipped=None):
    """Expand files and folders into a list of paths, in order, without duplicates.

    Folders are searched recursively (sorted, a folder's files before its subfolders, hidden entries
    skipped) for image and video extensions only. Symbolic links are followed, to folders too, so a
    linked layout lists what the same layout copied would; each folder is listed once (by its device and
    inode), so a link back to a folder above it (a loop) or to a folder listed already under another name
    is not followed again. Paths given explicitly are kept whatever they are (missing files, unsupported
    types), and so is anything found with a media name that is not a readable file (a folder named
    `x.jpg` holding no media, a broken or looping symbolic link), so the caller reports it ("x.jpg:
    is a directory, not an image") instead of silently dropping it. Files found in folders whose
    names are not media are appended to `not_media` when a list is given (for counting). What is found
    but cannot be listed or opened (a looping or duplicate link to a folder, an unreadable folder, a broken
    link, a FIFO or device) is appended to `skipped` as (path, problem) when a list is given, else logged
    as a warning: nothing is dropped without a word.
    """
    return list(iter_media_files(inputs, not_media, skipped))


def iter_media_files(inputs, not_media=None, skipped=None):
    """`list_media_files` one path at a time: a folder of millions of files is walked as it is read, with
    only one folder's sorted names in memory at once (plus one identity per folder listed, for the loop
    guard). A folder given inside another given folder, or a file given twice, is listed once.

    A (path, problem) appended to `skipped` is appended before the next path is yielded, so a caller that
    empties the list after each path keeps the walk's order."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    report = _skip_reporter(skipped)
    roots, explicit, listed = [], set(), {}
    for item in inputs:
        item = Path(item)
        key = os.path.abspath(item)
        identity = _folder_identity(item)
        if identity is not None:
            if identity in listed:  # given twice, or inside a folder given before: its files are listed
                continue
            roots.append(key)
            yield from _media_below(item, identity, not_media, report, listed, set())
        elif key not in explicit and not any(key.startswith(root + os.sep) for root in roots):
            explicit.add(key)
            yield item


def not_regular_file(path):
    """Why `path` cannot be read as a file when it exists but is a FIFO, socket or device (opening one can
    block for ever), else None (a regular file, a folder, or nothing there: other checks say so)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "a special file")
    return f"is {kind}, not a regular file"


def _skip_reporter(skipped):
    if skipped is not None:
        return lambda path, problem: skipped.append((Path(path), problem))
    import logging

    logger = logging.getLogger(__name__)
    return lambda path, problem: logger.warning("skipping %s: %s", path, problem)


def _folder_identity(path):
    """(device, inode) of the folder `path` leads to (links followed), or None when it is no folder."""
    try:
        status = os.stat(path)
    except (OSError, ValueError):
        return None
    return (status.st_dev, status.st_ino) if stat.S_ISDIR(status.st_mode) else None


def _media_below(folder, identity, not_media, report, listed, active):
    """Media paths below `folder`, in listing order (see `list_media_files`), as a generator.

    `listed`: {identity: path} of every folder listed so far; `active`: the identities of `folder` and the
    folders above it (a link to one of those is a loop)."""
    listed[identity] = os.path.abspath(folder)
    active.add(identity)
    try:
        try:
            names = sorted(entry.name for entry in os.scandir(folder))
        except OSError as error:
            report(folder, f"cannot list this folder ({_unreachable(folder, error)})")
            return
        folders = []  # (path, identity) of its subfolders, filled by _media_here
        yield from _media_here(folder, names, folders, not_media, report)
        for path, inner in folders:
            if inner in active:
                report(path, f"symbolic link loop: leads back to {listed[inner]}, which holds it; not followed")
                continue
            if inner in listed:
                if listed[inner] != os.path.abspath(path):
                    report(path, f"the same folder as {listed[inner]}, listed already; not listed twice")
                continue
            found_inside = False
            for inside in _media_below(path, inner, not_media, report, listed, active):
                found_inside = True
                yield inside
            # A folder named like a file ("x.jpg") that holds no media was most likely meant as that file.
            if not found_inside and media_kind(path.name):
                yield path
    finally:
        active.discard(identity)


def _media_here(folder, names, folders, not_media, report):
    """The media files among `names` (the entries of `folder`), as a generator; appends its subfolders to
    `folders` as (path, identity), reports unusable entries and adds other files to `not_media`."""
    for name in names:
        if name.startswith("."):
            continue
        path = Path(folder) / name
        try:
            status = os.stat(path)  # follows links; fails for a broken or looping link
        except OSError as error:
            status, problem = None, _unreachable(path, error)
        if status is not None and stat.S_ISDIR(status.st_mode):
            folders.append((path, (status.st_dev, status.st_ino)))
        elif status is not None and not stat.S_ISREG(status.st_mode) and media_kind(name):
            report(path, not_regular_file(path) or "not a regular file")
        elif media_kind(name):
            yield path  # a broken or looping link too: opening it says which
        elif status is None:  # a broken link could have led to a folder of media
            report(path, problem)
        elif not_media is not None:
            not_media.append(path)


# ------------------------------------------------------------------------------------------------ images
def check_file(path):
    """`path` as a Path when it is a non-empty file that can be opened; else MediaError saying what it is."""
    if is_url(path):
        raise MediaError(path, "URLs are not supported; download the file and pass its path")
    path = Path(path)
    try:
        status = path.stat()
    except OSError as error:
        raise MediaError(path, _unreachable(path, error)) from None
    if stat.S_ISDIR(status.st_mode):
        expected = {"image": "an image", "video": "a video"}.get(media_kind(path), "a media file")
        raise MediaError(path, f"is a directory, not {expected}")
    if status.st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")
    return path


def _unreachable(path, error):
    """Why `path` cannot be opened, from the OSError its stat() raised."""
    if error.errno == errno.ELOOP:
        return "symbolic link loop"
    if os.path.islink(path) and error.errno == errno.ENOENT:
        return f"broken symbolic link (its target {os.readlink(path)} does not exist)"
    if error.errno in (errno.ENOENT, errno.ENOTDIR):
        return "no such file"
    if error.errno == errno.EACCES:
        return "permission denied"
    return f"cannot access ({error.strerror or error})"


def _to_rgb(image):
    """Any Pillow mode -> 8-bit RGB (alpha composited over white, 16-bit and float rescaled)."""
    from PIL import Image

    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        pixels = np.asarray(image).astype(np.float64)
        if mode.startswith("I;16") or (mode == "I" and pixels.max(initial=0) > 255):
            pixels = pixels / 257.0  # 16-bit range onto 8-bit
        elif mode == "F" and pixels.max(initial=0) <= 1.0:
            pixels = pixels * 255.0
        gray = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), "L")
        return gray.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _check_size(image, path):
    width, height = image.size
    if min(width, height) < MIN_IMAGE_SIDE:
        minimum = f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}"
        raise MediaError(path, f"image is {width}x{height} pixels; at least {minimum} is needed")


def _bomb_message():
    from PIL import Image

    limit = f" (over {2 * Image.MAX_IMAGE_PIXELS} pixels)" if Image.MAX_IMAGE_PIXELS else ""
    return f"image too large, refused as a possible decompression bomb{limit}"


def _megapixels(pixels):
    if pixels < 1_000_000:
        return f"{int(pixels):,} pixels"
    return f"{pixels / 1e6:,.1f}".removesuffix(".0") + " megapixels"


def _check_pixels(path, width, height, what="image"):
    """MediaError when a `width` x `height` image or frame is over `MAX_PIXELS` (read before decoding it)."""
    if width * height > MAX_PIXELS:
        raise MediaError(path, f"{what} too large: {width}x{height} pixels ({_megapixels(width * height)}) is over "
                               f"the limit of {_megapixels(MAX_PIXELS)} (DEEPFAKE_HF_MAX_PIXELS); not decoded")


def _poll(cancel):
    if cancel is not None and cancel.is_set():
        raise AnalysisCancelled("cancelled")


def _open_pil(path):
    """Open an image file lazily, turning Pillow's errors into MediaError."""
    from PIL import Image, UnidentifiedImageError

    path = check_file(path)
    try:
        image = Image.open(path)
    except Image.DecompressionBombError:
        raise MediaError(path, _bomb_message()) from None
    except UnidentifiedImageError:
        raise MediaError(path, "not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise MediaError(path, f"cannot read image ({error})") from None
    try:
        _check_pixels(path, *image.size)
    except MediaError:
        image.close()
        raise
    return image


def _load_frame(image, path):
    """Decode the current frame fully, apply EXIF orientation, convert to RGB."""
    from PIL import Image, ImageOps

    try:
        image.load()
        oriented = ImageOps.exif_transpose(image)
        return _to_rgb(oriented if oriented is not None else image)
    except Image.DecompressionBombError:
        raise MediaError(path, _bomb_message()) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as error:
        truncated = "truncat" in str(error).lower() or isinstance(error, (SyntaxError, EOFError))
        problem = "truncated or corrupt image" if truncated else "cannot decode image"
        raise MediaError(path, f"{problem} ({error})") from None


def open_image(source):
    """An RGB `PIL.Image` from a path, a PIL image or a numpy array (HxW, HxWx1/3/4; uint8, uint16 or float).

    Animated images give their first frame (`read_video_frames` samples all of them).
    Raises `MediaError` with a one-line message naming the file.
    """
    from PIL import Image

    if isinstance(source, Image.Image):
        name = getattr(source, "filename", "") or "<PIL image>"
        _check_pixels(name, *source.size)  # a lazily opened image is not decoded yet
        image = _to_rgb(source)
    elif isinstance(source, np.ndarray):
        name = "<array>"
        image = _array_to_image(source)
    else:
        name = source
        with _open_pil(source) as opened:
            opened.seek(0)
            image = _load_frame(opened, source)
    _check_size(image, name)
    return image


def _array_to_image(array):
    from PIL import Image

    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # channels first -> last
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise MediaError("<array>", f"expected an HxW or HxWxC (C=1, 3, 4) array, got shape {tuple(array.shape)}")
    _check_pixels("<array>", array.shape[1], array.shape[0])  # before the float64 copy below (8 bytes a value)
    if array.dtype == np.uint16:
        array = array / 257.0
    elif np.issubdtype(array.dtype, np.floating) and array.size and np.nanmax(array) <= 1.0:
        array = array * 255.0
    array = np.clip(np.nan_to_num(np.asarray(array, dtype=np.float64)), 0, 255).round().astype(np.uint8)
    mode = "L" if array.ndim == 2 else {3: "RGB", 4: "RGBA"}[array.shape[-1]]
    return _to_rgb(Image.fromarray(array, mode))


def is_animated(path):
    """True for an image file with more than one frame (GIF, WebP, APNG)."""
    try:
        with _open_pil(path) as image:
            # is_animated looks for a second frame only; n_frames would walk (for GIF) the whole file
            animated = getattr(image, "is_animated", None)
            return bool(animated) if animated is not None else getattr(image, "n_frames", 1) > 1
    except MediaError:
        return False


# Float noise allowed when rounding a sampled position that lies exactly halfway between two frames.
_TIE_TOLERANCE = 1e-6


# Which frames of a video are taken: the package's even rule, DeepfakeBench's own frame numbers, or GenD's
# "at_least" order (the face modes say which one their crops come from: faces.FaceMode.frame_sampling).
EVEN_FRAMES = "even"
DEEPFAKEBENCH_FRAMES = "deepfakebench"
GEND_FRAMES = "gend"
FRAME_SAMPLINGS = (EVEN_FRAMES, DEEPFAKEBENCH_FRAMES, GEND_FRAMES)


class FrameSamplingError(DeepfakeHFError, ValueError):
    """A bad frame count or sampling rule."""


def sample_frame_indices(count: int, num_frames: int, times=None, sampling: str = EVEN_FRAMES) -> list[int]:
    """Indices of `num_frames` frames spread evenly over `count` frames, strictly increasing.

    Every frame of a clip with `count <= num_frames` is taken once (frames are never repeated to reach
    `num_frames`: a repeated frame adds no evidence but weighs twice in a video's mean score). Otherwise
    the targets are `linspace(0, count - 1, num_frames)` (DeepfakeBench's spacing, first and last frame
    included), each rounded to the nearest frame with ties going to the earlier one. With `times` (one
    presentation time per frame, sorted) the targets are evenly spaced instants instead, so a variable
    frame rate is sampled evenly in time; at a constant rate both give the same indices. Frames that two
    targets would share are moved to the nearest unused neighbour, so the result always has
    `min(count, num_frames)` distinct indices.

    `sampling="deepfakebench"` takes the frames DeepfakeBench's preprocessing takes,
    `linspace(0, count - 1, num_frames)` rounded down, by frame number (`times` unused); the faces of
    models converted from DeepfakeBench were cut from those frames. `sampling="gend"` takes the first
    `num_frames` frames of GenD's spread order (`spread_frame_order`), in increasing order.

    `DeepfakeVideoProcessor.sample_frames` (modeling_deepfake.py, remote code that cannot import this
    module) keeps a copy of the even rule; tests/test_media.py checks that the two agree.
    """
    count, num_frames = int(count), int(num_frames)
    if num_frames < 1:
        raise FrameSamplingError(f"num_frames: {num_frames} must be >= 1")
    if sampling not in FRAME_SAMPLINGS:
        raise FrameSamplingError(f"sampling: {sampling!r} is not one of {', '.join(FRAME_SAMPLINGS)}")
    if count <= num_frames:
        return list(range(max(count, 0)))
    if sampling == DEEPFAKEBENCH_FRAMES:  # distinct, since the spacing (count-1)/(num_frames-1) is >= 1 here
        return np.linspace(0, count - 1, num_frames, dtype=np.int64).tolist()
    if sampling == GEND_FRAMES:
        return sorted(spread_frame_order(count, num_frames))
    if times is None:
        positions = np.linspace(0, count - 1, num_frames)
    else:
        times = np.asarray(times, dtype=np.float64)
        if times.shape != (count,):
            raise FrameSamplingError(f"times: expected {count} values, got {times.size}")
        # Fractional frame positions of evenly spaced instants: nearest in time = nearest position.
        positions = np.interp(np.linspace(times[0], times[-1], num_frames), times, np.arange(count))
    # Nearest frame, ties to the earlier one; the tolerance keeps float noise in `positions`
    # (from times) from turning an exact tie into a different frame than the index rule picks.
    indices = np.ceil(positions - 0.5 - _TIE_TOLERANCE).astype(np.int64)
    for k in range(1, num_frames):  # only a variable frame rate can make two targets share a frame
        indices[k] = min(max(indices[k], indices[k - 1] + 1), count - num_frames + k)
    return indices.tolist()


def spread_frame_order(count: int, limit: int | None = None) -> list[int]:
    """The first `limit` (default all) frame numbers of GenD's "at_least" order over `count` frames.

    GenD's detector.py (`max_spread_permutation_pq`) starts at frame `count // 2` and then always takes the
    frame farthest from every frame taken so far, the lowest-numbered one on a tie. Each untaken frame's
    nearest taken frames are the two that bound its gap, so the next frame is the best of each gap's best
    (a gap's middle, rounded down, or the first or last frame for the gaps at the ends): a heap of gaps
    gives the same order in O(limit log limit) instead of GenD's O(count^2).
    """
    count = int(count)
    limit = count if limit is None else max(0, min(int(limit), count))
    if count <= 0 or limit == 0:
        return []
    start = count // 2
    order = [start]
    gaps: list[tuple[int, int, int | None, int | None]] = []  # (-distance, frame, left taken, right taken)

    def push(left: int | None, right: int | None) -> None:
        if left is None and right is not None and right >= 1:
            heapq.heappush(gaps, (-right, 0, None, right))
        elif right is None and left is not None and left <= count - 2:
            heapq.heappush(gaps, (-(count - 1 - left), count - 1, left, None))
        elif left is not None and right is not None and right - left >= 2:
            heapq.heappush(gaps, (-((right - left) // 2), left + (right - left) // 2, left, right))

    push(None, start)
    push(start, None)
    while len(order) < limit:
        _, frame, left, right = heapq.heappop(gaps)
        order.append(frame)
        push(left, frame)
        push(frame, right)
    return order


def _read_animated_frames(path, num_frames, cancel=None):
    """Up to `num_frames` distinct (frame number, frame) of an animated image, even in display time (frame
    durations)."""
    with _open_pil(path) as image:
        count = _checked_frame_count(image, path, cancel)
        durations = []
        for index in range(count):
            _seek_frame(image, index, path, cancel)
            # Browsers show a GIF frame of 0 ms (or none given) for about 100 ms.
            durations.append(float(image.info.get("duration", 0) or 100))
        starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
        frames = []
        for index in sample_frame_indices(count, num_frames, times=starts):
            _seek_frame(image, index, path, cancel)
            frames.append((index, _load_frame(image, path)))
    _check_size(frames[0][1], path)
    return frames


def _seek_frame(image, index, path, cancel):
    """Seek one frame at a time, polling `cancel` in between: a GIF or APNG frame is drawn over the previous
    one, so one seek far ahead decodes every frame on the way without a chance to stop."""
    from PIL import Image

    if index < image.tell():
        image.seek(0)
    for step in range(image.tell() + 1, index + 1):
        _poll(cancel)
        try:
            image.seek(step)
        except Image.DecompressionBombError:
            raise MediaError(path, _bomb_message()) from None
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise MediaError(path, f"truncated or corrupt animation at frame {step} ({error})") from None
        _check_pixels(path, *image.size, "frame")  # a GIF frame outside the canvas grows it
    _poll(cancel)


def _checked_frame_count(image, path, cancel):
    """The frame count of an opened animated image, once it and the pixels of all its frames are found within
    the limits (`MAX_ANIMATION_FRAMES`, `MAX_ANIMATION_PIXELS`), read without decoding a frame."""
    width, height = image.size
    if image.format == "GIF":  # Pillow's n_frames walks the whole file, unbounded; this walk stops at the cap
        frames, width, height = _gif_layout(path, cancel)
        _check_pixels(path, width, height, "animation canvas")
    elif image.format in ("PNG", "WEBP"):  # declared in the header (APNG acTL chunk, WebP ANIM frames)
        frames = getattr(image, "n_frames", 1)
    else:  # multi-page TIFF and the like: a seek reads a page's header, not its pixels
        frames = 1
        while frames <= MAX_ANIMATION_FRAMES:
            _poll(cancel)
            try:
                image.seek(frames)
            except EOFError:
                break
            _check_pixels(path, *image.size, f"page {frames + 1}")
            frames += 1
        image.seek(0)
    if frames > MAX_ANIMATION_FRAMES:
        raise MediaError(path, f"animated image with more than {MAX_ANIMATION_FRAMES} frames; not decoded")
    total = frames * width * height
    if total > MAX_ANIMATION_PIXELS:
        raise MediaError(path, f"animation too large: {frames} frames of {width}x{height} pixels "
                               f"({_megapixels(total)} in all) is over the limit of "
                               f"{_megapixels(MAX_ANIMATION_PIXELS)} for all frames together; not decoded")
    return getattr(image, "n_frames", 1) if image.format == "GIF" else frames


def _gif_layout(path, cancel=None):
    """(frames, width, height) of a GIF read from its block structure without decoding: the frame count
    (the walk stops once past `MAX_ANIMATION_FRAMES`) and the canvas its frames need (Pillow grows the canvas
    to fit a frame that lies outside it)."""
    with open(path, "rb") as handle:
        header = handle.read(13)
        if len(header) < 13:
            return 0, 0, 0  # Pillow opened it, so it will say what is wrong when decoding
        width, height = struct.unpack("<HH", header[6:10])
        if header[10] & 0x80:  # global colour table
            handle.seek(3 << ((header[10] & 7) + 1), os.SEEK_CUR)
        frames = blocks = 0

        def skip_data():
            nonlocal blocks
            while (size := handle.read(1)) and size[0]:
                handle.seek(size[0], os.SEEK_CUR)
                blocks += 1
                if blocks % 4096 == 0:  # a file of one-byte blocks takes long to walk: stay cancellable
                    _poll(cancel)

        while frames <= MAX_ANIMATION_FRAMES:
            kind = handle.read(1)
            if kind == b"!":  # extension: label, then data blocks
                handle.read(1)
                skip_data()
            elif kind == b",":  # image: descriptor, optional local colour table, LZW code size, data blocks
                descriptor = handle.read(9)
                if len(descriptor) < 9:
                    break
                left, top, frame_width, frame_height = struct.unpack("<HHHH", descriptor[:8])
                width, height = max(width, left + frame_width), max(height, top + frame_height)
                if descriptor[8] & 0x80:
                    handle.seek(3 << ((descriptor[8] & 7) + 1), os.SEEK_CUR)
                handle.read(1)
                skip_data()
                frames += 1
            else:  # the trailer, the end of the file, or garbage where Pillow stops reading too
                break
        return frames, width, height


# ------------------------------------------------------------------------------------------------ videos
def _import_av():
    try:
        import av
    except ImportError:
        raise ImportError("reading videos needs PyAV: pip install 'deepfake-hf[video]'") from None
    return av


def _rotate(image, degrees):
    """Apply a display-matrix rotation (counter-clockwise degrees, as PyAV reports it)."""
    from PIL import Image

    degrees = int(round(degrees)) % 360
    if degrees == 0:
        return image
    transpose = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
    if degrees in transpose:
        return image.transpose(transpose[degrees])
    return image.rotate(degrees, expand=True)


def video_info(path):
    """{"frames", "duration", "fps", "width", "height", "has_audio"} from the packet index (no decoding)."""
    av = _import_av()
    path = check_file(path)
    with _open_container(av, path) as container:
        stream, packets = _video_packets(av, container, path)
        times = [pts * stream.time_base for pts, _ in packets]
        duration = float(times[-1] - times[0]) if len(times) > 1 else 0.0
        return {
            "frames": len(packets),
            "duration": duration,
            "fps": float(stream.average_rate) if stream.average_rate else None,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "has_audio": bool(container.streams.audio),
        }


def _open_container(av, path):
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as error:
        raise MediaError(path, f"not a readable video ({_short(error)})") from None


def _short(error):
    text = getattr(error, "strerror", None) or str(error)
    return one_line(text, 200)


def _video_packets(av, container, path, cancel=None):
    """The video stream and its packets' (pts, is_keyframe) in presentation order."""
    if not container.streams.video:
        others = sorted({stream.type for stream in container.streams})
        found = f" (only {', '.join(others)})" if others else ""
        raise MediaError(path, f"no video stream{found}")
    stream = container.streams.video[0]
    packets = []
    try:
        for packet in container.demux(stream):
            _poll(cancel)
            if packet.pts is not None and packet.size > 0:
                packets.append((packet.pts, packet.is_keyframe))
    except av.FFmpegError as error:
        raise MediaError(path, f"broken video container ({_short(error)})") from None
    if not packets:
        raise MediaError(path, "video stream has no frames")
    expected = stream.frames or 0
    if expected and len(packets) < expected:
        raise MediaError(path, f"truncated video: {len(packets)} of {expected} frames present")
    packets.sort()
    return stream, packets


def read_video_frames(path: str | os.PathLike, num_frames: int = 32, on_frame: Callable[[], None] | None = None,
                      sampling: str = "even", cancel: threading.Event | None = None) -> list[Image]:
    """Up to `num_frames` distinct RGB `PIL.Image` frames spread evenly over the whole video, in order.

    Frames are chosen by `sample_frame_indices` on their presentation times; a video (or animated
    GIF/WebP/APNG, sampled by its frame durations) with fewer frames gives each of them once, never
    repeats. Raises `MediaError` (one line, naming the file) for a missing, empty or broken file, a
    container with no video stream, or a video with no decodable frame.
    `on_frame()`, if given, is called as each sampled frame is decoded (for progress bars).
    `sampling="deepfakebench"` picks frames by number as DeepfakeBench does (`sample_frame_indices`).
    Frames over `MAX_PIXELS` are refused from the stream's header; `cancel` (a threading.Event) is polled
    between packets and frames, raising `AnalysisCancelled` once set. `read_numbered_video_frames` gives
    each frame's number too.
    """
    return [frame for _, frame in read_numbered_video_frames(path, num_frames, on_frame, sampling, cancel)]


def read_numbered_video_frames(path: str | os.PathLike, num_frames: int = 32,
                               on_frame: Callable[[], None] | None = None, sampling: str = "even",
                               cancel: threading.Event | None = None) -> list[tuple[int, Image]]:
    """`read_video_frames`' frames as (frame number, frame): the number is the frame's position in the video's
    presentation order (its n-th frame, from 0; an animated image's n-th frame), as DeepfakeBench names its
    crops. A sampled frame the decoder never gives out (`_decode_at` then returns the frame before it) keeps
    the sampled number."""
    if num_frames < 1:
        raise FrameSamplingError(f"num_frames: {num_frames} must be >= 1")
    if media_kind(path) == "image":
        return _read_animated_frames(path, num_frames, cancel)
    av = _import_av()
    path = check_file(path)
    with _open_container(av, path) as container:
        stream, packets = _video_packets(av, container, path, cancel)
        context = stream.codec_context
        _check_pixels(path, context.width, context.height, "video frame")
        # The decoder's own cap covers a stream whose frames are larger than its header says.
        context.options = {**context.options, "max_pixels": str(MAX_PIXELS)}
        stream.thread_type = "AUTO"
        pts = [p for p, _ in packets]
        numbers = sample_frame_indices(len(pts), num_frames, times=pts, sampling=sampling)
        keyframes = [p for p, key in packets if key] or [pts[0]]
        decoded = _decode_at(av, container, stream, [pts[number] for number in numbers], keyframes, path, on_frame,
                             cancel)
    if not decoded:
        raise MediaError(path, "no decodable video frames")
    return [(number, decoded[pts[number]]) for number in numbers if pts[number] in decoded]


# Decoders that read `skip_frame` for each frame they decode (also under frame threading, where FFmpeg copies
# it to the worker with each packet), so it can change from packet to packet. Others decode every frame.
_SKIP_NONREF_CODECS = frozenset({"h264", "hevc", "mpeg4", "mpeg1video", "mpeg2video", "vp8"})


def _decode_needed(container, stream, wanted, cancel=None):
    """Decoded frames from the container's current position, skipping the frames nothing needs.

    A frame no other frame refers to (a non-reference B frame: about half the frames of a typical H.264
    clip) is decoded only when its pts is `wanted`; every wanted frame and every reference frame is decoded
    as before, so the wanted frames' pixels are exactly those of a full decode (~20% less decoding on the
    FF++ clips, 1080p included).
    """
    context = stream.codec_context
    if context.name not in _SKIP_NONREF_CODECS:
        for packet in container.demux(stream):
            _poll(cancel)
            yield from packet.decode()
        return
    for packet in container.demux(stream):
        _poll(cancel)
        # read when the packet is decoded (the flush packet at the end, pts None, lets every frame out)
        context.skip_frame = "DEFAULT" if packet.pts is None or packet.pts in wanted else "NONREF"
        yield from packet.decode()


def _decode_at(av, container, stream, wanted, keyframes, path, on_frame=None, cancel=None):
    """Decode the frames whose pts are in `wanted` (sorted, distinct): {pts: PIL image}.

    Seeks to the keyframe before the next wanted frame when that keyframe lies beyond the frame
    just decoded; otherwise decodes forward, which is cheaper, skipping frames that are neither wanted
    nor referenced (`_decode_needed`). A wanted pts that never comes out of the decoder gets the last
    frame decoded before it unless that frame was already taken, so no frame is returned twice; wanted
    frames past the point where decoding stops are left out.
    """
    from PIL import Image

    decoded, taken = {}, set()  # taken: pts of the decoded frames already returned
    needed = frozenset(wanted)

    def take(target, frame):
        if frame.pts in taken:
            return
        taken.add(frame.pts)
        if on_frame is not None:
            on_frame()
        # to_ndarray + fromarray: the same pixels as frame.to_image(), with fewer copies (~20% faster at 1080p)
        decoded[target] = _rotate(Image.fromarray(frame.to_ndarray(format="rgb24")), frame.rotation)

    remaining = list(wanted)
    frames = previous = None
    while remaining:
        target = remaining[0]
        keyframe = keyframes[max(0, np.searchsorted(keyframes, target, side="right") - 1)]
        if frames is None or previous is None or keyframe > previous.pts:
            container.seek(int(keyframe), stream=stream, backward=True, any_frame=False)
            frames, previous = _decode_needed(container, stream, needed, cancel), None
        reached = False
        try:
            for frame in frames:
                if frame.pts is None:
                    continue
                if frame.pts >= target:
                    take(remaining.pop(0), frame if frame.pts == target or previous is None else previous)
                    while remaining and remaining[0] <= frame.pts:  # targets the decoder skipped past
                        take(remaining.pop(0), frame)
                    previous, reached = frame, True
                    break
                previous = frame
        except av.FFmpegError as error:
            if not decoded and previous is None:
                # FFmpeg refuses a frame over its max_pixels (set in read_video_frames) with EINVAL, size unsaid
                hint = (f"; frames over {_megapixels(MAX_PIXELS)} (DEEPFAKE_HF_MAX_PIXELS) are refused"
                        if getattr(error, "errno", None) == errno.EINVAL else "")
                raise MediaError(path, f"cannot decode video ({_short(error)}{hint})") from None
        if not reached:
            # The decoder ended (or failed) before the target: later frames are not there.
            if previous is not None:
                take(remaining[0], previous)
            break
    return decoded


__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "MediaError",
    "check_file",
    "is_animated",
    "is_url",
    "list_media_files",
    "media_kind",
    "not_regular_file",
    "open_image",
    "read_numbered_video_frames",
    "read_video_frames",
    "sample_frame_indices",
    "video_info",
]
