"""The one error base of deepfake-hf.

Every error the package raises on purpose derives from `DeepfakeHFError`, whose `str()` is one line
that names the file or option and the problem. The command line catches this base once and prints
that line; anything else reaching it is a bug and keeps its traceback.
"""


def one_line(text, limit=None):
    """`text` (or an exception) collapsed to one line of single spaces, cut at `limit` characters on a word."""
    line = " ".join(str(text).split()) or (type(text).__name__ if isinstance(text, BaseException) else "")
    if limit is not None and len(line) > limit:
        cut = line.rfind(" ", 0, limit)
        line = line[: cut if cut > limit // 2 else limit].rstrip(" ,;:(") + " ..."
    return line


class DeepfakeHFError(Exception):
    """A problem the user can act on; `str()` is one line."""

    def __init__(self, message=""):
        super().__init__(one_line(message))


class MissingDependencyError(DeepfakeHFError, ImportError):
    """An optional package is not installed; the message names the extra that installs it."""


class AnalysisCancelled(DeepfakeHFError):
    """Work stopped because the caller's cancel event was set (e.g. a request's time limit ran out)."""


# The model's remote-code files (configuration_deepfake.py, modeling_deepfake.py) cannot import this module, so
# their errors derive from ValueError; a copy loaded from a Hub repo is another class of the same name.
REMOTE_CODE_ERRORS = {"configuration_deepfake": ("DetectorConfigError",), "modeling_deepfake": ("VideoInputError",)}


def is_user_error(error: BaseException) -> bool:
    """Whether `error` is one the user can act on: a DeepfakeHFError or a remote-code file's own error."""
    if isinstance(error, DeepfakeHFError):
        return True
    return any(type(error).__name__ in REMOTE_CODE_ERRORS.get(module, ())
               for module in (cls.__module__.rpartition(".")[2] for cls in type(error).__mro__))


__all__ = ["AnalysisCancelled", "DeepfakeHFError", "MissingDependencyError", "is_user_error", "one_line"]
