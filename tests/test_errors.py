"""The error types entry points turn into a message and exit status 2."""

from __future__ import annotations

import pytest

from hf_resnet101.commands.cli import exit_on_usage_error
from hf_resnet101.errors import PushError, UsageError, did_you_mean_path


def test_a_failed_push_is_a_usage_error_and_a_value_error():
    """Entry points catch UsageError alone, so a failed push must be one to reach the user without a traceback."""
    assert issubclass(PushError, UsageError) and issubclass(UsageError, ValueError)
    with pytest.raises(UsageError, match="push again"):
        raise PushError("the Hub refused: push again with hf-resnet101 push")


def test_entry_points_print_the_message_and_exit_2(capsys):
    @exit_on_usage_error
    def push():
        raise PushError("the Hub refused the upload")

    assert push() == 2
    err = capsys.readouterr().err
    assert "error: the Hub refused the upload" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("data/trian", "data/train"),  # a typo in the last part
        ("Data/train/birds", "data/train/birds"),  # another case, the rest kept as given
        ("data/trian/birds", "data/train/birds"),
        ("data/zzzzz", None),  # nothing close
        ("data/trian/bords", None),  # the suggestion must exist itself
        ("nowhere/train", None),
    ],
)
def test_a_missing_path_gets_a_close_existing_one(tmp_path, monkeypatch, given, meant):
    (tmp_path / "data" / "train" / "birds").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert did_you_mean_path(given) == (f" Did you mean {meant}?" if meant else "")
