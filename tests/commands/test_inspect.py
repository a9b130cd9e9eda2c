"""The inspect command: the data's size tier, the advice for it and the time it would take."""

from __future__ import annotations

import re

import pytest
from conftest import write_class_images

from hf_resnet101.commands.cli import main as cli_main


def test_inspect_command(image_folder, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["inspect", str(image_folder.parent)])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert "train: 21 images in 3 classes" in out
    assert "dataset size tier: tiny, by the 21 training images" in out and "resnet-50" in out
    assert "No GPU" in out or "GPU with" in out
    assert "--class_weighting balanced" not in out  # balanced classes


def test_inspect_advises_on_class_imbalance(tmp_path):
    from hf_resnet101.commands.inspect import inspect_folder

    write_class_images(tmp_path / "data", per_class=2)
    write_class_images(tmp_path / "data", per_class=12, classes={"red": (200, 0, 0)}, seed=1)
    lines = inspect_folder(tmp_path / "data").lines
    assert any("class imbalance" in line for line in lines)
    assert any("--class_weighting balanced" in line for line in lines)


def test_inspect_estimates_cpu_time_in_a_readable_unit(capsys, image_folder):
    from hf_resnet101.commands.cli import run_command
    from hf_resnet101.config.presets import approximate_duration

    assert [approximate_duration(s) for s in (3, 48, 600, 7200, 200000)] == [
        "about 3 s", "about 50 s", "about 10 min", "about 2.0 h", "about 2.3 days"
    ]  # fmt: skip
    assert run_command(["inspect", str(image_folder)]) == 0
    printed = capsys.readouterr().out
    assert "Estimated about " in printed and "0.0 h" not in printed


def test_inspecting_a_missing_folder_says_what_to_give(tmp_path):
    from hf_resnet101.commands.inspect import inspect_folder
    from hf_resnet101.errors import UsageError

    with pytest.raises(UsageError, match="missing does not exist: give the folder of class sub-folders"):
        inspect_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"^DATA .*empty has no class sub-folders\. Put the images"):
        inspect_folder(tmp_path / "empty")  # named as inspect takes it, not as --train_dir


def test_inspection_lines_describe_the_split_and_the_tier(image_folder):
    from hf_resnet101.commands.inspect import inspect_folder

    inspection = inspect_folder(image_folder, train_val_split=0.3)
    split = inspection.lines[0].removeprefix(f"training folder: {image_folder}; validation: ")
    assert re.fullmatch(
        r"split off, \d+ of \d+ images \(\d+%; --train_val_split 0.3 per class, at least one .*\)", split
    )


def test_a_split_that_holds_out_far_more_than_asked_says_so(tmp_path, caplog):
    """Twenty classes of two images: --train_val_split 0.15, but each class holds one out (50%)."""
    from hf_resnet101.commands.inspect import inspect_folder

    colours = {f"class {i:02d}": (10 * i, 255 - 10 * i, 5 * i) for i in range(20)}
    write_class_images(tmp_path / "data", per_class=2, classes=colours)
    inspection = inspect_folder(tmp_path / "data", train_val_split=0.15)
    assert "split off, 20 of 40 images (50%; --train_val_split 0.15 per class" in inspection.lines[0]
    assert "The split holds out 50% of the images for validation, not the 15% --train_val_split asks" in caplog.text
    assert inspection.report.num_train_images + len(inspection.report.images_per_class) > 0
    assert any("tiny" in line for line in inspection.lines)
