r"""Exact-faces benchmark: face mode "deepfakebench-fast" against the exact "deepfakebench", frame by frame.

A thin wrapper of `deepfake-hf bench exact-faces` (deepfake_hf/cli/bench/exact_faces.py), with the same options:
every frame (or every Nth, `--every N`) of the given clips plus generated frames with 0, 1 and several faces,
small and large, through both modes, interleaved; agreement (frames kept, faces, identical boxes and landmarks,
crop PSNR) and CPU time per resolution.

    python benchmarks/bench_exact_faces.py ../shared/media/videos/*/*/*.mp4 \
        --out benchmarks/results/exact_faces_cpu.json
"""

import sys

from deepfake_hf.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "exact-faces", *sys.argv[1:]]))
