"""The benchmark code runs and measures what it says (timings themselves are never asserted)."""

import json

import pytest

from deepfake_hf.benchmark import run_inference_benchmark


def test_inference_benchmark_compares_the_same_scores(tmp_path):
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
