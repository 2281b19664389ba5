"""Scale-out benchmark: memory vs input count, kill + --resume, 1 vs 2 processes.

A thin wrapper of `deepfake-hf bench scaleout` (deepfake_hf/cli/bench/), with the same options:

    python benchmarks/bench_scaleout.py --out benchmarks/results/scaleout_cpu.json
"""

import sys

from deepfake_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "scaleout", *sys.argv[1:]]))
