"""The command line as a new user meets it: strict flags, a short --help, quiet runs, trackers checked early."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO_ROOT


def run_script(argv: list[str]) -> subprocess.CompletedProcess:
    """`python recipes/finetune.py ARGV` as a user runs it (fp32, offline), output captured."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "recipes" / "finetune.py"), *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def finetune_options() -> set[str]:
    sys.path.insert(0, str(REPO_ROOT / "recipes"))
    try:
        import finetune  # noqa: F401
    finally:
        sys.path.pop(0)
    from hf_resnet101.config.options import DataArguments, FinetuneTrainingArguments, ModelArguments
    from hf_resnet101.config.parser import ConfigParser

    parser = ConfigParser((DataArguments, ModelArguments, FinetuneTrainingArguments))
    return {option for option in parser._option_string_actions if option.startswith("--")}


def test_abbreviated_flag_is_an_error_naming_the_real_one(finetune_main, image_folder, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--train_dir", str(image_folder), "--output_dir", str(out), "--learning_rat", "1e-4"]
    assert finetune_main(argv) == 2
    err = capsys.readouterr().err
    assert "did you mean --learning_rate?" in err
    assert not out.exists()  # stopped before anything was written

    result = run_script(argv)
    assert result.returncode == 2
    assert "did you mean --learning_rate?" in result.stderr
    assert "Traceback" not in result.stderr


def test_other_scripts_names_for_an_option_are_pointed_to_this_ones(finetune_main, image_folder, tmp_path, capsys):
    argv = [
        "--train_dir",
        str(image_folder),
        "--output_dir",
        str(tmp_path / "out"),
        "--lr",
        "1e-4",
        "--batch_size",
        "8",
        "--validation_split",
        "0.2",
    ]
    assert finetune_main(argv) == 2
    err = capsys.readouterr().err
    assert "--lr (did you mean --learning_rate?), --batch_size (did you mean --per_device_train_batch_size?)" in err
    assert "--validation_split (did you mean --train_val_split?)" in err  # it was offered --validation_dir


def test_help_is_short_and_names_every_option_of_the_readme():
    result = run_script(["--help"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) < 120
    listed = set(re.findall(r"^\s+(--\w+)", result.stdout, flags=re.MULTILINE))
    assert "--config" in listed and "--help_all" in listed
    readme_options = set(re.findall(r"--\w+", (REPO_ROOT / "README.md").read_text())) & finetune_options()
    assert readme_options, "the README names no finetune option: the check would be empty"
    assert readme_options <= listed, sorted(readme_options - listed)
    assert "adamw_torch_fused" not in result.stdout  # optimizer names stay in --help_all
    assert "push every time" not in result.stdout.lower()

    full = run_script(["--help_all"])
    assert full.returncode == 0
    assert "--adam_beta1" in full.stdout and len(full.stdout.splitlines()) > len(lines)


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is not None, reason="tensorboard is installed")
def test_report_to_tensorboard_without_the_package_stops_before_the_scan(
    finetune_main, image_folder, tmp_path, capsys
):
    out = tmp_path / "out"
    code = finetune_main(["--train_dir", str(image_folder), "--output_dir", str(out), "--report_to", "tensorboard"])
    assert code == 2
    err = capsys.readouterr().err
    assert 'pip install "hf-resnet101[dashboard]"' in err
    assert "Traceback" not in err
    assert not (out / "data_report.json").exists()


def test_value_given_as_flag_equals_value_wins_over_preset_and_run_is_quiet(image_folder, tiny_resnet, tmp_path):
    out = tmp_path / "out"
    argv = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    argv += ["--learning_rate=1e-4", "--preset", "auto", "--precision", "fp32", "--eval_strategy", "no"]
    result = run_script(argv)
    assert result.returncode == 0, result.stderr
    assert "learning_rate=0.0001 (command line)" in result.stderr
    assert "per_device_train_batch_size=" in result.stderr and "(preset tiny)" in result.stderr
    silenced = ("couldn't be hashed", "LOAD REPORT", "Downloading data", "Generating train split", "MISMATCH")
    assert [m for m in silenced if m in result.stderr] == []
    assert "new classification head" in result.stderr  # the replaced head, as one line of the summary

    verbose = run_script([*argv[:3], str(tmp_path / "verbose"), *argv[4:], "--verbose"])
    assert verbose.returncode == 0, verbose.stderr
    assert any(m in verbose.stderr for m in silenced)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("per_device_train_batch_size: 8.7", "Config key per_device_train_batch_size: 8.7 is not a valid int."),
        ("image_size: 40.5", "Config key image_size: 40.5 is not a valid int."),
        ("eval_strategy: no", 'which eval_strategy does not take. Put the value in quotes (eval_strategy: "no")'),
        ("num_train_epochs: [1, 2]", "Config key num_train_epochs takes one number, got a list: [1, 2]."),
        ("seed: null", "Config key seed has no value (null): give one, or leave the key out for its default."),
        ("lr_scheduler_type: 3", "Config key lr_scheduler_type: 3 is not one of linear, cosine"),
        ("learning_rate: abc", "Config key learning_rate: 'abc' is not a valid float."),
        ("lr: 1e-4", "has unknown option(s): lr (did you mean learning_rate?)"),
        ("learnig_rate: 1e-4", "has unknown option(s): learnig_rate (did you mean learning_rate?)"),
    ],
)
def test_config_values_are_checked_as_the_command_line_checks_them(
    finetune_main, image_folder, tmp_path, capsys, line, message
):
    config = tmp_path / "run.yaml"
    config.write_text(line + "\n")
    out = tmp_path / "out"
    assert finetune_main(["--config", str(config), "--train_dir", str(image_folder), "--output_dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_config_numbers_and_flags_reach_the_run_as_their_types(tmp_path):
    from hf_resnet101.config.options import DataArguments, FinetuneTrainingArguments, ModelArguments
    from hf_resnet101.config.parser import ConfigParser

    config = tmp_path / "run.yaml"
    config.write_text(
        "freeze_backbone: 2\nnum_train_epochs: 3\ndedupe: true\neval_strategy: 'no'\nlearning_rate: 1e-4\n"
    )
    parser = ConfigParser((DataArguments, ModelArguments, FinetuneTrainingArguments))
    data, model, training = parser.parse_args_and_config(
        ["--config", str(config), "--train_dir", str(tmp_path), "--output_dir", str(tmp_path / "out")]
    )
    assert model.freeze_backbone == "2" and data.dedupe is True
    assert training.num_train_epochs == 3.0 and training.learning_rate == 1e-4
    assert training.eval_strategy.value == "no"


@pytest.mark.parametrize(("given", "expected"), [([], None), (["--hub_private_repo"], True),
                                                 (["--hub_private_repo", "false"], False)])  # fmt: skip
def test_a_yes_no_option_without_a_default_takes_a_bare_flag(tmp_path, given, expected):
    """`--hub_private_repo` alone was refused at training ("expected one argument"), while push took it bare."""
    from hf_resnet101.config.options import DataArguments, FinetuneTrainingArguments, ModelArguments
    from hf_resnet101.config.parser import ConfigParser

    parser = ConfigParser((DataArguments, ModelArguments, FinetuneTrainingArguments))
    argv = ["--train_dir", str(tmp_path), *given, "--output_dir", str(tmp_path / "o")]
    assert parser.parse_args_and_config(argv)[2].hub_private_repo is expected
