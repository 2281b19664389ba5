"""deepfake_hf.data.datasets: sources (folders, manifests, videos, DeepfakeBench JSON), the Arrow cache, group-aware
splits."""

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from deepfake_hf.data import datasets as data
from deepfake_hf.data.datasets import DataSourceError, linked_groups, load_source, split_by_group

from .conftest import write_image


def rows(dataset):
    """The dataset without its image column, as a list of dicts."""
    return dataset.remove_columns("image").to_list()


@pytest.fixture
def folder(tmp_path):
    """real/ stills, fake/ stills, a method folder of frame folders, a bad file and a non-media file."""
    root = tmp_path / "source"
    for i in range(4):
        write_image(root / "real" / f"{i:03d}.png", seed=i)
    for i in range(2):
        write_image(root / "fake" / f"photo{i}.jpg", seed=10 + i)
    for video in ("000_001", "002_003"):
        for frame in (0, 5, 10):
            write_image(root / "fake" / "Deepfakes" / video / f"{frame:03d}.png", seed=frame)
    (root / "fake" / "broken.png").write_bytes(b"not an image at all")
    (root / "real" / "notes.txt").write_text("ignored")
    return root


def test_folder_source_columns_labels_groups_and_bad_file(folder, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="deepfake_hf.data.datasets"):
        dataset, report = load_source(folder, cache_dir=tmp_path / "cache", return_report=True, verbose=False)
    assert list(dataset.features) == list(data.COLUMNS)
    by_path = {row["path"]: row for row in rows(dataset)}
    assert len(by_path) == 4 + 2 + 6
    real = by_path[str(folder / "real" / "001.png")]
    assert (real["label"], real["group"], real["method"], real["frame"]) == (0, real["path"], "", -1)
    frame = by_path[str(folder / "fake" / "Deepfakes" / "002_003" / "010.png")]
    assert (frame["label"], frame["method"], frame["frame"]) == (1, "Deepfakes", 10)
    assert frame["group"] == str(folder / "fake" / "Deepfakes" / "002_003")
    assert by_path[str(folder / "fake" / "photo1.jpg")]["method"] == ""
    # One warning line naming the bad file; counted, and the rest loaded.
    warnings = [r.getMessage() for r in caplog.records if "broken.png" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0] and str(folder / "fake" / "broken.png") in warnings[0]
    assert report["counts"]["skipped"] == 1 and report["counts"]["ignored_non_media"] == 1
    assert report["balance"] == {"rows": 12, "real": 4, "fake": 8, "fake_fraction": round(8 / 12, 4), "groups": 8,
                                 "methods": {"-": 6, "Deepfakes": 6}}
    # Images decode to what was written (the JPEG's own bytes are kept, not re-encoded).
    from PIL import Image

    stored = dataset[next(i for i, r in enumerate(rows(dataset)) if r["path"].endswith("photo1.jpg"))]["image"]
    assert np.array_equal(np.asarray(stored), np.asarray(Image.open(folder / "fake" / "photo1.jpg").convert("RGB")))


def test_label_map_names_method_and_frame_sampling(tmp_path):
    root = tmp_path / "ff"
    for frame in range(10):
        write_image(root / "original" / "000" / f"{frame:03d}.png", seed=frame)
        write_image(root / "NT" / "000_003" / f"{frame:03d}.png", seed=frame)
    write_image(root / "unmapped" / "x.png")
    dataset = load_source(root, label_map={"original": "real", "NT": 1}, num_frames=4, cache_dir=False, verbose=False)
    table = rows(dataset)
    assert sorted({(r["label"], r["method"]) for r in table}) == [(0, "original"), (1, "NT")]
    assert not any("unmapped" in r["path"] for r in table)
    # 4 of 10 frames per folder, spread over the whole folder (first and last included).
    assert sorted(r["frame"] for r in table if r["label"] == 1) == [0, 3, 6, 9]


def test_manifests_csv_and_jsonl(tmp_path, caplog):
    media = tmp_path / "m"
    for name in ("a.png", "b.png", "c.png", "d.png"):
        write_image(media / name, seed=len(name) + ord(name[0]))
    csv_path = media / "list.csv"
    csv_path.write_text(
        "path,label,group,method\n"
        "a.png,real,vid1,\n"
        "b.png,FAKE,vid1,Deepfakes\n"
        f"{media / 'c.png'},0,,\n"
        "d.png,maybe,,\n"
        "missing.png,1,,\n"
    )
    with caplog.at_level(logging.WARNING, logger="deepfake_hf.data.datasets"):
        dataset, report = load_source(csv_path, cache_dir=tmp_path / "cache", return_report=True, verbose=False)
    table = {Path(r["path"]).name: r for r in rows(dataset)}
    assert set(table) == {"a.png", "b.png", "c.png"}
    assert (table["a.png"]["label"], table["a.png"]["group"]) == (0, "vid1")
    assert (table["b.png"]["label"], table["b.png"]["method"]) == (1, "Deepfakes")
    assert table["c.png"]["group"] == str(media / "c.png")  # no group given: the file itself
    assert report["counts"]["skipped"] == 2
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "d.png" in messages and "'maybe'" in messages and "missing.png" in messages

    jsonl = media / "list.jsonl"
    jsonl.write_text(json.dumps({"path": "a.png", "label": 1, "video_id": "v"}) + "\n\n"
                     + json.dumps({"path": "c.png", "label": "real"}) + "\n")
    table = {Path(r["path"]).name: r for r in rows(load_source(jsonl, cache_dir=False, verbose=False))}
    assert (table["a.png"]["label"], table["a.png"]["group"], table["c.png"]["label"]) == (1, "v", 0)

    # A row may name a folder of one video's frames: num_frames of them, grouped by the folder.
    for k in range(6):
        write_image(media / "clip" / f"{k:03d}.png", seed=k)
    folder_manifest = media / "folders.csv"
    folder_manifest.write_text("path,label\nclip,fake\nempty_dir,real\n")
    (media / "empty_dir").mkdir()
    table = rows(load_source(folder_manifest, num_frames=3, cache_dir=False, verbose=False))
    assert [(r["frame"], r["group"], r["label"]) for r in table] == [(k, str(media / "clip"), 1) for k in (0, 2, 5)]

    # Labels mapped by label_map work in manifests too.
    mapped = media / "mapped.csv"
    mapped.write_text("path,label\na.png,original\nb.png,NeuralTextures\n")
    labels = [r["label"] for r in rows(load_source(mapped, label_map={"original": "real", "NeuralTextures": "fake"},
                                                   cache_dir=False, verbose=False))]
    assert labels == [0, 1]


def test_unusable_sources_raise_one_line_errors(tmp_path):
    (tmp_path / "nolabel.csv").write_text("file,kind\nx.png,image\n")
    with pytest.raises(DataSourceError, match="missing column.*label"):
        load_source(tmp_path / "nolabel.csv", cache_dir=False, verbose=False)
    (tmp_path / "other" / "cats").mkdir(parents=True)
    with pytest.raises(DataSourceError, match=r"no real/ or fake/ folders \(subfolders: cats\)"):
        load_source(tmp_path / "other", cache_dir=False, verbose=False)
    with pytest.raises(DataSourceError, match="no such file"):
        load_source(tmp_path / "absent", cache_dir=False, verbose=False)
    bad = tmp_path / "bad"
    (bad / "real").mkdir(parents=True)
    (bad / "fake").mkdir()
    (bad / "real" / "x.jpg").write_bytes(b"")
    (bad / "fake" / "y.png").write_text("text")
    with pytest.raises(DataSourceError, match=r"no usable samples \(2 files found, 2 skipped") as error:
        load_source(bad, cache_dir=tmp_path / "cache", verbose=False)
    assert "\n" not in str(error.value)


def test_cache_is_reused_without_decoding_and_invalidated_by_changes(folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first, report = load_source(folder, cache_dir=cache, return_report=True, verbose=False)
    assert not report["from_cache"] and (Path(report["cache"]) / "data.arrow").is_file()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(data, "_decode_entry", no_decoding)
    second, report = load_source(folder, cache_dir=cache, return_report=True, verbose=False)
    assert report["from_cache"] and rows(second) == rows(first)
    assert np.array_equal(np.asarray(second[3]["image"]), np.asarray(first[3]["image"]))
    # Other options or a changed file make a new cache entry.
    with pytest.raises(AssertionError, match="decoded again"):
        load_source(folder, cache_dir=cache, num_frames=2, verbose=False)
    changed = folder / "real" / "000.png"
    write_image(changed, seed=99)
    os.utime(changed, ns=(1, 1))
    with pytest.raises(AssertionError, match="decoded again"):
        load_source(folder, cache_dir=cache, verbose=False)
    monkeypatch.undo()
    load_source(folder, cache_dir=cache, verbose=False)
    assert len(list(cache.iterdir())) == 2  # the interrupted builds left nothing behind


# ------------------------------------------------------------------------------------------- splits
def fake_dataset(groups_and_labels, frames_per_group=3):
    import datasets
    from PIL import Image

    pixel = Image.new("RGB", (8, 8))
    records = [{"image": pixel, "label": label, "path": f"{group}/{frame}.png", "group": group, "method": "",
                "frame": frame} for group, label in groups_and_labels for frame in range(frames_per_group)]
    return datasets.Dataset.from_list(records, features=data.features())


def test_linked_groups_joins_ffpp_pairs_and_same_named_videos():
    groups = ["/d/original/000.mp4", "/d/original/003.mp4", "/d/Deepfakes/000_003.mp4", "/d/FaceSwap/000_003.mp4",
              "/d/original/010", "/d/original/011", "/d/NT/020_021", "/d/other/a_b.png"]
    component = linked_groups(groups)
    assert len({component[g] for g in groups[:4]}) == 1
    assert len({component[g] for g in groups}) == 1 + 2 + 1 + 1
    unlinked = linked_groups(groups, link_ids=False)
    assert unlinked["/d/original/000.mp4"] != unlinked["/d/Deepfakes/000_003.mp4"]
    assert unlinked["/d/Deepfakes/000_003.mp4"] == unlinked["/d/FaceSwap/000_003.mp4"]  # same source videos


def test_split_by_group_never_straddles_and_keeps_proportions(capsys):
    ids = [f"{i:03d}" for i in range(40)]
    pairs = [(f"/ff/original/{i}", 0) for i in ids]
    pairs += [(f"/ff/{method}/{ids[i]}_{ids[(i + 1) % 40]}", 1) for method in ("DF", "FS") for i in range(0, 40, 4)]
    pairs += [(f"/photos/real/{i}.png", 0) for i in range(30)] + [(f"/photos/fake/g{i}.png", 1) for i in range(30)]
    dataset = fake_dataset(pairs)
    splits = split_by_group(dataset, val_fraction=0.2, test_fraction=0.1, seed=3)
    assert list(splits) == ["train", "validation", "test"]
    assert sum(len(s) for s in splits.values()) == len(dataset)
    component = linked_groups(dataset["group"])
    seen = {}
    for name, split in splits.items():
        for group in split["group"]:
            assert seen.setdefault(component[group], name) == name, f"{group} straddles splits"
    # The fake 000_001 lives with the real videos 000 and 001.
    home = {g: name for name, split in splits.items() for g in split["group"]}
    assert home["/ff/DF/000_001"] == home["/ff/original/000"] == home["/ff/original/001"]
    for name, fraction in (("train", 0.7), ("validation", 0.2), ("test", 0.1)):
        labels = np.asarray(splits[name]["label"])
        assert abs(len(labels) / len(dataset) - fraction) < 0.06, name
        assert 0 < labels.mean() < 1, f"{name} has one class only"
    # The printed table names each split; the same seed gives the same split, another seed another.
    assert "validation" in capsys.readouterr().out
    again = split_by_group(dataset, 0.2, 0.1, seed=3, verbose=False)
    assert again["validation"]["path"] == splits["validation"]["path"]
    other = split_by_group(dataset, 0.2, 0.1, seed=4, verbose=False)
    assert other["validation"]["path"] != splits["validation"]["path"]
    report = data.split_report(splits, verbose=False)
    assert report["test"]["rows"] == len(splits["test"]) and report["train"]["fake"] == sum(splits["train"]["label"])


def test_split_by_group_small_inputs():
    dataset = fake_dataset([("a", 0), ("b", 1), ("c", 0)])
    splits = split_by_group(dataset, val_fraction=0.1, verbose=False)
    assert list(splits) == ["train", "validation"] and len(splits["validation"]) > 0
    with pytest.raises(ValueError, match="cannot split 1 independent group"):
        split_by_group(fake_dataset([("000", 0), ("000_001", 1), ("001", 0)]), val_fraction=0.5, verbose=False)
    with pytest.raises(ValueError, match="sum below 1"):
        split_by_group(dataset, val_fraction=0.6, test_fraction=0.5)


# ------------------------------------------------------------------------------------------- videos
def write_video(path, frames=20, size=(64, 48), seed=0):
    """An H.264 clip whose frame k has mean brightness ~ 10 * k (so sampled frames are identifiable)."""
    av = pytest.importorskip("av")
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for k in range(frames):
            pixels = np.clip(10 * k + rng.integers(-3, 4, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_video_folder_samples_frames_and_groups_by_video(tmp_path, caplog):
    root = tmp_path / "videos"
    write_video(root / "real" / "000.mp4", seed=1)
    write_video(root / "fake" / "Deepfakes" / "000_001.mp4", seed=2)
    (root / "fake" / "truncated.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 40)
    with caplog.at_level(logging.WARNING, logger="deepfake_hf.data.datasets"):
        dataset = load_source(root, num_frames=5, cache_dir=tmp_path / "cache", verbose=False)
    table = rows(dataset)
    assert len(table) == 10
    for video, label, method in (("real/000.mp4", 0, ""), ("fake/Deepfakes/000_001.mp4", 1, "Deepfakes")):
        frames = [r for r in table if r["path"] == str(root / video)]
        assert [r["frame"] for r in frames] == list(range(5))
        assert {(r["label"], r["group"], r["method"]) for r in frames} == {(label, str(root / video), method)}
    brightness = [np.asarray(dataset[i]["image"]).mean() for i in range(len(dataset)) if table[i]["label"] == 0]
    assert brightness == sorted(brightness) and brightness[-1] - brightness[0] > 100  # first to last frame
    assert sum("truncated.mp4" in r.getMessage() for r in caplog.records) == 1


# ------------------------------------------------------------------------------------------- DeepfakeBench
def test_deepfakebench_json(tmp_path):
    frames_root = tmp_path / "rgb"
    entries = {}
    for label_name, videos in (("FF-real", ["000", "001"]), ("FF-DF", ["000_001"])):
        entries[label_name] = {"train": {"c23": {}}, "test": {"c23": {}}, "val": {"c23": {}}}
        for video in videos:
            split = "test" if video == "001" else "train"
            paths = [write_image(frames_root / label_name / video / f"{k:03d}.png", seed=k) for k in range(8)]
            entries[label_name][split]["c23"][video] = {
                "label": label_name, "frames": [str(p.relative_to(tmp_path)) for p in paths]}
    bench = tmp_path / "FF-DF.json"
    bench.write_text(json.dumps({"FF-DF": entries}))
    everything = rows(load_source(bench, num_frames=4, cache_dir=False, verbose=False))
    assert len(everything) == 3 * 4
    assert {(r["method"], r["label"]) for r in everything} == {("FF-real", 0), ("FF-DF", 1)}
    assert {r["group"] for r in everything} == {str(frames_root / "FF-real" / "000"),
                                                str(frames_root / "FF-real" / "001"),
                                                str(frames_root / "FF-DF" / "000_001")}
    # DeepfakeBench's loader reads the first num_frames frames by frame number (its step is always 1)
    assert sorted({r["frame"] for r in everything}) == [0, 1, 2, 3]
    test_only = rows(load_source(f"{bench}#test", cache_dir=False, verbose=False))
    assert {r["group"] for r in test_only} == {str(frames_root / "FF-real" / "001")} and len(test_only) == 8


def test_deepfakebench_json_keeps_entries_sharing_a_folder_and_reads_windows_paths(tmp_path, caplog):
    # Ten videos whose frames lie in one flat folder (names "v{video}_{frame}.png"), listed with Windows
    # separators and in shuffled order; one extra video in the train split.
    flat = tmp_path / "crops"
    videos = {}
    for v in range(10):
        paths = [write_image(flat / f"v{v}_{k:03d}.png", seed=v * 10 + k) for k in (4, 0, 3, 1, 2)]
        videos[f"vid{v}"] = {"label": "Celeb-real" if v < 5 else "Celeb-synthesis",
                             "frames": ["crops\\" + p.name for p in paths]}
    train = {"extra": {"label": "Celeb-real", "frames": [str(write_image(flat / "x_000.png", seed=99))]}}
    bench = tmp_path / "Celeb-DF-v2.json"
    bench.write_text(json.dumps({"Celeb-DF-v2": {"all": {"train": train, "test": videos}}}))

    test_rows = rows(load_source(f"{bench}#test", num_frames=3, cache_dir=False, verbose=False))
    groups = {r["group"] for r in test_rows}
    assert len(groups) == 10 and len(test_rows) == 30  # every entry kept, none merged into one folder group
    assert groups == {f"{flat}/vid{v}" for v in range(10)}
    assert all(Path(r["path"]).is_file() and Path(r["path"]).parent == flat for r in test_rows)
    by_video = {}
    for r in test_rows:
        by_video.setdefault(r["group"], []).append(r["frame"])
    assert all(sorted(frames) == [0, 1, 2] for frames in by_video.values())  # first 3 by number, not as listed
    assert sum(r["label"] for r in test_rows) == 15

    # evaluate reads only the test split of a JSON without #split, and says so
    from deepfake_hf.evaluation.testsets import load_test_set

    with caplog.at_level(logging.WARNING, logger="deepfake_hf.data.datasets"):
        evaluated = rows(load_test_set(bench, num_frames=3, cache_dir=False))
    assert len(evaluated) == 30 and not any("x_000" in r["path"] for r in evaluated)
    assert any("'test' split" in record.getMessage() for record in caplog.records)
    # plain load_source without a split still reads every split (training data builders)
    assert len(rows(load_source(bench, num_frames=3, cache_dir=False, verbose=False))) == 31


# ------------------------------------------------------------------------------------------- real media
def test_shared_ffpp_faces(shared_media, tmp_path):
    faces = load_source(shared_media / "faces" / "FF", label_map={"DF": "fake", "F2F": "fake", "FS": "fake",
                                                                   "NT": "fake"}, cache_dir=tmp_path, verbose=False)
    table = rows(faces)
    expected = [line for line in (shared_media / "manifest.csv").read_text().splitlines() if ",image," in line]
    assert len(table) == len(expected)
    assert {r["method"] for r in table} == {"", "DF", "F2F", "FS", "NT"}
    assert faces[0]["image"].size == (256, 256)
    # Every fake crop of 000_003 is linked with the real video 000: one independent unit, no valid split.
    assert len(set(linked_groups(faces["group"]).values())) == 1


@pytest.mark.slow  # decodes all 7 shared FF++ clips (up to 1080p): ~3.5 s; fast: test_face_crops_from_shared_videos
def test_shared_ffpp_videos(shared_media, tmp_path):
    ffpp = shared_media / "videos" / "ffpp"
    label_map = {"original": "real", "Deepfakes": "fake", "Face2Face": "fake", "FaceSwap": "fake",
                 "NeuralTextures": "fake"}
    videos = load_source(ffpp, label_map=label_map, num_frames=2, cache_dir=tmp_path, verbose=False)
    assert len(videos) == 7 * 2 and sum(videos["label"]) == 4 * 2
    splits = split_by_group(videos, val_fraction=0.25, seed=0, verbose=False)
    home = {Path(g).stem: name for name, split in splits.items() for g in split["group"]}
    for fake, real in (("519_515", "519"), ("634_660", "634"), ("004_982", "004")):
        assert home[fake] == home[real]


def test_face_crops_from_shared_videos(shared_media, tmp_path, caplog):
    faces = pytest.importorskip("deepfake_hf.faces")
    if not faces.dlib_available():
        pytest.skip("dlib (the faces extra) is not installed")
    manifest = tmp_path / "videos.csv"
    manifest.write_text(f"path,label,method\n{shared_media / 'videos/ffpp/original/004.mp4'},real,\n"
                        f"{shared_media / 'videos/ffpp/NeuralTextures/004_982.mp4'},fake,NeuralTextures\n")
    write_image(tmp_path / "noise.png", size=(64, 64))
    with open(manifest, "a") as handle:
        handle.write("noise.png,real,\n")
    with caplog.at_level(logging.WARNING, logger="deepfake_hf.data.datasets"):
        dataset, report = load_source(manifest, faces="dlib", num_frames=2, face_size=128, cache_dir=tmp_path / "c",
                                      return_report=True, verbose=False)
    assert len(dataset) == 4 and {dataset[i]["image"].size for i in range(4)} == {(128, 128)}
    assert report["counts"]["files_without_face"] == 1 and report["counts"]["skipped"] == 1
    assert any("noise.png: no face found" in r.getMessage() for r in caplog.records)
    # An aligned crop is mostly face: skin-toned centre, unlike the whole 1280x720 studio frame.
    centre = np.asarray(dataset[0]["image"], dtype=float)[48:80, 48:80]
    assert centre[..., 0].mean() > centre[..., 2].mean()


def test_auto_faces_without_a_detector_uses_whole_frames(folder, tmp_path, monkeypatch, caplog):
    pytest.importorskip("deepfake_hf.faces")
    monkeypatch.setattr("deepfake_hf.faces.dlib.dlib_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="deepfake_hf.data.datasets"):
        auto = load_source(folder, faces="auto", cache_dir=tmp_path / "c", verbose=False)
    plain = load_source(folder, faces="none", cache_dir=tmp_path / "c", verbose=False)
    assert rows(auto) == rows(plain)
    assert len(list((tmp_path / "c").iterdir())) == 1  # the same cache entry: "auto" resolved to "none"
    assert any("no face detector installed" in r.getMessage() for r in caplog.records)


def test_frame_folders_use_the_one_frame_sampler(tmp_path):
    """Frame folders are sampled like videos (media.sample_frame_indices): nearest frame, ties to the earlier one
    (half-to-even rounding gave frame 10 here), and a short folder gives each frame once."""
    from deepfake_hf.media import sample_frame_indices

    root = tmp_path / "frames"
    for frame in range(20):
        write_image(root / "real" / "long" / f"{frame:03d}.png", seed=frame)
    for frame in range(3):
        write_image(root / "fake" / "short" / f"{frame:03d}.png", seed=frame)
    table = rows(load_source(root, num_frames=5, cache_dir=False, verbose=False))
    long = sorted(r["frame"] for r in table if r["group"].endswith("long"))
    assert long == sample_frame_indices(20, 5) == [0, 5, 9, 14, 19]
    assert sorted(r["frame"] for r in table if r["group"].endswith("short")) == [0, 1, 2]


def test_folder_source_reports_folders_and_links_named_like_media(tmp_path, caplog):
    root = tmp_path / "odd"
    write_image(root / "real" / "a.png")
    write_image(root / "fake" / "b.png", seed=1)
    (root / "fake" / "x.jpg").mkdir()
    os.symlink("loop.jpg", root / "fake" / "loop.jpg")
    with caplog.at_level(logging.WARNING, logger="deepfake_hf.data.datasets"):
        dataset, report = load_source(root, cache_dir=False, verbose=False, return_report=True)
    assert len(dataset) == 2 and report["counts"]["skipped"] == 2
    assert f"{root / 'fake' / 'x.jpg'}: is a directory, not an image" in caplog.text
    assert f"{root / 'fake' / 'loop.jpg'}: symbolic link loop" in caplog.text


def test_deepfakebench_frame_sampling_for_videos_and_frame_folders(tmp_path):
    """DeepfakeBench takes linspace(0, n-1, N) rounded down from a video, and the first N of a frame folder."""
    pytest.importorskip("av")
    import io

    from datasets import Image as ImageFeature
    from PIL import Image

    from .media_samples import level_index, write_video

    write_video(tmp_path / "src" / "real" / "clip.mp4", frames=23)
    for number in range(0, 100, 10):  # frame numbers 0, 10, ..., 90
        write_image(tmp_path / "src" / "fake" / "frames" / f"{number:03d}.png", seed=number)

    def frames_of(sampling):
        dataset = load_source(tmp_path / "src", num_frames=4, cache_dir=False, verbose=False, frame_sampling=sampling)
        video = [level_index(Image.open(io.BytesIO(row["image"]["bytes"])))
                 for row in dataset.cast_column("image", ImageFeature(decode=False)) if row["label"] == 0]
        folder = [row["frame"] for row in dataset if row["label"] == 1]
        return video, folder

    video, folder = frames_of("deepfakebench")
    assert video == np.linspace(0, 22, 4, dtype=int).tolist() == [0, 7, 14, 22]
    assert folder == [0, 10, 20, 30]
    video, folder = frames_of("even")
    assert video == [0, 7, 15, 22]  # nearest frame: 14.67 -> 15
    assert folder == [0, 30, 60, 90]
    with pytest.raises(DataSourceError, match="frame_sampling"):
        load_source(tmp_path / "src", frame_sampling="random", cache_dir=False)
