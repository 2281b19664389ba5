"""Inference benchmark; see deepfake_hf/cli/bench/measure.py and `deepfake-hf bench inference --help`.

    python benchmarks/bench_inference.py --json benchmarks/results/inference_cpu.json
"""

import sys

from deepfake_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "inference", *sys.argv[1:]]))
