"""Video benchmark; see deepfake_hf/benchmark.py and `deepfake-hf bench video --help`.

    python benchmarks/bench_video.py ../shared/media/videos/ffpp/*/*.mp4 --json benchmarks/results/video_cpu.json
"""

import sys

from deepfake_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "video", *sys.argv[1:]]))
