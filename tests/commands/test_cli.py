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
