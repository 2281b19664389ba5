"""Output folders: nothing the user wrote is replaced without `--overwrite`, and `--overwrite` touches
only what the command itself writes."""

import contextlib
import json
from pathlib import Path

# Beside a command's outputs: the files it wrote, so a later --overwrite removes exactly those.
OUTPUT_RECORD = ".deepfake-hf-outputs.json"


def prepare_output_dir(path, overwrite=False, clear=False):
    """Create `path` and return it as a Path.

    A non-empty folder is refused with a one-line `FileExistsError` unless `overwrite`; with `clear`
    the files an earlier run recorded in `OUTPUT_RECORD` (see `owned_output_dir`) are removed first so
    no stale output survives, while files the user put there stay. A file in the way is refused in any case.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out}: exists and is not empty (pass --overwrite to replace it)")
        if clear:
            remove_recorded_outputs(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _snapshot(folder):
    """{relative path: (size, mtime_ns)} of the regular files below `folder` (links are not followed)."""
    files = {}
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.name != OUTPUT_RECORD:
            stat = path.stat()
            files[path.relative_to(folder).as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return files


def remove_recorded_outputs(folder):
    """Delete the files listed in `folder`'s output record (and folders they leave empty)."""
    folder = Path(folder)
    record = folder / OUTPUT_RECORD
    if not record.is_file():
        return []
    try:
        names = json.loads(record.read_text()).get("files", [])
    except (json.JSONDecodeError, AttributeError):
        names = []
    removed = []
    root = folder.resolve()
    for name in names:
        path = folder / name
        # a record is data from disk: never let it point outside the folder
        if ".." in Path(name).parts or not path.resolve().is_relative_to(root) or not path.is_file():
            continue
        path.unlink()
        removed.append(name)
        parent = path.parent
        while parent != folder and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    record.unlink()
    return removed


@contextlib.contextmanager
def owned_output_dir(path, overwrite=False):
    """`prepare_output_dir(path, overwrite, clear=True)` for a command that owns what it writes there: on
    success the files it created or changed are recorded, so the next `--overwrite` replaces only those."""
    out = prepare_output_dir(path, overwrite, clear=True)
    before = _snapshot(out)
    yield out
    after = _snapshot(out)
    written = sorted(name for name, stamp in after.items() if before.get(name) != stamp)
    (out / OUTPUT_RECORD).write_text(json.dumps({"files": written}, indent=1))
