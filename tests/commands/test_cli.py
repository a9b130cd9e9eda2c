"""The command-line entry point: how a usage error is shown."""

from __future__ import annotations

import re
import sys


def test_error_during_a_progress_bar_starts_on_a_fresh_line(capsys):
    from tqdm.auto import tqdm

    from hf_resnet101.commands.cli import exit_on_usage_error
    from hf_resnet101.errors import UsageError

    @exit_on_usage_error
    def scan():
        bar = tqdm(total=10, desc="Scanning images", file=sys.stderr)
        bar.update(3)
        raise UsageError("a folder cannot be read")

    assert scan() == 2
    err = capsys.readouterr().err
    assert re.search(r"(^|\n|\r)error: a folder cannot be read", err), repr(err)
    assert "files/s]error" not in err and "it/s]error" not in err
