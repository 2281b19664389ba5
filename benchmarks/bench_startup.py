"""Startup benchmark; see deepfake_hf/cli/bench/measure.py and `deepfake-hf bench startup --help`.

    python benchmarks/bench_startup.py --json benchmarks/results/startup_cpu.json
"""

import sys

from deepfake_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "startup", *sys.argv[1:]]))
