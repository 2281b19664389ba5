"""CPU thread budgets: how many threads this process's torch and decode workers should use.

torch starts one intra-op thread per core in every process, and its OpenMP threads spin while they
wait for each other. Two such processes on the same cores (two ranks of `torchrun`, or a `predict`
beside a `quickstart`) then oversubscribe the cores, and a thread spinning in a barrier holds a core
its partner needs: on this project's 2-core machine two concurrent runs of a small ViT forward loop
each took ~20x their solo time (benchmarks/results/threads_cpu.json).

`configure_threads()` fixes both causes, once, at the start of a command:

- threads: the cores this process may run on (`os.sched_getaffinity`, so `taskset` and container CPU
  sets count) divided by the processes sharing them on this machine under torchrun / accelerate
  (`LOCAL_WORLD_SIZE`), never below 1;
- waiting: `OMP_WAIT_POLICY=PASSIVE`, so a waiting thread sleeps instead of spinning (GNU OpenMP reads
  it when torch is first imported: it takes effect when this runs before `import torch`, and always for
  child processes).

A user's own choice wins: an explicit `OMP_NUM_THREADS` (or a lower `torch.set_num_threads` made
earlier) is kept, and so is an explicit `OMP_WAIT_POLICY`.
"""

import os
import sys

from deepfake_hf.errors import DeepfakeHFError


class ThreadOptionError(DeepfakeHFError, ValueError):
    """A thread or process count set in the environment that is not a usable number."""


# Thread-count variables of the OpenMP / BLAS runtimes torch and numpy may load (set for child processes too).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_SET_HERE: dict[str, str] = {}  # the environment values configure_threads set, so a later call may update them


def available_cpus():
    """Cores this process may run on (its CPU affinity), else the machine's core count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def local_world_size(ranks=None):
    """Processes sharing this machine's cores: `ranks` if given, else LOCAL_WORLD_SIZE (torchrun and
    accelerate launch set it for each process they start), else 1."""
    value = ranks if ranks is not None else os.environ.get("LOCAL_WORLD_SIZE")
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 1


def thread_budget(ranks=None):
    """This process's share of the cores: available cores // local processes, at least 1."""
    return max(1, available_cpus() // local_world_size(ranks))


FACE_WORKERS_VARIABLE = "DEEPFAKE_HF_FACE_WORKERS"


def face_worker_budget(ranks=None):
    """Face worker processes for this process (faces.workers.FacePool): DEEPFAKE_HF_FACE_WORKERS when set to a
    number >= 0, else the thread budget (cores // local processes), or 0 (detect in-thread) when that is 1 core,
    where a worker process would only add the cost of sending frames."""
    text = os.environ.get(FACE_WORKERS_VARIABLE, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if value < 0:
            raise ThreadOptionError(f"{FACE_WORKERS_VARIABLE}: {text!r} is not a number of processes (0 or more)")
        return value
    budget = thread_budget(ranks)
    return budget if budget > 1 else 0


def explicit_threads():
    """The user's OMP_NUM_THREADS as a positive int, or None when unset, not a number, or set by configure_threads."""
    text = os.environ.get("OMP_NUM_THREADS", "")
    if text == _SET_HERE.get("OMP_NUM_THREADS"):
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 1 else None


def configure_threads(ranks=None, wait_policy="PASSIVE"):
    """Size this process's CPU threads to its share of the cores; returns what was decided.

    Call it once where a command starts work, before heavy imports when possible. Safe to call again.
    Returns {"threads", "decode_workers", "cpus", "local_world_size", "source", "wait_policy"} where
    `source` says where the thread count came from ("OMP_NUM_THREADS", "torch" for a lower count set
    earlier in this process, or "budget").
    """
    cpus, world = available_cpus(), local_world_size(ranks)
    budget = max(1, cpus // world)
    explicit = explicit_threads()
    threads, source = (explicit, "OMP_NUM_THREADS") if explicit else (budget, "budget")
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        current = torch.get_num_threads()
        if current < threads:
            threads, source = current, "torch"  # someone chose fewer threads already: keep them
        elif current > threads:
            torch.set_num_threads(threads)
    settings = {name: str(threads) for name in THREAD_VARIABLES}
    if wait_policy:
        settings["OMP_WAIT_POLICY"] = wait_policy
    for name, value in settings.items():
        # the user's own value stays; one this function set on an earlier call is updated
        if name not in os.environ or os.environ[name] == _SET_HERE.get(name):
            os.environ[name] = _SET_HERE[name] = value
    return {"threads": threads, "decode_workers": max(1, min(2, threads)), "cpus": cpus, "local_world_size": world,
            "source": source, "wait_policy": os.environ.get("OMP_WAIT_POLICY")}


__all__ = ["FACE_WORKERS_VARIABLE", "THREAD_VARIABLES", "ThreadOptionError", "available_cpus", "configure_threads",
           "explicit_threads", "face_worker_budget", "local_world_size", "thread_budget"]
