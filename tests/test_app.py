"""The Gradio app (top-level app.py): launched on 127.0.0.1 with a tiny model and called with gradio_client."""

import csv

import pytest

from tests.app_server import running_app
from tests.conftest import tiny_detector, write_image
from tests.media_samples import write_video

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("app")
    tiny_detector("vit", seed=1, num_frames=6).save_pretrained(root / "model")
    (root / "broken.png").write_text("this is not an image")
    return {
        "model": root / "model",
        "image": write_image(root / "photo.png", size=(64, 64), seed=2),
        "broken": root / "broken.png",
        "video": write_video(root / "clip.mp4", frames=12, size=(48, 48)),
        "big": write_image(root / "big.png", size=(900, 900), seed=3),  # ~2.4 MB of noise, over the 1mb limit
    }


@pytest.fixture(scope="module")
def client(media):
    from gradio_client import Client

    env = {"DEEPFAKE_HF_FACES": "none", "DEEPFAKE_HF_MAX_FILE_SIZE": "1mb"}
    with running_app(media["model"], env) as url:
        yield Client(url, verbose=False)


@pytest.fixture(scope="module")
def local_detector(media):
    from deepfake_hf.scoring.detector import Detector

    return Detector.from_pretrained(str(media["model"]), faces="none", progress=False)


@pytest.mark.slow
def test_image_verdict_matches_the_detector(client, media, local_detector):
    from gradio_client import handle_file

    verdict, probabilities, faces, heatmap = client.predict(handle_file(str(media["image"])),
                                                            api_name="/analyse_image")
    (expected,) = local_detector(str(media["image"]))
    assert verdict.startswith(f"### Verdict: {expected.label.upper()}, {expected.fake_probability:.1%} fake")
    confidences = {row["label"]: row["confidence"] for row in probabilities["confidences"]}
    assert confidences["fake"] == pytest.approx(expected.fake_probability, abs=1e-5)
    assert confidences["real"] == pytest.approx(1 - expected.fake_probability, abs=1e-5)
    assert probabilities["label"] == expected.label
    assert faces["annotations"] == [] and faces["image"]  # face detection off: the image, no boxes
    from PIL import Image

    with Image.open(heatmap) as overlay:  # deepfake_hf.scoring.explain's overlay (attention rollout for ViT)
        assert min(overlay.size) >= 256 and overlay.mode == "RGB"


@pytest.mark.slow
def test_bad_file_gets_a_visible_message(client, media):
    from gradio_client import handle_file

    verdict, probabilities, faces, heatmap = client.predict(handle_file(str(media["broken"])),
                                                            api_name="/analyse_image")
    assert verdict.startswith("### Could not analyse this file")
    assert "broken.png: not a readable image" in verdict
    assert faces is None and heatmap is None


@pytest.mark.slow
def test_video_verdict_frame_plot_and_gallery(client, media, local_detector):
    from gradio_client import handle_file

    verdict, probabilities, plot, gallery = client.predict(handle_file(str(media["video"])),
                                                           api_name="/analyse_video")
    (expected,) = local_detector(str(media["video"]), frame_scores=True)
    assert expected.frames == 6 and "6 frames scored" in verdict
    assert plot["x_lim"] == [0, 5]  # the axis spans the sampled frames, not past the last one
    plot = plot["value"]
    assert plot["columns"] == ["frame", "fake probability"]
    assert [row[0] for row in plot["data"]] == list(range(6))
    assert [row[1] for row in plot["data"]] == pytest.approx(expected.frame_scores, abs=1e-6)
    assert len(gallery) == 4  # the most suspicious frames, most suspicious first
    top = sorted(expected.frame_scores, reverse=True)[:4]
    assert [item["caption"] for item in gallery] == [
        f"frame {expected.frame_scores.index(score)}: {score:.1%} fake" for score in top]
    assert {row["label"]: row["confidence"] for row in probabilities["confidences"]}["fake"] == pytest.approx(
        expected.fake_probability, abs=1e-5)


@pytest.mark.slow
def test_batch_table_and_csv(client, media):
    from gradio_client import handle_file

    table, csv_path = client.predict([handle_file(str(media["image"])), handle_file(str(media["broken"])),
                                      handle_file(str(media["video"]))], api_name="/analyse_batch")
    assert table["headers"] == ["file", "kind", "label", "fake probability", "frames", "faces", "note"]
    rows = {row[0]: row for row in table["data"]}
    assert set(rows) == {"photo.png", "broken.png", "clip.mp4"}
    assert rows["photo.png"][1] == "image" and rows["photo.png"][2] in ("real", "fake")
    assert rows["clip.mp4"][1] == "video" and rows["clip.mp4"][4] == 6
    assert rows["broken.png"][2] == "error" and "not a readable image" in rows["broken.png"][6]
    with open(csv_path, newline="") as handle:
        written = list(csv.reader(handle))
    assert written[0] == table["headers"] and len(written) == 4


@pytest.mark.slow
def test_about_and_upload_limit(client, media):
    from gradio_client import handle_file

    about = client.predict(api_name="/about")
    assert "**Model:** `model`" in about and "at least **0.5**" in about and "never proof" in about
    assert str(media["model"].parent) not in about  # the server's folders are not shown
    with pytest.raises(Exception, match="(?i)size|large|exceed"):
        client.predict(handle_file(str(media["big"])), api_name="/analyse_image")


def test_model_resolution_time_limit_and_no_model(media, monkeypatch):
    import app

    monkeypatch.setenv("DEEPFAKE_HF_MODEL", "from-env")
    assert app.resolve_model("from-cli") == "from-cli"
    assert app.resolve_model(None) == "from-env"
    monkeypatch.delenv("DEEPFAKE_HF_MODEL")
    monkeypatch.setattr(app, "DEFAULT_MODEL", "from-space")
    assert app.resolve_model(None) == "from-space"

    no_model = app.DeepfakeDemo(None)
    assert app.NO_MODEL_MESSAGE in no_model.analyse_image(str(media["image"]))[0]
    assert app.NO_MODEL_MESSAGE in no_model.about()

    slow = app.DeepfakeDemo(str(media["model"]), faces="none", time_limit=1e-4)
    verdict = slow.analyse_image(str(media["image"]))[0]
    assert "took longer than" in verdict and "abandoned" in verdict


def test_timed_out_request_is_cancelled_and_frees_its_worker(media, monkeypatch, tmp_path):
    import time

    import app

    class SlowFaces:  # 50 ms of "face detection" per frame: the batch below needs ~7 s of work
        name = "slow"

        def detect(self, image):
            time.sleep(0.05)
            return []

    monkeypatch.setattr(app, "CONCURRENCY_LIMIT", 1)  # one worker: a held worker would block the next request
    videos = [write_video(tmp_path / f"long{index}.mp4", frames=12, size=(64, 48)) for index in range(6)]
    demo = app.DeepfakeDemo(str(media["model"]), faces=SlowFaces(), time_limit=30)
    _ = demo.detector  # loaded outside the timed part
    demo.time_limit = 0.3
    rows, csv_path = demo.analyse_batch([str(path) for path in videos * 4])
    assert "took longer than 0.3 s and was abandoned" in rows[0][-1] and csv_path is None
    started = time.perf_counter()
    assert demo._pool.submit(lambda: "free").result(timeout=30) == "free"
    freed_after = time.perf_counter() - started
    # the abandoned batch (24 videos, ~7 s of work) stopped within a frame or two instead of running to the end
    assert freed_after < 1.5, freed_after


def test_pages_show_file_names_never_server_folders(media, tmp_path):
    import app

    deep = tmp_path / "srv" / "private" / "uploads"
    broken = deep / "holiday.png"
    deep.mkdir(parents=True)
    broken.write_text("not an image")
    demo = app.DeepfakeDemo(str(media["model"]), faces="none")
    verdict = demo.analyse_image(str(broken))[0]
    assert "holiday.png: not a readable image" in verdict and str(deep) not in verdict and "/srv/" not in verdict
    rows, csv_path = demo.analyse_batch([str(broken), str(media["image"])])
    assert [row[0] for row in rows] == ["holiday.png", "photo.png"]
    assert all(str(tmp_path) not in str(cell) for row in rows for cell in row)
    assert str(tmp_path) not in open(csv_path).read()
    assert str(media["model"].parent) not in demo.about()
    assert app._public_text("cannot open /home/alice/secret/x.png (errno 2)") == "cannot open x.png (errno 2)"


def test_no_face_headline_and_frame_plot_without_gaps(media, tmp_path):
    import app
    from deepfake_hf.faces import Face

    class FaceOnEvenCalls:
        name = "stub"

        def __init__(self, never=False):
            self.calls, self.never = 0, never

        def detect(self, image):
            self.calls += 1
            if self.never or self.calls % 2 == 0:
                return []
            return [Face(box=(8, 8, image.size[0] - 8, image.size[1] - 8))]

    no_face = app.DeepfakeDemo(str(media["model"]), faces=FaceOnEvenCalls(never=True))
    verdict = no_face.analyse_image(str(media["image"]))[0]
    assert verdict.startswith("### No face found: scored the whole image, which this detector was not trained on")
    assert "Verdict" not in verdict.splitlines()[0] and "not a verdict" in verdict

    some_faces = app.DeepfakeDemo(str(media["model"]), faces=FaceOnEvenCalls())
    verdict, _, table, gallery = some_faces.analyse_video(str(media["video"]))
    assert "3 frames scored of 6 sampled" in verdict
    assert list(table["frame"]) == [0, 2, 4] and table["fake probability"].notna().all()
    plot = app._frame_plot(table)
    assert plot.x_lim == [0, 5]  # the axis ends at the last sampled frame
    assert {int(item[1].split()[1].rstrip(":")) for item in gallery} <= {0, 2, 4}
