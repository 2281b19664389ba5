"""Video benchmark; see deepfake_hf/benchmark.py (`run_video_benchmark`) and `deepfake-hf bench video --help`.

Face modes "none", "dlib-per-frame" (detect on every frame: before faces.detect_video) and "dlib"
(faces.detect_video: after) run interleaved per video in one process.

    python benchmarks/bench_video.py ../shared/media/videos/ffpp/*/*.mp4 --rounds 2 --json benchmarks/results/video_cpu.json
"""

import argparse

from deepfake_hf.threads import configure_threads

configure_threads()  # as deepfake-hf's commands do; before torch is imported (the JSON records the settings)

from deepfake_hf.benchmark import run_video_benchmark  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*")
    parser.add_argument("--model", default="vit-b16")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-generated", action="store_true")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    run_video_benchmark(args.json, args.model, args.videos, args.frames, args.batch,
                        generated=not args.no_generated, rounds=args.rounds)
