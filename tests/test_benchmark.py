"""The benchmark code runs and measures what it says (timings themselves are never asserted)."""

import json

import pytest

from deepfake_hf.cli.bench import child as benchmark_child
from deepfake_hf.cli.bench.measure import HEAVY, build_models, run_child, run_inference_benchmark


def test_inference_benchmark_compares_the_same_scores(tmp_path, capsys):
    out = tmp_path / "bench.json"
    results = run_inference_benchmark(out, models=["tiny-vit"], images=4, rounds=1, latency_images=2,
                                      peak_memory=False)
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    # photo-like and noise-textured JPEGs (costlier to decode) are both measured
    assert [run["texture"] for run in results["runs"]] == ["smooth", "noise"]
    assert results["runs"][1]["mean_file_kb"] > 3 * results["runs"][0]["mean_file_kb"]
    run = results["runs"][0]
    assert set(run["images_per_s"]) == {"a", "b", "c", "d", "e"}  # e: the Detector at its default batch
    assert run["ratios"]["e/a"] == pytest.approx(run["images_per_s"]["e"] / run["images_per_s"]["a"])
    assert all(value > 0 for value in run["images_per_s"].values())
    assert run["ratios"]["c/d"] == pytest.approx(run["images_per_s"]["c"] / run["images_per_s"]["d"])
    assert run["best_forward_batch"] in run["forward_images_per_s_by_batch"]
    # the stock pipeline on the native export and the Detector score the files alike
    assert run["max_abs_score_difference_a_vs_c"] <= 1e-4
    # a progress bar names each stage while it runs, and reaches its end
    progress = capsys.readouterr().err
    for stage in ("building models", "raw forward batch sizes", "round 1/1 mode c", "latency at batch 1", "done"):
        assert f"tiny-vit ({'smooth'} JPEGs): {stage}" in progress or f"tiny-vit: {stage}" in progress, stage
    assert "18/18" in progress  # 1 build + 4 batch sizes + 4 warm-ups + 5 modes x 1 round + 4 latencies


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


def test_video_benchmark_compares_per_frame_and_video_detection(tmp_path, monkeypatch):
    """The face modes run on the same clip; the video-aware mode goes through faces.detect_video."""
    monkeypatch.setenv("DEEPFAKE_HF_FACE_WORKERS", "0")  # in-thread, where the spy below sees every call
    from deepfake_hf import faces
    from deepfake_hf.cli.bench.measure import measure_video, write_face_video

    if not faces.dlib_available():
        pytest.skip("dlib (the faces extra) is not installed")
    custom, _ = build_models("tiny-vit", tmp_path)
    clip = write_face_video(tmp_path / "clip.mp4", seconds=1, size=(640, 360), fps=12)  # 12 small frames: quick
    calls = []
    original = faces.detect_video

    def spy(detector, frames):
        calls.append(getattr(detector, "keyframe_interval", None))
        return original(detector, frames)

    import unittest.mock

    with unittest.mock.patch.object(faces, "detect_video", spy):
        rows = measure_video(custom, [clip], num_frames=6, batch_size=4, face_modes=("none", "dlib-per-frame", "dlib"))
    by_mode = {row["faces"]: row for row in rows}
    assert set(by_mode) == {"none", "dlib-per-frame", "dlib"}
    assert all(row["throughput_vs_model_only"] > 0 and row["end_to_end_s"] > 0 for row in rows)
    assert by_mode["none"]["frames_with_faces"] is None
    # both dlib modes find the face in every sampled frame
    assert by_mode["dlib-per-frame"]["frames_with_faces"] == by_mode["dlib"]["frames_with_faces"] == 6
    # the Detector detects through detect_video: per frame (interval 1: warm-up, timed run) and with key
    # frames (interval 8: warm-up, timed run, detection alone)
    assert sorted(calls) == [1, 1, 8, 8, 8]


@pytest.mark.slow
def test_threads_benchmark_children_run_together(tmp_path):
    from deepfake_hf.cli.bench.measure import run_concurrent, run_threads_benchmark

    default = run_concurrent("default", 1, steps=1, delay=0)[0]
    assert default["configured"] is None and default["wait_policy"] is None and default["seconds"] > 0
    pair = run_concurrent("configured-2-ranks", 2, steps=1, delay=0)
    cpus = len(__import__("os").sched_getaffinity(0))
    assert [child["threads"] for child in pair] == [max(1, cpus // 2)] * 2
    assert all(child["wait_policy"] == "PASSIVE" and child["configured"]["local_world_size"] == 2 for child in pair)
    out = tmp_path / "threads.json"
    results = run_threads_benchmark(out, modes=("default", "configured"), steps=1, rounds=1, delay=0)
    assert json.loads(out.read_text())["summary"] == json.loads(json.dumps(results["summary"]))
    row = results["summary"]["configured"]
    assert row["pair_vs_own_solo"] == pytest.approx(row["pair_s"] / row["solo_s"])
    assert row["threads"] == cpus and row["wait_policy"] == "PASSIVE"


@pytest.mark.slow
def test_predict_concurrency_benchmark_runs_whole_predict_processes(tmp_path):
    from deepfake_hf.cli.bench.measure import run_predict_concurrency_benchmark

    out = tmp_path / "pair.json"
    results = run_predict_concurrency_benchmark(out, model="tiny-vit", images=2, rounds=1)
    assert len(results["times_s"]["solo"]) == 1 and len(results["times_s"]["pair"]) == 1
    assert results["pair_vs_solo"] == pytest.approx(results["pair_s"] / results["solo_s"])
    assert json.loads(out.read_text())["pair_s"] == results["pair_s"] > 0


def test_child_predict_peak_reports_exit_code_and_memory(tmp_path):
    from tests.conftest import write_image

    custom, _ = build_models("tiny-vit", tmp_path)
    for index in range(3):
        write_image(tmp_path / "in" / f"{index}.png", size=(40, 40), seed=index)
    result = benchmark_child.predict_peak(custom, str(tmp_path / "in"), "--faces", "none", "--format", "jsonl",
                                          "--out", str(tmp_path / "out.jsonl"))
    assert result["exit_code"] == 0 and result["peak_rss_mb"] > 50
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 3


@pytest.mark.slow
def test_scaleout_benchmark_measures_memory_resume_and_processes(tmp_path):
    from deepfake_hf.cli.bench.measure import run_scaleout_benchmark

    results = run_scaleout_benchmark(tmp_path / "scaleout.json", small=4, large=40, faces=4, rounds=1)
    assert json.loads((tmp_path / "scaleout.json").read_text())["benchmark"] == "scale-out"
    assert set(results["predict_memory"]["peak_rss_mb"]) == {"4", "40"}
    resume = results["predict_resume"]
    assert resume["all_outputs_equal"] is True and resume["uninterrupted_s"] > 0
    assert results["predict_scaling"]["speedup_2_vs_1"] > 0 and results["preprocess_scaling"]["speedup_2_vs_1"] > 0


@pytest.mark.slow  # builds a model, runs the exact mode three times over a clip: ~10 s
def test_video_benchmark_times_each_stage_of_the_exact_face_mode(tmp_path):
    """`bench video --faces deepfakebench`: the exact mode end to end, with CPU and wall time per stage."""
    from deepfake_hf import faces
    from deepfake_hf.cli.bench.measure import measure_video, video_face_modes, write_face_video

    if not faces.dlib_available():
        pytest.skip("dlib (the faces extra) is not installed")
    custom, _ = build_models("tiny-vit", tmp_path)
    clip = write_face_video(tmp_path / "clip.mp4", seconds=1, size=(320, 240))
    (row,) = measure_video(custom, [clip], num_frames=3, batch_size=4, face_modes=video_face_modes("deepfakebench"))
    assert row["faces"] == "deepfakebench" and row["frames_with_faces"] == 3
    stages = row["stage_ms_per_call"]
    assert set(stages) == {"to_array", "detection", "landmarks", "warp", "redetection"}
    assert all(stage["cpu"] > 0 and stage["wall"] > 0 for name, stage in stages.items() if name != "to_array")
    assert row["face_detection_alone_cpu_s"] > 0 and row["decode_alone_cpu_s"] > 0
    with pytest.raises(Exception, match="--faces: mtcnn"):
        video_face_modes("none,mtcnn")


def test_every_benchmark_script_is_the_bench_command_with_the_same_options(monkeypatch, capsys):
    """benchmarks/bench_KIND.py passes its arguments to `deepfake-hf bench KIND` unchanged: one parser, no other."""
    import runpy
    import sys
    from pathlib import Path

    from deepfake_hf import cli

    bench = cli.build_parser()._subparsers._group_actions[0].choices["bench"]
    kinds = set(bench._subparsers._group_actions[0].choices)
    scripts = {path.stem.removeprefix("bench_").replace("_", "-"): path
               for path in (Path(__file__).parents[1] / "benchmarks").glob("bench_*.py")}
    assert set(scripts) == kinds
    calls = []
    monkeypatch.setattr(cli, "main", lambda argv: calls.append(argv) or 0)
    for kind, script in sorted(scripts.items()):
        monkeypatch.setattr(sys, "argv", [str(script), "--rounds", "2", "--out", "x.json"])
        with pytest.raises(SystemExit) as stopped:
            runpy.run_path(str(script), run_name="__main__")
        assert stopped.value.code == 0
        assert calls.pop() == ["bench", kind, "--rounds", "2", "--out", "x.json"]
    monkeypatch.undo()
    monkeypatch.setattr(sys, "argv", [str(scripts["threads"]), "--help"])  # the help is the command's own
    with pytest.raises(SystemExit):
        runpy.run_path(str(scripts["threads"]), run_name="__main__")
    assert capsys.readouterr().out.startswith("usage: deepfake-hf bench threads")
