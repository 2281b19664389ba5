"""`deepfake-hf predict`: formats, exit codes 0/2/1, bad inputs reported one line each, inputs untouched."""

import csv
import hashlib
import io
import json

import pytest

from deepfake_hf.cli import main

from .conftest import tiny_detector, write_image
from .media_samples import BAD_CASES, write_bad_inputs, write_video


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict") / "model"
    tiny_detector("vit", num_frames=4).save_pretrained(folder)
    return folder


def snapshot(folder):
    return {
        path.relative_to(folder).as_posix(): (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(folder.rglob("*"))
    }


def run(capsys, *argv):
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_all_good_exit_0_json(model_dir, tmp_path, capsys):
    image = write_image(tmp_path / "face.png", size=(64, 64))
    video = write_video(tmp_path / "clip.mp4", frames=10)
    code, out, err = run(capsys, model_dir, image, video, "--format", "json", "--faces", "none", "--frames", "3")
    assert code == 0, err
    report = json.loads(out)
    assert report["summary"] == {"files": 2, "scored": 2, "failed": 0, "fake": report["summary"]["fake"],
                                 "real": report["summary"]["real"], "no_face": 0}
    kinds = {row["kind"]: row for row in report["results"]}
    assert kinds["video"]["frames"] == 3 and kinds["image"]["frames"] == 1
    assert all(0.0 <= row["fake_probability"] <= 1.0 and row["error"] is None for row in report["results"])


def test_mixed_folder_exit_2_each_bad_file_one_line_and_nothing_modified(model_dir, tmp_path, capsys):
    folder = tmp_path / "mixed"
    cases = write_bad_inputs(folder)
    (folder / "readme.txt").write_text("not media: skipped inside folders")
    before = snapshot(folder)
    code, out, err = run(capsys, model_dir, folder, "--faces", "none", "--format", "json")
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


def test_unsupported_missing_and_url_inputs_fail_alone(model_dir, tmp_path, capsys):
    good = write_image(tmp_path / "ok.png", size=(64, 64))
    odd = tmp_path / "data.xyz"
    odd.write_text("1,2")
    code, out, err = run(capsys, model_dir, good, odd, tmp_path / "gone.mp4", "http://example.com/v.mp4",
                         "--faces", "none", "--format", "csv")
    assert code == 2
    rows = {row["path"]: row for row in csv.DictReader(io.StringIO(out))}
    assert rows[str(good)]["label"] in ("real", "fake")
    assert "unsupported file type .xyz" in rows[str(odd)]["error"]
    assert "no such file" in rows[str(tmp_path / "gone.mp4")]["error"]
    assert "URLs are not supported" in rows["http://example.com/v.mp4"]["error"]
    assert len([line for line in err.splitlines() if line.startswith("error: ")]) == 3


def test_table_output_and_output_file(model_dir, tmp_path, capsys):
    images = [write_image(tmp_path / "in" / f"{i}.png", size=(64, 64), seed=i) for i in range(2)]
    code, out, err = run(capsys, model_dir, tmp_path / "in", "--faces", "none")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["FILE", "KIND", "LABEL", "P(FAKE)"]
    assert lines[1].startswith("0.png") and lines[2].startswith("1.png")
    assert lines[-1].startswith("2 files: 2 scored")
    target = tmp_path / "results.csv"
    assert run(capsys, model_dir, *images, "--faces", "none", "--format", "csv", "--out", target)[0] == 0
    assert len(list(csv.DictReader(target.open()))) == 2
    code, _, err = run(capsys, model_dir, *images, "--out", target)
    assert code == 1 and "--overwrite" in err
    assert run(capsys, model_dir, *images, "--faces", "none", "--out", target, "--overwrite")[0] == 0
    assert target.read_text().startswith("FILE")


def test_frame_scores_on_request(model_dir, tmp_path, capsys):
    video = write_video(tmp_path / "clip.mp4", frames=10)
    code, out, _ = run(capsys, model_dir, video, "--faces", "none", "--frames", "3", "--format", "json",
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
def test_usage_errors_exit_1(model_dir, tmp_path, capsys, argv, message):
    image = write_image(tmp_path / "a.png", size=(64, 64))
    with pytest.raises(SystemExit) as caught:
        main(["predict", str(model_dir), str(image), *argv])
    assert caught.value.code == 1
    assert message in capsys.readouterr().err


def test_missing_model_and_empty_folder_exit_1(model_dir, tmp_path, capsys):
    image = write_image(tmp_path / "a.png", size=(64, 64))
    code, _, err = run(capsys, tmp_path / "no-model", image)
    assert code == 1 and "no such model folder" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, model_dir, tmp_path / "empty")
    assert code == 1 and "no image or video files" in err


def test_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["predict", "--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert "exit codes" in text and "2  some inputs failed" in text and "URLs are refused" in text


@pytest.mark.slow  # decodes the shared real media (10-20 s): outside the 90 s fast subset
def test_predict_over_shared_media(model_dir, shared_media, capsys):
    """One result per media file of the real samples, no errors, faces found in every video."""
    from deepfake_hf.faces import dlib_available
    from deepfake_hf.media import list_media_files

    faces = "dlib" if dlib_available() else "none"
    code, out, err = run(capsys, model_dir, shared_media, "--faces", faces, "--frames", "4", "--format", "json",
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
