"""Errors that carry a message meant for the person running the command."""


class UsageError(ValueError):
    """Raised when the data, the options or the environment cannot work.

    The message says what was wrong and what to do about it; entry points print it without a traceback and
    exit with status 2.
    """


class PushError(UsageError):
    """Raised when a push to the Hub fails for good; the message says how to push the output folder again."""


class TrainingInterrupted(Exception):
    """Ctrl-C or SIGTERM: a checkpoint was saved and the run stopped cleanly (exit status 128 + the signal's
    number: 130 for Ctrl-C, 143 for SIGTERM, as a shell reports a process those signals ended)."""

    def __init__(self, message: str, signal_number: int = 2):
        super().__init__(message)
        self.exit_status = 128 + signal_number
