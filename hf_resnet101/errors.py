"""Errors that carry a message meant for the person running the command."""


class UsageError(ValueError):
    """Raised when the data, the options or the environment cannot work.

    The message says what was wrong and what to do about it; entry points print it without a traceback and
    exit with status 2.
    """


class PushError(UsageError):
    """Raised when a push to the Hub fails for good; the message says how to push the output folder again."""


class TrainingInterrupted(Exception):
    """Ctrl-C: a checkpoint was saved and the run stopped cleanly (exit status 130)."""
