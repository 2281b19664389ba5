"""The `train` command under `torchrun --nproc_per_node 2` (two gloo processes on CPU), then `--resume`."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import pipeline_scores, write_image

pytestmark = pytest.mark.slow  # torchrun: two training processes

TINY_RUN = [
    "--set", "data.sbi={crops_per_photo: 6, crops_per_face: 1}",
    "--set", "training.per_device_train_batch_size=8",
    "--set", "training.eval_strategy=steps", "--set", "training.eval_steps=1", "--set", "training.save_steps=1",
    "--set", "training.logging_steps=1",
]


def free_port():
    with socket.socket() as sock:  # torchrun's --master_port 0 hangs with the static rendezvous
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def torchrun(out, *extra, timeout=300):
    script = Path(sys.executable).with_name("deepfake-hf")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", free_port(),
               "--no-python", str(script), "train", "quickstart", "--out", str(out), "--json", *TINY_RUN, *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)  # only the main process prints


def test_two_process_training_and_resume(tmp_path):
    out = tmp_path / "run"
    first = torchrun(out, "--set", "training.max_steps=2")
    assert first["world_size"] == 2
    assert first["global_step"] == 2
    scores = pipeline_scores(out / "model", write_image(tmp_path / "face.png", size=(64, 64)), trust_remote_code=True)
    assert set(scores) == {"real", "fake"} and abs(sum(scores.values()) - 1) < 1e-5

    resumed = torchrun(out, "--set", "training.max_steps=4", "--resume")
    assert resumed["world_size"] == 2
    assert resumed["resumed_from_step"] == 2 and resumed["global_step"] == 4
    state = json.loads((out / "trainer_state.json").read_text())
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3, 4]
