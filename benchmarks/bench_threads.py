"""Threads benchmark: two runs sharing the cores, torch's default threads vs configured ones.

A thin wrapper of `deepfake-hf bench threads` (deepfake_hf/cli/bench/), with the same options:

    python benchmarks/bench_threads.py --rounds 3 --out benchmarks/results/threads_cpu.json
"""

import sys

from deepfake_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "threads", *sys.argv[1:]]))
