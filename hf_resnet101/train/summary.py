"""The run summary logged before training: the data, the model, the devices, the settings and where they came from."""

from __future__ import annotations

import os

import datasets
import torch
from transformers.utils import logging

from ..config.options import FinetuneTrainingArguments, ModelArguments
from ..config.presets import Setting, describe_tier, hardware_advice
from ..config.resolve import RunOptions
from ..data.report import DataReport
from ..modeling import count_parameters, resolve_base_model
from .run_state import ModelToTrain

logger = logging.get_logger(__name__)


def describe_data_loading(training_args: FinetuneTrainingArguments) -> str:
    workers = training_args.dataloader_num_workers
    if not workers:
        return "data loading: in the training process (--dataloader_num_workers 0)"
    extras = [
        "persistent" if training_args.dataloader_persistent_workers else "restarted every epoch",
        "pinned memory" if training_args.dataloader_pin_memory and training_args.device.type == "cuda" else "",
    ]
    return (
        f"data loading: {workers} worker process(es) per device, "
        + ", ".join(e for e in extras if e)
        + "; evaluation reads its prepared tensors in the training process"
    )


def describe_compilation(training_args: FinetuneTrainingArguments) -> str | None:
    """The summary's line for `--torch_compile` (or `--torch_compile_mode`), whose first steps wait on compiling."""
    if not training_args.torch_compile:
        return None
    backend = training_args.torch_compile_backend or "inductor"
    mode = training_args.torch_compile_mode or "default"
    return (
        f"compilation: torch.compile (backend {backend}, mode {mode}); the first training step and the first "
        "evaluation compile before they run (a tiny ResNet took 23 s on a 2-core CPU), and a batch of a new shape "
        "compiles again"
    )


def describe_start(model_args: ModelArguments, model: torch.nn.Module, random_init: bool) -> str:
    """What training started from, for the run summary: the checkpoint, or random weights said as such."""
    if random_init:
        return f"{architecture_of(model)}, trained from random initialisation, not fine-tuned (no pretrained weights)"
    base = resolve_base_model(model_args.model_name_or_path, model_args.base_model_id)
    shown = model_args.model_name_or_path
    return shown if base in (None, shown) else f"{shown} (base model {base})"


def architecture_of(model: torch.nn.Module) -> str:
    """E.g. `ResNetForImageClassification`: the class that loads the weights (named when no base model is); for a
    timm model, its timm architecture too (`TimmWrapperForImageClassification (timm resnet50)`), which the wrapper's
    name alone leaves out."""
    name = type(model).__name__
    timm_architecture = getattr(getattr(model, "config", None), "architecture", None)
    return f"{name} (timm {timm_architecture})" if isinstance(timm_architecture, str) else name


def describe_device(device: torch.device) -> str:
    """`cuda:0`, or `cpu` (the CPU's index, which every process shares, says nothing)."""
    return device.type if device.type == "cpu" else str(device)


def describe_eval_steps(eval_steps: float) -> str:
    """ " every 10 steps"; a value below 1 is the Trainer's fraction of the run: " every 50% of the steps"."""
    if eval_steps < 1:
        return f" every {eval_steps * 100:g}% of the training steps"
    return f" every {eval_steps:g} steps"


def log_run_summary(
    options: RunOptions, dataset: datasets.DatasetDict, report: DataReport, model: ModelToTrain, random_init: bool
) -> None:
    """The run summary, logged once (main process) before training: what is trained, on what, how and why."""
    training_args = options.training
    if training_args.process_index != 0:
        return
    names = dataset["train"].features["label"].names
    global_batch = (
        training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * training_args.world_size
    )
    image_size = (model.data_config.height, model.data_config.width)
    head_note, model = model.head_note, model.model
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines = [
        f"data: {len(dataset['train'])} training and {len(dataset['validation'])} validation images, "
        f"{len(names)} classes",
        *report.summary_lines(),
        describe_tier(len(dataset["train"])),
        f"model: {describe_start(options.model, model, random_init)} "
        f"({count_parameters(model) / 1e6:.2f} M parameters, {trainable / 1e6:.2f} M trained), "
        f"input {image_size[0]}x{image_size[1]}",
        *([head_note] if head_note else []),
        f"device: {describe_device(training_args.device)} x {training_args.world_size} process(es); precision: "
        f"{training_args.precision_note}",
        describe_data_loading(training_args),
        *filter(None, [describe_compilation(training_args)]),
        describe_hardware(training_args, report, image_size[0], model),
        f"settings: {describe_settings(options.settings)}"
        + (
            f"; length: --max_steps {training_args.max_steps} (num_train_epochs does not apply)"
            if training_args.max_steps > 0
            else ""
        ),
        f"batch: {training_args.per_device_train_batch_size} per device, global {global_batch}; "
        f"class weighting {options.data.class_weighting}; evaluation: {training_args.eval_strategy.value}"
        + (describe_eval_steps(training_args.eval_steps) if training_args.eval_strategy.value == "steps" else ""),
    ]
    logger.warning("Run summary:\n  " + "\n  ".join(lines))


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
