"""Checks on files someone else wrote, made before anything reads them in full, builds from them or runs them.

A model folder, a checkpoint from the Hub or a run folder about to be published is data from outside. What it
claims is checked first: a safetensors header's length against the file and a ceiling, the header's JSON and
its shape, a JSON file's size and nesting, and a config's sizes (`configuration_deepfake.config_size_problem`).
Each refusal is one `UnsafeFileError` line naming the file and the problem, never a traceback or minutes of work.
"""

import json
import os
import struct
from pathlib import Path

from deepfake_hf.configuration_deepfake import config_size_problem
from deepfake_hf.errors import DeepfakeHFError, one_line

# safetensors refuses headers over 100 MB itself; a config or processor file is a few kB.
MAX_HEADER_BYTES = 100 * 2**20
MAX_JSON_BYTES = 100 * 2**20
# Real configs nest a handful of levels (a detector, its backbone, a timm model's arguments).
MAX_JSON_DEPTH = 32


class UnsafeFileError(DeepfakeHFError, ValueError):
    """A file refused before it is read in full or used; one line naming it and the problem."""


def parse_json(data, where):
    """`data` (bytes or str) parsed as JSON; invalid, non-UTF-8 or deeply nested JSON is an `UnsafeFileError`."""
    try:
        value = json.loads(data)
    except RecursionError:  # the decoder recurses per level: a header of a million "[" ends here
        raise UnsafeFileError(f"{where}: JSON nested too deeply (more than {MAX_JSON_DEPTH} levels); refused") from None
    except UnicodeDecodeError:
        raise UnsafeFileError(f"{where}: not UTF-8 text; refused") from None
    except json.JSONDecodeError as error:
        raise UnsafeFileError(f"{where}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno})") \
            from None
    if json_depth(value) > MAX_JSON_DEPTH:
        raise UnsafeFileError(f"{where}: JSON nested too deeply (more than {MAX_JSON_DEPTH} levels); refused")
    return value


def json_depth(value):
    """Nesting depth of parsed JSON (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            deepest = max(deepest, depth + 1)
            stack.extend((item, depth + 1) for item in node if isinstance(item, (dict, list)))
    return deepest


def read_json(path, max_bytes=MAX_JSON_BYTES):
    """A JSON file's contents, refused in one line when it is too large, not JSON or nested too deeply."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise UnsafeFileError(f"{path}: {size} bytes, more than the {max_bytes // 2**20} MB a JSON file here "
                                  "may have; refused")
        data = path.read_bytes()
    except OSError as error:
        raise UnsafeFileError(f"{path}: cannot be read ({one_line(error, 200)})") from None
    return parse_json(data, path)


def safetensors_header(path):
    """The header of a safetensors file (tensor name -> dtype, shape, data_offsets; `__metadata__`), after
    checking that its length fits the file and the ceiling and that every entry is what the format allows."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise UnsafeFileError(f"{path}: {size} bytes, too short for a safetensors header; not a checkpoint")
            (length,) = struct.unpack("<Q", prefix)
            if length > size - 8 or length > MAX_HEADER_BYTES:
                limit = "the file" if length > size - 8 else f"the {MAX_HEADER_BYTES // 2**20} MB ceiling"
                raise UnsafeFileError(f"{path}: its safetensors header claims {length} bytes, more than {limit} "
                                      f"({size} bytes in all); refused as a broken or hostile file")
            data = handle.read(length)
    except OSError as error:
        raise UnsafeFileError(f"{path}: cannot be read ({one_line(error, 200)})") from None
    header = parse_json(data, f"{path} (safetensors header)")
    problem = _header_problem(header, size - 8 - length)
    if problem:
        raise UnsafeFileError(f"{path}: safetensors header {problem}; refused as a broken or hostile file")
    return header


def _header_problem(header, data_size):
    if not isinstance(header, dict):
        return "is not a JSON object"
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                return "has a __metadata__ that is not a mapping of strings"
            continue
        if not isinstance(info, dict) or not isinstance(info.get("dtype"), str):
            return f"entry {name!r} has no dtype"
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if not isinstance(shape, list) or not all(_natural(dim) for dim in shape):
            return f"entry {name!r} has a shape that is not a list of non-negative integers"
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_natural(o) for o in offsets)
                and offsets[0] <= offsets[1] <= data_size):
            return f"entry {name!r} has data offsets outside the file"
    return None


def _natural(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def count_parameters(files):
    """Total number of tensor elements in safetensors `files` (headers only, each checked); None without any."""
    total, found = 0, False
    for file in files:
        for name, info in safetensors_header(file).items():
            if name != "__metadata__":
                count = 1
                for dim in info["shape"]:
                    count *= dim
                total += count
                found = True
    return total if found else None


def check_config(config_dict, where):
    """Refuse (one line) a config dict whose sizes are beyond any real model's, before anything is built."""
    if not isinstance(config_dict, dict):
        raise UnsafeFileError(f"{where}: not a JSON object")
    problem = config_size_problem(config_dict)
    if problem:
        raise UnsafeFileError(f"{where}: {problem}")
    return config_dict


def read_config(folder):
    """`folder/config.json` read and size-checked; None when the folder has none."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return None
    return check_config(read_json(path), path)


def check_model_folder(folder):
    """A local model folder's config.json and safetensors headers checked; its config dict (None without one)."""
    folder = Path(folder)
    config = read_config(folder)
    for file in sorted(folder.glob("*.safetensors")):
        safetensors_header(file)
    return config


def check_model_source(path_or_id, **hub_kwargs):
    """`check_model_folder` for a local folder; for a Hub id, its config.json fetched (cached) and checked.

    A Hub config that cannot be fetched is left to the loader, whose own message says why."""
    if os.path.isdir(os.fspath(path_or_id)):
        return check_model_folder(path_or_id)
    from transformers.utils import cached_file

    options = {key: value for key, value in hub_kwargs.items()
               if key in ("revision", "token", "local_files_only", "cache_dir") and value is not None}
    try:
        resolved = cached_file(os.fspath(path_or_id), "config.json", _raise_exceptions_for_missing_entries=False,
                               **options)
    except Exception:  # noqa: BLE001 - offline, no such repo, bad id: from_pretrained reports it in its own words
        return None
    if resolved is None:
        return None
    return check_config(read_json(resolved), f"{path_or_id}/config.json")


__all__ = ["UnsafeFileError", "check_config", "check_model_folder", "check_model_source", "count_parameters",
           "parse_json", "read_config", "read_json", "safetensors_header"]
