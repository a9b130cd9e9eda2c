"""Watching a run: divergence (a NaN, infinite or exploding loss), overfitting, a clean stop on Ctrl-C, and
named progress bars."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import ProgressCallback, Trainer, TrainerCallback
from transformers.utils import logging

from ..config.presets import OVERFITTING_ADVICE, divergence_remedies
from ..errors import UsageError
from ..outputs import MONITORS

logger = logging.get_logger(__name__)


class TrainingDiverged(UsageError):
    """The loss became NaN or infinite, or exploded (`exploded_loss_limit`)."""


# A training loss this many times a chance guess's (ln of the class count) has exploded: cross-entropy that large
# means logits hundreds apart on images the model gets wrong, which only weights blown up by too large steps give.
EXPLODED_LOSS_FACTOR = 100


def exploded_loss_limit(num_labels: int | None) -> float:
    """The training loss above which a run has diverged though the loss is still finite."""
    return EXPLODED_LOSS_FACTOR * math.log(max(2, num_labels or 2))


class DivergenceCallback(TrainerCallback):
    """Stops at the first NaN or infinite loss, or a training loss that exploded, with the remedies: a learning
    rate far too high can send the loss to 1e9 and back to 0 without a NaN, and the run then saved a model no
    better than chance, with its gap between the losses reported as overfitting."""

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        fp16 = bool(getattr(args, "fp16", False))
        for key in ("loss", "eval_loss"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(value):
                raise TrainingDiverged(
                    f"The {'training' if key == 'loss' else 'validation'} loss became {value} at step "
                    f"{state.global_step}: training diverged. Try: {divergence_remedies(fp16)}."
                )
        loss = (logs or {}).get("loss")
        num_labels = getattr(getattr(model, "config", None), "num_labels", None)
        if loss is not None and loss > (limit := exploded_loss_limit(num_labels)):
            raise TrainingDiverged(
                f"The training loss reached {loss:.4g} at step {state.global_step}, over {EXPLODED_LOSS_FACTOR}x a "
                f"chance guess's ({limit / EXPLODED_LOSS_FACTOR:.3g} for {num_labels or 2} classes): training "
                f"diverged. Try: {divergence_remedies(fp16)}."
            )


class OverfittingMonitor(TrainerCallback):
    """Warns when validation loss stays well above training loss for `patience` evaluations in a row.

    Events are kept in `events` (and written to monitors.json) for the model card.
    """

    def __init__(self, ratio: float = 1.5, margin: float = 0.1, patience: int = 3):
        self.ratio, self.margin, self.patience = ratio, margin, patience
        self.streak = 0
        self.warned = False
        self.events: list[dict] = []

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        eval_loss = (metrics or {}).get("eval_loss")
        train_losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
        if eval_loss is None or not train_losses:
            return
        train_loss = train_losses[-1]
        gap = eval_loss > self.ratio * train_loss and eval_loss - train_loss > self.margin
        self.streak = self.streak + 1 if gap else 0
        if self.streak >= self.patience and not self.warned:
            self.warned = True
            event = {
                "step": state.global_step,
                "train_loss": round(train_loss, 4),
                "eval_loss": round(eval_loss, 4),
                "eval_accuracy": (metrics or {}).get("eval_accuracy"),
            }
            self.events.append(event)
            logger.warning(
                f"Overfitting: at step {state.global_step} the validation loss ({eval_loss:.3f}) has stayed above "
                f"{self.ratio}x the training loss ({train_loss:.3f}) for {self.patience} evaluations; "
                f"try {OVERFITTING_ADVICE}."
            )

    def save(self, output_dir: Path) -> None:
        (output_dir / MONITORS).write_text(json.dumps({"overfitting": self.events}, indent=2))


class GracefulInterrupt(TrainerCallback):
    """The first Ctrl-C (SIGINT) or SIGTERM (what `kill`, `docker stop`, Kubernetes and batch schedulers send)
    finishes the current step (or evaluation), saves a checkpoint and stops; the same signal again aborts at once.

    The other signal after the first is the same stop passed on, not a second: `accelerate launch`, given Ctrl-C
    (which the terminal also sends the script), sends its script SIGTERM, and torch's elastic agent does the same.

    With several processes, they agree at each step end whether any was asked to stop (one all-reduce of a flag),
    so all stop after the same step: a signal that reached one process just after another had ended its step used
    to leave one saving and leaving while the other waited for it in the next step's gradient all-reduce, until the
    launcher killed both with nothing saved.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.signal_number: int | None = None  # the signal that asked this process
        self.agreed_signal_number: int | None = None  # the one another process was asked with
        self.saved_step: int | None = None  # the step of the last checkpoint saved
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        self.owner_pid = os.getpid()  # data-loading workers forked later inherit the handler: they leave it to us
        for number in self.SIGNALS:
            self._previous[number] = signal.signal(number, self._handle)

    def uninstall(self) -> None:
        for number, previous in self._previous.items():
            if previous is not None:
                signal.signal(number, previous)
        self._previous = {}

    def _handle(self, signum, frame):
        if os.getpid() != getattr(self, "owner_pid", os.getpid()):
            return  # a data-loading worker (Ctrl-C reaches the whole process group): the training process stops
        if self.requested:
            if signum == self.signal_number:
                raise KeyboardInterrupt
            return  # the stop already asked for, passed on by a launcher
        self.requested, self.signal_number = True, signum
        name = "Interrupted" if signum == signal.SIGINT else f"{signal.Signals(signum).name} received"
        logger.warning(f"{name}: finishing this step and saving a checkpoint (send it again to abort).")

    @property
    def exit_signal_number(self) -> int | None:
        """The signal the stop was asked with, here or in another process: the exit status is 128 + it."""
        return self.signal_number or self.agreed_signal_number

    def _agree(self, args) -> None:
        """Every process takes the stop if any was asked (training processes only, while the handlers are in)."""
        if not self._previous or not dist.is_available() or not dist.is_initialized() or dist.get_world_size() < 2:
            return
        # The signal's number, not a flag: every process then exits with the status of the signal that was sent.
        asked = torch.tensor([self.signal_number or 0], device=args.device)
        dist.all_reduce(asked, op=dist.ReduceOp.MAX)
        if asked.item() and not self.requested:
            self.requested, self.agreed_signal_number = True, int(asked.item())
            logger.warning("Another process was asked to stop: finishing this step and saving a checkpoint.")

    def on_step_end(self, args, state, control, **kwargs):
        self._agree(args)
        if self.requested:
            control.should_save = True
            control.should_training_stop = True
        return control

    def on_evaluate(self, args, state, control, **kwargs):
        # Asked during an evaluation: save once it ends, not after another step (and, evaluating every step, its
        # evaluation too), which under `accelerate launch` (it kills its script 5 s after a stop) would be lost.
        return self.on_step_end(args, state, control)

    def on_save(self, args, state, control, **kwargs):
        self.saved_step = state.global_step

    def on_epoch_end(self, args, state, control, **kwargs):
        # The Trainer ends its loop through this, then evaluates and saves as the flags say. The checkpoint may not
        # be saved yet: with --save_strategy best it saves after an evaluation only a new best. An evaluation
        # "at the end of the epoch" where the stop cut the epoch short is one an uninterrupted run never makes.
        self._agree(args)
        if self.requested:
            if not float(state.epoch or 0).is_integer():
                control.should_evaluate = False
            if self.saved_step != state.global_step:
                control.should_save = True
        return control


class EpochCallback(TrainerCallback):
    """Tells the seeded training transform which epoch is running (also right after a resume)."""

    def __init__(self, seeded_transform):
        self.seeded_transform = seeded_transform

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.seeded_transform.epoch = math.floor(state.epoch or 0)


class DescribedProgressCallback(ProgressCallback):
    """transformers' progress bars, with a name on the bar of a prediction pass run through `described_passes`.

    The run's passes after training (the final evaluation, the card's training-sample accuracy) otherwise show as a
    bare bar under the metrics; on a CPU, with a large validation split, each takes minutes.
    """

    def __init__(self):
        super().__init__()
        self.description: str | None = None

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        new_bar = self.prediction_bar is None
        super().on_prediction_step(args, state, control, eval_dataloader=eval_dataloader, **kwargs)
        if new_bar and self.prediction_bar is not None and self.description:
            self.prediction_bar.set_description(self.description)


def callback_of(trainer: Trainer, kind: type):
    """The trainer's callback of `kind` (None when it has none)."""
    return next((cb for cb in trainer.callback_handler.callbacks if isinstance(cb, kind)), None)


@contextlib.contextmanager
def described_passes(trainer: Trainer, description: str):
    """Names the progress bar of the prediction passes made inside (where the bars are shown at all)."""
    progress = callback_of(trainer, DescribedProgressCallback)
    if progress is None:
        yield
        return
    progress.description = description
    try:
        yield
    finally:
        progress.description = None


def with_described_progress(trainer: Trainer) -> Trainer:
    """The Trainer's progress bars swapped for `DescribedProgressCallback` (when it shows bars at all)."""
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(DescribedProgressCallback())
    return trainer
