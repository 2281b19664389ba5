"""Scale-out: predict streams results to --out as they are produced, resumes after a kill and lists inputs lazily;
ranks on one machine meet at a barrier without torch; 2-process runs (torchrun) of predict and evaluate give the
single-process output."""

import csv
import json
import os
import socket
import subprocess
import sys
import threading
import uuid

import pytest

from deepfake_hf.cli import main
from deepfake_hf.runtime.distributed import DistributedError, LocalBarrier, Ranks, local_barrier_name
from deepfake_hf.scoring.detector import Detector
from tests.conftest import PROJECT_ROOT, tiny_detector, write_image
from tests.media_samples import write_bad_inputs, write_video


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream") / "model"
    tiny_detector("vit", seed=7, num_frames=3).save_pretrained(folder)
    return folder


def make_inputs(root, images=9):
    for index in range(images):
        write_image(root / "stills" / f"{index:02d}.png", size=(40, 40), seed=index)
    write_video(root / "clips" / "a.mp4", frames=8)
    write_bad_inputs(root / "bad")
    return root


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


SCORES = ("fake_probability", "frame_scores")


def same_rows(left, right):
    """Same files in the same order with the same fields; scores within 1e-6 (batches differ across ranks)."""
    assert [row["path"] for row in left] == [row["path"] for row in right]
    for a, b in zip(left, right):
        assert {k: v for k, v in a.items() if k not in SCORES} == {
            k: v for k, v in b.items() if k not in SCORES}, a["path"]
        for key in SCORES:
            x, y = a.get(key), b.get(key)
            x, y = (x, y) if isinstance(x, list) or x is None else ([x], [y])
            assert (x is None) == (y is None), (a["path"], key)
            if x is not None:
                assert len(x) == len(y) and all(
                    (p is None and q is None) or abs(p - q) < 1e-6 for p, q in zip(x, y)), (a["path"], key)


def test_streamed_formats_match_the_in_memory_results(model_dir, tmp_path, capsys):
    inputs = make_inputs(tmp_path / "in")
    assert main(["predict", str(model_dir), str(inputs), "--faces", "none", "--format", "json"]) == 2
    expected = json.loads(capsys.readouterr().out)
    for fmt in ("jsonl", "json", "csv"):
        out = tmp_path / f"results.{fmt}"
        assert main(["predict", str(model_dir), str(inputs), "--faces", "none", "--format", fmt, "--out",
                     str(out)]) == 2
        err = capsys.readouterr().err
        assert sum(line.startswith("error: ") for line in err.splitlines()) == expected["summary"]["failed"]
        if fmt == "jsonl":
            same_rows(read_jsonl(out), expected["results"])
        elif fmt == "json":
            written = json.loads(out.read_text())
            same_rows(written["results"], expected["results"])
            assert written["summary"] == expected["summary"]
        else:
            rows = list(csv.DictReader(out.open()))
            assert [row["path"] for row in rows] == [row["path"] for row in expected["results"]]
        assert not list(tmp_path.glob("results.*.part-*")) and not list(tmp_path.glob("*.writing"))


def test_resume_after_a_kill_writes_the_same_file_without_repeating_work(model_dir, tmp_path, monkeypatch):
    from deepfake_hf.scoring.predict import predict

    inputs = make_inputs(tmp_path / "in")
    clean = tmp_path / "clean.jsonl"
    predict(str(model_dir), [inputs], faces="none", fmt="jsonl", out=clean)

    prepared = []
    real_prepare, real_finish = Detector._prepare, Detector._finish
    finished = []

    def prepare(self, name, *args, **kwargs):
        prepared.append(name)
        return real_prepare(self, name, *args, **kwargs)

    def finish_then_die(self, record, frame_scores):
        if len(finished) == 5:
            raise KeyboardInterrupt  # killed after five results were written
        finished.append(record["path"])
        return real_finish(self, record, frame_scores)

    monkeypatch.setattr(Detector, "_prepare", prepare)
    monkeypatch.setattr(Detector, "_finish", finish_then_die)
    out = tmp_path / "resumed.jsonl"
    with pytest.raises(KeyboardInterrupt):
        predict(str(model_dir), [inputs], faces="none", fmt="jsonl", out=out)
    # the five results are in --out already, and the part file --resume continues from is kept
    assert [row["path"] for row in read_jsonl(out)] == finished
    assert len(read_jsonl(out.with_name(out.name + ".part-00000-of-00001"))) == 5
    monkeypatch.setattr(Detector, "_finish", real_finish)
    prepared.clear()
    _, counts = predict(str(model_dir), [inputs], faces="none", fmt="jsonl", out=out, resume=True)
    assert not set(prepared) & set(finished)  # the five written results were not scored again
    same_rows(read_jsonl(out), read_jsonl(clean))
    assert counts["files"] == len(read_jsonl(clean))


def test_inputs_are_consumed_lazily(model_dir, tmp_path):
    """The Detector pulls files as it goes: a generator of inputs is never drained up front."""
    files = [write_image(tmp_path / f"{index}.png", size=(40, 40), seed=index) for index in range(40)]
    taken = []

    def source():
        for path in files:
            taken.append(path)
            yield path

    detector = Detector.from_pretrained(model_dir, batch_size=2, workers=1, progress=False)
    results = detector.iter_results(source())
    next(results)
    assert len(taken) < 10  # a few files ahead of the model, not all 40
    assert len(list(results)) == 39


def run_ranks(world, body):
    """Run body(rank, barrier) in `world` threads, each with its own LocalBarrier on one fresh name; returns
    {rank: exception raised or None}."""
    name = f"deepfake-hf-test/{uuid.uuid4()}"
    errors = {}

    def one(rank):
        barrier = LocalBarrier(name, Ranks(rank, world, rank, world), timeout=60)
        try:
            body(rank, barrier)
            errors[rank] = None
        except Exception as error:  # reported to the test
            errors[rank] = error
        finally:
            barrier.close()

    threads = [threading.Thread(target=one, args=(rank,)) for rank in range(world)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return errors


def test_local_barrier_holds_every_rank_until_all_arrive():
    arrived, lock = [], threading.Lock()

    def body(rank, barrier):
        for phase in range(4):
            with lock:
                arrived.append(phase)
            barrier.wait()
            with lock:  # nobody passes a barrier before every rank reached it
                assert arrived.count(phase) == 3, (rank, phase, arrived)

    assert run_ranks(3, body) == {0: None, 1: None, 2: None}
    assert arrived == sorted(arrived)


def test_local_barrier_names_a_rank_that_exited():
    def body(rank, barrier):
        barrier.wait()
        if rank == 0:
            barrier.wait()  # rank 1 has gone: an error naming it, not a wait until the timeout

    errors = run_ranks(2, body)
    assert errors[1] is None
    assert isinstance(errors[0], DistributedError) and "rank 1 exited" in str(errors[0])


def test_local_barrier_refuses_a_name_in_use():
    name = f"deepfake-hf-test/{uuid.uuid4()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as taken:
        taken.bind("\0" + name)
        with pytest.raises(DistributedError, match="taken"):
            LocalBarrier(name, Ranks(0, 2, 0, 2), timeout=5).wait()


def test_local_barrier_only_when_the_launcher_puts_every_rank_here():
    ranks = Ranks(1, 2, 1, 2)
    env = {"MASTER_ADDR": "localhost", "MASTER_PORT": "29500", "LOCAL_WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "x"}
    name = local_barrier_name(ranks, env)
    assert name is not None and "29500" in name and name == local_barrier_name(Ranks(0, 2, 0, 2), env)
    for other in ({"MASTER_PORT": "29501"}, {"TORCHELASTIC_RUN_ID": "y"}):  # another run, another name
        assert local_barrier_name(ranks, {**env, **other}) != name
    long = {**env, "MASTER_ADDR": "a-very-long-host-name." * 8, "TORCHELASTIC_RUN_ID": "run-" * 20}
    assert len(local_barrier_name(ranks, long)) < 100  # fits a socket name (107 bytes)
    assert local_barrier_name(ranks, {**env, "LOCAL_WORLD_SIZE": "1"}) is None  # ranks on other machines: gloo
    assert local_barrier_name(ranks, {k: v for k, v in env.items() if k != "LOCAL_WORLD_SIZE"}) is None
    assert local_barrier_name(ranks, {k: v for k, v in env.items() if k != "MASTER_PORT"}) is None


RUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "deepfake_hf.cli"]


@pytest.mark.slow
def test_two_processes_under_torchrun_give_the_single_process_output(model_dir, tmp_path):
    inputs = make_inputs(tmp_path / "in", images=13)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    args = ["predict", str(model_dir), str(inputs), "--faces", "none", "--format", "jsonl", "--frame-scores"]
    single = subprocess.run([sys.executable, "-m", "deepfake_hf.cli", *args, "--out", str(tmp_path / "one.jsonl")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 2, single.stderr[-2000:]  # the bad inputs fail, the rest are scored
    double = subprocess.run([*RUN, *args, "--out", str(tmp_path / "two.jsonl")], env=env, capture_output=True,
                            text=True, timeout=300)
    assert double.returncode == 0, double.stderr[-3000:]  # a finished data-parallel run exits 0
    same_rows(read_jsonl(tmp_path / "two.jsonl"), read_jsonl(tmp_path / "one.jsonl"))
    assert not list(tmp_path.glob("*.part-*"))


def close(a, b, path="metrics"):
    """Equal JSON values, floats within 1e-6."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for index, (x, y) in enumerate(zip(a, b)):
            close(x, y, f"{path}[{index}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert abs(a - b) < 1e-6 or (a != a and b != b), (path, a, b)
    else:
        assert a == b, (path, a, b)


@pytest.mark.slow
def test_evaluate_under_torchrun_gives_the_single_process_files(model_dir, tmp_path):
    for label in ("real", "fake"):
        for index in range(7):
            write_image(tmp_path / "data" / label / f"{index}.png", size=(40, 40), seed=index + 50 * (label == "fake"))
        write_video(tmp_path / "data" / label / f"clip_{label}.mp4", frames=8)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "DEEPFAKE_HF_CACHE": str(tmp_path / "cache")}
    args = ["evaluate", str(model_dir), str(tmp_path / "data"), "--faces", "none", "--bootstrap", "50", "--no-plots",
            "--perturb", "jpeg:50"]
    single = subprocess.run([sys.executable, "-m", "deepfake_hf.cli", *args, "--out", str(tmp_path / "one")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    double = subprocess.run([*RUN, *args, "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True,
                            timeout=300)
    assert double.returncode == 0, double.stderr[-3000:]
    # every rank has the metrics; only rank 0 prints the table (each rank printed it once before)
    assert single.stdout.count("| test set |") == double.stdout.count("| test set |") == 1, double.stdout
    one, two = (json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("one", "two"))
    close(one, two)
    rows = [list(csv.reader(open(tmp_path / run / "predictions.csv"))) for run in ("one", "two")]
    assert [row[:7] for row in rows[0]] == [row[:7] for row in rows[1]]
    assert all(abs(float(a[7]) - float(b[7])) < 1e-6 for a, b in zip(rows[0][1:], rows[1][1:]))
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
