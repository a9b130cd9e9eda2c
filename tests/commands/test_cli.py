"""The command-line entry point: how a usage error is shown."""

from __future__ import annotations

import re
import sys

import pytest


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


def test_a_process_ended_by_end_process_keeps_its_status_and_finalizes_its_garbage(tmp_path):
    import subprocess
    import sys

    marker = tmp_path / "finalized"
    script = (
        "import sys\n"
        "from hf_resnet101.commands.cli import end_process\n"
        "class Cycle:\n"
        "    def __del__(self):\n"
        "        open(sys.argv[1], 'w').write('finalized')\n"
        "cycle = Cycle()\n"
        "cycle.itself = cycle\n"
        "del cycle\n"  # garbage only the cyclic collector finds: a bare gc.freeze() would keep it for good
        "end_process(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(marker)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert marker.read_text() == "finalized"


def test_an_unknown_or_abbreviated_flag_of_a_command_names_the_real_one(capsys):
    from hf_resnet101.commands.cli import run_command

    for argv, expected in (
        (["predict", "MODEL", "images", "--top", "3"], "--top (did you mean --top_k?)"),
        (["export", "MODEL", "OUT", "--output_dir", "x"], "Unknown option(s): --output_dir."),
        (["export", "MODEL", "OUT", "EXTRA"], "Unexpected argument(s): EXTRA."),
    ):
        with pytest.raises(SystemExit) as exited:
            run_command(argv)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert f"hf-resnet101 {argv[0]}: error: " in err and expected in err
        assert f"usage: hf-resnet101 {argv[0]} " in err  # the command's own usage, not the top level's


def test_a_number_out_of_range_is_refused_before_anything_is_loaded(capsys):
    """A batch of 0 reached `range()` in evaluate (a traceback) and inspect divided by an image size of 0; each
    number is checked where the command line is read, so no model or folder is opened (MODEL does not exist)."""
    from hf_resnet101.commands.cli import run_command

    for argv, expected in (
        (["predict", "MODEL", "images", "--top_k", "0"], "argument --top_k: must be a positive integer, got 0"),
        (["predict", "MODEL", "images", "--batch_size", "x"], "--batch_size: must be a positive integer, got x"),
        (["evaluate", "MODEL", "data", "--batch_size", "0"], "--batch_size: must be a positive integer, got 0"),
        (["evaluate", "MODEL", "data", "--show_mistakes", "-1"], "--show_mistakes: must be 0 or a positive"),
        (["inspect", "data", "--image_size", "0"], "--image_size: must be a positive integer, got 0"),
        (["inspect", "data", "--train_val_split", "1.5"], "--train_val_split: must be a number between 0 and 1"),
        (["export", "MODEL", "OUT", "--atol", "-1"], "--atol: must be 0 or a positive number, got -1"),
    ):
        with pytest.raises(SystemExit) as exited:
            run_command(argv)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert f"usage: hf-resnet101 {argv[0]} " in err and expected in err, err
