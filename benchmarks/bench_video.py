r"""Video benchmark: video end to end (decode + faces + model) vs the model alone.

A thin wrapper of `deepfake-hf bench video` (deepfake_hf/cli/bench/), with the same options. Face modes "none",
"dlib-per-frame" (detect on every frame), "dlib" (faces.detect_video) and "deepfakebench" (the exact mode, with
per-stage times) run interleaved per video in one process.

    python benchmarks/bench_video.py ../shared/media/videos/ffpp/*/*.mp4 --rounds 2 \
        --out benchmarks/results/video_cpu.json
"""

import sys

from deepfake_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "video", *sys.argv[1:]]))
