"""Training benchmark: LN-tuning vs full fine-tuning vs LoRA step time and memory.

A thin wrapper of `deepfake-hf bench training` (deepfake_hf/cli/bench/), with the same options:

    python benchmarks/bench_training.py --out benchmarks/results/training_cpu.json
"""

import sys

from deepfake_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "training", *sys.argv[1:]]))
