"""Training that recovers: out of memory (a smaller batch, the same effective one), Ctrl-C (a checkpoint, then a
clean stop), a damaged checkpoint to resume from, and a write that failed (what is intact, what to do)."""

from __future__ import annotations

import contextlib
import copy
import signal
from collections.abc import Callable
from pathlib import Path

from safetensors.torch import load_model
from transformers import Trainer, TrainerState
from transformers.trainer_utils import TrainOutput
from transformers.utils import logging

from ..config.options import FinetuneTrainingArguments
from ..errors import TrainingInterrupted, UsageError
from ..outputs import MODEL_WEIGHTS, checkpoint_folder, checkpoint_folders, checkpoint_step
from .best_weights import BestWeightsKeeper
from .checkpoints import CheckpointCompletionCallback, finished_training_state, is_complete, last_complete_checkpoint
from .memory import BatchPlan, is_out_of_memory, multi_process_advice, out_of_memory_advice, release_device_memory
from .monitors import GracefulInterrupt, callback_of
from .output_folder import is_bookkeeping
from .run_state import TrainedRun
from .storage import (
    MAKE_ROOM,
    damaged_checkpoint_files,
    missing_checkpoint_files,
    remove_incomplete_checkpoints,
)

logger = logging.get_logger(__name__)


def train_with_interrupt(trainer: Trainer, resume_from: str | None):
    """Trains; the first Ctrl-C or SIGTERM saves a checkpoint at the end of the current step and stops cleanly.

    Raises:
        TrainingInterrupted: after that checkpoint is saved, with the command that resumes.
    """
    interrupt = callback_of(trainer, GracefulInterrupt)
    callback_of(trainer, BestWeightsKeeper).resume_from(resume_from)
    completion = callback_of(trainer, CheckpointCompletionCallback)
    completion.resume_from(resume_from)
    final_state = finished_training_state(resume_from)
    if final_state is not None:
        finished = finish_from_last_step(trainer, Path(resume_from), final_state)
        return with_runtime_across_resumes(finished, completion.seconds_before, completion.seconds_before)
    with contextlib.suppress(ValueError):  # outside the main thread Ctrl-C keeps its default behaviour
        interrupt.install()
    try:
        result = trainer.train(resume_from_checkpoint=resume_from)
        runtime = completion.training_seconds()  # across resumes: what the card reports as training time
    except Exception as error:
        if trainer.args.world_size < 2 or not is_peer_failure(error):
            raise
        raise UsageError(peer_failure_message(Path(trainer.args.output_dir))) from error
    finally:
        interrupt.uninstall()
    if interrupt.requested:
        raise TrainingInterrupted(
            interrupted_note(trainer, interrupt.saved_step), interrupt.exit_signal_number or signal.SIGINT
        )
    return with_runtime_across_resumes(result, completion.seconds_before, runtime)


# What a collective operation raises in a process whose peer has died (killed, out of host memory): gloo's
# transport, and NCCL's watchdog.
PEER_FAILURES = ("Connection reset by peer", "Connection closed by peer", "remote process exited", "Broken pipe")


def is_peer_failure(error: BaseException) -> bool:
    """Whether `error` is a collective that failed because another training process ended."""
    return isinstance(error, RuntimeError) and any(text in str(error) for text in PEER_FAILURES)


def peer_failure_message(output_dir: Path) -> str:
    """For the processes left when one died: gloo's 40-line traceback said nothing of what happened or what to do."""
    last = last_complete_checkpoint(output_dir)
    resume = (
        f"the last complete checkpoint, {last}, is intact: run the same command to resume from it"
        if last
        else "no checkpoint was completed: run the same command to start again"
    )
    return (
        "Another training process ended during training (the launcher's report names it and its exit), so this "
        f"one cannot go on alone; {resume}."
    )


def interrupted_note(trainer: Trainer, saved_step: int | None) -> str:
    """Where a stopped run resumes from: the checkpoint saved at its last step or, should none have been saved
    there, the last one saved before."""
    step, output_dir = trainer.state.global_step, trainer.args.output_dir
    if saved_step == step:
        return f"checkpoint saved at step {step} in {output_dir}; run the same command again to resume from it."
    before = f"from step {saved_step}'s checkpoint" if saved_step is not None else "from the last complete checkpoint"
    return f"no checkpoint was saved at step {step}; run the same command again to resume {before}."


def with_runtime_across_resumes(
    result: TrainOutput, seconds_before: float, runtime: float
) -> tuple[TrainOutput, float]:
    """`result` and the training time across resumes; after a resume, `result`'s metrics (`train_results.json`), which
    time this process only, gain `train_runtime_all_processes`: the time the card reports."""
    if seconds_before > 0:
        result.metrics["train_runtime_all_processes"] = round(runtime, 4)
    return result, runtime


def finish_from_last_step(trainer: Trainer, checkpoint: Path, state: TrainerState) -> TrainOutput:
    """The Trainer as it was when training ended, from the checkpoint of the last step, without training: its
    weights and state, then the best evaluation's weights where the run keeps those (as at the end of training)."""
    logger.warning(
        f"{checkpoint} is the last step of training ({state.global_step} of {state.max_steps}): the run finishes "
        "from it without training further."
    )
    load_model(trainer.model, str(checkpoint / MODEL_WEIGHTS))
    trainer.state = state
    load_best_checkpoint(trainer)
    callback_of(trainer, BestWeightsKeeper).on_train_end(trainer.args, state, trainer.control, model=trainer.model)
    losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
    training_loss = sum(losses) / len(losses) if losses else float("nan")  # the mean of the logged losses
    return TrainOutput(state.global_step, training_loss, {"train_loss": training_loss, "epoch": state.epoch})


def load_best_checkpoint(trainer: Trainer) -> None:
    """What the Trainer does as training ends with --load_best_model_at_end: the best evaluation's weights from
    its checkpoint (its step's folder in this output folder, wherever the state recorded it)."""
    state = trainer.state
    step = checkpoint_step(state.best_model_checkpoint)
    if not trainer.args.load_best_model_at_end or step is None or state.best_global_step == state.global_step:
        return  # nothing to choose, or the last step's weights, loaded already, are the best
    folder = checkpoint_folder(trainer.args.output_dir, step)
    if (folder / MODEL_WEIGHTS).is_file():
        load_model(trainer.model, str(folder / MODEL_WEIGHTS))
        state.best_model_checkpoint = str(folder)
    else:
        state.best_model_checkpoint = None  # as the Trainer treats a best checkpoint gone when it resumes


def first_sentences(message: str, count: int = 2) -> str:
    """E.g. "CUDA out of memory. Tried to allocate 98.00 MiB" of PyTorch's paragraph-long message."""
    return ". ".join(message.split("\n")[0].split(". ")[:count])


def train_fitting_memory(
    build: Callable[[FinetuneTrainingArguments], Trainer],
    args: FinetuneTrainingArguments,
    resume_from: str | None,
    image_size: int | None,
) -> TrainedRun:
    """Trains; when the device runs out of memory, trains again with a smaller per-device batch and more gradient
    accumulation, so the effective batch, the steps and the learning-rate schedule stay what the user asked for.

    `build` makes the Trainer for the arguments it is given: the run's, then a copy with the smaller batch (the
    run's own arguments are not changed). The retry starts where the failed attempt would have been resumed: the
    newest complete checkpoint, or the weights as they were before training (kept on the CPU, one process only).

    Raises:
        UsageError: out of memory at a per-device batch of 1, or in a run of several processes (with the flags
            that fit).
    """
    trainer = build(args)
    output_dir = Path(args.output_dir)
    initial_state = None  # a CPU copy of the weights (180 MB for ResNet-101), for a retry from the start
    if args.world_size == 1 and resume_from is None:
        initial_state = {k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()}
    while True:
        plan = BatchPlan(args.per_device_train_batch_size, args.gradient_accumulation_steps)
        try:
            train_result, runtime = train_with_interrupt(trainer, resume_from)
            return TrainedRun(trainer, train_result, runtime)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            failed_at, reason = trainer.state.global_step, first_sentences(str(error))
        smaller = plan.smaller()
        if args.world_size > 1:
            raise UsageError(multi_process_advice(plan))
        if smaller is None:
            raise UsageError(out_of_memory_advice(plan, image_size))
        release_device_memory(trainer)
        newest = last_complete_checkpoint(output_dir)
        resume_from = str(newest) if newest else resume_from
        if resume_from is None:
            trainer.model.load_state_dict(initial_state)
        logger.warning(
            f"Out of memory at step {failed_at + 1} with --per_device_train_batch_size {plan.per_device} ({reason}). "
            f"Training again with {smaller.per_device} per device and --gradient_accumulation_steps "
            f"{smaller.accumulation} (effective batch {smaller.effective} per process, learning-rate schedule "
            f"unchanged), from {resume_from or 'the start'}."
        )
        args = copy.copy(args)
        args.per_device_train_batch_size = smaller.per_device
        args.gradient_accumulation_steps = smaller.accumulation
        del trainer
        trainer = build(args)


def check_checkpoint_readable(checkpoint: Path, save_only_model: bool = False) -> None:
    """Stops before training when the checkpoint to resume from lacks a file resuming reads, or cannot be read back
    (a damaged or truncated file): the Trainer would start a fresh optimizer without a word, or fail deep inside.

    Raises:
        UsageError: naming the missing or damaged files and the checkpoints that could be resumed instead.
    """
    missing = missing_checkpoint_files(checkpoint, save_only_model)
    damaged = {name: "missing" for name in missing} | damaged_checkpoint_files(checkpoint)
    if not damaged:
        return
    others = [p for p in checkpoint_folders(checkpoint.parent) if p != checkpoint and is_complete(p)]
    instead = (
        f"Resume from an earlier one with --resume_from_checkpoint {others[-1]}"
        if others
        else "No other complete checkpoint is there"
    )
    raise UsageError(
        f"Checkpoint {checkpoint} is damaged and cannot be resumed: "
        + "; ".join(f"{name} ({reason})" for name, reason in damaged.items())
        + f". {instead}, delete {checkpoint.name}, or pass --overwrite_output_dir to start over."
    )


def after_failed_save(training_args: FinetuneTrainingArguments) -> str:
    """Removes what a failed checkpoint save left half-written; says what is intact."""
    output_dir = Path(training_args.output_dir)
    if training_args.process_index == 0:
        remove_incomplete_checkpoints(output_dir, is_complete)
    last = last_complete_checkpoint(output_dir)
    if last is None:
        return f"No checkpoint was completed: {MAKE_ROOM} and run the same command to start again."
    return f"The last complete checkpoint, {last}, is intact: {MAKE_ROOM} and run the same command to resume from it."


def after_failed_results(training_args: FinetuneTrainingArguments, started: float) -> str:
    """Removes the results written since `started` (any of them may be cut short); says what is intact."""
    output_dir = Path(training_args.output_dir)
    if training_args.process_index == 0:
        for path in output_dir.iterdir():
            if path.is_file() and not is_bookkeeping(path.name) and path.stat().st_mtime >= started:
                path.unlink(missing_ok=True)
    return (
        f"The final model is saved in {output_dir} (model.safetensors, config.json); its metrics, card and plots "
        f"are not: {MAKE_ROOM} and run the same command again to write them."
    )
