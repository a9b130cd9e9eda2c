"""Keeping the libraries' expected chatter out of a run's output, and letting it through with --verbose."""

from __future__ import annotations

import datasets
import pytest
from transformers.utils import logging

from hf_resnet101.train.quiet import (
    checkpoint_num_labels,
    datasets_progress_silenced,
    describe_head,
    model_loading_silenced,
    silence_datasets,
)


@pytest.fixture
def datasets_bars_on():
    datasets.enable_progress_bars()
    yield
    datasets.enable_progress_bars()


def test_datasets_bars_are_off_inside_and_back_after(datasets_bars_on):
    with datasets_progress_silenced(verbose=False):
        assert not datasets.is_progress_bar_enabled()
    assert datasets.is_progress_bar_enabled()
    with datasets_progress_silenced(verbose=True):
        assert datasets.is_progress_bar_enabled()


def test_datasets_bars_come_back_after_an_error(datasets_bars_on):
    with pytest.raises(RuntimeError), datasets_progress_silenced(verbose=False):
        raise RuntimeError("scan failed")
    assert datasets.is_progress_bar_enabled()


def test_a_user_who_turned_datasets_bars_off_keeps_them_off():
    datasets.disable_progress_bars()
    try:
        with datasets_progress_silenced(verbose=False):
            pass
        assert not datasets.is_progress_bar_enabled()
    finally:
        datasets.enable_progress_bars()


def test_model_loading_is_quiet_then_the_verbosity_is_restored():
    before = logging.get_verbosity()
    logging.set_verbosity_info()
    try:
        with model_loading_silenced(verbose=False):
            assert logging.get_verbosity() == logging.ERROR and not logging.is_progress_bar_enabled()
        assert logging.get_verbosity() == logging.INFO and logging.is_progress_bar_enabled()
        with model_loading_silenced(verbose=True):
            assert logging.get_verbosity() == logging.INFO
    finally:
        logging.set_verbosity(before)


def test_only_the_fingerprint_warning_is_silenced():
    fingerprint = datasets.utils.logging.get_logger("datasets.fingerprint")
    try:
        silence_datasets(verbose=False)
        assert fingerprint.getEffectiveLevel() == logging.ERROR
        assert datasets.utils.logging.get_logger("datasets.builder").getEffectiveLevel() < logging.ERROR
        silence_datasets(verbose=True)
        assert fingerprint.level == logging.NOTSET
    finally:
        fingerprint.setLevel(logging.NOTSET)


def test_head_line_says_whether_the_head_is_replaced():
    assert describe_head(1000, ["cat", "dog"]) == (
        "head: a new classification head for 2 classes replaces the checkpoint's 1000-class head "
        "(expected; --verbose shows the load report)"
    )
    assert describe_head(2, ["cat", "dog"]) == "head: the checkpoint's 2-class head, relabelled with the folder names"
    assert describe_head(None, ["cat", "dog"]).startswith("head: the checkpoint's 2-class head")


def test_checkpoint_num_labels_reads_the_config_or_gives_none(tiny_resnet, tmp_path):
    assert checkpoint_num_labels(str(tiny_resnet)) == 4  # the tiny model of conftest
    assert checkpoint_num_labels(str(tmp_path / "missing"), local_files_only=True) is None


def test_a_note_logged_under_a_progress_bar_starts_its_own_line(capsys):
    """The overfitting note, logged while an evaluation's bar was drawn, was glued to the end of the bar's line."""
    import logging
    import sys

    from tqdm.auto import tqdm

    from hf_resnet101.train.quiet import AboveProgressBars, show_notes_above_progress_bars

    name = "hf_resnet101.test_quiet_notes"
    logger = logging.getLogger(name)
    try:
        show_notes_above_progress_bars(name)
        show_notes_above_progress_bars(name)  # once, however often a run sets its logging up
        assert sum(isinstance(h, AboveProgressBars) for h in logger.handlers) == 1
        with tqdm(total=3, file=sys.stderr, desc="Evaluating") as bar:
            bar.update(1)
            logger.warning("Overfitting: a note")
        err = capsys.readouterr().err
        assert "\rOverfitting: a note\n" in err  # the bar's line was cleared first
    finally:
        logger.handlers.clear()
