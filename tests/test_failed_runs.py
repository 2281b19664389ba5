"""A command that fails before producing its results leaves nothing it created, and never removes what the
user had in its output folder (issue 19, finding 17)."""

import json

import pytest

from deepfake_hf.cli import main

from .conftest import write_image


def files_below(folder):
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*"))


def stills_sharing_a_video_id(tmp_path):
    """A manifest whose two stills name one video: their crops would share a folder, which preprocess refuses."""
    for index in range(3):
        write_image(tmp_path / "src" / f"{index}.png", size=(64, 64), seed=index)
    manifest = tmp_path / "src" / "list.csv"
    manifest.write_text("path,label,video_id\n0.png,real,a\n1.png,fake,b\n2.png,fake,b\n")
    return manifest


def test_failed_preprocess_leaves_no_output_folder(tmp_path):
    from deepfake_hf.data.preprocess import PreprocessError, preprocess

    from .test_preprocess import CentreFace

    manifest = stills_sharing_a_video_id(tmp_path)
    out = tmp_path / "crops"
    with pytest.raises(PreprocessError, match="would share the crop folder"):
        preprocess([manifest], out, faces=CentreFace(), num_frames=1, size=64, progress=False)
    assert not out.exists()


def test_failed_preprocess_keeps_what_the_user_had_in_the_folder(tmp_path):
    from deepfake_hf.data.preprocess import PreprocessError, preprocess

    from .test_preprocess import CentreFace

    manifest = stills_sharing_a_video_id(tmp_path)
    out = tmp_path / "crops"
    write_image(out / "mine" / "keep.png", size=(16, 16))
    (out / "notes.txt").write_text("mine")
    before = {name: (out / name).stat().st_mtime_ns for name in files_below(out)}
    with pytest.raises(PreprocessError):
        preprocess([manifest], out, faces=CentreFace(), num_frames=1, size=64, progress=False, overwrite=True)
    assert {name: (out / name).stat().st_mtime_ns for name in files_below(out)} == before


def test_interrupted_preprocess_keeps_its_work_for_resume(tmp_path, monkeypatch):
    from deepfake_hf.data import preprocess as module

    from .test_preprocess import CentreFace

    for index in range(3):
        write_image(tmp_path / "src" / "real" / f"{index}.png", size=(64, 64), seed=index)
    real_crop = module._crop_video
    calls = []

    def crop_then_stop(*args, **kwargs):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real_crop(*args, **kwargs)

    monkeypatch.setattr(module, "_crop_video", crop_then_stop)
    out = tmp_path / "crops"
    with pytest.raises(KeyboardInterrupt):
        module.preprocess([tmp_path / "src"], out, faces=CentreFace(), num_frames=1, size=64, progress=False)
    assert any(name.endswith(".png") for name in files_below(out)) and list(out.glob("manifest.csv.part-*"))


def test_evaluate_with_a_missing_model_leaves_no_out_folder(tmp_path, capsys):
    write_image(tmp_path / "data" / "real" / "a.png", size=(40, 40))
    write_image(tmp_path / "data" / "fake" / "b.png", size=(40, 40), seed=1)
    out = tmp_path / "eval"
    assert main(["evaluate", str(tmp_path / "no-model"), str(tmp_path / "data"), "--out", str(out)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not out.exists()
    out.mkdir()  # an empty folder the user made stays
    assert main(["evaluate", str(tmp_path / "no-model"), str(tmp_path / "data"), "--out", str(out)]) == 1
    assert out.is_dir() and files_below(out) == []


def test_evaluate_with_no_usable_data_leaves_no_out_folder(tiny_model_dir, tmp_path, capsys):
    (tmp_path / "data" / "real").mkdir(parents=True)  # no media at all
    out = tmp_path / "eval"
    assert main(["evaluate", str(tiny_model_dir), str(tmp_path / "data"), "--out", str(out), "--faces", "none"]) == 1
    assert "no usable samples" in capsys.readouterr().err
    assert not out.exists()


def test_probe_with_unusable_data_leaves_no_out_folder(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "probe"
    assert main(["probe", str(tmp_path / "missing"), "--backbone", str(tiny_model_dir), "--out", str(out)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not out.exists()


def test_calibrate_that_fails_leaves_the_model_folder_as_it_was(tiny_model_dir, tmp_path, capsys):
    for index in range(2):
        write_image(tmp_path / "val" / "real" / f"{index}.png", size=(40, 40), seed=index)
    (tmp_path / "val" / "fake").mkdir()
    before = {name: (tiny_model_dir / name).read_bytes() for name in files_below(tiny_model_dir)}
    assert main(["calibrate", str(tiny_model_dir), str(tmp_path / "val"), "--faces", "none"]) == 1
    assert "both real and fake" in capsys.readouterr().err
    assert {name: (tiny_model_dir / name).read_bytes() for name in files_below(tiny_model_dir)} == before


def test_predict_that_fails_while_streaming_removes_its_part_file_and_folders(tiny_model_dir, tmp_path, monkeypatch):
    from deepfake_hf.scoring.detector import Detector
    from deepfake_hf.scoring.predict import predict

    images = [write_image(tmp_path / "in" / f"{index}.png", size=(40, 40), seed=index) for index in range(3)]
    real_finish = Detector._finish

    def finish_then_fail(self, record, frame_scores):
        if record["position"] == 1:
            raise RuntimeError("disk full")
        return real_finish(self, record, frame_scores)

    monkeypatch.setattr(Detector, "_finish", finish_then_fail)
    out = tmp_path / "new" / "folder" / "scores.jsonl"
    with pytest.raises(RuntimeError, match="disk full"):
        predict(str(tiny_model_dir), images, faces="none", fmt="jsonl", out=out)
    assert not (tmp_path / "new").exists()


def test_predict_that_fails_on_resume_keeps_the_earlier_part(tiny_model_dir, tmp_path, capsys):
    images = [write_image(tmp_path / "in" / f"{index}.png", size=(40, 40), seed=index) for index in range(2)]
    out = tmp_path / "scores.jsonl"
    part = tmp_path / "scores.jsonl.part-00000-of-00001"
    part.write_text("".join(json.dumps({"index": index, "row": {}}) + "\n" for index in range(5)))
    code = main(["predict", str(tiny_model_dir), *map(str, images), "--faces", "none", "--format", "jsonl", "--out",
                 str(out), "--resume"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "holds more results than there are inputs" in err[0], err
    assert part.read_text().count("\n") == 5 and not out.exists()
