"""Data-parallel runs of the commands that read many files (preprocess, predict, evaluate).

The launchers people already use start the processes: `torchrun --nproc_per_node N` and `accelerate
launch --num_processes N` (also across machines, `--nnodes` / `--num_machines`) both set RANK,
WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE. Each rank takes a deterministic shard of the inputs (input
i goes to rank i mod world size, so no rank needs the whole list), streams its results to its own part
file as JSON lines tagged with the input's global index, and rank 0 merges the parts in index order,
which gives the single-process output exactly. A part file only grows by whole lines, so `--resume`
after a kill skips the inputs it already holds. Synchronisation is torch.distributed's barrier on the
gloo backend (CPU and GPU runs alike; only a barrier is exchanged, never tensors).
"""

import heapq
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import DeepfakeHFError


class DistributedError(DeepfakeHFError):
    """A data-parallel run that cannot go on (a part file from another run layout, a missing rank's part)."""


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self):
        return self.rank == 0


def current_ranks(environ=None):
    """This process's place in a torchrun / accelerate launch (rank 0 of 1 when started plainly)."""
    environ = os.environ if environ is None else environ
    world = int(environ.get("WORLD_SIZE", "1"))
    rank = int(environ.get("RANK", "0"))
    local_world = int(environ.get("LOCAL_WORLD_SIZE", str(world)))
    local_rank = int(environ.get("LOCAL_RANK", str(rank % max(local_world, 1))))
    if world < 1 or not 0 <= rank < world:
        raise DistributedError(f"RANK={rank} WORLD_SIZE={world}: not a valid launch (0 <= RANK < WORLD_SIZE)")
    return Ranks(rank, world, local_rank, local_world)


def shard(items, ranks):
    """(global index, item) pairs of this rank's shard, taken lazily from any iterable."""
    for index, item in enumerate(items):
        if index % ranks.world_size == ranks.rank:
            yield index, item


def barrier(ranks):
    """Wait for every rank (a no-op when alone). Starts a gloo process group from the launcher's env if needed."""
    if ranks.world_size == 1:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    dist.barrier()


def part_path(output, ranks):
    """Where a rank streams its part of `output`: OUTPUT.part-RANK-of-WORLD."""
    output = Path(output)
    return output.with_name(f"{output.name}.part-{ranks.rank:05d}-of-{ranks.world_size:05d}")


class PartWriter:
    """Appends this rank's results to its part file, one JSON line per input, flushed as they come.

    With `resume`, lines already in the part are kept (a torn last line from a kill is cut off) and
    `done` holds their count: the shard is processed in order, so they are its first inputs.
    """

    def __init__(self, output, ranks, resume=False):
        self.path = part_path(output, ranks)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done = 0
        if resume and self.path.is_file():
            self.done = _keep_whole_lines(self.path)
        elif self.path.exists():
            self.path.unlink()
        self._handle = open(self.path, "a", encoding="utf-8")

    def write(self, index, row):
        self._handle.write(json.dumps({"index": index, "row": row}) + "\n")
        self._handle.flush()

    def close(self):
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _keep_whole_lines(path):
    """Cut a torn last line (a kill mid-write) and return the number of complete lines."""
    data = path.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) != len(data):
        path.write_bytes(whole)
    return whole.count(b"\n")


def iter_parts(output, world_size):
    """Every rank's rows of `output`, merged in global input order (streaming: memory does not grow)."""
    parts = [part_path(output, Ranks(rank, world_size)) for rank in range(world_size)]
    missing = [part.name for part in parts if not part.is_file()]
    if missing:
        raise DistributedError(f"{Path(output).name}: missing part files {', '.join(missing)} (a rank failed?)")

    def rows(part):
        with open(part, encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                yield record["index"], record["row"]

    yield from heapq.merge(*(rows(part) for part in parts), key=lambda pair: pair[0])


def remove_parts(output, world_size):
    for rank in range(world_size):
        part_path(output, Ranks(rank, world_size)).unlink(missing_ok=True)


__all__ = ["DistributedError", "PartWriter", "Ranks", "barrier", "current_ranks", "iter_parts", "part_path",
           "remove_parts", "shard"]
