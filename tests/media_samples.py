"""Generated media for tests: H.264 clips (PyAV) whose frames encode their index, and broken files.

`write_video` frames are flat grey with level `frame_level(i)`, so a decoded frame tells which
source frame it was (H.264 keeps flat areas within a couple of levels).
"""

import struct
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np


def frame_level(index):
    return 8 + 4 * index


def level_index(image):
    """Source frame index of a decoded flat frame."""
    return int(round((np.asarray(image.convert("L"), dtype=np.float64).mean() - 8) / 4))


def write_video(path, frames=20, size=(64, 48), fps=10, audio=False, rotation=None, times=None, marker=False):
    """An H.264 mp4 of flat frames (level encodes the index); `times` (seconds) makes it variable-rate.

    `marker` paints the top-left quarter white, to check orientation after rotation metadata.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "1", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        audio_stream = container.add_stream("aac", rate=16000) if audio else None
        for index in range(frames):
            pixels = np.full((height, width, 3), frame_level(index), dtype=np.uint8)
            if marker:
                pixels[: height // 2, : width // 2] = 255
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = int(round(times[index] * 1000)), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            _write_tone(av, container, audio_stream, seconds=frames / fps)
    return path


def _write_tone(av, container, stream, seconds):
    rate = stream.rate
    samples = np.sin(np.arange(int(rate * seconds)) * 2 * np.pi * 440 / rate).astype(np.float32)
    chunk = stream.codec_context.frame_size or 1024
    for start in range(0, len(samples), chunk):
        piece = samples[start : start + chunk]
        frame = av.AudioFrame.from_ndarray(piece[None, :], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def write_audio_only(path, seconds=1.0):
    import av

    path = Path(path)
    with av.open(str(path), "w") as container:
        _write_tone(av, container, container.add_stream("aac", rate=16000), seconds)
    return path


def truncate(source, target, fraction=0.5):
    data = Path(source).read_bytes()
    Path(target).write_bytes(data[: int(len(data) * fraction)])
    return Path(target)


def write_png_header(path, width, height):
    """A PNG whose IHDR claims width x height (valid chunk CRCs, a tiny IDAT)."""

    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
    data += chunk(b"IEND", b"")
    Path(path).write_bytes(data)
    return Path(path)


def write_bad_inputs(folder, good_image=True, good_video=True):
    """One file per bad-input case (issue 5), plus good ones; returns {case: path}."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    cases = {}
    cases["empty"] = folder / "empty.jpg"
    cases["empty"].write_bytes(b"")
    cases["text_jpg"] = folder / "notes.jpg"
    cases["text_jpg"].write_text("this is not an image\n")
    cases["text_mp4"] = folder / "notes.mp4"
    cases["text_mp4"].write_text("this is not a video\n")
    noise.save(folder / "_full.jpg", quality=95)
    cases["truncated_jpeg"] = truncate(folder / "_full.jpg", folder / "truncated.jpg")
    noise.save(folder / "_full.png")
    cases["truncated_png"] = truncate(folder / "_full.png", folder / "truncated.png")
    (folder / "_full.jpg").unlink()
    (folder / "_full.png").unlink()
    full_video = write_video(folder / "_full.mp4", frames=12)
    cases["truncated_mp4"] = truncate(full_video, folder / "truncated.mp4")
    full_video.unlink()
    cases["one_pixel"] = folder / "one_pixel.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(cases["one_pixel"])
    cases["huge_header"] = write_png_header(folder / "huge.png", 30000, 30000)
    cases["audio_only"] = write_audio_only(folder / "audio_only.mp4")
    cases["unsupported"] = folder / "table.xyz"
    cases["unsupported"].write_text("a,b\n1,2\n")
    # Tricky but valid: converted or sampled, not errors.
    cases["cmyk"] = folder / "cmyk.jpg"
    noise.convert("CMYK").save(cases["cmyk"])
    cases["png16"] = folder / "gray16.png"
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).save(cases["png16"])
    cases["gif"] = folder / "animated.gif"
    gif_frames = [Image.new("RGB", (48, 48), (40 * i, 40 * i, 40 * i)) for i in range(5)]
    gif_frames[0].save(cases["gif"], save_all=True, append_images=gif_frames[1:], duration=100, loop=0)
    if good_image:
        cases["good_image"] = folder / "good.png"
        noise.save(cases["good_image"])
    if good_video:
        cases["good_video"] = write_video(folder / "good.mp4", frames=12, audio=True)
    return cases


BAD_CASES = ("empty", "text_jpg", "text_mp4", "truncated_jpeg", "truncated_png", "truncated_mp4", "one_pixel",
             "huge_header", "audio_only", "unsupported")
VALID_TRICKY_CASES = ("cmyk", "png16", "gif")


_REAL_FRAMES = {}


def real_video_frames(path, num_frames=8):
    """Decoded frames of a shared-media video, cached for the test session (decoding full HD is slow)."""
    from deepfake_hf.media import read_video_frames

    key = (str(path), num_frames)
    if key not in _REAL_FRAMES:
        _REAL_FRAMES[key] = read_video_frames(path, num_frames)
    return _REAL_FRAMES[key]


def astronaut_face(size):
    """A real face (scikit-image's astronaut) at `size`; skips the test where scikit-image is not installed."""
    import pytest
    from PIL import Image

    data = pytest.importorskip("skimage.data")
    return Image.fromarray(data.astronaut()).crop((120, 0, 400, 300)).resize(size)


def drifting_face_frames(count, size, face_size, start, step, gap=()):
    """`astronaut_face` drifting over a textured frame from `start` by `step` a frame; absent in the `gap` frames."""
    from PIL import Image

    face = astronaut_face(face_size)
    rng = np.random.default_rng(0)
    background = Image.fromarray(rng.integers(0, 256, size=(size[1] // 20, size[0] // 20, 3), dtype=np.uint8))
    background = background.resize(size, Image.BILINEAR)
    frames = []
    for index in range(count):
        frame = background.copy()
        if index not in gap:
            frame.paste(face, (start[0] + step[0] * index, start[1] + step[1] * index))
        frames.append(frame)
    return frames
