"""media.py: safe image opening, video frame sampling, file listing; every bad input is one-line MediaError."""

import hashlib
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfake_hf import media
from deepfake_hf.errors import AnalysisCancelled
from deepfake_hf.media import (
    MediaError,
    is_url,
    list_media_files,
    media_kind,
    open_image,
    read_numbered_video_frames,
    read_video_frames,
    sample_frame_indices,
    video_info,
)

from .media_bombs import write_gif_bomb, write_png_bomb, write_video_bomb
from .media_samples import level_index, real_video_frames, write_bad_inputs, write_video


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    return write_bad_inputs(folder)


def read_any(path, num_frames=4):
    kind = media_kind(path)
    if kind == "video":
        return read_video_frames(path, num_frames)
    if kind == "image":
        return [open_image(path)]
    raise MediaError(path, "unsupported")


def assert_one_line_error(path, expected_words):
    with pytest.raises(MediaError) as caught:
        read_any(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert any(word in message.lower() for word in expected_words), message
    return message


# --------------------------------------------------------------------------------------- bad inputs
def test_empty_file(bad_inputs):
    assert_one_line_error(bad_inputs["empty"], ["empty"])


def test_text_file_named_jpg(bad_inputs):
    assert_one_line_error(bad_inputs["text_jpg"], ["not a readable image"])


def test_text_file_named_mp4(bad_inputs):
    assert_one_line_error(bad_inputs["text_mp4"], ["not a readable video"])


def test_truncated_jpeg(bad_inputs):
    assert_one_line_error(bad_inputs["truncated_jpeg"], ["truncated"])


def test_truncated_png(bad_inputs):
    assert_one_line_error(bad_inputs["truncated_png"], ["truncated", "corrupt"])


def test_truncated_mp4(bad_inputs):
    assert_one_line_error(bad_inputs["truncated_mp4"], ["not a readable video", "truncated", "broken"])


def test_one_pixel_image(bad_inputs):
    assert_one_line_error(bad_inputs["one_pixel"], ["1x1"])


def test_png_header_claiming_30000_squared_is_refused_before_decoding(bad_inputs):
    assert_one_line_error(bad_inputs["huge_header"], ["too large"])


def test_audio_only_mp4(bad_inputs):
    message = assert_one_line_error(bad_inputs["audio_only"], ["no video stream"])
    assert "audio" in message


def test_missing_path(tmp_path):
    assert_one_line_error(tmp_path / "nowhere.mp4", ["no such file"])
    with pytest.raises(MediaError, match="no such file"):
        open_image(tmp_path / "nowhere.png")


def test_unsupported_extension_is_not_media(bad_inputs):
    assert media_kind(bad_inputs["unsupported"]) is None
    assert media_kind("clip.MP4") == "video" and media_kind("a/b.JpEg") == "image"


def test_urls_are_refused():
    assert is_url("https://example.com/a.jpg") and is_url("hf://x/y") and not is_url("C:/images/a.jpg")
    with pytest.raises(MediaError, match="URLs are not supported"):
        open_image("https://example.com/a.jpg")


# ---------------------------------------------------------------------------------- tricky but valid
def test_cmyk_jpeg_is_converted_to_rgb(bad_inputs):
    image = open_image(bad_inputs["cmyk"])
    assert image.mode == "RGB" and image.size == (64, 64)
    reference = np.asarray(Image.open(bad_inputs["good_image"]).convert("RGB"), dtype=np.float64)
    # Same noise, CMYK JPEG round trip: close to the RGB original, not inverted.
    assert np.abs(np.asarray(image, dtype=np.float64) - reference).mean() < 40


def test_16_bit_png_is_rescaled_not_clipped(bad_inputs):
    raw = np.asarray(Image.open(bad_inputs["png16"]), dtype=np.float64)
    assert raw.max() > 255  # really 16-bit on disk
    image = np.asarray(open_image(bad_inputs["png16"]))
    assert image.shape == (64, 64, 3)
    np.testing.assert_allclose(image[..., 0], np.rint(raw / 257), atol=1)
    assert 0 < (image[..., 0] == 255).mean() < 0.01  # a plain convert("RGB") would saturate most pixels


def test_animated_gif_first_frame_and_all_frames(bad_inputs):
    first = open_image(bad_inputs["gif"])
    assert np.asarray(first).mean() < 5
    frames = read_video_frames(bad_inputs["gif"], 5)
    levels = [int(np.asarray(frame).mean()) for frame in frames]
    assert levels == sorted(levels) and len(set(levels)) == 5


def write_gif(path, durations, size=(32, 32)):
    """An animated GIF whose frame i is flat grey at level 10 * (i + 1), shown for durations[i] ms."""
    frames = [Image.new("RGB", size, (10 * (i + 1),) * 3) for i in range(len(durations))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=list(durations), loop=0)
    return path


def gif_levels(frames):
    return [round(float(np.asarray(frame.convert("L"), dtype=np.float64).mean()) / 10) - 1 for frame in frames]


def test_animated_gif_gives_its_real_frames_not_repeats(tmp_path):
    # A 4-frame GIF asked for 32 frames gives its 4 frames once each (it used to give 32 with repeats).
    path = write_gif(tmp_path / "four.gif", [100] * 4)
    assert gif_levels(read_video_frames(path, 32)) == [0, 1, 2, 3]


def test_animated_gif_sampled_by_frame_durations(tmp_path):
    # Frame 0 is shown for 2 s, then nine frames of 100 ms: evenly spaced instants mostly fall in the
    # long first frame, and each frame still comes at most once.
    path = write_gif(tmp_path / "slow_start.gif", [2000] + [100] * 9)
    levels = gif_levels(read_video_frames(path, 4))
    assert levels == sorted(set(levels)) and len(levels) == 4
    assert levels == sample_frame_indices(10, 4, times=[0, 2000, 2100, 2200, 2300, 2400, 2500, 2600, 2700, 2800])
    assert levels[:2] == [0, 1]  # the second instant (0.93 s) is inside frame 0's display: next unused frame


def test_exif_orientation_applied(tmp_path):
    pixels = np.zeros((40, 60, 3), dtype=np.uint8)
    pixels[:, :30] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    image = np.asarray(open_image(path).convert("L"))
    assert image.shape == (60, 40)
    assert image[:25].mean() > 200 and image[-25:].mean() < 50  # white half now on top


def test_open_image_modes_and_arrays():
    rgba = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    assert open_image(rgba).getpixel((0, 0)) == (255, 255, 255)  # transparent over white
    assert open_image(Image.new("L", (16, 16), 7)).getpixel((3, 3)) == (7, 7, 7)
    assert open_image(np.full((16, 16), 1.0, dtype=np.float32)).getpixel((0, 0)) == (255, 255, 255)
    assert open_image(np.zeros((3, 16, 20), dtype=np.uint8)).size == (20, 16)  # channels first
    with pytest.raises(MediaError, match="1x1"):
        open_image(np.zeros((1, 1, 3), dtype=np.uint8))


# ------------------------------------------------------------------------------------------- videos
def test_video_frames_uniform_over_duration(tmp_path):
    path = write_video(tmp_path / "clip.mp4", frames=31, fps=10)
    frames = read_video_frames(path, num_frames=7)
    assert len(frames) == 7 and all(frame.size == (64, 48) for frame in frames)
    assert [level_index(frame) for frame in frames] == [0, 5, 10, 15, 20, 25, 30]
    assert video_info(path)["frames"] == 31


def test_video_shorter_than_requested_gives_each_frame_once(tmp_path):
    # Issue 12 item 2: the old reader repeated frames to reach 8 ([0, 0, 0, 1, 1, 2, 2, 2]), which weighed
    # some frames more than others in the video's mean score.
    path = write_video(tmp_path / "short.mp4", frames=3)
    assert [level_index(frame) for frame in read_video_frames(path, num_frames=8)] == [0, 1, 2]


def test_video_with_audio_stream(tmp_path):
    path = write_video(tmp_path / "talk.mp4", frames=20, audio=True)
    assert video_info(path)["has_audio"]
    assert [level_index(frame) for frame in read_video_frames(path, 5)] == [0, 5, 9, 14, 19]


def test_portrait_video(tmp_path):
    path = write_video(tmp_path / "portrait.mp4", frames=10, size=(48, 80))
    frames = read_video_frames(path, 4)
    assert {frame.size for frame in frames} == {(48, 80)}


@pytest.mark.parametrize("rotation, bright_corner", [(90, (-5, 5)), (-90, (5, -5))])
def test_rotation_metadata_applied(tmp_path, rotation, bright_corner):
    path = write_video(tmp_path / "rotated.mp4", frames=6, size=(64, 32), rotation=rotation, marker=True)
    frame = np.asarray(read_video_frames(path, 2)[0].convert("L"))
    assert frame.shape == (64, 32)  # displayed portrait
    row, col = bright_corner
    assert frame[row, col] > 200  # the top-left marker moved where the display rotation puts it
    assert frame[-row - 1 if row > 0 else 4, col] < 100


def test_variable_frame_rate_sampled_by_time(tmp_path):
    # 10 frames in the first 0.1 s, then 10 frames over the next 1.8 s.
    times = [0.01 * i for i in range(10)] + [0.1 + 0.2 * i for i in range(10)]
    path = write_video(tmp_path / "vfr.mp4", frames=20, times=times)
    indices = [level_index(frame) for frame in read_video_frames(path, 5)]
    # Even in time: one frame from the dense start, the rest spread over the slow part
    # (a frame-count linspace would give [0, 5, 10, 14, 19]).
    assert indices[0] == 0 and indices[-1] == 19
    assert all(index >= 10 for index in indices[1:])
    assert len(set(indices)) == 5


def test_numbered_frames_carry_the_decoded_frames_indices(tmp_path):
    """read_numbered_video_frames numbers each frame by its position in the video (each test frame's grey level
    encodes it), for even and DeepfakeBench sampling, a variable frame rate and an animated image alike."""
    clip = write_video(tmp_path / "clip.mp4", frames=20)
    times = [0.01 * i for i in range(10)] + [0.1 + 0.2 * i for i in range(10)]
    vfr = write_video(tmp_path / "vfr.mp4", frames=20, times=times)
    for path, sampling in ((clip, "even"), (clip, "deepfakebench"), (vfr, "even")):
        numbered = read_numbered_video_frames(path, 5, sampling=sampling)
        assert [number for number, _ in numbered] == [level_index(frame) for _, frame in numbered], (path, sampling)
        assert [frame.tobytes() for _, frame in numbered] == [
            frame.tobytes() for frame in read_video_frames(path, 5, sampling=sampling)]
    assert [number for number, _ in read_numbered_video_frames(clip, 5, sampling="deepfakebench")] == [
        0, 4, 9, 14, 19]  # linspace(0, 19, 5) rounded down, by frame number
    gif = write_gif(tmp_path / "slow_start.gif", [2000] + [100] * 9)
    numbered = read_numbered_video_frames(gif, 4)
    assert [number for number, _ in numbered] == gif_levels(frame for _, frame in numbered) == sample_frame_indices(
        10, 4, times=[0, 2000, 2100, 2200, 2300, 2400, 2500, 2600, 2700, 2800])


# ----------------------------------------------------------------------------------------- the sampler
def test_sample_frame_indices_rules():
    assert sample_frame_indices(31, 7) == [0, 5, 10, 15, 20, 25, 30]
    assert sample_frame_indices(20, 5) == [0, 5, 9, 14, 19]  # 9.5 -> 9: ties go to the earlier frame
    assert sample_frame_indices(10, 1) == [0]
    assert sample_frame_indices(3, 8) == [0, 1, 2] and sample_frame_indices(8, 8) == list(range(8))
    assert sample_frame_indices(0, 4) == []
    for count in range(1, 300):
        for wanted in (1, 2, 3, 5, 8, 16, 32):
            indices = sample_frame_indices(count, wanted)
            # never fewer than asked when the clip has enough frames (np.unique used to drop some), never repeats
            assert len(indices) == min(count, wanted) and indices == sorted(set(indices)), (count, wanted)
            assert indices[0] == 0 and (count <= wanted or wanted == 1 or indices[-1] == count - 1)


def test_sample_frame_indices_with_variable_rate_stays_distinct():
    # Two long pauses: several evenly spaced instants fall on the same paused frame.
    times = [0.0, 5.0, 5.1, 5.2, 5.3, 10.0, 10.1, 10.2]
    indices = sample_frame_indices(len(times), 6, times=times)
    assert len(indices) == 6 and indices == sorted(set(indices)) and indices[-1] == 7


# Presentation-time units of common containers: (frame rate, ticks per frame in the stream's time base).
FRAME_RATES = [(24, 512), (25, 512), (30000 / 1001, 1001), (30, 512), (50, 256), (60, 256), (10, 1024)]


@pytest.mark.parametrize("fps, ticks", FRAME_RATES)
def test_video_processor_sampler_agrees_with_media(fps, ticks):
    """modeling_deepfake.py keeps a copy of the rule (remote code cannot import media.py): the two must agree."""
    from transformers.video_utils import VideoMetadata

    from deepfake_hf.modeling_deepfake import DeepfakeVideoProcessor

    processor = DeepfakeVideoProcessor()
    for count in range(1, 400):
        metadata = VideoMetadata(total_num_frames=count, fps=fps, duration=count / fps)
        pts = np.arange(count) * ticks  # what media.read_video_frames samples on
        seconds = np.arange(count) / fps  # the same instants with float noise
        for wanted in (1, 2, 4, 5, 7, 8, 16, 32):
            expected = processor.sample_frames(metadata, wanted).tolist()
            assert sample_frame_indices(count, wanted) == expected, (count, wanted)
            assert sample_frame_indices(count, wanted, times=pts) == expected, (count, wanted)
            assert sample_frame_indices(count, wanted, times=seconds) == expected, (count, wanted, fps)


@pytest.mark.parametrize("frames, wanted", [(3, 8), (12, 4), (20, 5), (31, 7)])
def test_decoded_frames_agree_between_media_and_video_processor(tmp_path, frames, wanted):
    from deepfake_hf.modeling_deepfake import DeepfakeVideoProcessor, read_video_pyav_rotated

    path = write_video(tmp_path / "clip.mp4", frames=frames, fps=25)
    ours = [level_index(frame) for frame in read_video_frames(path, wanted)]
    decoded, _ = read_video_pyav_rotated(str(path), lambda metadata: DeepfakeVideoProcessor().sample_frames(
        metadata, wanted))
    theirs = [round((float(frame.mean()) - 8) / 4) for frame in decoded.astype(np.float64)]
    assert ours == theirs == sample_frame_indices(frames, wanted)


def write_b_frame_clip(path, frames=48, size=(96, 64), gop=20):
    """An H.264 clip with B frames (x264's default: some are not referenced) of moving noise, keyframe every `gop`."""
    import av

    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, size=(size[1], size[0] * 3, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"preset": "medium", "bf": "3", "g": str(gop),
                                                                   "crf": "28"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for index in range(frames):
            pixels = np.ascontiguousarray(texture[:, index: index + size[0]])
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize("wanted", [1, 5, 12, 48])
def test_video_frames_are_those_of_a_full_decode_though_unneeded_frames_are_skipped(tmp_path, monkeypatch, wanted):
    import av

    path = write_b_frame_clip(tmp_path / "b.mp4")
    with av.open(str(path)) as container:  # every frame, plainly
        full = {frame.pts: frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)}
    pts = sorted(full)
    decoded = []
    real = media._decode_needed

    def counted(*args):
        for frame in real(*args):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(media, "_decode_needed", counted)
    frames = read_video_frames(path, wanted)
    chosen = [pts[i] for i in sample_frame_indices(len(pts), wanted, times=pts)]
    assert len(frames) == len(chosen)
    for frame, target in zip(frames, chosen):
        np.testing.assert_array_equal(np.asarray(frame), full[target])
    if wanted < len(pts) // 2:
        assert len(set(decoded)) < len(pts)  # frames nobody needs (not wanted, not referenced) were skipped


def test_num_frames_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="num_frames"):
        read_video_frames(tmp_path / "x.mp4", 0)


# -------------------------------------------------------------------------------------------- listing
def test_list_media_files_recurses_and_keeps_explicit_paths(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/one.JPG", "a/b/two.mp4", "a/notes.txt", "a/.hidden.png", "top.png"):
        (tmp_path / name).write_bytes(b"x")
    found = list_media_files([tmp_path / "a", tmp_path / "top.png", tmp_path / "missing.jpg", tmp_path / "a/one.JPG"])
    names = [path.relative_to(tmp_path).as_posix() for path in found]
    assert names == ["a/one.JPG", "a/b/two.mp4", "top.png", "missing.jpg"]


def test_reading_never_modifies_inputs(bad_inputs):
    folder = bad_inputs["empty"].parent

    def snapshot():
        return {
            path.name: (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
            for path in sorted(folder.iterdir())
        }

    before = snapshot()
    for path in bad_inputs.values():
        try:
            read_any(path)
        except MediaError:
            pass
    assert snapshot() == before
    assert sorted(os.listdir(folder)) == sorted(before)


# ----------------------------------------------------------------------------------------- real media
@pytest.mark.slow  # decodes the shared real media (10-20 s): outside the 90 s fast subset
def test_real_videos_decode_to_requested_count(shared_media):
    videos = sorted((shared_media / "videos").rglob("*.mp4"))
    assert videos
    for path in videos:
        frames = real_video_frames(path, num_frames=8)
        assert len(frames) == 8, path
        assert all(frame.mode == "RGB" and min(frame.size) >= 240 for frame in frames)
        # Sampled frames differ (a stuck decoder would repeat one frame).
        assert len({frame.tobytes()[::997] for frame in frames}) > 4, path


def test_on_frame_called_per_decoded_frame(tmp_path):
    path = write_video(tmp_path / "clip.mp4", frames=20)
    calls = []
    read_video_frames(path, 5, on_frame=lambda: calls.append(1))
    assert len(calls) == 5


# --------------------------------------------------------------------- decoding limits and cancellation
class PollCounter:
    """A cancel event that counts how often it is polled and reports "set" from poll number `set_after` on."""

    def __init__(self, set_after=None):
        self.polls, self.set_after = 0, set_after

    def is_set(self):
        self.polls += 1
        return self.set_after is not None and self.polls > self.set_after


@pytest.fixture
def no_pixel_decoding(monkeypatch):
    """Fail the test if Pillow decodes any pixel: a bomb must be refused from its header alone."""
    from PIL import ImageFile

    def load(self):
        raise AssertionError(f"{self.size} pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def refusal(call, path):
    """The one-line MediaError `call()` raises for `path`, and how long it took."""
    start = time.perf_counter()
    with pytest.raises(MediaError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    return message, time.perf_counter() - start


def test_png_bomb_is_refused_from_its_header(tmp_path, no_pixel_decoding):
    path = write_png_bomb(tmp_path / "bomb.png", 13000, 13000)  # 169 megapixels in ~20 kB
    assert path.stat().st_size < 50_000
    message, seconds = refusal(lambda: open_image(path), path)
    assert "13000x13000" in message and "too large" in message and "40 megapixels" in message, message
    assert seconds < 1
    with pytest.raises(MediaError, match="too large"):  # the scorer's path for images goes the same way
        read_video_frames(path, 4)


def test_pixel_limit_is_the_module_constant_set_from_the_environment(tmp_path, monkeypatch):
    assert media.MAX_PIXELS == 40_000_000 or os.environ.get("DEEPFAKE_HF_MAX_PIXELS")
    monkeypatch.setenv("DEEPFAKE_HF_MAX_PIXELS", "2.5e6")
    assert media._pixels_from_env("DEEPFAKE_HF_MAX_PIXELS", 1) == 2_500_000
    monkeypatch.setenv("DEEPFAKE_HF_MAX_PIXELS", "lots")
    with pytest.raises(ValueError, match="DEEPFAKE_HF_MAX_PIXELS: 'lots' is not a positive number"):
        media._pixels_from_env("DEEPFAKE_HF_MAX_PIXELS", 1)
    image = Image.new("RGB", (40, 30))
    image.save(tmp_path / "small.png")
    monkeypatch.setattr(media, "MAX_PIXELS", 40 * 30 - 1)  # read at each call, not at import
    for source in (tmp_path / "small.png", image, np.zeros((30, 40, 3), dtype=np.uint8)):
        with pytest.raises(MediaError, match="40x30 pixels .1,200 pixels. is over the limit of 1,199 pixels"):
            open_image(source)
    monkeypatch.setattr(media, "MAX_PIXELS", 40 * 30)
    assert open_image(tmp_path / "small.png").size == (40, 30)  # the limit itself is allowed


def test_gif_bomb_is_refused_before_its_frames_are_decoded(tmp_path, no_pixel_decoding):
    path = write_gif_bomb(tmp_path / "bomb.gif", 4000, 4000, 600)  # 600 one-pixel frames: 13.8 kB
    assert path.stat().st_size < 20_000
    message, seconds = refusal(lambda: read_video_frames(path, 32), path)
    assert "600 frames of 4000x4000" in message and "over the limit of 500 megapixels" in message, message
    assert seconds < 1


def test_gif_with_too_many_frames_is_refused_without_walking_them_all(tmp_path, no_pixel_decoding):
    path = write_gif_bomb(tmp_path / "long.gif", 16, 16, 50_000)  # 1 MB: Pillow's n_frames walks every frame
    message, seconds = refusal(lambda: read_video_frames(path, 32), path)
    assert "more than 3000 frames" in message, message
    assert seconds < 1


def test_gif_frame_outside_its_canvas_counts_as_canvas(tmp_path, no_pixel_decoding):
    # A 16x16 canvas whose third frame sits at (8999, 8999): a decoder grows the canvas to 9000x9000 for it.
    path = write_gif_bomb(tmp_path / "grows.gif", 16, 16, 3, positions={2: (8999, 8999)})
    message, _ = refusal(lambda: read_video_frames(path, 4), path)
    assert "animation canvas too large: 9000x9000" in message, message


def test_animation_cancel_is_polled_between_frames(tmp_path):
    path = write_gif_bomb(tmp_path / "slow.gif", 64, 64, 40)
    counter = PollCounter()
    assert len(read_video_frames(path, 8, cancel=counter)) == 8
    assert counter.polls >= 2 * 40  # every frame of both passes (frame durations, then the sampled frames)
    stopper = PollCounter(set_after=5)
    with pytest.raises(AnalysisCancelled):
        read_video_frames(path, 8, cancel=stopper)
    assert stopper.polls == 6  # stopped at the first poll after it was set


def test_animation_cancelled_from_another_thread_stops_within_a_frame(tmp_path):
    path = write_gif_bomb(tmp_path / "slow.gif", 2000, 2000, 120)  # 480 megapixels: allowed, but seconds
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    start = time.perf_counter()
    with pytest.raises(AnalysisCancelled):
        read_video_frames(path, 32, cancel=cancel)
    assert time.perf_counter() - start < 1.5  # a full read takes ~5-10 s on this machine


@pytest.fixture(scope="module")
def video_bomb(tmp_path_factory):
    return write_video_bomb(tmp_path_factory.mktemp("bomb") / "bomb.mkv", 8192, 8192)  # ~200 kB, ~2 s


def test_video_bomb_is_refused_from_its_stream_header(video_bomb):
    assert video_bomb.stat().st_size < 400_000
    message, seconds = refusal(lambda: read_video_frames(video_bomb, 8), video_bomb)
    assert "video frame too large: 8192x8192" in message and "not decoded" in message, message
    assert seconds < 2


def test_video_pixel_limit_and_decoder_cap(tmp_path, monkeypatch):
    path = write_video(tmp_path / "clip.mp4", frames=6, size=(64, 48))
    monkeypatch.setattr(media, "MAX_PIXELS", 64 * 48 - 1)
    message, _ = refusal(lambda: read_video_frames(path, 4), path)
    assert "64x48 pixels" in message
    # A stream whose frames outgrow its header is stopped by the decoder's own cap (FFmpeg's max_pixels):
    # the header check is skipped here to reach it.
    monkeypatch.setattr(media, "_check_pixels", lambda *args, **kwargs: None)
    message, _ = refusal(lambda: read_video_frames(path, 4), path)
    assert "cannot decode video" in message and "frames over 3,071 pixels" in message, message


def test_video_cancel_is_polled_between_packets(tmp_path):
    path = write_video(tmp_path / "clip.mp4", frames=30, size=(64, 48))
    counter = PollCounter()
    read_video_frames(path, 4, cancel=counter)
    assert counter.polls >= 30  # the packet index at least (and each packet decoded)
    stopper = PollCounter(set_after=counter.polls - 3)  # set while decoding the frames
    with pytest.raises(AnalysisCancelled):
        read_video_frames(path, 4, cancel=stopper)
    assert stopper.polls == counter.polls - 2


# ------------------------------------------------------------------- folders and links named like media
def make_odd_entries(folder):
    """A folder with one good image, an empty folder named x.jpg, a looping and a broken symbolic link."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (90, 90, 90)).save(folder / "good.png")
    (folder / "x.jpg").mkdir()
    os.symlink("loop.jpg", folder / "loop.jpg")
    os.symlink("gone.png", folder / "broken.png")
    frames = folder / "clip.mp4"  # a frame folder named like a video: its images are listed, not the folder
    frames.mkdir()
    Image.new("RGB", (16, 16), (30, 30, 30)).save(frames / "000.png")
    return folder


def test_listing_keeps_folders_and_links_named_like_media(tmp_path):
    folder = make_odd_entries(tmp_path / "in")
    not_media = []
    (folder / "notes.txt").write_text("x")
    names = [path.relative_to(folder).as_posix() for path in list_media_files([folder], not_media=not_media)]
    assert names == ["broken.png", "good.png", "loop.jpg", "clip.mp4/000.png", "x.jpg"]
    assert [path.name for path in not_media] == ["notes.txt"]


def test_opening_says_what_a_non_file_is(tmp_path):
    folder = make_odd_entries(tmp_path / "in")
    with pytest.raises(MediaError) as caught:
        open_image(folder / "x.jpg")
    assert str(caught.value) == f"{folder / 'x.jpg'}: is a directory, not an image"
    with pytest.raises(MediaError, match=r"loop\.jpg: symbolic link loop$"):
        open_image(folder / "loop.jpg")
    with pytest.raises(MediaError, match=r"broken\.png: broken symbolic link \(its target gone\.png does not exist\)"):
        open_image(folder / "broken.png")
    (folder / "v.mp4").mkdir()
    with pytest.raises(MediaError, match=r"v\.mp4: is a directory, not a video$"):
        read_video_frames(folder / "v.mp4", 4)
    with pytest.raises(MediaError, match="no such file"):
        open_image(folder / "missing.png")


def test_predict_reports_each_odd_entry_and_scores_the_rest(tmp_path):
    from deepfake_hf.scoring.detector import Detector

    from .conftest import tiny_detector

    tiny_detector("vit").save_pretrained(tmp_path / "model")
    folder = make_odd_entries(tmp_path / "in")
    results = {Path(r.path).name: r for r in Detector.from_pretrained(tmp_path / "model", faces="none",
                                                                         progress=False)([folder])}
    assert results["good.png"].error is None and results["000.png"].error is None
    # the error field holds the problem; the path field names the file
    assert results["x.jpg"].error == "is a directory, not an image"
    assert results["loop.jpg"].error == "symbolic link loop"
    assert "broken symbolic link" in results["broken.png"].error


def test_media_files_are_listed_lazily_one_folder_at_a_time(tmp_path, monkeypatch):
    import os

    from deepfake_hf import media

    from .conftest import write_image

    for folder in ("a", "b", "c"):
        for index in range(3):
            write_image(tmp_path / "in" / folder / f"{index}.png", size=(8, 8))
    opened = []
    real_scandir = os.scandir
    monkeypatch.setattr(media.os, "scandir", lambda path: (opened.append(Path(path).name), real_scandir(path))[1])
    walk = media.iter_media_files([tmp_path / "in", tmp_path / "in" / "b", tmp_path / "in" / "a" / "0.png"])
    first = next(walk)
    assert first.name == "0.png" and opened == ["in", "a"]  # later folders not read yet
    rest = list(walk)
    assert len(rest) == 8 and opened == ["in", "a", "b", "c"]  # a nested root and a file inside are listed once
    assert [p.relative_to(tmp_path / "in").as_posix() for p in [first, *rest]] == [
        f"{folder}/{index}.png" for folder in "abc" for index in range(3)]
