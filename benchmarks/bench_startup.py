"""Start-up benchmark: import and --help times, heavy modules imported building the parser.

A thin wrapper of `deepfake-hf bench startup` (deepfake_hf/cli/bench/), with the same options:

    python benchmarks/bench_startup.py --out benchmarks/results/startup_cpu.json
"""

import sys

from deepfake_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "startup", *sys.argv[1:]]))
