"""`hf-resnet101 train`: Accelerate's launcher, with the training script's exit status passed through.

`accelerate launch SCRIPT` reports any failure of the script as a `CalledProcessError` (or, with several processes,
torch's `ChildFailedError`) traceback and exit status 1, after the script's own message: a script cannot change
what its launcher prints or returns. This command runs the same launcher in-process and returns the status of the
script itself: 0, 2 for a usage error (bad data, bad options), 130 for an interrupted run.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess

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


def run_train(argv: list[str], verbose: bool = False) -> int:
    """Launches the training entry point with Accelerate (its config file and flags apply) and returns its status."""
    from accelerate.commands.launch import launch_command, launch_command_parser

    launch_options, training_options = split_launch_options(argv)
    args = launch_command_parser().parse_args([*launch_options, "--module", TRAINING_MODULE, *training_options])
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
    except Exception as error:
        if type(error).__name__ != "ChildFailedError":
            raise
        return status_of_failure(error)
    return 0
