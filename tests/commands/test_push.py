"""`hf-resnet101 card` renders a finished run's card again, keeping the run's manifest right about it."""

from __future__ import annotations

import argparse
import json
import shutil

from conftest import run_cli

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


def test_card_of_a_run_that_has_not_finished_is_refused(trained_run, tmp_path, capsys):
    """A run killed while writing its card leaves card_inputs.json: a card made from it made the folder look
    finished (model, card, figures) while its manifest said otherwise."""
    out = tmp_path / "run"
    shutil.copytree(trained_run["output"], out)
    (out / MODEL_CARD).unlink()
    manifest = json.loads((out / RUN_MANIFEST).read_text())
    (out / RUN_MANIFEST).write_text(json.dumps(manifest | {"finished": False}))
    _, err = run_cli(capsys, ["card", str(out)], expected_code=2)
    assert "holds a run that has not finished" in err and "run the same training command again" in err
    assert not (out / MODEL_CARD).exists()
