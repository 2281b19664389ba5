"""The benchmark code runs and measures what it says (timings themselves are never asserted)."""

import json

import pytest

from deepfake_hf import benchmark_child
from deepfake_hf.benchmark import HEAVY, build_models, run_child, run_inference_benchmark


def test_inference_benchmark_compares_the_same_scores(tmp_path, capsys):
    out = tmp_path / "bench.json"
    results = run_inference_benchmark(out, models=["tiny-vit"], images=4, rounds=1, latency_images=2,
                                      peak_memory=False)
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    run = results["runs"][0]
    assert set(run["images_per_s"]) == {"a", "b", "c", "d"}
    assert all(value > 0 for value in run["images_per_s"].values())
    assert run["ratios"]["c/d"] == pytest.approx(run["images_per_s"]["c"] / run["images_per_s"]["d"])
    assert run["best_forward_batch"] in run["forward_images_per_s_by_batch"]
    # the stock pipeline on the native export and the Detector score the files alike
    assert run["max_abs_score_difference_a_vs_c"] <= 1e-4
    # a progress bar names each stage while it runs, and reaches its end
    progress = capsys.readouterr().err
    for stage in ("building models", "raw forward batch sizes", "round 1/1 mode c", "latency at batch 1", "done"):
        assert f"tiny-vit: {stage}" in progress, stage
    assert "16/16" in progress  # 1 build + 4 batch sizes + 3 warm-ups + 4 modes x 1 round + 4 latencies


def test_child_scores_in_one_mode(tmp_path):
    build_models("tiny-vit", tmp_path)
    for mode in "cd":
        assert benchmark_child.score_in_one_mode("tiny-vit", mode, str(tmp_path)) > 0


def test_child_times_training_steps_of_one_method():
    result = benchmark_child.train_steps("tiny-vit", "ln_tuning", batch=2, steps=2, dtype="fp32")
    assert len(result["step_times"]) == 2 and all(t > 0 for t in result["step_times"])
    assert result["device"] in ("cpu", "cuda") and result["peak_memory_mb"] > 0
    assert 0 < result["trainable_params"] < result["total_params"]  # LN-tuning trains a small part


def test_child_command_line(capsys):
    assert benchmark_child.main(["no-such-kind"]) == 1
    assert "peak-rss NAME MODE FOLDER" in capsys.readouterr().err
    assert benchmark_child.main(["train-steps", "tiny-vit", "full", "2", "1", "fp32"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["trainable_params"] == printed["total_params"]


@pytest.mark.slow
def test_children_run_as_fresh_processes(tmp_path):
    # Building the CLI parser in a fresh interpreter imports none of the heavy libraries.
    imported = run_child("heavy-imports")
    assert isinstance(imported, list) and set(imported) <= set(HEAVY) and "torch" not in imported
    build_models("tiny-vit", tmp_path)
    assert run_child("peak-rss", "tiny-vit", "d", tmp_path) > 0
