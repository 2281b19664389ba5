"""`deepfake-hf bench face-workers`: face detection in 0 (in-thread), 1 and 2 worker processes, over real videos.

Three measurements, each with settings interleaved round by round so a change of the machine's load hits all of
them, and the load average recorded before and after each timed run:

- "detector": one `Detector` over all the videos per setting (`face_workers` 0, 1, 2), after an untimed warm-up
  on the smallest clip (`warm_up_s`: the workers' start-up); the FileResults of every setting are checked to be
  identical to the first setting's.
- "one-file": `Scorer.plan` on one video's decoded frames at a time (evaluate, calibrate, the app's one video):
  only spreading a video's frames over processes can use a second core there; crops checked identical.
- "predict": whole `deepfake-hf predict` processes (start-up, model load, output included) with
  `--face-workers 1` and `--face-workers 2`, then the concurrency rule of the scale-out work: one run with the
  default workers alone ("solo") vs two such runs started together ("pair", its slower run counts).

The model is built by `measure.build_models` with random weights (tiny-vit by default: its forward costs
milliseconds, so the time is decoding plus faces, which is what the face workers change).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepfake_hf.cli.bench.measure import (
    _clean_thread_environment,
    _write,
    build_models,
    command_line,
    run_predict_processes,
)

PARTS = ("detector", "one-file", "predict")


def video_files(media: Sequence[str | os.PathLike]) -> list[Path]:
    """The video files given, and those found under the folders given (sorted, recursively)."""
    from deepfake_hf.media import VIDEO_EXTENSIONS

    found: list[Path] = []
    for item in map(Path, media):
        if item.is_dir():
            found.extend(sorted(p for p in item.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()))
        else:
            found.append(item)
    return found


def _load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def _detector_runs(model_dir: str, videos: list[Path], faces: str, num_frames: int, rounds: int,
                   settings: Sequence[int]) -> tuple[list[dict], dict]:
    from deepfake_hf.scoring.detector import Detector

    smallest = min(videos, key=lambda path: path.stat().st_size)
    runs: list[dict] = []
    reference = None
    for round_index in range(rounds):
        for workers in settings:
            detector = Detector.from_pretrained(model_dir, faces=faces, num_frames=num_frames, progress=False,
                                                face_workers=workers)
            with detector:
                started = time.perf_counter()
                detector(smallest)  # untimed apart: starts the workers (an interpreter, dlib's models)
                warm_up = time.perf_counter() - started
                load_before = _load()
                started, cpu = time.perf_counter(), time.process_time()
                results = detector(videos)
                wall = time.perf_counter() - started
            row = {"round": round_index, "face_workers": workers, "threads": detector._threads(),
                   "wall_s": round(wall, 2), "warm_up_s": round(warm_up, 2),
                   "parent_cpu_s": round(time.process_time() - cpu, 2),
                   "frames": sum(r.frames or 0 for r in results), "errors": sum(r.error is not None for r in results),
                   "loadavg_before": load_before, "loadavg_after": _load()}
            reference = results if reference is None else reference
            row["results_identical"] = results == reference
            runs.append(row)
            print(json.dumps(row), flush=True)
    summary: dict[str, Any] = {}
    for workers in settings:
        walls = sorted(r["wall_s"] for r in runs if r["face_workers"] == workers)
        summary[str(workers)] = {"min_wall_s": walls[0], "median_wall_s": statistics.median(walls), "walls_s": walls}
    summary.update(_speedups(runs))
    return runs, summary


def _speedups(runs: list[dict]) -> dict:
    """1-worker / 2-worker wall time within each round (back to back there: the most alike load)."""
    ratios = [one["wall_s"] / two["wall_s"] for one in runs for two in runs
              if one["round"] == two["round"] and one["face_workers"] == 1 and two["face_workers"] == 2]
    if not ratios:
        return {}
    return {"speedup_2_vs_1_per_round": [round(ratio, 3) for ratio in ratios],
            "speedup_2_vs_1_median": round(statistics.median(ratios), 3)}


def _one_file_at_a_time(model_dir: str, videos: list[Path], faces: str, num_frames: int, rounds: int,
                        settings: Sequence[int]) -> dict:
    from deepfake_hf.media import read_video_frames
    from deepfake_hf.scoring.scorer import Scorer

    scorers = {}
    for workers in settings:
        scorers[workers] = Scorer.from_pretrained(model_dir, faces=faces, num_frames=num_frames)
        scorers[workers].face_workers = workers
    first = scorers[settings[0]]
    frames = [read_video_frames(video, num_frames, sampling=first.frame_sampling) for video in videos]
    for scorer in scorers.values():
        scorer.plan(frames[0][:1])  # start the workers, untimed
    rows: list[dict] = []
    reference = None
    try:
        for round_index in range(rounds):
            for workers, scorer in scorers.items():
                load_before = _load()
                started = time.perf_counter()
                plans = [scorer.plan(video) for video in frames]
                wall = time.perf_counter() - started
                crops = [[np.asarray(crop).tobytes() for crop in plan.crops] for plan in plans]
                reference = crops if reference is None else reference
                rows.append({"round": round_index, "face_workers": workers, "wall_s": round(wall, 2),
                             "crops_identical": crops == reference, "loadavg_before": load_before,
                             "loadavg_after": _load()})
                print(json.dumps({"one_file_at_a_time": rows[-1]}), flush=True)
    finally:
        for scorer in scorers.values():
            scorer.close()
    medians = {str(w): statistics.median(r["wall_s"] for r in rows if r["face_workers"] == w) for w in settings}
    return {"runs": rows, "median_wall_s": medians, **_speedups(rows)}


def _predict_runs(model_dir: str, videos: list[Path], faces: str, num_frames: int, rounds: int, tmp: Path) -> dict:
    """Whole predict processes: --face-workers 1 vs 2, then the default workers alone vs two runs at once."""
    from deepfake_hf.runtime.threads import FACE_WORKERS_VARIABLE, face_worker_budget

    env = {key: value for key, value in _clean_thread_environment().items() if key != FACE_WORKERS_VARIABLE}
    options = ["--faces", faces, "--frames", str(num_frames)]
    # (name, processes at once, extra options); solo and pair use the default workers (the thread budget)
    settings: list[tuple[str, int, list[str]]] = [("1 worker", 1, ["--face-workers", "1"]),
                                                  ("2 workers", 1, ["--face-workers", "2"]),
                                                  ("solo", 1, []), ("pair", 2, [])]
    rows: list[dict] = []
    outputs: dict[str, list[str]] = {}
    for round_index in range(rounds):
        for name, copies, extra in settings:
            load_before = _load()
            seconds = run_predict_processes(model_dir, videos, tmp, copies, [*options, *extra], env=env)
            rows.append({"round": round_index, "run": name, "processes": copies,
                         "wall_s": [round(value, 2) for value in seconds], "loadavg_before": load_before,
                         "loadavg_after": _load()})
            outputs.setdefault(name, []).extend((tmp / f"predict-{copy}.jsonl").read_text() for copy in range(copies))
            print(json.dumps({"predict": rows[-1]}), flush=True)
    reference = outputs["1 worker"][0]
    median = statistics.median

    def slowest(name: str, round_index: int) -> float:
        return next(max(r["wall_s"]) for r in rows if r["run"] == name and r["round"] == round_index)

    per_round = [slowest("1 worker", i) / slowest("2 workers", i) for i in range(rounds)]
    pair_vs_solo = [slowest("pair", i) / slowest("solo", i) for i in range(rounds)]
    return {"runs": rows, "default_face_workers": face_worker_budget(),
            "outputs_identical": all(text == reference for texts in outputs.values() for text in texts),
            "median_wall_s": {name: median(slowest(name, i) for i in range(rounds)) for name, _, _ in settings},
            "speedup_2_vs_1_per_round": [round(value, 3) for value in per_round],
            "speedup_2_vs_1_median": round(median(per_round), 3),
            "pair_vs_solo_per_round": [round(value, 3) for value in pair_vs_solo],
            "pair_vs_solo_median": round(median(pair_vs_solo), 3),
            "targets": {"speedup_2_vs_1": ">= 1.7x on 2 idle cores", "pair_vs_solo": "<= 2.5x"}}


def run_face_workers_benchmark(json_path: str | os.PathLike, media: Sequence[str | os.PathLike],
                               faces: str = "deepfakebench", num_frames: int = 4, rounds: int = 1,
                               settings: Sequence[int] = (0, 1, 2), model: str = "tiny-vit",
                               parts: Sequence[str] = PARTS) -> dict:
    """Run the `parts` (see the module docstring) over the videos in `media`; write and return the results."""
    from deepfake_hf.runtime.threads import available_cpus

    videos = video_files(media)
    load_before = os.getloadavg()
    report: dict[str, Any] = {
        "benchmark": "face-workers", "command": command_line(),
        "what": "face detection in 0 (in-thread) / 1 / 2 worker processes over the given videos",
        "faces": faces, "num_frames": num_frames, "rounds": rounds, "settings": list(settings),
        "videos": [video.name for video in videos],
        "model": f"random {model} detector (measure.build_models): with tiny-vit the time is decode + faces",
        "cpus": available_cpus(), "machine": platform.platform(), "python": platform.python_version(),
        "note": "a shared machine is noisy: see each run's load average (1, 5, 15 min) before and after"}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, _ = build_models(model, tmp)
        if "detector" in parts:
            report["runs"], report["summary"] = _detector_runs(model_dir, videos, faces, num_frames, rounds, settings)
        if "one-file" in parts:
            report["one_file_at_a_time"] = _one_file_at_a_time(model_dir, videos, faces, num_frames, rounds,
                                                               settings)
        if "predict" in parts:
            report["predict"] = _predict_runs(model_dir, videos, faces, num_frames, rounds, Path(tmp))
    report["load_average_1_5_15min"] = {"before": list(load_before), "after": list(os.getloadavg())}
    _write(json_path, report)
    print(json.dumps({key: report[key] for key in ("summary",) if key in report}))
    return report
