"""Face worker processes: one Detector run over the shared videos with `face_workers` 0 (in-thread), 1 and 2.

    PYTHONPATH=. python benchmarks/bench_face_workers.py --out benchmarks/results/face_workers_cpu.json

The model is a tiny random ViT detector (its forward costs ~ms), so the time is decoding plus faces: what the
face workers change. Each setting first scores the smallest clip untimed (`warm_up_s`: the workers' start-up).
Settings alternate within each round (0, 1, 2, 0, 1, 2, ...) so a change of the machine's load hits all of them;
the load average is recorded before and after each run. The FileResults of every setting are checked to be
identical to the in-thread ones.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", default=str(ROOT.parent / "shared" / "media" / "videos"))
    parser.add_argument("--faces", default="deepfakebench")
    parser.add_argument("--num-frames", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--settings", default="0,1,2")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "face_workers_cpu.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from deepfake_hf.runtime.threads import available_cpus
    from deepfake_hf.scoring.detector import Detector
    from tests.conftest import tiny_detector

    videos = sorted(Path(args.media).rglob("*.mp4"))
    if not videos:
        raise SystemExit(f"no videos under {args.media}")
    model = tiny_detector("vit")
    processor = model.matching_image_processor()
    settings = [int(value) for value in args.settings.split(",")]
    runs, reference = [], None
    for round_index in range(args.rounds):
        for workers in settings:
            detector = Detector(model, processor, faces=args.faces, num_frames=args.num_frames, progress=False,
                                face_workers=workers)
            with detector:
                # warm-up, untimed apart: starts the workers (an interpreter, dlib's models) on the smallest clip
                started = time.perf_counter()
                detector(min(videos, key=lambda path: path.stat().st_size))
                warm_up = time.perf_counter() - started
                load_before = os.getloadavg()
                started, cpu = time.perf_counter(), time.process_time()
                results = detector(videos)
                wall = time.perf_counter() - started
            row = {"round": round_index, "face_workers": workers, "threads": detector._threads(),
                   "wall_s": round(wall, 2), "warm_up_s": round(warm_up, 2),
                   "parent_cpu_s": round(time.process_time() - cpu, 2),
                   "frames": sum(r.frames or 0 for r in results), "errors": sum(r.error is not None for r in results),
                   "loadavg_before": [round(x, 2) for x in load_before],
                   "loadavg_after": [round(x, 2) for x in os.getloadavg()]}
            if reference is None:
                reference = results
            row["results_identical"] = results == reference
            runs.append(row)
            print(json.dumps(row), flush=True)
    lone = one_file_at_a_time(model, processor, videos, args, settings)
    summary: dict[str, object] = {}
    for workers in settings:
        walls = sorted(r["wall_s"] for r in runs if r["face_workers"] == workers)
        summary[str(workers)] = {"min_wall_s": walls[0], "median_wall_s": statistics.median(walls), "walls_s": walls}
    if 1 in settings and 2 in settings:  # within a round the two ran back to back: the load was most alike
        ratios = [one["wall_s"] / two["wall_s"] for one in runs for two in runs
                  if one["round"] == two["round"] and one["face_workers"] == 1 and two["face_workers"] == 2]
        summary["speedup_2_vs_1_per_round"] = [round(ratio, 3) for ratio in ratios]
        summary["speedup_2_vs_1_median"] = round(statistics.median(ratios), 3)
    report = {"what": "Detector over the shared videos, faces in 0 (in-thread) / 1 / 2 worker processes",
              "faces": args.faces, "num_frames": args.num_frames, "videos": [v.name for v in videos],
              "model": "tiny random ViT detector (tests.conftest.tiny_detector): time is decode + faces",
              "cpus": available_cpus(), "machine": platform.platform(), "python": platform.python_version(),
              "note": "shared 2-core machine, busy with other runs: see each run's load average",
              "runs": runs, "summary": summary, "one_file_at_a_time": lone}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary))


def one_file_at_a_time(model, processor, videos, args, settings):
    """`Scorer.plan` on one video's decoded frames at a time (evaluate, calibrate, the app's one video): only
    splitting a video's frames over processes can use a second core there."""
    from deepfake_hf.media import read_video_frames
    from deepfake_hf.scoring.scorer import Scorer

    scorers = {workers: Scorer(model, processor, faces=args.faces, num_frames=args.num_frames)
               for workers in settings}
    frames = [read_video_frames(video, args.num_frames, sampling=scorers[settings[0]].frame_sampling)
              for video in videos]
    rows, reference = [], None
    for workers, scorer in scorers.items():
        scorer.face_workers = workers
        scorer.plan(frames[0][:1])  # start the workers, untimed
    for round_index in range(args.rounds):
        for workers, scorer in scorers.items():
            load_before = os.getloadavg()
            started = time.perf_counter()
            plans = [scorer.plan(video) for video in frames]
            wall = time.perf_counter() - started
            crops = [[np.asarray(crop).tobytes() for crop in plan.crops] for plan in plans]
            reference = crops if reference is None else reference
            rows.append({"round": round_index, "face_workers": workers, "wall_s": round(wall, 2),
                         "crops_identical": crops == reference, "loadavg_before": [round(x, 2) for x in load_before],
                         "loadavg_after": [round(x, 2) for x in os.getloadavg()]})
            print(json.dumps({"one_file_at_a_time": rows[-1]}), flush=True)
    for scorer in scorers.values():
        scorer.close()
    medians = {str(w): statistics.median(r["wall_s"] for r in rows if r["face_workers"] == w) for w in settings}
    return {"runs": rows, "median_wall_s": medians}


if __name__ == "__main__":
    main()
