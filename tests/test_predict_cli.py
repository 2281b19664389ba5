"""`deepfake-hf predict`: formats, exit codes 0/2/1, bad inputs reported one line each, inputs untouched."""

import csv
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from deepfake_hf.cli import main

from .conftest import PROJECT_ROOT, tiny_detector, write_image
from .media_samples import BAD_CASES, write_bad_inputs, write_video


def snapshot(folder):
    return {
        path.relative_to(folder).as_posix(): (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(folder.rglob("*"))
    }


def run(capsys, *argv):
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_all_good_exit_0_json(tiny_model_dir, tmp_path, capsys):
    image = write_image(tmp_path / "face.png", size=(64, 64))
    video = write_video(tmp_path / "clip.mp4", frames=10)
    code, out, err = run(capsys, tiny_model_dir, image, video, "--format", "json", "--faces", "none", "--frames", "3")
    assert code == 0, err
    report = json.loads(out)
    assert report["summary"] == {"files": 2, "scored": 2, "failed": 0, "fake": report["summary"]["fake"],
                                 "real": report["summary"]["real"], "no_face": 0}
    kinds = {row["kind"]: row for row in report["results"]}
    assert kinds["video"]["frames"] == 3 and kinds["image"]["frames"] == 1
    assert all(0.0 <= row["fake_probability"] <= 1.0 and row["error"] is None for row in report["results"])


def test_mixed_folder_exit_2_each_bad_file_one_line_and_nothing_modified(tiny_model_dir, tmp_path, capsys):
    folder = tmp_path / "mixed"
    cases = write_bad_inputs(folder)
    (folder / "readme.txt").write_text("not media: skipped inside folders")
    before = snapshot(folder)
    code, out, err = run(capsys, tiny_model_dir, folder, "--faces", "none", "--format", "json")
    assert code == 2
    results = {row["path"]: row for row in json.loads(out)["results"]}
    # one result per media file in the folder (the .txt and .xyz files are not media and are skipped)
    expected = {str(path) for name, path in cases.items() if name != "unsupported"}
    assert set(results) == expected
    error_lines = [line for line in err.splitlines() if line.startswith("error: ")]
    for name in BAD_CASES:
        if name == "unsupported":
            continue
        path = str(cases[name])
        assert results[path]["error"] and path not in results[path]["error"], name  # `path` names the file
        assert sum(line.startswith(f"error: {path}: ") for line in error_lines) == 1, name
    assert all(results[str(cases[name])]["label"] for name in ("good_image", "good_video", "cmyk", "png16", "gif"))
    assert "Traceback" not in err
    assert snapshot(folder) == before  # nothing in the input folder was written, touched or added


def test_unsupported_missing_and_url_inputs_fail_alone(tiny_model_dir, tmp_path, capsys):
    good = write_image(tmp_path / "ok.png", size=(64, 64))
    odd = tmp_path / "data.xyz"
    odd.write_text("1,2")
    code, out, err = run(capsys, tiny_model_dir, good, odd, tmp_path / "gone.mp4", "http://example.com/v.mp4",
                         "--faces", "none", "--format", "csv")
    assert code == 2
    rows = {row["path"]: row for row in csv.DictReader(io.StringIO(out))}
    assert rows[str(good)]["label"] in ("real", "fake")
    assert "unsupported file type .xyz" in rows[str(odd)]["error"]
    assert "no such file" in rows[str(tmp_path / "gone.mp4")]["error"]
    assert "URLs are not supported" in rows["http://example.com/v.mp4"]["error"]
    assert len([line for line in err.splitlines() if line.startswith("error: ")]) == 3


def test_table_output_and_output_file(tiny_model_dir, tmp_path, capsys):
    images = [write_image(tmp_path / "in" / f"{i}.png", size=(64, 64), seed=i) for i in range(2)]
    code, out, err = run(capsys, tiny_model_dir, tmp_path / "in", "--faces", "none")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["FILE", "KIND", "LABEL", "P(FAKE)"]
    assert lines[1].startswith("0.png") and lines[2].startswith("1.png")
    assert lines[-1].startswith("2 files: 2 scored")
    target = tmp_path / "results.csv"
    assert run(capsys, tiny_model_dir, *images, "--faces", "none", "--format", "csv", "--out", target)[0] == 0
    assert len(list(csv.DictReader(target.open()))) == 2
    code, _, err = run(capsys, tiny_model_dir, *images, "--out", target)
    assert code == 1 and "--overwrite" in err
    assert run(capsys, tiny_model_dir, *images, "--faces", "none", "--out", target, "--overwrite")[0] == 0
    assert target.read_text().startswith("FILE")


def test_frame_scores_on_request(tiny_model_dir, tmp_path, capsys):
    video = write_video(tmp_path / "clip.mp4", frames=10)
    code, out, _ = run(capsys, tiny_model_dir, video, "--faces", "none", "--frames", "3", "--format", "json",
                       "--frame-scores", "--aggregation", "confident")
    row = json.loads(out)["results"][0]
    assert code == 0 and len(row["frame_scores"]) == 3


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--frames", "0"], "must be >= 1"),
        (["--format", "xml"], "invalid choice"),
        (["--faces", "mtcnn"], "invalid choice"),
    ],
)
def test_usage_errors_exit_1(tiny_model_dir, tmp_path, capsys, argv, message):
    image = write_image(tmp_path / "a.png", size=(64, 64))
    with pytest.raises(SystemExit) as caught:
        main(["predict", str(tiny_model_dir), str(image), *argv])
    assert caught.value.code == 1
    assert message in capsys.readouterr().err


def test_missing_model_and_empty_folder_exit_1(tiny_model_dir, tmp_path, capsys):
    image = write_image(tmp_path / "a.png", size=(64, 64))
    code, _, err = run(capsys, tmp_path / "no-model", image)
    assert code == 1 and "no such model folder" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, tiny_model_dir, tmp_path / "empty")
    assert code == 1 and "no image or video files" in err


def test_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["predict", "--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert "exit codes" in text and "2  some inputs failed" in text and "URLs are refused" in text


@pytest.mark.slow  # decodes the shared real media (10-20 s): outside the 90 s fast subset
def test_predict_over_shared_media(tiny_model_dir, shared_media, capsys):
    """One result per media file of the real samples, no errors, faces found in every video."""
    from deepfake_hf.faces import dlib_available
    from deepfake_hf.media import list_media_files

    faces = "dlib" if dlib_available() else "none"
    code, out, err = run(capsys, tiny_model_dir, shared_media, "--faces", faces, "--frames", "4", "--format", "json",
                         "--batch-size", "32")
    assert code == 0, err
    results = json.loads(out)["results"]
    files = [str(path) for path in list_media_files([shared_media])]
    assert [row["path"] for row in results] == files
    assert all(row["error"] is None and row["label"] in ("real", "fake") for row in results)
    videos = [row for row in results if row["kind"] == "video"]
    assert len(videos) == sum(path.endswith(".mp4") for path in files) > 0
    assert all(row["frames"] == 4 for row in videos)
    if faces == "dlib":
        assert all(row["faces"] >= 1 for row in videos)


def test_table_columns_stay_in_line_with_long_paths_and_counts_are_pluralised(tiny_model_dir, tmp_path, capsys):
    deep = tmp_path / "in" / ("a-rather-long-folder-name-" * 3) / ("and-another-level-" * 2)
    images = [write_image(tmp_path / "in" / "short.png", size=(64, 64)),
              write_image(deep / ("an-image-with-a-long-file-name-" * 2 + ".png"), size=(64, 64), seed=1)]
    code, out, _ = run(capsys, tiny_model_dir, *images, "--faces", "none")
    assert code == 0
    header, *rows, summary = out.splitlines()
    kind_column = header.index("KIND")
    assert all(row[kind_column:].split()[0] == "image" for row in rows), out  # every KIND under its header
    assert all(len(row[:kind_column].rstrip()) <= 60 for row in rows)
    assert "..." in rows[1] and rows[1][:kind_column].rstrip().endswith("-an-image-with-a-long-file-name-.png")
    assert summary.startswith("2 files: 2 scored")
    code, out, err = run(capsys, tiny_model_dir, images[0], "--faces", "none")
    assert out.splitlines()[-1].startswith("1 file: 1 scored")
    code, out, err = run(capsys, tiny_model_dir, images[0], "--faces", "none", "--format", "csv")
    assert err.strip().splitlines()[-1] == "1 file: 1 scored, 0 failed"


def test_resume_without_out_is_one_line(tiny_model_dir, tmp_path, capsys):
    image = write_image(tmp_path / "a.png", size=(64, 64))
    for extra in ([], ["--format", "table", "--out", str(tmp_path / "table.txt")]):
        code, _, err = run(capsys, tiny_model_dir, image, "--resume", *extra)
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
        assert lines[0].startswith("deepfake-hf predict: error: --resume") and "--out" in lines[0]
    from deepfake_hf.errors import DeepfakeHFError
    from deepfake_hf.scoring.predict import predict

    with pytest.raises(DeepfakeHFError, match="--resume needs --out"):
        predict(str(tiny_model_dir), [image], faces="none", resume=True)


# ------------------------------------------------------------------------------------------ unreachable Hub
def free_port():
    """A local port nothing listens on (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def silent_port():
    """A local port that accepts connections (the kernel's backlog) and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


def test_hub_check_says_why_an_endpoint_does_not_answer(silent_port):
    import http.server
    import threading

    from deepfake_hf.scoring.hub import hub_unreachable

    assert hub_unreachable(f"http://127.0.0.1:{free_port()}", timeout=2) == "connection refused"
    start = time.monotonic()
    assert hub_unreachable(f"http://127.0.0.1:{silent_port}", timeout=0.25) == "no answer within 0.25 s"
    assert time.monotonic() - start < 5
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # answers 501
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert hub_unreachable(f"http://127.0.0.1:{server.server_address[1]}", timeout=5) is None
    finally:
        server.shutdown()


def test_predict_fails_fast_in_one_line_when_the_hub_does_not_answer(tmp_path, monkeypatch, silent_port):
    from huggingface_hub import constants

    from deepfake_hf.scoring import hub
    from deepfake_hf.scoring.predict import predict
    from deepfake_hf.scoring.scorer import ModelLoadError

    monkeypatch.setattr(hub, "HUB_CHECK_TIMEOUT_S", 0.25)  # read at each check: the silent port costs 0.25 s, not 5
    image = write_image(tmp_path / "a.png", size=(64, 64))
    model = "someorg/no-such-detector-7f3a"
    cases = [(f"http://127.0.0.1:{free_port()}", False, "does not answer (connection refused)"),
             (f"http://127.0.0.1:{silent_port}", False, "does not answer (no answer within 0.25 s)"),
             (f"http://127.0.0.1:{free_port()}", True, "HF_HUB_OFFLINE is set")]
    for endpoint, offline, reason in cases:
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
        start = time.monotonic()
        with pytest.raises(ModelLoadError) as caught:
            predict(model, [image], faces="none")
        assert time.monotonic() - start < 15, endpoint
        message = str(caught.value)
        assert message.startswith(f"{model}: not in the local Hugging Face cache, and ") and reason in message
        assert "\n" not in message
    assert constants.HF_HUB_OFFLINE is True  # the offline switch predict flips for its load is put back


def test_python_loading_by_hub_id_fails_fast_when_the_hub_does_not_answer(tmp_path, monkeypatch):
    """Detector.from_pretrained and Scorer.from_pretrained (both load through scorer.load_classifier) get
    predict's check: one line at once instead of a minute of transformers' retries."""
    from huggingface_hub import constants

    from deepfake_hf import Detector
    from deepfake_hf.scoring.scorer import ModelLoadError, Scorer

    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))  # an empty cache
    for load in (Detector.from_pretrained, Scorer.from_pretrained):
        start = time.monotonic()
        with pytest.raises(ModelLoadError) as caught:
            load("someorg/no-such-detector-7f3a")
        assert time.monotonic() - start < 15
        assert str(caught.value) == (f"someorg/no-such-detector-7f3a: not in the local Hugging Face cache, and the "
                                     f"Hub at {endpoint} does not answer (connection refused); check the network "
                                     "or HF_ENDPOINT, or give a local model folder")
    assert constants.HF_HUB_OFFLINE is False  # the offline switch is put back after the load


def test_a_cached_hub_model_still_loads_when_the_hub_does_not_answer(tiny_model_dir, tmp_path, monkeypatch):
    """The check only turns retries into the cache: a model downloaded before still scores offline."""
    import shutil

    from huggingface_hub import constants

    from deepfake_hf.scoring.predict import predict

    cache = tmp_path / "hub"
    snapshot = cache / "models--someorg--cached-detector" / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_model_dir, snapshot)
    (cache / "models--someorg--cached-detector" / "refs").mkdir()
    (cache / "models--someorg--cached-detector" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{free_port()}")
    image = write_image(tmp_path / "a.png", size=(64, 64))
    _, results = predict("someorg/cached-detector", [image], faces="none")
    assert results[0].error is None and results[0].label in ("real", "fake")


def run_cli(*argv, env=None, timeout=300):
    """`deepfake-hf ARGV` in a fresh process: (exit code, stdout, stderr, seconds)."""
    full_env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "TRANSFORMERS_VERBOSITY": "error", **(env or {})}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "deepfake_hf.cli", *map(str, argv)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, check=False)
    return done.returncode, done.stdout, done.stderr, time.monotonic() - start


@pytest.mark.slow
def test_unreachable_hub_fails_in_one_line_without_retries(tmp_path, silent_port):
    image = write_image(tmp_path / "a.png", size=(64, 64))
    env = {"HF_HOME": str(tmp_path / "hf")}  # an empty cache
    # the same command failing on a missing local folder: what start-up alone costs on this machine
    *_, baseline = run_cli("predict", tmp_path / "no-model", image, env=env)
    for endpoint, offline, reason in ((f"http://127.0.0.1:{free_port()}", "0", "connection refused"),
                                      (f"http://127.0.0.1:{silent_port}", "0", "no answer within 5 s"),
                                      (f"http://127.0.0.1:{free_port()}", "1", "HF_HUB_OFFLINE is set")):
        code, _, err, seconds = run_cli("predict", "someorg/detector", image,
                                        env={**env, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": offline})
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1, err[-2000:]
        assert lines[0].startswith("deepfake-hf predict: error: someorg/detector: not in the local Hugging Face "
                                   "cache") and reason in lines[0]
        # before: 12 retry messages over 63 s; start-up alone varies by many seconds on a loaded machine
        assert seconds < max(15, baseline + 20), (endpoint, seconds, baseline)


@pytest.mark.slow
def test_ctrl_c_stops_predict_at_once_and_keeps_what_is_done(tmp_path):
    import signal

    model = tmp_path / "model"
    tiny_detector("vit", num_frames=32).save_pretrained(model)
    source = write_video(tmp_path / "src.mp4", frames=60, size=(640, 480))
    # One clip under many names: long work, cheap to make (links to files are read). Enough that neither run can
    # finish before it is interrupted: a run that has finished may still be tearing down (poll() is None), and
    # SIGINT then ends it silently with -2 (seen on a loaded CI machine with 60 names).
    for index in range(400):
        (tmp_path / "in" / f"clip_{index:03d}.mp4").parent.mkdir(exist_ok=True)
        (tmp_path / "in" / f"clip_{index:03d}.mp4").symlink_to(source)
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    command = [sys.executable, "-m", "deepfake_hf.cli", "predict", str(model), str(tmp_path / "in"), "--faces", "none"]

    def interrupt(process, ready):
        start = time.monotonic()
        while not ready(time.monotonic() - start) and time.monotonic() - start < 240 and process.poll() is None:
            time.sleep(0.05)
        assert process.poll() is None, "finished before it could be interrupted"
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
        return process.returncode, out, err, time.monotonic() - sent, sent - start

    out_file = tmp_path / "scores.jsonl"
    part = tmp_path / "scores.jsonl.part-00000-of-00001"
    streamed = subprocess.Popen([*command, "--format", "jsonl", "--out", str(out_file)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    code, _, err, stop_seconds, started = interrupt(streamed, lambda _: part.is_file() and
                                                    part.read_text().count("\n") >= 2)
    assert code == 1 and stop_seconds < 4, (stop_seconds, err[-2000:])  # before: 20 s and more
    last = err.strip().splitlines()[-1]
    written = out_file.read_text().splitlines()
    assert last.startswith(f"deepfake-hf predict: interrupted after {len(written)} files") and len(written) >= 2
    assert "run the same command with --resume" in last and part.is_file()  # what --resume continues from

    table = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # no file to watch: wait twice as long as the streamed run took to its first two results (a loaded machine
    # slows one run more than the other), and a little more
    code, out, err, stop_seconds, _ = interrupt(table, lambda elapsed: elapsed > 2 * started + 3)
    assert code == 1 and stop_seconds < 4, (stop_seconds, err[-2000:])
    rows = out.splitlines()
    assert rows[0].startswith("FILE") and rows[-1].endswith("0 failed")  # the files scored so far, as a table
    done = int(rows[-1].split()[0])
    assert done == len(rows) - 2 and done >= 1
    assert err.strip().splitlines()[-1].startswith(f"deepfake-hf predict: interrupted after {done} file")
