"""`hf-resnet101 train`: Accelerate's launcher, with the training script's exit status passed through.

`accelerate launch SCRIPT` reports any failure of the script as a `CalledProcessError` (or, with several processes,
torch's `ChildFailedError`) traceback and exit status 1, after the script's own message: a script cannot change
what its launcher prints or returns. This command runs the same launcher in-process and returns the status of the
script itself: 0, 2 for a usage error (bad data, bad options), 130 for an interrupted run.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import logging
import signal
import subprocess
from pathlib import Path

from ..errors import UsageError

TRAINING_MODULE = "hf_resnet101.commands.finetune"
INTERRUPTED = 130


def split_launch_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """Accelerate's options come before `--`, the training options after it; without `--` all are training options."""
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return [], list(argv)


def status_of_failure(error: BaseException) -> int:
    """The exit status of the training process behind a launcher's exception (128 + N for a signal N)."""
    if isinstance(error, subprocess.CalledProcessError):
        code = error.returncode
    else:  # torch.distributed.elastic's ChildFailedError: the first process that failed is the root cause
        code = error.get_first_failure()[1].exitcode
    return 128 - code if code < 0 else code


def stop_training_processes(signum, frame) -> None:
    """Passes a SIGINT sent to this process on to the training processes it started, as SIGTERM.

    A terminal's Ctrl-C reaches them already (it goes to the whole process group), and they take a SIGTERM after
    it as the same stop passed on (`train.monitors.GracefulInterrupt`); a SIGINT sent to this process alone (`kill
    -INT PID`, `timeout -s INT`, a supervisor) would otherwise stop nothing, and training would run on. Only direct
    children are signalled: their own data-loading workers are theirs to stop.
    """
    import psutil

    for child in psutil.Process().children():
        with contextlib.suppress(psutil.NoSuchProcess):
            child.send_signal(signal.SIGTERM)


@contextlib.contextmanager
def waiting_through_ctrl_c():
    """While the training processes run, Ctrl-C is theirs to handle (they save a checkpoint and exit 130).

    The terminal sends SIGINT to the whole process group; the launcher would die of it at once and return before
    the checkpoint is written. A Python handler, unlike SIG_IGN, is not inherited by the processes it starts.
    """
    previous = signal.signal(signal.SIGINT, stop_training_processes)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def launch_arguments(argv: list[str]) -> argparse.Namespace:
    """Accelerate's launch arguments for `hf-resnet101 train ARGV`, checked first so that a mistake is one line.

    Raises:
        UsageError: for an Accelerate option given among the training options (without `--`), one Accelerate does
            not know, and a --config_file that is missing or is not an Accelerate config.
    """
    from accelerate.commands.launch import launch_command_parser

    parser = launch_command_parser()
    launch_options, training_options = split_launch_options(argv)
    launch_flags = {flag for flag in parser._option_string_actions if flag.startswith("--")}
    if not launch_options:
        check_no_launch_flags(training_options, launch_flags)
    _, unknown = parser.parse_known_args([*launch_options, "--module", TRAINING_MODULE])
    if flags := [arg.split("=", 1)[0] for arg in unknown if arg.startswith("-")]:
        named = []
        for flag in flags:
            close = difflib.get_close_matches(underscored(flag), launch_flags, n=1)
            named.append(f"{flag} (did you mean {close[0]}?)" if close else flag)
        raise UsageError(
            f"Unknown Accelerate option(s) before `--`: {', '.join(named)}. `accelerate launch --help` lists them; "
            "the training options go after `--`."
        )
    args = parser.parse_args([*launch_options, "--module", TRAINING_MODULE, *training_options])
    check_accelerate_config(args.config_file)
    return args


def underscored(flag: str) -> str:
    """`--multi-gpu` as `--multi_gpu`: both spellings name one option."""
    return "--" + flag.removeprefix("--").replace("-", "_")


def check_no_launch_flags(training_options: list[str], launch_flags: set[str]) -> None:
    """Stops on Accelerate's options given without `--`, where the training options' parser would take them for
    misspelt training options and suggest others."""
    given = [arg.split("=", 1)[0] for arg in training_options if arg.startswith("--")]
    candidates = [flag for flag in given if flag in launch_flags]
    if not candidates:
        return
    import dataclasses

    from ..config.options import DataArguments, FinetuneTrainingArguments, ModelArguments

    training_names = {
        f"--{field.name}"
        for holder in (DataArguments, ModelArguments, FinetuneTrainingArguments)
        for field in dataclasses.fields(holder)
    } | {"--config", "--help", "--help_all", "--verbose"}
    if launch_only := [flag for flag in candidates if underscored(flag) not in training_names]:
        raise UsageError(
            f"{', '.join(launch_only)}: Accelerate's option(s), not training options. Put them before `--` and the "
            f"training options after it: hf-resnet101 train {' '.join(launch_only)} ... -- --train_dir DATA ..."
        )


def check_accelerate_config(config_file: str | None) -> None:
    """Stops on a --config_file that Accelerate cannot use, saying what it is (a training config is a mix-up that
    the two `recipes/` folders invite)."""
    if config_file is None:
        return
    path = Path(config_file).expanduser()
    if not path.is_file():
        raise UsageError(
            f"--config_file {config_file} does not exist: give an Accelerate config (`accelerate config` writes "
            "one; the package's are in recipes/accelerate/ of its repository), or leave it out."
        )
    import yaml

    try:
        settings = (
            yaml.safe_load(path.read_text()) if path.suffix in (".yaml", ".yml") else json.loads(path.read_text())
        )
    except (ValueError, yaml.YAMLError) as error:
        raise UsageError(f"--config_file {config_file} cannot be read: {str(error).splitlines()[0]}") from error
    if isinstance(settings, dict) and "distributed_type" in settings:
        return
    training = isinstance(settings, dict) and bool({"train_dir", "model_name_or_path", "output_dir"} & set(settings))
    raise UsageError(
        f"--config_file {config_file} is not an Accelerate config (it sets no distributed_type)"
        + (
            f": it holds training options, so give it after `--` as --config {config_file}."
            if training
            else ": `accelerate config` writes one; the package's are in recipes/accelerate/ of its repository."
        )
    )


def run_train(argv: list[str], verbose: bool = False) -> int:
    """Launches the training entry point with Accelerate (its config file and flags apply) and returns its status.

    Raises:
        UsageError: for launch options that cannot work (`launch_arguments`), before anything starts.
    """
    from accelerate.commands.launch import launch_command

    args = launch_arguments(argv)
    if not verbose:
        # The failed process has said what was wrong; torch's agent would repeat it as an error table. The launcher's
        # list of the defaults it filled in (one process, no mixed precision, ...) is what a user expects.
        logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
        logging.getLogger("accelerate.commands.launch").setLevel(logging.ERROR)
    try:
        with waiting_through_ctrl_c():
            launch_command(args)
    except subprocess.CalledProcessError as error:
        return status_of_failure(error)
    except ValueError as error:  # Accelerate's own checks of the launch options, made before anything starts
        raise UsageError(f"accelerate launch: {error}") from error
    except Exception as error:
        if type(error).__name__ != "ChildFailedError":
            raise
        return status_of_failure(error)
    return 0
