"""app.py as an attacker and a careless client call it: raw HTTP calls with server paths (with and without
`meta`), URLs, huge, tiny and wrong files, 16 concurrent requests. The server must stay up, open nothing
but this request's uploads, keep its memory bounded and leave nothing in the temp dir."""

import json
import os
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.app_server import PROCESSES, running_app
from tests.conftest import tiny_detector, write_image
from tests.media_samples import write_video

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")
pytestmark = pytest.mark.slow

NOT_UPLOADED = "Only files uploaded to this page can be analysed."


def call(url, api_name, data, timeout=120):
    """POST /gradio_api/call/API with raw `data`, then read its event stream: (event, payload)."""
    request = urllib.request.Request(f"{url}gradio_api/call/{api_name}", data=json.dumps({"data": data}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        event_id = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/{api_name}/{event_id}", timeout=timeout) as response:
        stream = response.read().decode()
    event, payload = None, None
    for line in stream.splitlines():
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: "):
            payload = json.loads(line[len("data: "):])
    return event, payload


def server_files(folder):
    return sorted(str(path.relative_to(folder)) for path in Path(folder).rglob("*") if path.is_file())


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("abuse")
    tiny_detector("vit", seed=4, num_frames=4).save_pretrained(root / "model")
    secret_dir = root / "server-private"
    return {
        "model": root / "model",
        "root": root,
        "secret_image": write_image(secret_dir / "secret.png", size=(80, 80), seed=9),
        "secret_video": write_video(secret_dir / "secret.mp4", frames=8, size=(48, 48)),
        "missing": secret_dir / "no-such-file.png",
        "image": write_image(root / "upload.png", size=(64, 64), seed=5),
        "video": write_video(root / "upload.mp4", frames=8, size=(48, 48)),
        "tiny": _write(root / "tiny.png", b"\x89"),
        "text": _write(root / "notes.png", b"plain text, not an image\n" * 4),
        "huge": write_image(root / "huge.png", size=(900, 900), seed=3),  # ~2.4 MB, over the 1mb limit
    }


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def server(files):
    temp = files["root"] / "server-tmp"
    temp.mkdir()
    env = {"DEEPFAKE_HF_FACES": "none", "DEEPFAKE_HF_MAX_FILE_SIZE": "1mb", "TMPDIR": str(temp),
           "GRADIO_TEMP_DIR": str(temp / "gradio")}
    with running_app(files["model"], env) as url:
        yield url, temp


def refused(event, payload):
    """The refusal: one message on the page and nothing else returned, or gradio's own error event."""
    if event == "error":
        return True
    return event == "complete" and NOT_UPLOADED in json.dumps(payload[0]) and all(
        item in (None, [], {}) for item in payload[1:]) if len(payload) > 1 else NOT_UPLOADED in json.dumps(payload)


def test_server_paths_are_never_opened_and_existence_is_not_told(server, files):
    url, temp = server
    secret, missing = str(files["secret_image"]), str(files["missing"])
    meta = {"_type": "gradio.FileData"}
    answers = {}
    for name, path in (("secret", secret), ("missing", missing), ("relative", "../../../etc/hostname"),
                       ("video", str(files["secret_video"]))):
        for with_meta in (False, True):
            file_data = {"path": path, **({"meta": meta} if with_meta else {})}
            event, payload = call(url, "analyse_image", [file_data])
            assert refused(event, payload), (name, with_meta, event, payload)
            answers[(name, with_meta)] = (event, payload)
            event, payload = call(url, "analyse_video", [{"video": file_data, "subtitles": None}])
            assert refused(event, payload), ("video endpoint", name, with_meta, event, payload)
            event, payload = call(url, "analyse_batch", [[file_data]])
            assert event == "error" or NOT_UPLOADED in json.dumps(payload), (name, with_meta, payload)
    # the same answer whether or not the path exists: the server's files cannot be probed
    assert answers[("secret", False)] == answers[("missing", False)]
    assert answers[("secret", True)][0] == answers[("missing", True)][0]
    # and no copy of the private files reached gradio's cache
    secret_bytes = {files["secret_image"].read_bytes(), files["secret_video"].read_bytes()}
    assert not any(path.read_bytes() in secret_bytes for path in temp.rglob("*") if path.is_file())


def test_urls_and_links_are_refused(server, files, tmp_path):
    url, temp = server
    link = temp / "gradio" / "planted-link.png"  # a link planted inside the upload folder leads outside
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(files["secret_image"])
    for file_data in ({"path": "https://example.com/face.png", "url": "https://example.com/face.png"},
                      {"path": f"{url}gradio_api/file={files['secret_image']}"},
                      {"path": str(link)}):
        event, payload = call(url, "analyse_image", [file_data])
        assert refused(event, payload), (file_data, event, payload)
    link.unlink()


def test_tiny_wrong_and_huge_uploads_get_messages_and_the_server_stays_up(server, files):
    from gradio_client import Client, handle_file

    url, _ = server
    client = Client(url, verbose=False)
    for name, api in (("tiny", "/analyse_image"), ("text", "/analyse_image"), ("video", "/analyse_image"),
                      ("image", "/analyse_video"), ("tiny", "/analyse_video")):
        verdict = client.predict(handle_file(str(files[name])), api_name=api)[0]
        assert verdict.startswith(("### Could not analyse this file", "### Verdict")), (name, api, verdict)
        assert str(files["root"]) not in verdict and "/tmp" not in verdict  # names only, never server folders
        if name in ("tiny", "text"):
            assert verdict.startswith("### Could not analyse") and files[name].name in verdict
    with pytest.raises(Exception, match="(?i)size|large|exceed"):
        client.predict(handle_file(str(files["huge"])), api_name="/analyse_image")
    verdict = client.predict(handle_file(str(files["image"])), api_name="/analyse_image")[0]
    assert verdict.startswith("### Verdict")  # still serving


def test_concurrent_requests_bounded_memory_and_a_clean_temp_dir(files, tmp_path):
    from gradio_client import Client, handle_file

    temp = tmp_path / "server-tmp"
    temp.mkdir()
    env = {"DEEPFAKE_HF_FACES": "none", "TMPDIR": str(temp), "GRADIO_TEMP_DIR": str(temp / "gradio")}
    with running_app(files["model"], env) as url:
        pid = PROCESSES[url].pid
        client = Client(url, verbose=False)
        client.predict(handle_file(str(files["image"])), api_name="/analyse_image")  # model loaded
        before = rss_mb(pid)

        # distinct files per request, as distinct users send (gradio caches identical outputs under one name)
        images = [write_image(tmp_path / f"user{index}.png", size=(64, 64), seed=100 + index) for index in range(32)]
        videos = [write_video(tmp_path / f"user{index}.mp4", frames=8, size=(48 + 2 * index, 48))
                  for index in range(32)]

        def one(index):
            if index % 4 == 3:
                table, csv_path = Client(url, verbose=False).predict(
                    [handle_file(str(images[index])), handle_file(str(videos[index]))], api_name="/analyse_batch")
                return "batch" if len(table["data"]) == 2 else table
            kind = "/analyse_video" if index % 4 == 2 else "/analyse_image"
            source = videos[index] if kind == "/analyse_video" else images[index]
            return Client(url, verbose=False).predict(handle_file(str(source)), api_name=kind)[0]

        for round_ in range(2):
            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(one, range(16 * round_, 16 * round_ + 16)))
            assert all(answer == "batch" or answer.startswith("### Verdict") for answer in answers), answers
        after = rss_mb(pid)
        assert after < before + 400, (before, after)  # 32 requests later: no per-request growth to speak of
        assert not [name for name in os.listdir(temp) if name.startswith("deepfake-hf-batch-")]
    # stopped with SIGTERM: gradio's cache (uploads, batch CSVs) is emptied on the way out
    assert server_files(temp) == []
