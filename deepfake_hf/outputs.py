"""Output folders: nothing the user wrote is replaced without `--overwrite`."""

import shutil
from pathlib import Path


def prepare_output_dir(path, overwrite=False, clear=False):
    """Create `path` and return it as a Path.

    A non-empty folder is refused with a one-line `FileExistsError` unless `overwrite`; with
    `clear` (for folders this package fully owns, such as an assembled Hub repo) it is then
    emptied first so no stale file survives. A file in the way is refused in any case.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out}: exists and is not empty (pass --overwrite to replace it)")
        if clear:
            shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out
