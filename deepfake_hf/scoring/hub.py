"""Loading a model by Hub id without a minute of retries when the Hub cannot be reached.

`scorer.load_classifier`, which every load by Hub id goes through (`Detector.from_pretrained`,
`Scorer.from_pretrained`, `predict`; `evaluate`, `calibrate` and `explain` take folders only), asks
`offline_reason` first: when `HF_HUB_OFFLINE` is set or the endpoint does not answer within `HUB_CHECK_TIMEOUT_S`,
the load runs in huggingface_hub's offline mode (`offline`), so a cached model still loads and a missing one
fails at once, in one line (`not_cached_message`). Nothing heavy is imported at module level.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from deepfake_hf.errors import one_line

# How long a Hub id's load waits for the Hub to answer before loading from the local cache only: without this an
# unreachable host cost a minute of transformers' retries (12 multi-line messages) before the one-line error.
# Read at each check (not bound as a default argument), so tests and users can change it.
HUB_CHECK_TIMEOUT_S = 5.0


def is_hub_id(path_or_id: str | os.PathLike) -> bool:
    """True for `org/name` that is not an existing path (a relative or absolute path, `~`, is never a Hub id)."""
    text = os.fspath(path_or_id)
    return not os.path.exists(text) and text.count("/") == 1 and not text.startswith((".", "/", "~"))


def offline_reason(path_or_id: str | os.PathLike, local_files_only: bool = False) -> str | None:
    """Why the Hub id `path_or_id` must be loaded from the local cache only (HF_HUB_OFFLINE is set, or the
    endpoint does not answer within HUB_CHECK_TIMEOUT_S); None when the Hub answers, for a local folder, and when
    `local_files_only` already keeps the load off the network."""
    if local_files_only or not is_hub_id(path_or_id):
        return None
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set, so nothing is downloaded"
    problem = hub_unreachable(constants.ENDPOINT)
    if problem is None:
        return None
    return (f"the Hub at {constants.ENDPOINT} does not answer ({problem}); check the network or HF_ENDPOINT, or "
            "give a local model folder")


@contextlib.contextmanager
def offline(enabled: bool) -> Iterator[None]:
    """huggingface_hub's offline mode for the block. Passing local_files_only is not enough: transformers'
    PEFT adapter lookup drops it and retried an unreachable host for a minute."""
    from huggingface_hub import constants

    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = previous or enabled
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def hub_unreachable(endpoint: str, timeout: float | None = None) -> str | None:
    """Why `endpoint` gives no HTTP answer within `timeout` seconds (default `HUB_CHECK_TIMEOUT_S`): refused,
    timed out, unknown host; None when it answers at all: any status, or a TLS error, shows a host is there
    (loading then says more)."""
    import socket
    import ssl
    import urllib.error
    import urllib.request

    timeout = HUB_CHECK_TIMEOUT_S if timeout is None else timeout
    request = urllib.request.Request(endpoint.rstrip("/") + "/", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, ssl.SSLError):
            return None
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return f"no answer within {timeout:g} s"
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused"
        if isinstance(reason, socket.gaierror):
            return "unknown host"
        return one_line(reason, 120)


def not_cached_message(model_id: str, reason: str, revision: str | None = None,
                       cache_dir: str | os.PathLike | None = None) -> str | None:
    """The one line for a Hub id whose offline load failed because the cache lacks it; None when the cache holds
    its config.json (the load failed for another reason, which its own error says)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(model_id, "config.json", cache_dir=cache_dir, revision=revision)
    except Exception:  # noqa: BLE001 - a malformed id: treat as not cached
        cached = None
    if isinstance(cached, str):
        return None
    return f"{model_id}: not in the local Hugging Face cache, and {reason}"


__all__ = ["HUB_CHECK_TIMEOUT_S", "hub_unreachable", "is_hub_id", "not_cached_message", "offline", "offline_reason"]
