"""Threads benchmark: a predict-like CPU forward loop alone vs two copies at once, with torch's default
threads ("before") and with deepfake_hf.runtime.threads.configure_threads() ("after"); see
deepfake_hf/cli/bench/measure.py (`run_threads_benchmark`).

    python benchmarks/bench_threads.py --rounds 3 --json benchmarks/results/threads_cpu.json
"""

import argparse

from deepfake_hf.cli.bench.measure import run_threads_benchmark

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    run_threads_benchmark(args.json, steps=args.steps, rounds=args.rounds)
