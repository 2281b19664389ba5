"""`deepfake-hf bench exact-faces`: the "deepfakebench-fast" face mode against the exact "deepfakebench" mode.

Every frame (or every Nth) of the given videos, plus generated frames with 0, 1 and several faces, small and
large, goes through both modes, interleaved frame by frame (the order alternates), and the JSON says per
resolution how often they agree (frame kept or dropped, number of faces, identical boxes and landmarks, PSNR of
the aligned crops) and how much CPU time each took.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def generated_face_frames() -> list[tuple[str, Any]]:
    """(name, PIL image) frames with 0, 1 and several faces (scikit-image's astronaut), small and large, at
    1080p, 720p and 480p; [] without scikit-image."""
    try:
        from skimage import data
    except ImportError:
        return []
    from PIL import Image

    face = Image.fromarray(data.astronaut()).crop((120, 0, 400, 300))
    rng = np.random.default_rng(0)

    def canvas(size):
        low = rng.integers(0, 256, size=(size[1] // 24 + 1, size[0] // 24 + 1, 3), dtype=np.uint8)
        return Image.fromarray(low).resize(size, Image.BILINEAR)

    def frame(size, faces):  # faces: (face height in pixels, centre x, centre y as fractions of the frame)
        image = canvas(size)
        for height, x, y in faces:
            pasted = face.resize((round(height * face.width / face.height), height), Image.BILINEAR)
            image.paste(pasted, (round(x * size[0] - pasted.width / 2), round(y * size[1] - pasted.height / 2)))
        return image

    hd, hd_portrait, sd720, sd480 = (1920, 1080), (1080, 1920), (1280, 720), (640, 480)
    # dlib's box covers about 0.3 of the pasted height: the coarse scan settles 1080p faces of about 190 px boxes
    # and more (pasted 620), 720p ones of about 130 (pasted 430); smaller ones are scanned whole
    layouts = {
        "no_face": (hd, []),
        "one_large": (hd, [(760, 0.5, 0.5)]),
        "one_medium": (hd, [(400, 0.3, 0.4)]),
        "one_small": (hd, [(160, 0.7, 0.3)]),
        "large_and_small": (hd, [(700, 0.3, 0.5), (160, 0.8, 0.3), (130, 0.85, 0.75)]),
        "two_large": (hd, [(640, 0.25, 0.5), (720, 0.75, 0.5)]),
        "three_medium": (hd, [(420, 0.2, 0.5), (460, 0.5, 0.5), (400, 0.8, 0.5)]),
        "huge": (hd, [(1040, 0.5, 0.5)]),
        "portrait_one": (hd_portrait, [(700, 0.5, 0.35)]),
        "720p_one": (sd720, [(500, 0.5, 0.5)]),
        "720p_small_and_large": (sd720, [(120, 0.2, 0.3), (520, 0.65, 0.55)]),
        "720p_no_face": (sd720, []),
        "480p_one": (sd480, [(330, 0.5, 0.5)]),
        "480p_two_small": (sd480, [(110, 0.25, 0.5), (100, 0.75, 0.5)]),
    }
    # one face growing through the pyramid levels where the coarse scan starts and settles, at random places
    for height in range(380, 920, 20):
        layouts[f"sweep_{height}"] = (hd, [(height, rng.uniform(0.3, 0.7), rng.uniform(0.4, 0.6))])
    for height in range(260, 640, 20):
        layouts[f"720p_sweep_{height}"] = (sd720, [(height, rng.uniform(0.35, 0.65), rng.uniform(0.45, 0.55))])
    return [(name, frame(size, faces)) for name, (size, faces) in layouts.items()]


def video_frames(path: str | os.PathLike[str], every: int = 1) -> Iterator[tuple[int, Any]]:
    """(frame number, PIL RGB image) of every `every`th frame of a video, in order."""
    import av

    with av.open(str(path)) as container:
        for number, frame in enumerate(container.decode(video=0)):
            if number % every == 0:
                yield number, frame.to_image()


def crop_psnr(first: np.ndarray, second: np.ndarray) -> float:
    """PSNR in dB of two uint8 crops (inf when identical)."""
    error = np.mean((first.astype(np.float64) - second.astype(np.float64)) ** 2)
    return math.inf if error == 0 else 10 * math.log10(255.0 ** 2 / error)


def compare_frame(exact: Any, fast: Any, image: Any, first: str) -> dict[str, Any]:
    """Both modes on one frame (`first` of "exact"/"fast" runs first): CPU seconds and agreement."""
    from deepfake_hf.faces.align import align_face

    detectors = {"exact": exact, "fast": fast}
    found, cpu = {}, {}
    scans = fast.full_frame_scans
    for name in (first, "fast" if first == "exact" else "exact"):
        start = time.thread_time()
        found[name] = detectors[name].detect(image)
        cpu[name] = time.thread_time() - start
    row: dict[str, Any] = {"cpu_exact_s": cpu["exact"], "cpu_fast_s": cpu["fast"],
                           "faces_exact": len(found["exact"]), "faces_fast": len(found["fast"]),
                           "full_scan": fast.full_frame_scans > scans}
    row["same_boxes"] = [face.box for face in found["exact"]] == [face.box for face in found["fast"]] and all(
        np.array_equal(a.landmarks, b.landmarks) for a, b in zip(found["exact"], found["fast"]))
    if found["exact"] and found["fast"]:
        rgb = np.asarray(image.convert("RGB"))
        row["crop_psnr_db"] = crop_psnr(
            np.asarray(align_face(rgb, found["exact"][0], size=exact.size, scale=exact.scale)),
            np.asarray(align_face(rgb, found["fast"][0], size=fast.size, scale=fast.scale)))
    return row


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else "inf"


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Agreement and speed over some frames."""
    psnrs = [float(row["crop_psnr_db"]) for row in rows if "crop_psnr_db" in row]
    finite = [value for value in psnrs if math.isfinite(value)]
    exact_cpu = sum(row["cpu_exact_s"] for row in rows)
    fast_cpu = sum(row["cpu_fast_s"] for row in rows)
    return {
        "frames": len(rows),
        "frames_kept_exact": sum(row["faces_exact"] > 0 for row in rows),
        "frames_kept_fast": sum(row["faces_fast"] > 0 for row in rows),
        "kept_dropped_agree": sum((row["faces_exact"] > 0) == (row["faces_fast"] > 0) for row in rows),
        "face_count_agree": sum(row["faces_exact"] == row["faces_fast"] for row in rows),
        "identical_boxes_and_landmarks": sum(row["same_boxes"] for row in rows),
        "identical_percent": round(100 * sum(row["same_boxes"] for row in rows) / max(len(rows), 1), 3),
        "crop_psnr_db_min": _json_number(min(psnrs)) if psnrs else None,
        "crop_psnr_db_median": _json_number(statistics.median(psnrs)) if psnrs else None,
        "crops_not_identical": len(finite),
        "full_frame_scans_fast": sum(row["full_scan"] for row in rows),
        "cpu_s_exact": exact_cpu,
        "cpu_s_fast": fast_cpu,
        "cpu_ms_per_frame_exact_median": 1000 * statistics.median(row["cpu_exact_s"] for row in rows) if rows else None,
        "cpu_ms_per_frame_fast_median": 1000 * statistics.median(row["cpu_fast_s"] for row in rows) if rows else None,
        "speedup_cpu": exact_cpu / fast_cpu if fast_cpu else None,
    }


def run_exact_faces_benchmark(json_path: str | os.PathLike[str], videos: tuple[str, ...] = (), every: int = 1,
                              generated: bool = True) -> dict[str, Any]:
    from deepfake_hf.cli.bench.measure import _write, command_line, machine_description, progress
    from deepfake_hf.faces.deepfakebench import DeepfakeBenchFaceDetector
    from deepfake_hf.faces.deepfakebench_fast import FastDeepfakeBenchFaceDetector

    load_before = os.getloadavg()
    exact, fast = DeepfakeBenchFaceDetector(), FastDeepfakeBenchFaceDetector()
    rows: list[dict[str, Any]] = []
    sources: list[tuple[str, Iterator[tuple[Any, Any]]]] = []
    if generated:
        sources.append(("generated", iter([(name, image) for name, image in generated_face_frames()])))
    sources += [(str(video), video_frames(video, every)) for video in videos]
    bar = progress(None, "exact-faces")
    for source, frames in sources:
        for number, image in frames:
            first = "exact" if len(rows) % 2 == 0 else "fast"
            row = compare_frame(exact, fast, image, first)
            row.update(source=Path(source).name if source != "generated" else "generated", frame=number,
                       resolution=f"{image.width}x{image.height}")
            rows.append(row)
            bar.update()
            if not row["same_boxes"]:
                bar.write(f"differs: {row}")
    bar.close()
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["resolution"], []).append(row)
        groups.setdefault(f"source {row['source']}", []).append(row)
    mismatches = [row for row in rows if not row["same_boxes"]]
    for row in mismatches:
        if "crop_psnr_db" in row:
            row["crop_psnr_db"] = _json_number(row["crop_psnr_db"])
    generated_rows = {row["frame"]: {key: row[key] for key in ("faces_exact", "faces_fast", "same_boxes",
                                                              "full_scan")}
                      for row in rows if row["source"] == "generated"}
    results = {"benchmark": "exact-faces", "machine": machine_description(), "command": command_line(),
               "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
               "every": every, "all": summarise(rows),
               "by_group": {name: summarise(group) for name, group in sorted(groups.items())},
               "generated_frames": generated_rows, "mismatches": mismatches[:50],
               "note": "exact: the 'deepfakebench' face mode (dlib HOG at upsample 1 on the whole frame, largest "
                       "box, 68 landmarks, cv2 warp, search again in the crop); fast: 'deepfakebench-fast' (the "
                       "same, with the coarse pyramid levels scanned first, the whole frame when they hold no face). "
                       "Both run on each frame in one thread, the order alternating frame by frame; cpu seconds "
                       "are the thread's CPU time of detect() (decoding excluded). crop_psnr_db over frames both "
                       "keep (inf: identical crops)."}
    _write(json_path, results)
    return results
