"""`hf-resnet101 card` renders a finished run's card again, keeping the run's manifest right about it."""

from __future__ import annotations

import argparse
import json
import shutil

from hf_resnet101.commands.push import run_command
from hf_resnet101.outputs import MODEL_CARD, RUN_MANIFEST


def test_card_command_renders_the_card_again_for_a_hub_repo(trained_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(trained_run["output"], out)
    (out / MODEL_CARD).unlink()
    run_command(argparse.Namespace(command="card", output_dir=str(out), hub_model_id="me/birds"))
    card = (out / MODEL_CARD).read_text()
    assert "me/birds" in card and f"Wrote {out / MODEL_CARD}" in capsys.readouterr().out
    manifest = json.loads((out / RUN_MANIFEST).read_text())
    assert MODEL_CARD in manifest["files"]  # rewritten by the package: still the run's own file
