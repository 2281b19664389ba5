"""Launch the top-level app.py in a subprocess on 127.0.0.1 (gradio's own env variables) for app/browser tests."""

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from tests.conftest import PROJECT_ROOT


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# url -> the app's Popen, for tests that watch the server process itself (memory, shutdown).
PROCESSES = {}


@contextlib.contextmanager
def running_app(model_dir, extra_env=None, startup_timeout=300, output=None):
    """Yield the URL of `python app.py --model MODEL_DIR` listening on GRADIO_SERVER_NAME/PORT; stop it after
    (SIGTERM, as a container stop sends; the app shuts gradio down cleanly on it). `output`: a list that gets
    everything the app printed, once it has stopped (for tests of its shutdown)."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
           **(extra_env or {})}
    args = [sys.executable, str(PROJECT_ROOT / "app.py")] + (["--model", str(model_dir)] if model_dir else [])
    log = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty app can never block on it
    process = subprocess.Popen(args, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"app.py exited with {process.returncode}:\n{log.read()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"app.py did not answer on {url} within {startup_timeout} s")
            time.sleep(0.5)
        PROCESSES[url] = process
        yield url
    finally:
        PROCESSES.pop(url, None)
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if output is not None:
            log.seek(0)
            output.append(log.read())
        log.close()
