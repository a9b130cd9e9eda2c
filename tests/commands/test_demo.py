"""The README's demo: the full ResNet-101 on the digits, offline (slow: about two minutes on 2 cores)."""

from __future__ import annotations

import time

import pytest

from hf_resnet101.commands.cli import main


@pytest.mark.slow
def test_demo_learns_offline_within_five_minutes(tmp_path, capsys):
    started = time.perf_counter()
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--output_dir", str(tmp_path / "demo")])
    elapsed = time.perf_counter() - started
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    accuracy = float(out.split("accuracy=")[1].split(",")[0])
    assert accuracy >= 0.8, out
    assert elapsed < 300, f"demo took {elapsed:.0f} s"
    assert "pipeline('image-classification')" in out


def test_demo_help_shows_its_defaults(capsys):
    from hf_resnet101.commands.cli import run_command

    with pytest.raises(SystemExit):
        run_command(["demo", "--help"])
    assert "(default: demo_output)" in " ".join(capsys.readouterr().out.split())  # argparse wraps lines
