"""The run's options resolved once: presets for the dataset size, the best-model metric, the push target and the
checks on the result, into `RunOptions`, which the rest of the run only reads.

Before resolution the parsed arguments are read (the checks before any data loads, the run's identity, the scan);
they are never written. `resolve_run_options` works on copies, so what the user gave stays as given.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from transformers.utils import logging

from ..errors import UsageError
from .options import DataArguments, FinetuneTrainingArguments, ModelArguments
from .presets import (
    Setting,
    evaluation_cost_warning,
    preset_tier,
    range_warnings,
    resolve_settings,
)

logger = logging.get_logger(__name__)

# Options a preset may set, and the arguments object that holds each.
PRESET_OPTIONS = {
    "learning_rate": "training",
    "num_train_epochs": "training",
    "per_device_train_batch_size": "training",
    "augmentation": "data",
    "freeze_backbone": "model",
}
IMBALANCE_RATIO = 3.0
# The Trainer would call the model's own gradient-checkpointing method, which transformers' ResNet lacks: the run
# applies it to the model instead (`modeling.apply_gradient_checkpointing`) and turns the Trainer's flags off.
CHECKPOINTING_FLAGS = ("gradient_checkpointing", "activation_checkpointing")


@dataclass(frozen=True)
class PushTarget:
    """Where the finished run is pushed. The token lives here only, never in the Trainer's arguments, which
    the Trainer pickles into training_args.bin."""

    repo_id: str
    token: str | None
    private: bool | None
    strategy: str


def push_target(
    training_args: FinetuneTrainingArguments, token: str | None, repo_id: str | None = None
) -> PushTarget | None:
    """Where `--push_to_hub` sends the finished run (None without it), with the token already checked; `repo_id`:
    --hub_model_id with the token's user before a bare NAME (`publish.hub.with_namespace`), where it is known."""
    if not training_args.push_to_hub:
        return None
    strategy = getattr(training_args.hub_strategy, "value", training_args.hub_strategy)
    return PushTarget(repo_id or training_args.hub_model_id, token, training_args.hub_private_repo, strategy)


@dataclass(frozen=True)
class RunOptions:
    """Every option of a run, resolved once, read only from here on.

    Attributes:
        data, model: the data and model options (frozen dataclasses) with the preset's values applied.
        training: the Trainer's arguments, final. The run never writes them: what changes while it trains (a
            smaller batch after running out of memory, evaluation read in process) is made on a copy.
        settings: the options a preset may set, each with its value and where it came from.
        push: where to push the finished run, or None.
        gradient_checkpointing: whether the run applies gradient checkpointing to the model itself.
    """

    data: DataArguments
    model: ModelArguments
    training: FinetuneTrainingArguments
    settings: Mapping[str, Setting]
    push: PushTarget | None
    gradient_checkpointing: bool


def resolve_run_options(
    data_args: DataArguments,
    model_args: ModelArguments,
    training_args: FinetuneTrainingArguments,
    explicit: Mapping[str, str],
    num_train_images: int,
    num_validation_images: int,
    imbalance_ratio: float,
    push_token: str | None = None,
    push_repo_id: str | None = None,
) -> RunOptions:
    """The run's options once the data is known; the arguments given are left as they were.

    Args:
        explicit: the options the user gave and where ("command line", "config file"): a preset leaves them be.
        push_token: the token already checked for `--push_to_hub` (`publish.hub.check_push_settings`).
        push_repo_id: --hub_model_id as USER/NAME where the token's user is known: the card and messages name it.

    Raises:
        UsageError: for values that cannot work with this data (see `check_settings`).
    """
    settings = preset_settings(data_args, model_args, training_args, explicit, num_train_images)
    chosen = {where: {} for where in ("data", "model", "training")}
    for name, setting in settings.items():
        chosen[PRESET_OPTIONS[name]][name] = setting.value
    training = copy.copy(training_args)
    for name, value in chosen["training"].items():
        setattr(training, name, value)
    keeps_best = training.load_best_model_at_end or getattr(training.save_strategy, "value", None) == "best"
    metric = best_model_metric(explicit, imbalance_ratio, data_args.class_weighting, keeps_best)
    if metric is not None:
        training.metric_for_best_model, training.greater_is_better = metric, True
    batch = settings.get("per_device_train_batch_size")
    check_settings(
        training, num_train_images, num_validation_images, logger.warning, batch_source=batch and batch.source
    )
    if push_repo_id:
        training.hub_model_id = push_repo_id
    push = push_target(training, push_token)
    # The Trainer's own push would replace the model card with its generic one: the run pushes itself.
    training.push_to_hub, training.hub_token = False, None
    flags = [flag for flag in CHECKPOINTING_FLAGS if hasattr(training, flag)]
    gradient_checkpointing = any(getattr(training, flag) for flag in flags)
    for flag in flags:
        setattr(training, flag, False)
    return RunOptions(
        data=dataclasses.replace(data_args, **chosen["data"]),
        model=dataclasses.replace(model_args, **chosen["model"]),
        training=training,
        settings=settings,
        push=push,
        gradient_checkpointing=gradient_checkpointing,
    )


def preset_settings(
    data_args: DataArguments,
    model_args: ModelArguments,
    training_args: FinetuneTrainingArguments,
    explicit: Mapping[str, str],
    num_train_images: int,
) -> dict[str, Setting]:
    """The values of the options a preset may set, each with its source: `--preset` fills the options the user
    left open; explicit values and, without a preset, the defaults stay."""
    holders = {"data": data_args, "model": model_args, "training": training_args}
    tier = preset_tier(data_args.preset, num_train_images)
    current = {name: getattr(holders[where], name) for name, where in PRESET_OPTIONS.items()}
    if tier is not None:
        logger.warning(f"Preset {tier.name} ({data_args.preset}): {tier.advice}.")
    return resolve_settings(current, dict(explicit), tier, max_batch=num_train_images // training_args.world_size)


def best_model_metric(
    explicit: Mapping[str, str], ratio: float, class_weighting: str = "none", keeps_best: bool = False
) -> str | None:
    """With imbalanced classes, macro F1 judges the evaluations unless the user chose a metric (None: keep it); the
    advice to weight the loss by class is given only where it is not weighted already. `keeps_best`: the run keeps
    the best evaluation's weights (--load_best_model_at_end, early stopping, --save_strategy best); otherwise the
    metric chooses nothing, and the message says so."""
    if ratio < IMBALANCE_RATIO or "metric_for_best_model" in explicit:
        return None
    advice = "" if class_weighting == "balanced" else " Consider --class_weighting balanced."
    use = (
        "the best model is chosen by macro F1"
        if keeps_best
        else "macro F1 is the metric for the best model (this run keeps its last weights: --load_best_model_at_end "
        "keeps the best evaluation's)"
    )
    logger.warning(
        f"Classes are imbalanced (largest/smallest = {ratio:.1f}): {use}, which weighs every class equally, rather "
        f"than accuracy.{advice}"
    )
    return "f1_macro"


def check_settings(
    training_args: FinetuneTrainingArguments,
    num_train: int,
    num_validation: int,
    warn: Callable[[str], None],
    batch_source: str | None = None,
) -> None:
    """Stops on values that cannot work with this data; warns about values outside the recommended ranges.

    Args:
        batch_source: where the batch size came from ("preset small", "command line"), named when it is too large.
    """
    per_step = training_args.per_device_train_batch_size * training_args.world_size
    if per_step > num_train:
        chosen = f" (chosen by the {batch_source})" if batch_source and batch_source.startswith("preset") else ""
        raise UsageError(
            f"--per_device_train_batch_size {training_args.per_device_train_batch_size}{chosen} x "
            f"{training_args.world_size} process(es) is larger than the {num_train} training images: give a smaller "
            "--per_device_train_batch_size."
        )
    in_use = {
        "per_device_train_batch_size": training_args.per_device_train_batch_size,
        "num_train_epochs": training_args.num_train_epochs,
        "learning_rate": training_args.learning_rate,
    }
    if training_args.max_steps > 0:  # --max_steps sets the length: the epochs given do not apply
        del in_use["num_train_epochs"]
    for message in range_warnings(in_use):
        warn(message)
    eval_every = int(training_args.eval_steps) if training_args.eval_strategy.value == "steps" else None
    if eval_every is not None and training_args.eval_steps < 1:  # a fraction of all steps
        eval_every = None
    global_batch = per_step * training_args.gradient_accumulation_steps
    if global_batch > num_train:
        warn(
            f"The global batch ({per_step} per step x {training_args.gradient_accumulation_steps} accumulation steps "
            f"= {global_batch}) is larger than the {num_train} training images: each epoch ends the accumulation "
            f"early, so every optimizer step sees the {num_train} images once and accumulating more than "
            f"{math.ceil(num_train / per_step)} steps changes nothing. Lower --gradient_accumulation_steps."
        )
    message = evaluation_cost_warning(
        num_train, num_validation, global_batch, training_args.num_train_epochs, eval_every, training_args.max_steps
    )
    if message:
        warn(message)
