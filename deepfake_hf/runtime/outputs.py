"""Output folders: nothing the user wrote is replaced without `--overwrite`, and `--overwrite` touches
only what the command itself writes."""

import contextlib
import csv
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


def counted(number, noun, plural=None):
    """"1 file", "2 files": a count with its noun in the right number."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


@contextlib.contextmanager
def removed_on_failure(path, keep_on_interrupt=False):
    """Undo what the block writes at `path` (an output folder) when it raises: a folder that was not there
    is removed with everything in it; in one that was, the files the block created or rewrote and the folders
    it created are removed, and what the user had there is left as it was. With `keep_on_interrupt` a Ctrl-C
    keeps the work (for a command that `--resume`s it)."""
    path = Path(path)
    existed = path.exists() or path.is_symlink()
    before = _stamps(path) if existed and path.is_dir() and not path.is_symlink() else {}
    try:
        yield path
    except BaseException as error:
        if not (keep_on_interrupt and isinstance(error, KeyboardInterrupt)):
            _remove_new(path, existed, before)
        raise


def undone_on_failure(function=None, *, keep_on_interrupt=False, unless=None):
    """Decorator for a command function with an `out_dir` argument: `removed_on_failure(out_dir,
    keep_on_interrupt)` around it, except when its argument named `unless` (e.g. "resume") is true.

    Under a launcher only rank 0 undoes (the ranks write one folder; rank 0 is the one that owns it)."""
    import functools
    import inspect
    import os

    if function is None:
        return functools.partial(undone_on_failure, keep_on_interrupt=keep_on_interrupt, unless=unless)
    signature = inspect.signature(function)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        if os.environ.get("RANK", "0") != "0" or (unless and bound.arguments[unless]):
            return function(*args, **kwargs)
        with removed_on_failure(bound.arguments["out_dir"], keep_on_interrupt=keep_on_interrupt):
            return function(*args, **kwargs)

    return wrapper


def _stamps(folder):
    """{relative path: (size, mtime_ns) for a file, None for a folder} below `folder` (links not followed)."""
    stamps = {}
    for entry in folder.rglob("*"):
        status = entry.lstat()
        stamps[entry.relative_to(folder)] = None if entry.is_dir() and not entry.is_symlink() else (
            status.st_size, status.st_mtime_ns)
    return stamps


def _remove_new(path, existed, before):
    import shutil

    if not existed:
        shutil.rmtree(path, ignore_errors=True)
        return
    if not path.is_dir() or path.is_symlink():
        return
    now = _stamps(path)
    # deepest first, so a new folder is empty by the time it is reached; links are removed, never followed
    for name in sorted(now, key=lambda name: len(name.parts), reverse=True):
        if name in before and before[name] == now[name]:
            continue
        entry = path / name
        try:
            if now[name] is None:
                if name not in before:
                    entry.rmdir()
            else:
                entry.unlink()
        except OSError:  # a new folder that still holds something the user put there meanwhile
            pass


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


# OWASP's CSV-injection rule: a spreadsheet reads a cell that begins with one of these as a formula.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# The quote that neutralises such a cell; a text cell that already begins with it gets a second one, so
# `read_csv_cell` can undo exactly what `csv_cell` did.
_CELL_QUOTE = "'"


def csv_cell(value):
    """`value` as a spreadsheet shows it as text: a string beginning with a formula character (or with the
    quote itself) gets a leading single quote. Numbers, None and other types are returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS + (_CELL_QUOTE,)):
        return _CELL_QUOTE + value
    return value


def read_csv_cell(value):
    """The text `csv_cell` was given: one leading single quote removed (files this package wrote read back
    as they were, e.g. a crop path `=1+2/000.png` in a preprocess manifest)."""
    if isinstance(value, str) and value.startswith(_CELL_QUOTE):
        return value[1:]
    return value


class SafeCsvWriter:
    """`csv.writer` whose string cells go through `csv_cell`; rows may be sequences or, with `fieldnames`,
    dicts (as `csv.DictWriter`, extra keys ignored)."""

    def __init__(self, handle, fieldnames=None, **options):
        self.fieldnames = list(fieldnames) if fieldnames is not None else None
        self._writer = csv.writer(handle, **options)
        # csv quotes a field holding a character of the line terminator only: with "\n" endings a "\r" in a
        # file name would go out unquoted and split the row for readers. Such rows are written fully quoted.
        self._quoted = csv.writer(handle, quoting=csv.QUOTE_ALL, **options)

    def writeheader(self):
        self._writer.writerow([csv_cell(name) for name in self.fieldnames])

    def writerow(self, row):
        if isinstance(row, dict):
            row = [row.get(name, "") for name in self.fieldnames]
        cells = [csv_cell(cell) for cell in row]
        breaks = any(isinstance(cell, str) and ("\r" in cell or "\n" in cell) for cell in cells)
        (self._quoted if breaks else self._writer).writerow(cells)

    def writerows(self, rows):
        for row in rows:
            self.writerow(row)
