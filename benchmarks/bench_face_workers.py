r"""Face worker processes: face detection in 0 (in-thread), 1 and 2 worker processes over real videos.

A thin wrapper of `deepfake-hf bench face-workers` (deepfake_hf/cli/bench/faceworkers.py), with the same options:
one Detector over all the videos per setting, `Scorer.plan` one video at a time, and whole `deepfake-hf predict`
processes (--face-workers 1 vs 2; one run alone vs two at once), settings interleaved round by round.

    python benchmarks/bench_face_workers.py ../shared/media/videos --rounds 2 \
        --out benchmarks/results/face_workers_cpu.json
"""

import sys

from deepfake_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "face-workers", *sys.argv[1:]]))
