"""Keeping the libraries' expected chatter out of a run's output (`--verbose` lets it through), and the package's
own notes readable beside the progress bars."""

from __future__ import annotations

import contextlib
import logging as std_logging
import sys

import datasets
from tqdm.auto import tqdm
from transformers.utils import logging


def silence_datasets(verbose: bool) -> None:
    """Datasets' fingerprint warning is expected: the training transform holds the epoch in shared memory.

    That shared value can only be pickled when a worker process starts, so datasets cannot hash the transform and
    says so; the transform is applied on the fly (`with_transform`), nothing is cached under that hash, and the
    warning asks nothing of the user. Only that logger is quieted: datasets' other warnings still show.
    """
    level = logging.NOTSET if verbose else logging.log_levels["error"]  # NOTSET: datasets' own verbosity again
    datasets.utils.logging.get_logger("datasets.fingerprint").setLevel(level)


@contextlib.contextmanager
def datasets_progress_silenced(verbose: bool):
    """No "Downloading data" / "Generating split" bars while local image folders are read."""
    enabled = datasets.is_progress_bar_enabled()
    if not verbose and enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not verbose and enabled:
            datasets.enable_progress_bars()


@contextlib.contextmanager
def model_loading_silenced(verbose: bool):
    """No LOAD REPORT table for the replaced head, nor weight-loading bars: the run summary says it in one line."""
    if verbose:
        yield
        return
    level = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def describe_head(checkpoint_num_labels: int | None, label_names: list[str]) -> str:
    """The summary's line about the classification head, which a checkpoint for other classes cannot keep."""
    if checkpoint_num_labels is not None and checkpoint_num_labels != len(label_names):
        return (
            f"head: a new classification head for {len(label_names)} classes replaces the checkpoint's "
            f"{checkpoint_num_labels}-class head (expected; --verbose shows the load report)"
        )
    return f"head: the checkpoint's {len(label_names)}-class head, relabelled with the folder names"


def checkpoint_num_labels(name_or_path: str, **kwargs) -> int | None:
    """How many classes the checkpoint's own head has (None when its config cannot be read)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(name_or_path, **kwargs).num_labels
    except (OSError, ValueError):
        return None


class AboveProgressBars(std_logging.Handler):
    """Writes the package's notes through `tqdm.write`, which clears the progress bars drawn, writes the line and
    draws them again: a warning raised while a bar was on screen (the overfitting note, during an evaluation's)
    used to be glued to the end of the bar's line, where it was easy to miss."""

    def emit(self, record: std_logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)  # the stderr of now (a test's capture, say)
        except Exception:
            self.handleError(record)


def show_notes_above_progress_bars(logger_name: str) -> None:
    """Gives the package's logger the handler above (once): its notes were printed by Python's last-resort
    handler, plain messages on stderr, which is what this one prints too."""
    logger = std_logging.getLogger(logger_name)
    if not any(isinstance(handler, AboveProgressBars) for handler in logger.handlers):
        logger.addHandler(AboveProgressBars())
