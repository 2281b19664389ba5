"""`evaluate` end to end on generated data (and on ../shared/media when present): every output file."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from deepfake_hf.evaluation.errors import EvaluationError
from deepfake_hf.evaluation.evaluate import evaluate_model, parse_named_sources
from deepfake_hf.evaluation.metrics import binary_metrics, video_scores
from deepfake_hf.evaluation.perturbations import parse_perturbations, perturb

from .conftest import tiny_detector, write_image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("model")
    tiny_detector("vit", seed=3).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for label, offset in (("real", 0), ("fake", 100)):
        for i in range(5):
            write_image(root / "stills" / label / f"{i}.png", size=(40, 40), seed=offset + i)
        # frame folders: videos named "clip" under two method folders -> must stay two videos each
        for method in ("m1", "m2"):
            for f in range(3):
                write_image(root / "videos" / label / method / "clip" / f"{f}.png", size=(40, 40),
                            seed=1000 + offset + f + (50 if method == "m2" else 0))
    return root


def assert_valid_png(path):
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.width > 200 and image.height > 200
        assert np.asarray(image.convert("L")).std() > 5  # something was drawn


def test_evaluate_writes_every_output(model_dir, data, tmp_path):
    out = tmp_path / "eval"
    result = evaluate_model(model_dir, {"stills": data / "stills", "videos": data / "videos"}, out,
                            perturbations=["jpeg:50", "blur:1,2"], n_resamples=50)
    for name in ("predictions.csv", "metrics.json", "report.md", "roc.png", "score_histograms.png",
                 "reliability.png", "robustness.png"):
        assert (out / name).is_file(), name
    for name in ("roc.png", "score_histograms.png", "reliability.png", "robustness.png"):
        assert_valid_png(out / name)

    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert set(rows[0]) >= {"path", "group", "label", "method", "score"}
    videos = [row for row in rows if row["test_set"] == "videos"]
    assert len(rows) == 10 + 12 and len(videos) == 12
    # grouping by full path: 4 distinct videos although all are called "clip"
    assert len({row["video"] for row in videos}) == 4

    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["model"] == str(model_dir)
    for name in ("stills", "videos"):
        entry = saved["test_sets"][name]
        labels = [int(r["label"]) for r in rows if r["test_set"] == name]
        scores = [float(r["score"]) for r in rows if r["test_set"] == name]
        expected = binary_metrics(labels, scores, saved["threshold"])
        for key in ("auroc", "ap", "eer", "accuracy", "log_loss", "ece"):
            assert entry["frame"][key] == pytest.approx(expected[key]), (name, key)
        low, high = entry["frame"]["ci"]["auroc"]
        assert low <= entry["frame"]["auroc"] <= high
    assert saved["test_sets"]["stills"]["video"] is None
    video = saved["test_sets"]["videos"]["video"]
    groups = [r["video"] for r in videos]
    _, v_scores, v_labels = video_scores([float(r["score"]) for r in videos], groups, "mean",
                                         [int(r["label"]) for r in videos])
    assert video["n"] == 4 and video["auroc"] == pytest.approx(binary_metrics(v_labels, v_scores)["auroc"])
    assert set(saved["test_sets"]["videos"]["per_method"]) == {"m1", "m2"}
    assert set(saved["robustness"]["videos"]) == {"clean", "jpeg:50", "blur:1", "blur:2"}
    clean = saved["robustness"]["videos"]["clean"]
    assert clean["auroc"] == pytest.approx(saved["test_sets"]["videos"]["frame"]["auroc"])

    report = (out / "report.md").read_text()
    table = [line for line in report.splitlines() if line.startswith("| stills") or line.startswith("| videos")]
    assert len(table) >= 2 and "frame AUROC" in report and "video AUROC" in report and "[" in table[0]
    assert "robustness.png" in report


def test_scores_match_the_model(model_dir, data, tmp_path):
    """predictions.csv holds the model's own fake probability for each image."""
    import torch
    from transformers import AutoImageProcessor

    evaluate_model(model_dir, {"s": data / "stills"}, tmp_path / "e", n_resamples=0, plots=False)
    rows = list(csv.DictReader(open(tmp_path / "e" / "predictions.csv")))
    model = tiny_detector("vit", seed=3)
    processor = AutoImageProcessor.from_pretrained(model_dir)
    images = [Image.open(row["path"]).convert("RGB") for row in rows]
    with torch.no_grad():
        probabilities = model(**processor(images=images, return_tensors="pt")).logits.softmax(-1)[:, 1]
    assert [float(r["score"]) for r in rows] == pytest.approx(probabilities.tolist(), abs=1e-5)


def test_cli_evaluate_exit_codes(model_dir, data, tmp_path, capsys):
    from deepfake_hf.cli import main

    out = tmp_path / "cli"
    code = main(["evaluate", "--faces", "none", str(model_dir), str(data / "stills"), "--name",
                 f"vids={data / 'videos'}", "--out", str(out), "--bootstrap", "20", "--no-plots"])
    printed = capsys.readouterr().out
    assert code == 0 and "| stills |" in printed and "| vids |" in printed
    assert not list(out.glob("*.png"))
    # a non-empty output folder is not overwritten without --overwrite
    assert main(["evaluate", "--faces", "none", str(model_dir), str(data / "stills"), "--out", str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    # a broken source is reported in one line; the other test set is still evaluated (exit 2)
    code = main(["evaluate", "--faces", "none", str(model_dir), str(data / "stills"), str(tmp_path / "missing"),
                 "--out", str(tmp_path / "partial"), "--bootstrap", "0", "--no-plots"])
    err = capsys.readouterr().err
    assert code == 2 and "missing" in err and "Traceback" not in err
    assert list(json.loads((tmp_path / "partial" / "metrics.json").read_text())["test_sets"]) == ["stills"]
    assert main(["evaluate", "--faces", "none", str(model_dir), str(data / "stills"), "--out", str(tmp_path / "x"),
                 "--perturb", "jpeg:500"]) == 1
    # a manifest whose video has frames labelled both ways: that set is reported, not a traceback
    manifest = tmp_path / "mixed.csv"
    frames = sorted((data / "videos" / "real" / "m1" / "clip").glob("*.png"))
    manifest.write_text("path,label,group\n" + "".join(f"{p},{'real' if i else 'fake'},clip\n"
                                                         for i, p in enumerate(frames)))
    code = main(["evaluate", "--faces", "none", str(model_dir), str(data / "stills"), str(manifest),
                 "--out", str(tmp_path / "mixed"), "--bootstrap", "0", "--no-plots"])
    err = capsys.readouterr().err
    assert code == 2 and "both labels" in err and "Traceback" not in err


def test_perturbations():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
    pixels = np.asarray(image, dtype=float)
    for kind, strength in parse_perturbations(["jpeg:90,30", "resize:0.5", "blur:1", "noise:0.05"]):
        out = perturb(image, kind, strength)
        assert out.size == image.size and out.mode == "RGB"
        assert np.abs(np.asarray(out, dtype=float) - pixels).mean() > 1.0, kind
    # stronger settings degrade more
    error = lambda kind, s: np.abs(np.asarray(perturb(image, kind, s), dtype=float) - pixels).mean()  # noqa: E731
    assert error("jpeg", 30) > error("jpeg", 90) and error("blur", 2) > error("blur", 0.5)
    noise = np.asarray(perturb(Image.new("RGB", (64, 64), (128,) * 3), "noise", 0.05), dtype=float) / 255
    assert noise.std() == pytest.approx(0.05, rel=0.15)
    for bad in ("jpeg", "zoom:2", "resize:2", "blur:x"):
        with pytest.raises(EvaluationError):
            parse_perturbations([bad])


def test_named_sources():
    assert parse_named_sources(["a/real_fake", "b/real_fake/", "x.csv"], ["cdf=c.json"]) == {
        "real_fake": "a/real_fake", "real_fake-2": "b/real_fake/", "x": "x.csv", "cdf": "c.json"}
    with pytest.raises(EvaluationError, match="NAME=DATA"):
        parse_named_sources([], ["nothing"])


@pytest.mark.slow  # decodes the shared real media (10-20 s): outside the 90 s fast subset
def test_evaluate_on_shared_media(shared_media, model_dir, tmp_path):
    out = tmp_path / "shared"
    result = evaluate_model(model_dir, {"shared": shared_media / "manifest.csv"}, out, num_frames=2,
                            n_resamples=20)
    entry = result["test_sets"]["shared"]
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert entry["frame"]["n"] == len(rows) > 0
    assert entry["frame"]["n_real"] > 0 and entry["frame"]["n_fake"] > 0
    assert entry["video"] is not None and entry["video"]["n"] == len({r["video"] for r in rows})
    # the manifest's video id 000_003 repeats under DF, F2F, FS and NT: full folder paths keep them apart
    faces = {r["video"] for r in rows if "/faces/" in r["path"]}
    assert len(faces) > len({r["group"] for r in rows if "/faces/" in r["path"]})
    assert all(key.startswith(str(shared_media)) for key in faces)
    videos = [r for r in rows if r["path"].endswith(".mp4")]
    assert all(r["video"] == r["path"] for r in videos)
    assert entry["per_method"]
    for name in ("roc.png", "score_histograms.png", "reliability.png"):
        assert_valid_png(out / name)


def test_video_keys_use_full_paths():
    from deepfake_hf.evaluation.testsets import video_keys

    rows = [  # (path, group, expected video key)
        ("/d/DF/000_003/0.png", "000_003", "/d/DF/000_003"),  # one video id under two methods: two videos
        ("/d/DF/000_003/1.png", "000_003", "/d/DF/000_003"),
        ("/d/F2F/000_003/0.png", "000_003", "/d/F2F/000_003"),
        ("/d/v/a.mp4", "a", "/d/v/a.mp4"),  # frames of a video file
        ("/d/v/a.mp4", "a", "/d/v/a.mp4"),
        ("/d/real/x.png", "/d/real/x.png", "/d/real/x.png"),  # stills: each its own item
        ("/d/real/y.png", "/d/real/y.png", "/d/real/y.png"),
        ("/d/flat/0.png", "v1", "/d/flat#v1"),  # one folder, two videos by group
        ("/d/flat/1.png", "v2", "/d/flat#v2"),
        ("/d/flat/2.png", "v1", "/d/flat#v1"),
        ("/d/flat/3.png", "v2", "/d/flat#v2"),
    ]
    paths, groups, expected = zip(*rows)
    assert video_keys(paths, groups) == list(expected)


# ------------------------------------------------------------------------- per-method intervals, ROC legend
def per_method_data(seed=0):
    """10 real videos and 10 fake videos per method (A, B), 3 frames each; fakes score higher with noise."""
    rng = np.random.default_rng(seed)
    labels, scores, groups, methods = [], [], [], []
    for label, method, shift in ((0, "", 0.0), (1, "A", 0.3), (1, "B", 0.1)):
        for video in range(10):
            for _ in range(3):
                labels.append(label)
                scores.append(float(np.clip(0.4 + shift + rng.normal(0, 0.15), 0, 1)))
                groups.append(f"/{method or 'real'}/{video}")
                methods.append(method)
    return labels, scores, groups, methods


def test_per_method_intervals_resample_videos_like_the_overall_ones():
    from deepfake_hf.evaluation.metrics import bootstrap_ci
    from deepfake_hf.evaluation.testsets import test_set_metrics

    labels, scores, groups, methods = per_method_data()
    entry = test_set_metrics(labels, scores, groups, methods, threshold=0.5, n_resamples=200, seed=1)
    rows = [i for i, m in enumerate(methods) if m in ("", "A")]
    method_a = entry["per_method"]["A"]
    for level in ("frame", "video"):
        for key in ("auroc", "ap", "eer", "accuracy"):
            low, high = method_a[level]["ci"][key]
            assert low <= method_a[level][key] <= high, (level, key)
        assert method_a[level]["ci_reasons"] == {}
    # the frame interval is the overall rule (whole videos resampled) applied to this method's rows
    expected = bootstrap_ci(np.asarray(labels)[rows], np.asarray(scores)[rows], np.asarray(groups)[rows],
                            threshold=0.5, n_resamples=200, seed=1)
    assert method_a["frame"]["ci"] == expected
    assert entry["per_method"]["B"]["frame"]["ci"]["auroc"] != method_a["frame"]["ci"]["auroc"]


def test_missing_per_method_intervals_say_why(tmp_path):
    from deepfake_hf.evaluation.report import render_report
    from deepfake_hf.evaluation.testsets import test_set_metrics

    labels, scores, groups, methods = per_method_data()
    no_bootstrap = test_set_metrics(labels, scores, groups, methods, threshold=0.5, n_resamples=0)
    assert no_bootstrap["per_method"]["A"]["frame"]["ci"]["auroc"] is None
    assert no_bootstrap["per_method"]["A"]["frame"]["ci_reasons"]["auroc"] == "no bootstrap resamples (--bootstrap 0)"
    # two fake methods and no real videos: a method alone has one class, so no AUROC and no interval
    fakes = [i for i, label in enumerate(labels) if label == 1]
    only_fakes = test_set_metrics(*([np.asarray(column)[fakes] for column in (labels, scores, groups, methods)]),
                                  threshold=0.5, n_resamples=50)
    reasons = only_fakes["per_method"]["A"]["video"]["ci_reasons"]
    assert reasons["auroc"] == "only one class present (fake only)" and "accuracy" not in reasons
    result = {"model": "m", "threshold": 0.5, "calibration_temperature": 1.0, "video_aggregation": "mean",
              "test_sets": {"set": only_fakes}}
    report = render_report(result)
    assert "No interval: " in report and "set A video: only one class present (fake only)" in report


def test_roc_legend_does_not_cover_the_curves():
    from deepfake_hf.evaluation.report import roc_figure

    labels, scores, _, _ = per_method_data()
    labels, scores = np.asarray(labels), np.asarray(scores)
    curves = {f"test set {k}": (labels, np.clip(scores + 0.05 * k, 0, 1)) for k in range(4)}
    figure, axis, legend = roc_figure(curves)
    figure.tight_layout()
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    plot_area = axis.get_tightbbox(renderer)  # the curves, ticks and axis labels
    box = legend.get_window_extent(renderer)
    assert box.y1 <= plot_area.y0  # entirely below the plot, nothing drawn over
    assert [text.get_text() for text in legend.get_texts()][:4] == [
        f"test set {k} (AUROC {binary_metrics(*curves[f'test set {k}'])['auroc']:.3f})" for k in range(4)]
    import matplotlib.pyplot as plt

    plt.close(figure)
