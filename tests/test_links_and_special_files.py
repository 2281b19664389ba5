"""Symbolic links to folders are followed (a linked layout gives what the same layout copied gives), loops and
duplicate links are reported and counted, and FIFOs / devices given or found as inputs are refused in one line
instead of blocking the reader (issue 19, findings 12 and 16)."""

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from deepfake_hf.cli import main
from deepfake_hf.media import list_media_files

from .conftest import write_image


def linked_and_copied(tmp_path):
    """The same evaluate layout twice: `linked` reaches its method folders and one frame folder through
    symbolic links to folders kept elsewhere (`store`), `copied` holds copies of them."""
    store = tmp_path / "store"
    for index in range(4):
        write_image(store / "originals" / f"r{index}.png", size=(40, 40), seed=index)
    for video in ("v1", "v2"):
        for frame in range(3):
            write_image(store / "deepfakes" / video / f"{frame:03d}.png", size=(40, 40), seed=100 + frame + len(video))
            write_image(store / "frames" / video / f"{frame:03d}.png", size=(40, 40), seed=200 + frame)
    linked = tmp_path / "linked"
    write_image(linked / "real" / "own.png", size=(40, 40), seed=7)
    write_image(linked / "fake" / "own.png", size=(40, 40), seed=8)
    (linked / "real" / "originals").symlink_to(store / "originals", target_is_directory=True)
    (linked / "fake" / "Deepfakes").symlink_to(store / "deepfakes", target_is_directory=True)
    (linked / "real" / "clip").symlink_to(store / "frames" / "v1", target_is_directory=True)  # a frame folder
    copied = tmp_path / "copied"
    shutil.copytree(linked, copied, symlinks=False)  # follows the links: real folders with the same files
    assert not any(path.is_symlink() for path in copied.rglob("*"))
    return linked, copied


def relative(paths, root):
    return [Path(path).relative_to(root).as_posix() for path in paths]


# --------------------------------------------------------------------------------------------- listing
def test_listing_follows_links_to_folders_as_a_copy_lists_them(tmp_path):
    linked, copied = linked_and_copied(tmp_path)
    skipped = []
    names = relative(list_media_files([linked], skipped=skipped), linked)
    assert names == relative(list_media_files([copied]), copied)
    assert "fake/Deepfakes/v1/000.png" in names and "real/clip/002.png" in names and not skipped


def test_listing_reports_loops_and_duplicate_links_once_each(tmp_path):
    root = tmp_path / "in"
    write_image(root / "a" / "0.png", size=(16, 16))
    write_image(root / "b" / "1.png", size=(16, 16))
    (root / "a" / "up").symlink_to(root, target_is_directory=True)  # a loop: leads back above itself
    (root / "b" / "again").symlink_to(root / "a", target_is_directory=True)  # a folder listed already
    skipped = []
    names = relative(list_media_files([root], skipped=skipped), root)
    assert names == ["a/0.png", "b/1.png"]  # every file once, and the walk ends
    problems = {path.relative_to(root).as_posix(): problem for path, problem in skipped}
    assert problems.keys() == {"a/up", "b/again"}
    assert problems["a/up"].startswith("symbolic link loop") and str(root) in problems["a/up"]
    assert "listed already" in problems["b/again"] and str(root / "a") in problems["b/again"]


def test_listing_reports_broken_links_and_fifos_it_cannot_read(tmp_path):
    root = tmp_path / "in"
    write_image(root / "ok.png", size=(16, 16))
    (root / "gone").symlink_to(tmp_path / "nowhere", target_is_directory=True)  # was it a folder of media?
    os.mkfifo(root / "pipe.jpg")
    skipped = []
    assert relative(list_media_files([root], skipped=skipped), root) == ["ok.png"]
    problems = {path.name: problem for path, problem in skipped}
    assert "broken symbolic link" in problems["gone"]
    assert problems["pipe.jpg"] == "is a FIFO (named pipe), not a regular file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder")
def test_listing_reports_an_unreadable_folder(tmp_path):
    root = tmp_path / "in"
    write_image(root / "locked" / "0.png", size=(16, 16))
    (root / "locked").chmod(0)
    try:
        skipped = []
        assert list_media_files([root], skipped=skipped) == []
        assert [(path.name, "permission denied" in problem) for path, problem in skipped] == [("locked", True)]
    finally:
        (root / "locked").chmod(0o755)


# --------------------------------------------------------------------------------------------- data sources
def test_data_source_through_links_gives_the_copied_rows(tmp_path):
    from deepfake_hf.data.datasets import load_source

    linked, copied = linked_and_copied(tmp_path)

    def rows(root):
        dataset = load_source(root, cache_dir=False, verbose=False)
        return sorted((Path(path).relative_to(root).as_posix(), Path(group).relative_to(root).as_posix(), label,
                       method, frame) for path, group, label, method, frame in
                      zip(dataset["path"], dataset["group"], dataset["label"], dataset["method"], dataset["frame"]))

    linked_rows = rows(linked)
    assert linked_rows == rows(copied)
    assert sum(row[2] == 0 for row in linked_rows) == 4 + 1 + 3  # linked stills, own still, linked frame folder
    assert {row[3] for row in linked_rows if row[2] == 1} == {"", "Deepfakes"}


def test_evaluate_on_a_linked_layout_matches_the_copy(tiny_model_dir, tmp_path, capsys):
    linked, copied = linked_and_copied(tmp_path)
    metrics = {}
    for name, root in (("linked", linked), ("copied", copied)):
        out = tmp_path / f"eval-{name}"
        assert main(["evaluate", str(tiny_model_dir), str(root), "--out", str(out), "--faces", "none", "--bootstrap",
                     "0", "--no-plots"]) == 0, capsys.readouterr().err
        metrics[name] = json.loads((out / "metrics.json").read_text())["test_sets"][root.name]
    assert metrics["linked"]["frame"]["n"] == metrics["copied"]["frame"]["n"] == 4 + 2 + 3 + 6
    assert metrics["linked"]["frame"]["auroc"] == pytest.approx(metrics["copied"]["frame"]["auroc"])
    assert metrics["linked"]["video"]["n"] == metrics["copied"]["video"]["n"]


def test_a_loop_in_a_data_source_is_skipped_with_a_line_and_counted(tmp_path, caplog):
    import logging

    from deepfake_hf.data.datasets import load_source

    root = tmp_path / "data"
    write_image(root / "real" / "a.png", size=(40, 40))
    write_image(root / "fake" / "b.png", size=(40, 40), seed=1)
    (root / "fake" / "loop").symlink_to(root / "fake", target_is_directory=True)
    with caplog.at_level(logging.WARNING, logger="deepfake_hf.data.datasets"):
        dataset, report = load_source(root, cache_dir=False, verbose=False, return_report=True)
    assert len(dataset) == 2 and report["counts"]["skipped"] == 1
    assert f"skipping {root / 'fake' / 'loop'}: symbolic link loop" in caplog.text


def test_preprocess_through_links_writes_the_copied_manifest(tmp_path):
    from deepfake_hf.data.preprocess import preprocess

    from .test_preprocess import CentreFace, read_manifest

    linked, copied = linked_and_copied(tmp_path)
    manifests = {}
    for name, root in (("linked", linked), ("copied", copied)):
        summary = preprocess([root], tmp_path / f"crops-{name}", faces=CentreFace(), num_frames=2, size=64,
                             progress=False, dataset="set")
        assert summary["skipped"] == 0
        manifests[name] = read_manifest(tmp_path / f"crops-{name}")
    assert manifests["linked"] == manifests["copied"] and len(manifests["linked"]) > 10


# --------------------------------------------------------------------------------------------- predict
def test_predict_scores_linked_folders_and_counts_a_loop_as_failed(tiny_model_dir, tmp_path, capsys):
    root = tmp_path / "in"
    write_image(root / "own.png", size=(40, 40))
    write_image(tmp_path / "elsewhere" / "far.png", size=(40, 40), seed=1)
    (root / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)
    code = main(["predict", str(tiny_model_dir), str(root), "--faces", "none", "--format", "json"])
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert code == 2
    assert {row["path"]: row["error"] is None for row in report["results"]} == {
        str(root / "own.png"): True, str(root / "linked" / "far.png"): True, str(root / "loop"): False}
    assert report["summary"]["files"] == 3 and report["summary"]["failed"] == 1
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {root / 'loop'}: symbolic link loop")


# --------------------------------------------------------------------------------------------- FIFOs
def release(fifo):
    """Open `fifo` for writing and close it, so a reader that did block on it gets EOF (the test then fails
    on its assertion instead of hanging)."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def finishes(function, fifo, seconds=60):
    """function()'s result, run in a thread; fails (after unblocking the FIFO) if it does not return in time."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", function()), daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        release(fifo)
        thread.join(10)
        pytest.fail(f"blocked on the FIFO {fifo} for {seconds} s")
    return result.get("value")


def test_evaluate_refuses_a_fifo_manifest_in_one_line(tiny_model_dir, tmp_path, capsys):
    fifo = tmp_path / "manifest.csv"
    os.mkfifo(fifo)
    out = tmp_path / "eval"
    code = finishes(lambda: main(["evaluate", str(tiny_model_dir), str(fifo), "--out", str(out), "--faces", "none"]),
                    fifo)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert f"{fifo}: is a FIFO (named pipe), not a regular file" in err[0]
    assert not out.exists()


def test_preprocess_refuses_a_fifo_source(tmp_path):
    from deepfake_hf.data.datasets import DataSourceError
    from deepfake_hf.data.preprocess import preprocess

    from .test_preprocess import CentreFace

    fifo = tmp_path / "videos.jsonl"
    os.mkfifo(fifo)

    def run():
        with pytest.raises(DataSourceError) as caught:
            preprocess([fifo], tmp_path / "crops", faces=CentreFace(), progress=False)
        return str(caught.value)

    assert finishes(run, fifo) == (f"{fifo}: is a FIFO (named pipe), not a regular file; give a folder, a .csv/.jsonl "
                                   "manifest or a DeepfakeBench .json")
    assert not (tmp_path / "crops").exists()


def test_a_fifo_in_a_manifest_or_a_data_folder_is_skipped_and_counted(tmp_path, caplog):
    import logging

    from deepfake_hf.data.datasets import load_source

    root = tmp_path / "data"
    write_image(root / "real" / "a.png", size=(40, 40))
    write_image(root / "fake" / "b.png", size=(40, 40), seed=1)
    os.mkfifo(root / "fake" / "pipe.png")
    manifest = tmp_path / "list.csv"
    manifest.write_text(f"path,label\n{root / 'real' / 'a.png'},real\n{root / 'fake' / 'pipe.png'},fake\n"
                        f"{root / 'fake' / 'b.png'},fake\n")
    for source in (root, manifest):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="deepfake_hf.data.datasets"):
            dataset, report = finishes(
                lambda source=source: load_source(source, cache_dir=False, verbose=False, return_report=True),
                root / "fake" / "pipe.png")
        assert len(dataset) == 2 and report["counts"]["skipped"] == 1, source
        assert f"skipping {root / 'fake' / 'pipe.png'}: is a FIFO (named pipe), not a regular file" in caplog.text


def test_predict_refuses_a_fifo_input_and_scores_the_rest(tiny_model_dir, tmp_path, capsys):
    image = write_image(tmp_path / "ok.png", size=(40, 40))
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    code = finishes(lambda: main(["predict", str(tiny_model_dir), str(image), str(fifo), "--faces", "none",
                                  "--format", "csv"]), fifo)
    out, err = capsys.readouterr()
    assert code == 2
    assert [line for line in err.splitlines() if line.startswith("error: ")] == [
        f"error: {fifo}: is a FIFO (named pipe), not a regular file"]
    assert out.count("\n") == 3  # header and both files


def test_evaluate_counts_what_it_skipped(tiny_model_dir, tmp_path, capsys, caplog):
    import logging

    root = tmp_path / "data"
    for index in range(2):
        write_image(root / "real" / f"{index}.png", size=(40, 40), seed=index)
        write_image(root / "fake" / f"{index}.png", size=(40, 40), seed=10 + index)
    (root / "fake" / "loop").symlink_to(root / "fake", target_is_directory=True)
    out = tmp_path / "eval"
    with caplog.at_level(logging.WARNING, logger="deepfake_hf.data.datasets"):
        assert main(["evaluate", str(tiny_model_dir), str(root), "--out", str(out), "--faces", "none", "--bootstrap",
                     "0", "--no-plots"]) == 0
    assert f"skipping {root / 'fake' / 'loop'}: symbolic link loop" in caplog.text
    assert "data: 1 file skipped (one line each above)" in capsys.readouterr().err.splitlines()
    assert json.loads((out / "metrics.json").read_text())["test_sets"]["data"]["files_skipped"] == 1
