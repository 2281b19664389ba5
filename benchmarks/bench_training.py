"""Training benchmark; see deepfake_hf/cli/bench/measure.py and `deepfake-hf bench training --help`.

    python benchmarks/bench_training.py --json benchmarks/results/training_cpu.json
"""

import sys

from deepfake_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "training", *sys.argv[1:]]))
