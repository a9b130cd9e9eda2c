"""The error types entry points turn into a message and exit status 2."""

from __future__ import annotations

import pytest

from hf_resnet101.commands.cli import exit_on_usage_error
from hf_resnet101.errors import PushError, UsageError


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
