"""The best evaluation's weights, kept in memory so that `--load_best_model_at_end` (and early stopping, which sets
it) ends with them even when no checkpoint was saved at that evaluation."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file
from transformers import TrainerCallback, TrainerState, TrainingArguments

from ..outputs import BEST_WEIGHTS, checkpoint_folder, checkpoint_step


def metric_key(args: TrainingArguments) -> str:
    name = args.metric_for_best_model or "loss"
    return name if name.startswith("eval_") else f"eval_{name}"


def greater_is_better(args: TrainingArguments) -> bool:
    """As the Trainer reads it: given, or from the metric's name (a loss is better lower)."""
    return args.greater_is_better if args.greater_is_better is not None else not metric_key(args).endswith("loss")


def improves(value: float, best: float | None, greater_is_better: bool) -> bool:
    """Whether `value` beats `best` as the Trainer decides it (strictly: a tie keeps the earlier evaluation)."""
    if best is None:
        return True
    return value > best if greater_is_better else value < best


class BestWeightsKeeper(TrainerCallback):
    """Copies the model's weights to host memory at each evaluation that beats the best so far, and puts them back
    at the end of training when `load_best_model_at_end` is set.

    The Trainer loads the best model only from a checkpoint saved at that evaluation: with the product page's
    evaluation at every step and a checkpoint every 500 steps, the best was almost never saved, and the run ended
    with the last weights while the card listed `load_best_model_at_end`. Saving a checkpoint at every new best
    would write the optimizer state too (0.5 GB for ResNet-101) and many folders; the weights alone take one
    copy in memory (170 MB for ResNet-101), reused at each new best.

    A checkpoint saved at another step carries the kept weights too (`BEST_WEIGHTS`) while the best evaluation has
    no checkpoint of its own, so a run resumed from it (`resume_from`) still ends with them.

    `final_step` is the step whose weights the model holds once training ended (None until then, or when that
    cannot be told); `note`, what the run's log should say of it (left to the caller: the training bar is still
    open when the Trainer's callbacks hear that training ended).
    """

    def __init__(self):
        self.kept_step: int | None = None
        self._weights: dict[str, torch.Tensor] | None = None
        self.final_step: int | None = None
        self.note: str | None = None
        self.evaluations: int | None = None  # made during training, counted when it ends
        self._training_ended = False

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if self._training_ended or not args.load_best_model_at_end or model is None:
            return
        value = (metrics or {}).get(metric_key(args))
        # Called before the Trainer updates `state.best_metric` with this evaluation.
        if value is not None and improves(value, state.best_metric, greater_is_better(args)):
            self.keep(model, state.global_step)

    def keep(self, model: torch.nn.Module, step: int) -> None:
        weights = model.state_dict()
        if self._weights is None or self._weights.keys() != weights.keys():
            self._weights = {name: tensor.detach().to("cpu", copy=True) for name, tensor in weights.items()}
        else:
            with torch.no_grad():
                for name, tensor in weights.items():
                    self._weights[name].copy_(tensor)
        self.kept_step = step

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or self._weights is None or self.kept_step == state.global_step:
            return
        if checkpoint_folder(args.output_dir, self.kept_step).is_dir():
            return  # the Trainer loads the best from its own checkpoint
        folder = checkpoint_folder(args.output_dir, state.global_step)
        if folder.is_dir():
            weights = {name: tensor.contiguous() for name, tensor in self._weights.items()}
            save_file(weights, folder / BEST_WEIGHTS, metadata={"step": str(self.kept_step)})

    def resume_from(self, checkpoint: str | Path | None) -> None:
        """Takes back the best weights a checkpoint carries, before training resumes from it."""
        path = Path(checkpoint) / BEST_WEIGHTS if checkpoint else None
        if path is None or not path.is_file():
            return
        with safe_open(str(path), framework="pt") as saved:
            step = int(saved.metadata()["step"])
        self._weights, self.kept_step = load_file(path), step

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self._training_ended = True
        self.final_step = self.step_after_training(args, state, model)
        # The evaluations the weights were chosen among: a final pass logged after training is not one of them.
        self.evaluations = sum(1 for entry in state.log_history if metric_key(args) in entry)

    def step_after_training(self, args: TrainingArguments, state: TrainerState, model) -> int | None:
        if not args.load_best_model_at_end or state.best_global_step is None:
            return state.global_step
        best = state.best_global_step
        if self._weights is not None and self.kept_step == best:
            model.load_state_dict(self._weights)
            self.note = f"The model is the best evaluation's: step {best} of {state.global_step}, " + (
                f"{metric_key(args)} {state.best_metric:.4g} (kept since that evaluation)."
            )
            return best
        # The best evaluation was made before the run resumed from a checkpoint that does not carry it: the Trainer
        # loaded the best's own checkpoint, if there was one. A run finished from its last step's checkpoint
        # (`recovery.finish_from_last_step`) whose last evaluation was the best holds that step's weights.
        loaded = state.global_step if best == state.global_step else checkpoint_step(state.best_model_checkpoint)
        final = loaded if loaded is not None else state.global_step
        if final == best:
            self.note = (
                f"The model is the best evaluation's: step {best} of {state.global_step}, {metric_key(args)} "
                f"{state.best_metric:.4g} (from its checkpoint)."
            )
        else:
            self.note = (
                f"The best evaluation (step {best}, {metric_key(args)} {state.best_metric:.4g}) was made before the "
                f"run resumed and no checkpoint of it was kept: the model is step {final}'s."
            )
        return final


def model_selection(
    args: TrainingArguments, state: TrainerState, final_step: int | None, evaluations: int | None = None
) -> dict | None:
    """For the card: the model was chosen among the run's evaluations on the validation split
    (`--load_best_model_at_end`, set by early stopping), so its validation figures are the best of several. None
    when it was not chosen. `evaluations`: how many were made in training (default: those `state` logged)."""
    if not args.load_best_model_at_end or final_step is None:
        return None
    key = metric_key(args)
    if evaluations is None:
        evaluations = sum(1 for entry in state.log_history if key in entry)
    name = key.removeprefix("eval_")
    selection = {"step": final_step, "steps": state.global_step, "metric": name, "evaluations": evaluations}
    if stopped_early(args, state):
        selection |= {"planned_steps": state.max_steps, "patience": args.early_stopping_patience}
    return selection


def stopped_early(args: TrainingArguments, state: TrainerState) -> bool:
    """Training ended before its last step because evaluations stopped improving (--early_stopping_patience)."""
    patience = getattr(args, "early_stopping_patience", None)
    return bool(patience) and bool(state.max_steps) and state.global_step < state.max_steps


def early_stop_note(args: TrainingArguments, state: TrainerState) -> str | None:
    """The log's line when early stopping ended training; None when it did not."""
    if not stopped_early(args, state):
        return None
    return (
        f"Early stopping: {args.early_stopping_patience} evaluations in a row did not improve "
        f"{metric_key(args)}, so training stopped at step {state.global_step} of {state.max_steps}."
    )
