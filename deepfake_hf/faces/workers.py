"""Face detection (and landmarks) in worker processes, so one run uses more than one core for faces.

dlib's HOG detector keeps the GIL while it runs: two threads detecting faces take as long as one, so the
Detector's worker threads cannot put a second core to work on faces. A `FacePool` runs a face mode's own
`detect_video` in separate processes instead, for the frames a caller streams to it:

- each worker process rebuilds the mode from its name and options (`FaceMode.worker_options`) once, and
  its dlib models are loaded once per process (`faces.dlib._thread_models`), then reused for every file;
- a file is a session: its frames are sent one by one (numpy arrays) and its faces come back frame by
  frame, in order, from the same `detect_video` code on the same pixels, so the results are those of the
  in-thread path (modes that follow faces between frames keep a whole video in one process; a mode whose
  frames are independent spreads one video's frames over every idle worker);
- `cancel` is polled while a frame is in flight (every 50 ms): `AnalysisCancelled` is raised at once, and
  each worker finishes the frame in hand, drops the ones queued behind it, and takes the next file;
- workers are fresh interpreters (as with multiprocessing's 'spawn': nothing fork-only, and the caller's
  main script is not run again), ignore SIGINT (Ctrl-C reaches the parent, which ends them), exit when
  their parent's end of the socket closes, and `close()` (also at garbage collection and interpreter
  exit) stops them.

Sized by `runtime.threads.face_worker_budget()` (the thread budget: cores / local ranks; 0 = in-thread).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

from deepfake_hf.errors import AnalysisCancelled, DeepfakeHFError

POLL_SECONDS = 0.05  # how often a waiting caller looks at its cancel event
AHEAD = 2  # frames sent to one worker before its first answer comes back: it never waits for the pipe


class FaceWorkerError(DeepfakeHFError, RuntimeError):
    """A face worker process failed (it died, or its mode raised): one line saying which and why."""


# ---------------------------------------------------------------------------------------- worker side
def _serve(fd: int) -> None:
    """A worker process's main: sessions of ("begin", name, options), ("frame", array)..., ("end",) on socket `fd`,
    until ("stop",) or the parent's end closes."""
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it then ends this process
    conn = Connection(fd)
    modes: dict[tuple, Any] = {}
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if message[0] == "stop":
            return
        if message[0] == "begin":
            _session(conn, modes, message[1], message[2])


def _session(conn: Any, modes: dict, name: str, options: dict) -> None:
    """One file: build (or reuse) the mode, answer each frame's faces in order, then "done"."""
    from deepfake_hf.faces.base import face_mode

    frames = _Frames(conn)
    key = (name, tuple(sorted(options.items())))
    try:
        if key not in modes:
            modes[key] = face_mode(name)(**options)
        mode = modes[key]
    except Exception as error:  # noqa: BLE001 - told to the parent, which then detects in its own thread
        conn.send(("unavailable", f"{type(error).__name__}: {error}"))
        frames.drain()
        conn.send(("done",))
        return
    conn.send(("ready",))
    stages = getattr(mode, "stage_times", None)
    try:
        for faces in mode.detect_video(iter(frames)):
            timing = None
            if isinstance(stages, dict):  # per-stage times go back to the parent's copy of the mode
                timing, mode.stage_times = dict(mode.stage_times), {}
            conn.send(("faces", faces, timing))
    except Exception as error:  # noqa: BLE001 - a bad frame fails its file, in the parent, not this worker
        conn.send(("error", f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"))
    frames.drain()
    conn.send(("done",))


class _Frames:
    """A session's frames as PIL images, read from the pipe up to the parent's ("end",) or ("abort",).

    Everything waiting in the pipe is read before each frame is handed out, so an ("abort",) sent after a
    cancel drops the frames queued behind the one in hand: the worker stops within a frame.
    """

    def __init__(self, conn: Any) -> None:
        self.conn, self.ended = conn, False
        self.waiting: deque[Any] = deque()

    def _read(self, block: bool) -> None:
        while not self.ended and (block or self.conn.poll(0)):
            message, block = self.conn.recv(), False
            if message[0] == "frame":
                self.waiting.append(message[1])
                continue
            self.ended = True
            if message[0] == "abort":
                self.waiting.clear()

    def __iter__(self) -> Iterator[Any]:
        from PIL import Image

        while True:
            self._read(block=not self.waiting)
            if not self.waiting:
                return
            yield Image.fromarray(self.waiting.popleft())

    def drain(self) -> None:
        """Skip the frames the mode did not take (it failed, or stopped early), so the next session starts clean."""
        while not self.ended:
            self._read(block=True)
        self.waiting.clear()


# ---------------------------------------------------------------------------------------- parent side
class _Worker:
    """One worker process and the parent's end of its socket; `open`: a session whose "done" is not read yet.

    The process is a fresh interpreter (`python -c`, like multiprocessing's 'spawn', but without re-running the
    caller's main script, which a script without an `if __name__ == "__main__"` guard would not survive), that
    imports this same copy of the package and talks over a socket pair (multiprocessing's pickled messages).
    """

    def __init__(self) -> None:
        import socket
        import subprocess
        from multiprocessing.connection import Connection

        import deepfake_hf

        ours, theirs = socket.socketpair()
        root = os.path.dirname(os.path.dirname(os.path.abspath(deepfake_hf.__file__)))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        code = f"from deepfake_hf.faces.workers import _serve; _serve({theirs.fileno()})"
        self.process = subprocess.Popen([sys.executable, "-c", code], pass_fds=[theirs.fileno()], env=env,
                                        stdin=subprocess.DEVNULL)
        theirs.close()  # only the child holds it now: the child sees EOF if this process dies
        self.conn = Connection(ours.detach())
        self.open = False
        self.discarded = 0  # frames detected for files that were abandoned (cancelled, failed) meanwhile

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def settle(self) -> None:
        """Read what a session abandoned (cancelled, failed) left in the pipe, up to its "done"."""
        while self.open:
            answer = self.receive(None)[0]
            self.open = answer != "done"
            self.discarded += answer == "faces"

    def receive(self, cancel: Any) -> tuple:
        while cancel is None or not cancel.is_set():
            if self.conn.poll(POLL_SECONDS):
                break
            if not self.alive() and not self.conn.poll(0):
                raise self._ended()
        else:
            raise AnalysisCancelled("cancelled")
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            raise self._ended() from None

    def _ended(self) -> FaceWorkerError:
        self.process.poll()
        return FaceWorkerError(f"face worker process {self.pid} ended (exit code {self.process.returncode})")

    def stop(self, timeout: float = 2.0) -> None:
        import subprocess

        with contextlib.suppress(OSError, ValueError):
            self.conn.send(("stop",))
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:  # busy with a frame: it is ours to end
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError):
            self.conn.close()


def _stop_all(workers: list[_Worker]) -> None:
    for worker in list(workers):
        worker.stop()
    workers.clear()


class FacePool:
    """Up to `size` face worker processes, started when first needed and reused for every file.

    `detect_video(mode, frames, cancel)` is `faces.detect_video(mode, frames)` run in the workers; it falls
    back to the calling thread for a detector that cannot be rebuilt from its name (`worker_options()` None,
    or a mode the worker cannot build). Thread-safe: each caller thread holds its own workers while it reads.
    """

    def __init__(self, size: int) -> None:
        if int(size) < 1:
            raise FaceWorkerError(f"face_workers: a pool needs at least 1 process, got {size}")
        self.size = int(size)
        self._workers: list[_Worker] = []  # every live worker
        self._idle: list[_Worker] = []
        self._lock = threading.Condition()
        self._in_thread: set[tuple] = set()  # (name, options) the workers could not build
        self._closed = False
        self._finalizer = weakref.finalize(self, _stop_all, self._workers)

    # ---------------------------------------------------------------------------------------- lifecycle
    @property
    def pids(self) -> list[int]:
        """The live worker processes' ids (for tests and diagnostics)."""
        return [worker.pid for worker in self._workers]

    def close(self) -> None:
        """Stop every worker process (a busy one is terminated after 2 s); the pool cannot be used after."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._finalizer()

    def __enter__(self) -> FacePool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _claim(self, cancel: Any, wait: bool = True) -> _Worker | None:
        """An idle worker (a new one while fewer than `size` exist); None when `wait` is False and none is free."""
        with self._lock:
            while True:
                if self._closed:
                    raise FaceWorkerError("face worker pool: used after close()")
                if self._idle:
                    return self._idle.pop()
                if len(self._workers) < self.size:
                    worker = _Worker()
                    self._workers.append(worker)
                    return worker
                if not wait:
                    return None
                if cancel is not None and cancel.is_set():
                    raise AnalysisCancelled("cancelled")
                self._lock.wait(POLL_SECONDS)

    def _release(self, worker: _Worker, healthy: bool) -> None:
        with self._lock:
            if healthy and not self._closed:
                self._idle.append(worker)
                self._lock.notify()
                return
            if worker in self._workers:
                self._workers.remove(worker)
        worker.stop(timeout=0.5)

    # ---------------------------------------------------------------------------------------- detection
    def detect_video(self, detector: Any, frames: Sequence[Any], cancel: Any = None) -> Iterator[list]:
        """The faces of each frame, in order, as `faces.detect_video(detector, frames)` gives them."""
        from deepfake_hf.faces.tracking import detect_video

        options = _rebuild_options(detector)
        key = None if options is None else (detector.name, tuple(sorted(options.items())))
        if options is None or key is None or key in self._in_thread or not len(frames):
            return detect_video(detector, frames)
        return self._stream(detector, options, key, list(frames), cancel)

    def _stream(self, detector: Any, options: dict, key: tuple, frames: list, cancel: Any) -> Iterator[list]:
        try:
            workers = self._claim_session(detector, options, len(frames), cancel)
        except FaceWorkerError as error:  # a worker that cannot start (no interpreter, a broken install)
            if "ended" not in str(error):
                raise
            workers = []
        if not workers:  # the worker cannot build this mode, or start: this thread detects, now and for later files
            self._in_thread.add(key)
            yield from _local(detector, frames)
            return
        feed, answered = _Feed(workers, frames), 0
        try:
            for index in range(len(frames)):
                if cancel is not None and cancel.is_set():  # no more frames for a file nobody waits for
                    raise AnalysisCancelled("cancelled")
                feed.send_ahead(index)
                answer = workers[index % len(workers)].receive(cancel)
                if answer[0] == "error":
                    raise FaceWorkerError(f"face detection: {answer[1]}")
                if answer[0] != "faces":
                    raise FaceWorkerError(f"face worker: unexpected {answer[0]!r} for frame {index}")
                if answer[2] and isinstance(getattr(detector, "stage_times", None), dict):
                    _add_stages(detector, answer[2])
                answered += 1
                yield answer[1]
        finally:
            if answered < len(frames):  # cancelled or failed: the workers drop the frames they have not started
                feed.abort()
            # What a worker still owes this file is read by its next user (`settle`); a dead one is replaced.
            for worker in workers:
                self._release(worker, worker.alive())

    def _claim_session(self, detector: Any, options: dict, frames: int, cancel: Any) -> list[_Worker]:
        """Workers with a session of this mode begun: one, plus every idle one for a mode whose frames are
        independent; [] when the worker cannot build the mode."""
        first = self._begin(self._claim(cancel), detector.name, options, cancel)
        if first is None:
            return []
        workers = [first]
        while getattr(detector, "independent_frames", False) and len(workers) < min(self.size, frames):
            extra = self._claim(cancel, wait=False)
            begun = None if extra is None else self._begin(extra, detector.name, options, cancel)
            if begun is None:
                break
            workers.append(begun)
        return workers

    def _begin(self, worker: _Worker | None, name: str, options: dict, cancel: Any) -> _Worker | None:
        """Start a session on a claimed worker; None (worker released) when it cannot build the mode."""
        assert worker is not None
        try:
            worker.settle()
            try:
                worker.conn.send(("begin", name, options))
            except OSError:  # the process ended before it read anything (it could not start)
                raise worker._ended() from None
            worker.open = True
            answer = worker.receive(cancel)
        except BaseException:
            if worker.open:  # the session waits for frames: end it; its answers are read by `settle`
                with contextlib.suppress(OSError, ValueError):
                    worker.conn.send(("abort",))
            self._release(worker, healthy=worker.alive())
            raise
        if answer[0] == "ready":
            return worker
        worker.conn.send(("end",))
        self._release(worker, healthy=True)
        return None



class _Feed:
    """Sends one file's frames to its workers: frame i to worker i % len(workers), each `AHEAD` frames ahead."""

    def __init__(self, workers: list[_Worker], frames: list) -> None:
        self.workers, self.frames, self.sent, self.ended = workers, frames, 0, False

    def send_ahead(self, index: int) -> None:
        """Frames up to `AHEAD` per worker beyond `index`, the one about to be read; ("end",) after the last."""
        import numpy as np

        while self.sent < len(self.frames) and self.sent - index < AHEAD * len(self.workers):
            frame = self.frames[self.sent]
            if frame.mode not in ("RGB", "L", "RGBA"):
                frame = frame.convert("RGB")  # what every mode does first: the same pixels
            self.workers[self.sent % len(self.workers)].conn.send(("frame", np.asarray(frame)))
            self.sent += 1
        if self.sent == len(self.frames):
            self.end()

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            for worker in self.workers:
                with contextlib.suppress(OSError, ValueError):
                    worker.conn.send(("end",))

    def abort(self) -> None:
        """End the session now (also after its ("end",): a worker between sessions ignores it)."""
        self.ended = True
        for worker in self.workers:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(("abort",))


def pool_size(detector: Any, face_workers: int | None = None) -> int:
    """Worker processes for `detector`: `face_workers` as given; None: the thread budget
    (`runtime.threads.face_worker_budget`) for a mode whose frames are independent, whose one video then uses
    every core, else 0 (a mode that follows faces keeps a video in one process: threads over files do as well)."""
    if face_workers is not None:
        return max(0, int(face_workers))
    if not getattr(detector, "independent_frames", False):
        return 0
    from deepfake_hf.runtime.threads import face_worker_budget

    return face_worker_budget()


def _local(detector: Any, frames: list) -> Iterator[list]:
    from deepfake_hf.faces.tracking import detect_video

    yield from detect_video(detector, frames)


def _rebuild_options(detector: Any) -> dict | None:
    """The options that rebuild `detector` in a worker, or None: not a registered mode's own class."""
    from deepfake_hf.faces.base import face_modes

    method = getattr(detector, "worker_options", None)
    name = getattr(detector, "name", None)
    if method is None or not isinstance(name, str) or face_modes().get(name) is not type(detector):
        return None
    return method()


def _add_stages(detector: Any, timing: dict) -> None:
    lock = getattr(detector, "_stage_lock", None) or threading.Lock()
    with lock:
        for stage, (wall, cpu, calls) in timing.items():
            totals = detector.stage_times.setdefault(stage, [0.0, 0.0, 0])
            totals[0] += wall
            totals[1] += cpu
            totals[2] += calls


__all__ = ["FacePool", "FaceWorkerError", "pool_size"]
