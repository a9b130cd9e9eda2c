"""The run's final settings: presets for the dataset size, explicit values, and the checks on them."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from transformers.utils import logging

from ..data.report import DataReport
from ..errors import UsageError
from .options import DataArguments, FinetuneTrainingArguments, ModelArguments
from .presets import (
    Setting,
    evaluation_cost_warning,
    hardware_advice,
    preset_tier,
    range_warnings,
    resolve_settings,
    tier_for,
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


def apply_settings(
    data_args: DataArguments,
    model_args: ModelArguments,
    training_args: FinetuneTrainingArguments,
    explicit: dict[str, str],
    num_train_images: int,
) -> dict[str, Setting]:
    """Applies `--preset` to the options the user left open and returns every value with its source."""
    holders = {"data": data_args, "model": model_args, "training": training_args}
    tier = preset_tier(data_args.preset, num_train_images)
    current = {name: getattr(holders[where], name) for name, where in PRESET_OPTIONS.items()}
    settings = resolve_settings(current, explicit, tier)
    for name, setting in settings.items():
        setattr(holders[PRESET_OPTIONS[name]], name, setting.value)
    if tier is not None:
        logger.warning(f"Preset {tier.name} ({data_args.preset}): {tier.advice}.")
    return settings


def choose_best_model_metric(training_args: FinetuneTrainingArguments, explicit: dict[str, str], ratio: float) -> None:
    """With imbalanced classes, macro F1 picks the best model unless the user chose a metric."""
    if ratio >= IMBALANCE_RATIO and "metric_for_best_model" not in explicit:
        training_args.metric_for_best_model = "f1_macro"
        training_args.greater_is_better = True
        logger.warning(
            f"Classes are imbalanced (largest/smallest = {ratio:.1f}): the best model is chosen by macro F1, which "
            "weighs every class equally, rather than accuracy. Consider --class_weighting balanced."
        )


def check_settings(
    training_args: FinetuneTrainingArguments, num_train: int, num_validation: int, warn: Callable[[str], None]
) -> None:
    """Stops on values that cannot work with this data; warns about values outside the page's ranges."""
    per_step = training_args.per_device_train_batch_size * training_args.world_size
    if per_step > num_train:
        raise UsageError(
            f"--per_device_train_batch_size {training_args.per_device_train_batch_size} x {training_args.world_size} "
            f"process(es) is larger than the {num_train} training images: lower the batch size."
        )
    for message in range_warnings(
        {
            "per_device_train_batch_size": training_args.per_device_train_batch_size,
            "num_train_epochs": training_args.num_train_epochs,
            "learning_rate": training_args.learning_rate,
        }
    ):
        warn(message)
    eval_every = int(training_args.eval_steps) if training_args.eval_strategy.value == "steps" else None
    if eval_every is not None and training_args.eval_steps < 1:  # a fraction of all steps
        eval_every = None
    global_batch = per_step * training_args.gradient_accumulation_steps
    message = evaluation_cost_warning(
        num_train, num_validation, global_batch, training_args.num_train_epochs, eval_every
    )
    if message:
        warn(message)


def describe_settings(settings: dict[str, Setting]) -> str:
    return ", ".join(f"{name}={setting.value} ({setting.source})" for name, setting in settings.items())


def describe_hardware(training_args: FinetuneTrainingArguments, report: DataReport, image_size: int, model) -> str:
    cuda_gib = None
    if training_args.device.type == "cuda":
        cuda_gib = torch.cuda.get_device_properties(training_args.device).total_memory / 2**30
    full_size = sum(p.numel() for p in model.parameters()) > 20e6
    return hardware_advice(
        cuda_gib, report.num_train_images, image_size, training_args.bf16, os.cpu_count() or 1, full_size
    )


def describe_tier(num_images: int) -> str:
    tier = tier_for(num_images)
    recommended = ", ".join(f"{k}={v}" for k, v in tier.recommended().items())
    return f"dataset size tier: {tier.name} ({tier.advice}); recommended: {recommended} (--preset auto applies it)"
