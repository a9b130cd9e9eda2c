"""Checkpoints that survive a kill: completion markers, automatic resume, and output folders never clobbered."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

from transformers import TrainerCallback
from transformers.utils import logging

from .errors import UsageError
from .storage import write_failure_reason

logger = logging.get_logger(__name__)

COMPLETE_MARKER = "checkpoint_complete.json"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
# What a run of this package writes at the top of its output folder.
RUN_OUTPUTS = re.compile(
    r"^(checkpoint-\d+.*|runs|\.final-tmp.*|README\.md|config\.json|model\.safetensors|preprocessor_config\.json"
    r"|.*_results\.json|trainer_state\.json|training_args\.bin|splits\.csv|data_report\.json|pipeline_check\.json"
    r"|monitors\.json|card_inputs\.json|.*\.png|\.write-probe.*|\.data_root)$"
)


class CheckpointCompletionCallback(TrainerCallback):
    """Marks a checkpoint complete once the Trainer has written all of it (model, optimizer, scheduler, RNG)."""

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            mark_complete(Path(args.output_dir) / f"checkpoint-{state.global_step}", state.global_step)


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


def mark_complete(checkpoint: Path, step: int) -> None:
    if not checkpoint.is_dir():
        return
    tmp = checkpoint / f".{COMPLETE_MARKER}.tmp"
    tmp.write_text(json.dumps({"step": step, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    os.replace(tmp, checkpoint / COMPLETE_MARKER)  # atomic: the marker exists whole or not at all


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / COMPLETE_MARKER).is_file()


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Checkpoint folders sorted by step, oldest first."""
    if not output_dir.is_dir():
        return []
    found = [
        (int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := CHECKPOINT_PATTERN.match(p.name))
    ]
    return [p for _, p in sorted(found)]


def last_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest checkpoint with its completion marker; newer incomplete ones (a kill mid-save) are skipped."""
    checkpoints = list_checkpoints(output_dir)
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


def resolve_resume(output_dir: Path, resume_from_checkpoint: str | None, overwrite: bool) -> str | None:
    """Decides where training starts, before anything is loaded.

    - `--overwrite_output_dir`: start over (old checkpoints are removed so they cannot be resumed by mistake);
    - `--resume_from_checkpoint PATH`: that checkpoint, which must be complete;
    - a folder with complete checkpoints: resume from the newest (the same command continues the run);
    - a folder holding a finished run or anything else: an error, never a silent overwrite.
    """
    if overwrite:
        for checkpoint in list_checkpoints(output_dir):
            shutil.rmtree(checkpoint)
        return None
    if resume_from_checkpoint:
        path = Path(resume_from_checkpoint)
        if not path.is_dir():
            raise UsageError(f"--resume_from_checkpoint {path} does not exist.")
        if not is_complete(path) and not (path / "trainer_state.json").is_file():
            raise UsageError(f"--resume_from_checkpoint {path} is incomplete: pick an earlier checkpoint.")
        return str(path)
    if not output_dir.is_dir() or not any(output_dir.iterdir()):
        return None
    checkpoint = last_complete_checkpoint(output_dir)
    if checkpoint is not None:
        logger.warning(f"Resuming from {checkpoint} (pass --overwrite_output_dir to start over).")
        return str(checkpoint)
    if (output_dir / "model.safetensors").is_file():
        raise UsageError(
            f"--output_dir {output_dir} already holds a finished model. Choose another folder, or pass "
            "--overwrite_output_dir to train again and replace it."
        )
    foreign = sorted(p.name for p in output_dir.iterdir() if not RUN_OUTPUTS.match(p.name))
    if foreign:
        listed = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
        raise UsageError(
            f"--output_dir {output_dir} holds files that are not from a training run ({listed}). Choose an empty "
            "or new folder, or pass --overwrite_output_dir to write into it anyway."
        )
    return None


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
    except Exception as error:
        # safetensors and torch raise their own errors for a full disk, not OSError.
        reason = write_failure_reason(error) or (error.strerror if isinstance(error, OSError) else None)
        if reason is None:
            raise
        if trainer.is_world_process_zero():
            shutil.rmtree(staging, ignore_errors=True)
        last = last_complete_checkpoint(output_dir)
        hint = (
            f" The last checkpoint, {last}, is intact: free space and run the same command to resume." if last else ""
        )
        raise UsageError(f"Could not write the final model to {output_dir}: {reason}.{hint}") from error
