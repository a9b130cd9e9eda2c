"""Errors that carry a message meant for the person running the command, and what such a message offers."""

import difflib
from pathlib import Path


class UsageError(ValueError):
    """Raised when the data, the options or the environment cannot work.

    The message says what was wrong and what to do about it; entry points print it without a traceback and
    exit with status 2.
    """


class TrainingImageUnreadable(UsageError):
    """A training image that was readable when the run scanned it could not be read during training (deleted,
    moved, or overwritten with a damaged file).

    Raised in a data-loading worker, it reaches the training process as torch re-raises it there: the same class,
    built from a message of the worker's whole traceback. Only its own last line is kept, so the user still reads
    one line.
    """

    def __init__(self, message: str):
        if message.startswith("Caught ") and "Original Traceback" in message:
            last = message.rstrip().splitlines()[-1]
            message = last.partition(f"{type(self).__name__}: ")[2] or last
        super().__init__(message)


class PushError(UsageError):
    """Raised when a push to the Hub fails for good; the message says how to push the output folder again."""


class TrainingInterrupted(Exception):
    """Ctrl-C or SIGTERM: a checkpoint was saved and the run stopped cleanly (exit status 128 + the signal's
    number: 130 for Ctrl-C, 143 for SIGTERM, as a shell reports a process those signals ended)."""

    def __init__(self, message: str, signal_number: int = 2):
        super().__init__(message)
        self.exit_status = 128 + signal_number


def did_you_mean_path(path: str | Path) -> str:
    """The sentence to add to a message about a path that does not exist, when a close spelling of its first
    missing part does (`data/trian` -> `data/train`, `Data/birds` -> `data/birds`): ` Did you mean PATH?`, with the
    rest of the path as given; else an empty string."""
    path = Path(path)
    parts = path.parts
    for depth in range(len(parts)):
        existing = Path(*parts[:depth]) if depth else Path(".")
        candidate = existing / parts[depth]
        if candidate.exists():
            continue
        if not existing.is_dir():
            return ""
        try:
            names = [entry.name for entry in existing.iterdir()]
        except OSError:
            return ""
        lowered = {name.lower(): name for name in names}
        close = lowered.get(parts[depth].lower())
        if close is None:
            matches = difflib.get_close_matches(parts[depth], names, n=1, cutoff=0.75)
            close = matches[0] if matches else None
        if close is None:
            return ""
        suggestion = Path(*parts[:depth], close, *parts[depth + 1 :])
        return f" Did you mean {suggestion}?" if suggestion.exists() else ""
    return ""
