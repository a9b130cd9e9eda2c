"""Checkpoints that survive a kill: completion markers, automatic resume of the same run only, and output folders
never clobbered."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from transformers import TrainerCallback, TrainerState
from transformers.utils import logging

from ..errors import UsageError, did_you_mean_path
from ..outputs import CHECKPOINT_COMPLETE, TRAINER_STATE, checkpoint_folder, checkpoint_folders, checkpoint_step
from .output_folder import RunManifest, foreign_files, is_finished
from .run_identity import differences, mismatch_error, read_identity, ways_back, write_identity
from .storage import MAKE_ROOM, missing_checkpoint_files, open_weights_to_umask, write_failure_reason

logger = logging.get_logger(__name__)


class CheckpointCompletionCallback(TrainerCallback):
    """Marks a checkpoint complete once the Trainer has written all of it (model, optimizer, scheduler, RNG), with
    the seconds spent training up to it, the processes before a resume included (`training_seconds`)."""

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.seconds_before = 0.0  # training time recorded in the checkpoint this process resumed from
        self.started: float | None = None

    def resume_from(self, checkpoint: str | Path | None) -> None:
        self.seconds_before = recorded_training_seconds(checkpoint)

    def training_seconds(self) -> float:
        """Training time up to now, across resumes."""
        return self.seconds_before + (self.clock() - self.started if self.started is not None else 0.0)

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = self.clock()

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            checkpoint = checkpoint_folder(args.output_dir, state.global_step)
            open_weights_to_umask(checkpoint)
            mark_complete(checkpoint, state.global_step, self.training_seconds())


class SaveAfterEpochEvaluation(TrainerCallback):
    """With --eval_strategy epoch, moves a checkpoint due at an epoch's last step (by --save_steps, the time, the
    end of training or a stop) to after that epoch's evaluation. The Trainer saves a step's checkpoint before the
    epoch's evaluation, so the checkpoint lacked it, and a run resumed from it never made it: its log, curves
    and choice of the best model differed from an unstopped run's. Must come after every callback that asks for a
    save at a step's end."""

    def __init__(self):
        self.deferred = False

    def on_step_end(self, args, state, control, **kwargs):
        evaluates_by_epoch = getattr(args.eval_strategy, "value", args.eval_strategy) == "epoch"
        if control.should_save and evaluates_by_epoch and float(state.epoch or 0).is_integer():
            control.should_save, self.deferred = False, True
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.deferred:
            control.should_save, self.deferred = True, False
        return control


class RunRecordCallback(TrainerCallback):
    """Writes the run's identity into each checkpoint before it is marked complete, and records the files written
    so far in the output folder's manifest (a killed run's checkpoints stay recognisably its own)."""

    def __init__(self, identity: dict, manifest: RunManifest | None):
        self.identity = identity
        self.manifest = manifest

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            checkpoint = checkpoint_folder(args.output_dir, state.global_step)
            if checkpoint.is_dir():
                write_identity(checkpoint, self.identity)
            if self.manifest is not None:
                self.manifest.record()


class TimedCheckpointCallback(TrainerCallback):
    """Also saves a checkpoint every `minutes`, so a long epoch never loses more than that."""

    def __init__(self, minutes: float, clock=time.monotonic):
        self.seconds = minutes * 60
        self.clock = clock
        self.last_save = clock()

    def on_save(self, args, state, control, **kwargs):
        self.last_save = self.clock()

    def on_step_end(self, args, state, control, **kwargs):
        if self.seconds > 0 and self.clock() - self.last_save >= self.seconds:
            control.should_save = True
        return control


def mark_complete(checkpoint: Path, step: int, training_seconds: float | None = None) -> None:
    if not checkpoint.is_dir():
        return
    tmp = checkpoint / f".{CHECKPOINT_COMPLETE}.tmp"
    record = {"step": step, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if training_seconds is not None:
        record["training_seconds"] = round(training_seconds, 3)
    tmp.write_text(json.dumps(record))
    os.replace(tmp, checkpoint / CHECKPOINT_COMPLETE)  # atomic: the marker exists whole or not at all


def recorded_training_seconds(checkpoint: str | Path | None) -> float:
    """The training time a checkpoint's completion marker records (0 for none, or a marker from before it did)."""
    marker = Path(checkpoint) / CHECKPOINT_COMPLETE if checkpoint else None
    if marker is None or not marker.is_file():
        return 0.0
    try:
        return float(json.loads(marker.read_text()).get("training_seconds", 0.0))
    except (ValueError, OSError, AttributeError):
        return 0.0


def finished_training_state(checkpoint: str | Path | None) -> TrainerState | None:
    """The checkpoint's TrainerState when it is at the run's last step: the run was stopped after training, while
    finishing (card, pipeline check). The Trainer, resumed from it, would train one step past the end (it checks
    for the last step only after a step), so the run finishes from it instead."""
    state_file = Path(checkpoint) / TRAINER_STATE if checkpoint else None
    if state_file is None or not state_file.is_file():
        return None
    state = TrainerState.load_from_json(str(state_file))
    return state if state.max_steps and state.global_step >= state.max_steps else None


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / CHECKPOINT_COMPLETE).is_file()


def last_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest checkpoint with its completion marker; newer incomplete ones (a kill mid-save) are skipped."""
    checkpoints = checkpoint_folders(output_dir)
    for checkpoint in reversed(checkpoints):
        if is_complete(checkpoint):
            return checkpoint
        logger.warning(f"Skipping {checkpoint}: it is incomplete (the run was stopped while saving it).")
    return None


def check_writable(output_dir: Path) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as error:
        raise UsageError(
            f"Cannot write to --output_dir {output_dir}: {error.strerror or error}. Choose a folder you can write to."
        ) from error


def check_own_files(output_dir: Path, overwrite: bool) -> None:
    """Refuses a folder holding files that no run of this package recorded writing (its manifest lists them).

    Raises:
        UsageError: naming the first few such files, unless `--overwrite_output_dir` was given.
    """
    foreign = [] if overwrite else foreign_files(output_dir)
    if foreign:
        listed = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise UsageError(
            f"--output_dir {output_dir} holds files that are not from a training run of this package ({listed}); "
            "nothing was changed. Choose an empty or new folder, or pass --overwrite_output_dir to write into it "
            "anyway (files of the same names are replaced)."
        )


def check_same_run(output_dir: Path, checkpoint: Path | None, identity: dict, keys=None) -> None:
    """Stops when the folder's run, or the checkpoint to resume, has another identity (see `run_identity`).

    `keys` limits the comparison (the options alone before the data is scanned). A checkpoint written before
    identities were recorded is compared through the folder's only.

    Raises:
        UsageError: naming what differs and offering a new folder or `--overwrite_output_dir`.
    """
    places = [("the output", output_dir)] + ([(f"the checkpoint {checkpoint.name}", checkpoint)] if checkpoint else [])
    for where, folder in places:
        recorded = read_identity(folder)
        lines = differences(recorded, identity, keys) if recorded is not None else []
        if lines:
            raise mismatch_error(output_dir, where, lines, ways_back(recorded, identity), checkpoint)


def check_resumed_checkpoint(checkpoint: Path, identity: dict) -> None:
    """Stops when the checkpoint given to --resume_from_checkpoint was saved by a run with other options: resuming
    would go on with its optimizer and schedule under settings it did not have.

    Raises:
        UsageError: naming what differs and the two ways on: that run's options, or its weights in a new run.
    """
    for folder in (checkpoint, checkpoint.parent):  # a checkpoint from before identities: its run's
        recorded = read_identity(folder)
        if recorded is not None:
            break
    lines = differences(recorded, identity, list(identity)) if recorded is not None else []
    if lines:
        raise UsageError(
            f"--resume_from_checkpoint {checkpoint} was saved by a run with other options ({'; '.join(lines)}), so "
            f"it cannot go on under these. {ways_back(recorded, identity)}Give the options it was saved with, or "
            f"start a new run from its weights with --model_name_or_path {checkpoint}."
        )


def resolve_resume(
    output_dir: Path, resume_from_checkpoint: str | None, overwrite: bool, options: dict | None = None
) -> str | None:
    """Decides where training starts, before anything is loaded or written.

    - `--overwrite_output_dir`: start over (old checkpoints are removed so they cannot be resumed by mistake);
    - `--resume_from_checkpoint PATH`: that checkpoint, which must be complete and of the same run;
    - a folder of this package's run with the same options: its newest complete checkpoint (the same command
      continues the run; a finished run is recognised once the data is scanned);
    - a folder of another run with checkpoints or a finished model, or holding files of the user's own: an error,
      never a silent overwrite (a run that stopped before its first checkpoint is simply replaced).

    Args:
        options: the run's trajectory-changing options (`run_identity.options_identity`).
    """
    if overwrite:
        for checkpoint in checkpoint_folders(output_dir):
            shutil.rmtree(checkpoint)
        return None
    if resume_from_checkpoint:
        path = Path(resume_from_checkpoint)
        if not path.is_dir():
            raise UsageError(f"--resume_from_checkpoint {path} does not exist.{did_you_mean_path(path)}")
        if checkpoint_step(path) is None and (missing := missing_checkpoint_files(path)):
            raise UsageError(
                f"--resume_from_checkpoint {path} is not a checkpoint (it has no {', '.join(missing)}: a run's output "
                "folder holds its final model, not the state training goes on from). Give one of its checkpoint-N "
                f"folders, or --model_name_or_path {path} to fine-tune that model further in a new run."
            )
        if not is_complete(path) and not (path / TRAINER_STATE).is_file():
            raise UsageError(f"--resume_from_checkpoint {path} is incomplete: pick an earlier checkpoint.")
        if options is not None:
            check_resumed_checkpoint(path, options)
        return str(path)
    if not output_dir.is_dir():
        return None
    check_own_files(output_dir, overwrite)
    checkpoint = last_complete_checkpoint(output_dir)
    # A run that left no checkpoint and did not finish trained nothing to mislabel: its files are simply replaced.
    if options is not None and (checkpoint is not None or is_finished(output_dir)):
        check_same_run(output_dir, checkpoint, options, keys=list(options))
    return str(checkpoint) if checkpoint is not None else None


def save_final_model(trainer, output_dir: Path) -> None:
    """Writes the final model next to a temporary folder and moves it into place, so no half-written model remains.

    Raises:
        UsageError: when the disk is full or the folder unwritable; the checkpoints stay intact.
    """
    staging = output_dir / ".final-tmp"
    try:
        trainer.save_model(str(staging))
        trainer.accelerator.wait_for_everyone()
        if trainer.is_world_process_zero():
            for item in staging.iterdir():
                os.replace(item, output_dir / item.name)
            shutil.rmtree(staging, ignore_errors=True)
            open_weights_to_umask(output_dir)
    except Exception as error:
        # safetensors and torch raise their own errors for a full disk, not OSError.
        reason = write_failure_reason(error) or (error.strerror if isinstance(error, OSError) else None)
        if reason is None:
            raise
        if trainer.is_world_process_zero():
            shutil.rmtree(staging, ignore_errors=True)
        last = last_complete_checkpoint(output_dir)
        hint = (
            f" The last checkpoint, {last}, is intact: {MAKE_ROOM} and run the same command to resume." if last else ""
        )
        raise UsageError(f"Could not write the final model to {output_dir}: {reason}.{hint}") from error
