"""threads.py: each process's share of the cores, the user's own settings kept."""

import json
import os
import subprocess
import sys

import pytest
import torch

from deepfake_hf.runtime import threads
from deepfake_hf.runtime.threads import configure_threads, local_world_size, thread_budget

VARIABLES = (*threads.THREAD_VARIABLES, "OMP_WAIT_POLICY", "LOCAL_WORLD_SIZE")


@pytest.fixture
def clean_environment(monkeypatch):
    """No thread settings in the environment; torch's thread count restored afterwards."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(before)


def test_available_cpus_is_this_process_affinity():
    assert threads.available_cpus() == len(os.sched_getaffinity(0))


def test_budget_divides_the_cores_among_local_ranks(clean_environment):
    monkeypatch = clean_environment
    monkeypatch.setattr(threads, "available_cpus", lambda: 16)
    assert local_world_size() == 1 and thread_budget() == 16
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun / accelerate launch with 4 processes
    assert local_world_size() == 4 and thread_budget() == 4
    assert thread_budget(ranks=3) == 5  # an explicit count wins over the environment
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "64")
    assert thread_budget() == 1  # never below one thread
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "not-a-number")
    assert local_world_size() == 1


def test_configure_lowers_torch_threads_to_the_budget(clean_environment):
    monkeypatch = clean_environment
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    torch.set_num_threads(2)
    decided = configure_threads(ranks=2)
    assert decided["threads"] == 1 and decided["source"] == "budget" and decided["local_world_size"] == 2
    assert torch.get_num_threads() == 1
    # child processes (data loaders, decoders) inherit the same budget and the passive wait
    assert all(os.environ[name] == "1" for name in threads.THREAD_VARIABLES)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and decided["wait_policy"] == "PASSIVE"


def test_configure_keeps_the_users_settings(clean_environment):
    monkeypatch = clean_environment
    monkeypatch.setattr(threads, "available_cpus", lambda: 8)
    # a lower torch setting made earlier in the process stays
    torch.set_num_threads(1)
    decided = configure_threads()
    assert decided["threads"] == 1 and decided["source"] == "torch" and torch.get_num_threads() == 1
    # an explicit OMP_NUM_THREADS wins over the budget; an explicit wait policy is kept
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    torch.set_num_threads(8)
    decided = configure_threads()
    assert decided["threads"] == 3 and decided["source"] == "OMP_NUM_THREADS" and torch.get_num_threads() == 3
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE" and os.environ["MKL_NUM_THREADS"] == "3"


@pytest.mark.slow
def test_configure_before_importing_torch_in_a_fresh_process():
    """Under torchrun's LOCAL_WORLD_SIZE a fresh process configured before `import torch` gets its share."""
    code = (
        "import json, os\n"
        "from deepfake_hf.runtime.threads import configure_threads\n"
        "decided = configure_threads()\n"
        "import torch\n"
        "print(json.dumps({'decided': decided, 'torch': torch.get_num_threads(),"
        " 'policy': os.environ.get('OMP_WAIT_POLICY')}))\n"
    )
    env = {key: value for key, value in os.environ.items() if key not in VARIABLES}
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300,
                            env={**env, "LOCAL_WORLD_SIZE": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    expected = max(1, len(os.sched_getaffinity(0)) // 2)
    assert printed["decided"]["threads"] == expected and printed["torch"] == expected
    assert printed["policy"] == "PASSIVE"


def test_configure_again_updates_its_own_settings(clean_environment):
    monkeypatch = clean_environment
    monkeypatch.setattr(threads, "available_cpus", lambda: 4)
    torch.set_num_threads(4)
    assert configure_threads(ranks=2)["threads"] == 2 and os.environ["OMP_NUM_THREADS"] == "2"
    # its own OMP_NUM_THREADS is not mistaken for the user's on the next call
    assert threads.explicit_threads() is None
    torch.set_num_threads(4)
    assert configure_threads(ranks=4)["threads"] == 1 and os.environ["MKL_NUM_THREADS"] == "1"
