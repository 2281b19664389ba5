"""Inference benchmark: pipeline vs Detector vs raw forward on the same random weights.

A thin wrapper of `deepfake-hf bench inference` (deepfake_hf/cli/bench/), with the same options:

    python benchmarks/bench_inference.py --out benchmarks/results/inference_cpu.json
"""

import sys

from deepfake_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "inference", *sys.argv[1:]]))
