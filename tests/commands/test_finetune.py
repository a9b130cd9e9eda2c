"""The training entry point behind `recipes/finetune.py` and `hf-resnet101 train`: options in, a finished run out."""

from __future__ import annotations

import pytest

from hf_resnet101.commands.finetune import RECIPE_DOC, main


def test_help_shows_the_launch_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "accelerate launch recipes/finetune.py --train_dir DATA/train --output_dir OUT" in out
    assert RECIPE_DOC.splitlines()[0] in out


def test_a_usage_error_exits_2_with_the_message(tmp_path, capsys):
    assert main(["--train_dir", str(tmp_path / "missing"), "--output_dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "missing" in err and "Traceback" not in err


def test_a_finished_run_says_where_the_model_is(image_folder, tiny_resnet, tmp_path, capsys):
    out = tmp_path / "out"
    exit_code = main(
        ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet),
         "--max_steps", "1", "--eval_strategy", "no"]
    )  # fmt: skip
    assert exit_code == 0 and (out / "model.safetensors").is_file()
    assert str(out) in capsys.readouterr().out  # the closing lines, printed by the main process
