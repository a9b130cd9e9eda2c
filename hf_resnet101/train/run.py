"""The fine-tuning run: data, model, Trainer, saving, the model card and the pipeline check."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import datasets
import numpy as np
import torch
import transformers
from transformers import EarlyStoppingCallback, Trainer, pipeline, set_seed
from transformers.utils import logging

from ..config.hardware import restore_cpu_threads
from ..config.options import DataArguments, FinetuneTrainingArguments, ModelArguments
from ..config.presets import Setting
from ..config.resolve import (
    apply_settings,
    check_settings,
    choose_best_model_metric,
    describe_hardware,
    describe_settings,
    describe_tier,
)
from ..data.folders import (
    data_roots,
    limit_samples,
    load_hub_dataset,
    load_image_folders,
    report_from_dataset,
    write_split_files,
)
from ..data.report import DataReport
from ..data.transforms import (
    SeededTrainTransform,
    build_train_transform,
    collate,
    prepare_train_split,
    preprocess_for_evaluation,
    resolve_data_config,
    set_image_size,
)
from ..errors import UsageError
from ..evaluation.metrics import build_compute_metrics
from ..modeling import (
    apply_gradient_checkpointing,
    count_parameters,
    freeze_backbone,
    load_image_processor,
    load_model_for_labels,
    local_files_only_for,
    resolve_base_model,
    unfreeze_batch_norm,
)
from ..publish.card import CardInputs, collect_hyperparameters, describe_devices, public_inputs, write_model_card
from ..publish.hub import check_push_settings, check_write_access, push_output_dir
from .checkpoints import (
    CheckpointCompletionCallback,
    RunRecordCallback,
    TimedCheckpointCallback,
    check_own_files,
    check_same_run,
    check_writable,
    is_complete,
    last_complete_checkpoint,
    list_checkpoints,
    resolve_resume,
    save_final_model,
)
from .final_evaluation import MAX_TRAIN_ACCURACY_IMAGES, CardEvaluation, evaluate_for_card, prediction_logits
from .losses import balanced_class_weights, make_weighted_loss
from .memory import (
    CHECKPOINTING_TRADE,
    BatchPlan,
    is_out_of_memory,
    multi_process_advice,
    out_of_memory_advice,
    release_device_memory,
    shut_down_data_loaders,
)
from .monitors import DivergenceCallback, EpochCallback, GracefulInterrupt, OverfittingMonitor, TrainingInterrupted
from .output_folder import RunManifest, is_bookkeeping, is_finished, locked_output_folder
from .phase_clock import PhaseClock
from .quiet import (
    checkpoint_num_labels,
    datasets_progress_silenced,
    describe_head,
    model_loading_silenced,
    silence_datasets,
)
from .run_identity import DATA_KEYS, full_identity, options_identity, write_identity
from .storage import damaged_checkpoint_files, remove_incomplete_checkpoints, reporting_write_failures

logger = logging.get_logger(__name__)

PIPELINE_CHECK_IMAGES = 8


@dataclass
class FinetuneResult:
    """What a finished run produced."""

    output_dir: Path
    label_names: list[str]
    eval_metrics: dict[str, float]
    pipeline_predictions: list[dict] = field(default_factory=list)
    hub_model_id: str | None = None  # where it was pushed

    def closing_lines(self) -> list[str]:
        """What a finished run says last: where the model is and how to use it."""
        model = self.hub_model_id or str(self.output_dir)
        shown = {k: v for k, v in self.eval_metrics.items() if k in ("accuracy", "f1_macro", "top5_accuracy")}
        return [
            f"Model saved to {self.output_dir}"
            + (f" and pushed to https://huggingface.co/{self.hub_model_id}" if self.hub_model_id else "")
            + (" (validation " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()) + ")" if shown else ""),
            f"Model card: {self.output_dir / 'README.md'}",
            f'Use it: pipeline("image-classification", model="{model}")',
        ]


def setup_logging(training_args: FinetuneTrainingArguments) -> None:
    log_level = training_args.get_process_log_level()
    logging.set_verbosity(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    silence_datasets(training_args.verbose)


def load_data(
    data_args: DataArguments, model_args: ModelArguments, seed: int, progress: bool = True
) -> tuple[datasets.DatasetDict, DataReport]:
    """The train/validation splits, limited as asked, and the report on the data as found."""
    if data_args.dataset_name:
        dataset = load_hub_dataset(
            data_args.dataset_name,
            data_args.dataset_config_name,
            data_args.image_column_name,
            data_args.label_column_name,
            data_args.train_val_split,
            seed,
            cache_dir=model_args.cache_dir,
        )
        report = report_from_dataset(dataset)
    else:
        dataset, report = load_image_folders(
            data_args.train_dir,
            data_args.validation_dir,
            data_args.train_val_split,
            seed,
            model_args.cache_dir,
            strict=data_args.strict,
            dedupe=data_args.dedupe,
            progress=progress,
        )
    return limit_samples(dataset, data_args.max_train_samples, data_args.max_eval_samples, seed), report


def class_counts(split: datasets.Dataset, label_names: list[str]) -> dict[str, int]:
    counts = Counter(split["label"])
    return {name: counts.get(i, 0) for i, name in enumerate(label_names)}


def load_model_and_processor(model_args: ModelArguments, label_names: list[str]):
    local_only = local_files_only_for(model_args.model_name_or_path)
    kwargs = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision}
    if model_args.trust_remote_code:
        kwargs["trust_remote_code"] = True
    processor = load_image_processor(model_args.model_name_or_path, local_files_only=local_only, **kwargs)
    model = load_model_for_labels(model_args.model_name_or_path, label_names, local_files_only=local_only, **kwargs)
    return model, processor


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


def describe_start(model_args: ModelArguments, model: torch.nn.Module, random_init: bool) -> str:
    """What training started from, for the run summary: the checkpoint, or random weights said as such."""
    if random_init:
        return f"{architecture_of(model)}, trained from random initialisation, not fine-tuned (no pretrained weights)"
    base = resolve_base_model(model_args.model_name_or_path, model_args.base_model_id)
    shown = model_args.model_name_or_path
    return shown if base in (None, shown) else f"{shown} (base model {base})"


def architecture_of(model: torch.nn.Module) -> str:
    """E.g. `ResNetForImageClassification`: the class that loads the weights (named when no base model is)."""
    return type(model).__name__


def log_run_summary(
    training_args: FinetuneTrainingArguments,
    model_args: ModelArguments,
    data_args: DataArguments,
    dataset: datasets.DatasetDict,
    report: DataReport,
    settings: dict[str, Setting],
    model: torch.nn.Module,
    image_size: tuple[int, int],
    random_init: bool = False,
    head_note: str | None = None,
) -> None:
    if training_args.process_index != 0:
        return
    names = dataset["train"].features["label"].names
    global_batch = (
        training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * training_args.world_size
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines = [
        f"data: {len(dataset['train'])} training and {len(dataset['validation'])} validation images, "
        f"{len(names)} classes",
        *report.summary_lines(),
        describe_tier(len(dataset["train"])),
        f"model: {describe_start(model_args, model, random_init)} ({count_parameters(model) / 1e6:.2f} M parameters, "
        f"{trainable / 1e6:.2f} M trained), input {image_size[0]}x{image_size[1]}",
        *([head_note] if head_note else []),
        f"device: {training_args.device} x {training_args.world_size} process(es); precision: "
        f"{training_args.precision_note}",
        describe_data_loading(training_args),
        describe_hardware(training_args, report, image_size[0], model),
        f"settings: {describe_settings(settings)}",
        f"batch: {training_args.per_device_train_batch_size} per device, global {global_batch}; "
        f"class weighting {data_args.class_weighting}; evaluation: {training_args.eval_strategy.value}"
        + (f" every {training_args.eval_steps:g} steps" if training_args.eval_strategy.value == "steps" else ""),
    ]
    logger.warning("Run summary:\n  " + "\n  ".join(lines))


@contextlib.contextmanager
def loading_in_process(training_args: FinetuneTrainingArguments):
    """The Trainer's data-loading settings switched to the calling process for the DataLoaders made inside."""
    names = ("dataloader_num_workers", "dataloader_persistent_workers", "dataloader_prefetch_factor")
    saved = {name: getattr(training_args, name) for name in names}
    training_args.dataloader_num_workers, training_args.dataloader_persistent_workers = 0, False
    training_args.dataloader_prefetch_factor = None
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(training_args, name, value)


class PreparedEvaluationTrainer(Trainer):
    """A Trainer whose evaluation and prediction batches are read in the training process.

    Their datasets hold tensors prepared once (`preprocess_for_evaluation`): one core reads them at about 3,500
    images/s, while passing each 600 KB tensor through worker processes is slower (1,100 images/s with two on a
    2-core CPU), and a pool started for each prediction pass costs more still. On an H200 with the 15 training
    workers, evaluation ran at 0.3-0.5x the stock Trainer's speed; read in process, 2.3-3.0x
    (benchmarks/RESULTS.md). The evaluation loader is made once and reused at every evaluation.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The Trainer takes a model whose forward has **kwargs to normalise its loss by `num_items_in_batch`, and
        # then neither divides it by the gradient-accumulation steps nor averages it over processes (it multiplies
        # by their number instead). transformers' ResNet accepts **kwargs but ignores `num_items_in_batch`: its loss
        # would be the process count (and the accumulation steps) too large. Every label counts in image
        # classification, so the per-batch mean the models return is the right loss; a `compute_loss_func` (the
        # class-weighted loss) does its own normalisation and keeps the Trainer's handling.
        if self.compute_loss_func is None:
            self.model_accepts_loss_kwargs = False

    def get_eval_dataloader(self, eval_dataset=None):
        # The stock Trainer's cache of evaluation loaders (kept only with persistent workers), keyed as it keys it.
        key = eval_dataset if isinstance(eval_dataset, str) else "eval" if eval_dataset is None else None
        loaders = self.__dict__.setdefault("_eval_dataloaders", {})
        if key in loaders:
            return loaders[key]
        with loading_in_process(self.args):
            loader = super().get_eval_dataloader(eval_dataset)
        if key is not None:  # a dataset object passed in is not cached
            loaders[key] = loader
        return loader

    def get_test_dataloader(self, test_dataset):
        with loading_in_process(self.args):
            return super().get_test_dataloader(test_dataset)


def build_trainer(
    model,
    processor,
    dataset: datasets.DatasetDict,
    training_args: FinetuneTrainingArguments,
    data_args: DataArguments,
    channels_last: bool,
) -> PreparedEvaluationTrainer:
    data_config = resolve_data_config(processor)
    train_transform = build_train_transform(data_config, data_args.augmentation)
    # Decode large JPEGs at no less than twice the training resolution (see `open_image`).
    min_short_side = 2 * max(data_config.height, data_config.width)
    seeded_transform = SeededTrainTransform(train_transform, training_args.seed, min_short_side)
    train = prepare_train_split(dataset["train"]).with_transform(seeded_transform)
    with training_args.main_process_first(desc="preparing validation images"):
        validation = preprocess_for_evaluation(dataset["validation"], processor, data_config)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    names = dataset["train"].features["label"].names
    num_labels = len(names)
    loss = None
    if data_args.class_weighting == "balanced":
        loss = make_weighted_loss(balanced_class_weights(list(class_counts(dataset["train"], names).values())))
    callbacks = [
        CheckpointCompletionCallback(),
        TimedCheckpointCallback(training_args.save_every_minutes),
        DivergenceCallback(),
        OverfittingMonitor(),
        GracefulInterrupt(),
        EpochCallback(seeded_transform),
    ]
    if training_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(training_args.early_stopping_patience))
    return PreparedEvaluationTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=validation,
        processing_class=processor,
        data_collator=partial(collate, channels_last=channels_last, mean=data_config.mean, std=data_config.std),
        compute_metrics=build_compute_metrics(num_labels),
        compute_loss_func=loss,
        callbacks=callbacks,
    )


def pipeline_check_indices(num_images: int, count: int) -> list[int]:
    """Evenly spaced indices, so the check sees several classes (splits are ordered by class)."""
    return sorted({round(i) for i in np.linspace(0, num_images - 1, min(count, num_images))})


def check_with_pipeline(
    output_dir: Path,
    validation: datasets.Dataset,
    indices: list[int],
    evaluated: list[str],
    label_names: list[str],
    trust_remote_code: bool = False,
) -> list[dict]:
    """Reloads the saved folder with `pipeline` and compares its labels with the evaluation's predictions.

    `trust_remote_code` is passed explicitly: left unset, transformers asks on the terminal whether to run custom
    code a folder names, which would hang a batch job.

    Raises:
        UsageError: when the pipeline returns labels that are not the class names (a broken label mapping).
    """
    sample = validation.select(indices)
    images = [image.convert("RGB") for image in sample["image"]]
    classifier = pipeline(
        "image-classification", model=str(output_dir), device=-1, trust_remote_code=trust_remote_code
    )
    outputs = classifier(images, top_k=1)
    predicted = [result[0]["label"] for result in outputs]
    unknown = sorted(set(predicted) - set(label_names))
    if unknown:
        raise UsageError(
            f"The saved model returns labels {unknown} that are not the class names {label_names}: its id2label "
            f"mapping is broken. Check {output_dir / 'config.json'}."
        )
    results = [
        {"true": label_names[label], "pipeline": result[0]["label"], "score": round(result[0]["score"], 4)}
        | {"evaluation": expected}
        for label, result, expected in zip(sample["label"], outputs, evaluated, strict=True)
    ]
    logger.warning(
        f"Pipeline check on {len(images)} validation images from {output_dir}: "
        + "; ".join(f"{r['true']} -> {r['pipeline']} ({r['score']:.2f})" for r in results)
    )
    agree = sum(r["pipeline"] == r["evaluation"] for r in results)
    if agree < len(results):
        logger.warning(
            f"The pipeline agrees with the evaluation on {agree} of {len(results)} images "
            "(mixed-precision evaluation can flip near ties)."
        )
    return results


def describe_data_source(data_args: DataArguments) -> str:
    """The data's origin for the card: a Hub dataset's name, or the image folders' last two path parts."""
    if data_args.dataset_name:
        return f"the dataset `{data_args.dataset_name}`"
    folders = [Path(p) for p in (data_args.train_dir, data_args.validation_dir) if p]
    return "image folder " + " and ".join(f"`{p.parent.name}/{p.name}`" for p in folders)


def build_card_inputs(
    data_args: DataArguments,
    model_args: ModelArguments,
    training_args: FinetuneTrainingArguments,
    dataset: datasets.DatasetDict,
    report: DataReport,
    metrics: dict[str, float],
    evaluation: CardEvaluation,
    train_runtime: float,
    overfitting_events: list[dict],
    architecture: str | None = None,
    random_init: bool = False,
) -> CardInputs:
    """What the card shows; nothing local: the base model is a Hub id or left out, and so is the model path."""
    label_names = dataset["train"].features["label"].names
    base_model = None if random_init else resolve_base_model(model_args.model_name_or_path, model_args.base_model_id)
    inputs = CardInputs(
        model_name=Path(training_args.output_dir).name,
        repo_id=training_args.hub_model_id,
        base_model=base_model,
        random_init=random_init,
        architecture=architecture,
        label_names=label_names,
        images_per_class={name: class_counts(split, label_names) for name, split in dataset.items()},
        eval_metrics=metrics,
        hyperparameters=collect_hyperparameters(data_args, model_args, training_args),
        precision=training_args.precision_note,
        devices=describe_devices(training_args),
        train_runtime_s=train_runtime,
        per_class=evaluation.per_class,
        confusion_matrix=evaluation.confusion_matrix,
        train_accuracy=evaluation.train_accuracy,
        train_accuracy_images=evaluation.train_accuracy_images,
        data_source=describe_data_source(data_args),
        dataset_name=data_args.dataset_name,
        unusable_files=len(report.unusable),
        empty_classes=list(report.empty_classes),
        overfitting_events=overfitting_events,
    )
    return public_inputs(inputs)  # saved as card_inputs.json, which is published too


def callback_of(trainer: Trainer, kind: type):
    return next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, kind))


def train_with_interrupt(trainer: Trainer, resume_from: str | None):
    """Trains; the first Ctrl-C saves a checkpoint at the end of the current step and stops cleanly.

    Raises:
        TrainingInterrupted: after that checkpoint is saved, with the command that resumes.
    """
    interrupt = callback_of(trainer, GracefulInterrupt)
    with contextlib.suppress(ValueError):  # outside the main thread Ctrl-C keeps its default behaviour
        interrupt.install()
    try:
        started = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=resume_from)
        runtime = time.perf_counter() - started
    finally:
        interrupt.uninstall()
    if interrupt.requested:
        raise TrainingInterrupted(
            f"checkpoint saved at step {trainer.state.global_step} in {trainer.args.output_dir}; run the same "
            "command again to resume from it."
        )
    return result, runtime


def first_sentences(message: str, count: int = 2) -> str:
    """E.g. "CUDA out of memory. Tried to allocate 98.00 MiB" of PyTorch's paragraph-long message."""
    return ". ".join(message.split("\n")[0].split(". ")[:count])


def train_fitting_memory(build, resume_from: str | None, image_size: int | None):
    """Trains; when the device runs out of memory, trains again with a smaller per-device batch and more gradient
    accumulation, so the effective batch, the steps and the learning-rate schedule stay what the user asked for.

    The retry starts where the failed attempt would have been resumed: the newest complete checkpoint, or the
    weights as they were before training (kept on the CPU, one process only).

    Raises:
        UsageError: out of memory at a per-device batch of 1, or in a run of several processes (with the flags
            that fit).
    """
    trainer = build()
    args = trainer.args
    output_dir = Path(args.output_dir)
    initial_state = None  # a CPU copy of the weights (180 MB for ResNet-101), for a retry from the start
    if args.world_size == 1 and resume_from is None:
        initial_state = {k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()}
    while True:
        plan = BatchPlan(args.per_device_train_batch_size, args.gradient_accumulation_steps)
        try:
            train_result, runtime = train_with_interrupt(trainer, resume_from)
            return trainer, train_result, runtime
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
        args.per_device_train_batch_size = smaller.per_device
        args.gradient_accumulation_steps = smaller.accumulation
        del trainer
        trainer = build()


def check_checkpoint_readable(checkpoint: Path) -> None:
    """Stops before training when the checkpoint to resume from cannot be read back (a damaged or truncated file).

    Raises:
        UsageError: naming the damaged files and the checkpoints that could be resumed instead.
    """
    damaged = damaged_checkpoint_files(checkpoint)
    if not damaged:
        return
    others = [p for p in list_checkpoints(checkpoint.parent) if p != checkpoint and is_complete(p)]
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
        return "No checkpoint was completed: free space and run the same command to start again."
    return f"The last complete checkpoint, {last}, is intact: free space and run the same command to resume from it."


def after_failed_results(training_args: FinetuneTrainingArguments, started: float) -> str:
    """Removes the results written since `started` (any of them may be cut short); says what is intact."""
    output_dir = Path(training_args.output_dir)
    if training_args.process_index == 0:
        for path in output_dir.iterdir():
            if path.is_file() and not is_bookkeeping(path.name) and path.stat().st_mtime >= started:
                path.unlink(missing_ok=True)
    return (
        f"The final model is saved in {output_dir} (model.safetensors, config.json); its metrics, card and plots "
        "are not. Free space and run the same command again to write them."
    )


def with_run_record(trainer: Trainer, identity: dict, manifest: RunManifest | None) -> Trainer:
    # First among the callbacks: the identity is in a checkpoint before its completion marker.
    trainer.callback_handler.callbacks.insert(0, RunRecordCallback(identity, manifest))
    return trainer


def finished_result(output_dir: Path, label_names: list[str]) -> FinetuneResult:
    """What a rerun of a finished run reports, having changed nothing."""
    results = output_dir / "eval_results.json"
    metrics = json.loads(results.read_text()) if results.is_file() else {}
    logger.warning(
        f'This run already finished: the model is in {output_dir} (load it with pipeline("image-classification", '
        f'model="{output_dir}")). Nothing was changed. Pass --overwrite_output_dir to train it again.'
    )
    return FinetuneResult(output_dir, label_names, {k.removeprefix("eval_"): v for k, v in metrics.items()})


def run_finetune(
    data_args: DataArguments,
    model_args: ModelArguments,
    training_args: FinetuneTrainingArguments,
    model_and_processor: tuple | None = None,
    explicit: dict[str, str] | None = None,
    random_init: bool = False,
) -> FinetuneResult:
    """Runs the whole job, holding the output folder's lock from before it is inspected to after the last write.

    Args:
        model_and_processor: replaces loading from `--model_name_or_path` (the offline demo).
        random_init: the model starts from random weights; the summary and the card say so, with no base model.
        explicit: options the user gave and where ("command line", "config file"); a preset leaves them alone.
    """
    output_dir = Path(training_args.output_dir)
    main_process = training_args.process_index == 0
    if main_process:  # before the lock file is made in a folder that holds something else
        check_writable(output_dir)
        check_own_files(output_dir, training_args.overwrite_output_dir)
    with locked_output_folder(output_dir, enabled=main_process):
        return finetune_in_locked_folder(
            data_args, model_args, training_args, model_and_processor, explicit, random_init=random_init
        )


def finetune_in_locked_folder(
    data_args: DataArguments,
    model_args: ModelArguments,
    training_args: FinetuneTrainingArguments,
    model_and_processor: tuple | None = None,
    explicit: dict[str, str] | None = None,
    random_init: bool = False,
) -> FinetuneResult:
    """The run itself (see `run_finetune`); nothing in the folder changes before the run's identity is checked."""
    clock = PhaseClock()
    setup_logging(training_args)
    # As given, before presets: with the data they determine the run (`run_identity`).
    options = options_identity(data_args, model_args, training_args)
    # The Trainer's own push would replace the model card with its generic one: this package pushes itself.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    # Kept out of training_args so the Trainer never saves the token (training_args.bin is a pickle of them).
    hub_token, training_args.hub_token = training_args.hub_token, None
    if push_to_hub:  # before any data is loaded: nobody should learn after hours of training that a push can't work
        hub_token = check_push_settings(training_args.hub_model_id, hub_token)
        check_write_access(training_args.hub_model_id, hub_token)
    set_seed(training_args.seed)
    if training_args.device.type == "cpu":
        threads_note = restore_cpu_threads(int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        if threads_note and training_args.process_index == 0:
            logger.warning(threads_note)
    output_dir = Path(training_args.output_dir)
    with training_args.main_process_first(desc="checking the output folder"):
        # Before anything is loaded: an unwritable folder or one holding something else stops here.
        check_writable(output_dir)
        resume_from = resolve_resume(
            output_dir, training_args.resume_from_checkpoint, training_args.overwrite_output_dir, options
        )
        if resume_from is not None:  # before anything is loaded or written
            check_checkpoint_readable(Path(resume_from))
    clock.mark("checks")

    # The main process scans first; the others then find every verdict in the scan cache.
    with (
        training_args.main_process_first(desc="scanning and loading the dataset"),
        datasets_progress_silenced(training_args.verbose),
    ):
        dataset, report = load_data(
            data_args, model_args, training_args.seed, progress=training_args.process_index == 0
        )
    clock.mark("scan and data loading")
    label_names = dataset["train"].features["label"].names
    if len(label_names) < 2:
        raise UsageError(f"The training data has a single class ({label_names}): at least two are needed.")
    identity = full_identity(options, label_names, report.data_digest)
    finished = not training_args.overwrite_output_dir and is_finished(output_dir)
    if resume_from or finished:
        check_same_run(output_dir, Path(resume_from) if resume_from else None, identity, keys=DATA_KEYS)
    if finished:
        return finished_result(output_dir, label_names)
    settings = apply_settings(data_args, model_args, training_args, explicit or {}, len(dataset["train"]))
    choose_best_model_metric(training_args, explicit or {}, report.imbalance_ratio)
    check_settings(training_args, len(dataset["train"]), len(dataset["validation"]), logger.warning)
    manifest = RunManifest(output_dir) if training_args.process_index == 0 else None
    if manifest is not None:  # the first writes, once the run is known to be this folder's
        write_identity(output_dir, identity)
        manifest.record()
    if training_args.process_index == 0:
        report.save(output_dir, data_roots(data_args.train_dir, data_args.validation_dir))

    with model_loading_silenced(training_args.verbose):
        model, processor = model_and_processor or load_model_and_processor(model_args, label_names)
        checkpoint_labels = None
        if model_and_processor is None:
            checkpoint_labels = checkpoint_num_labels(
                model_args.model_name_or_path,
                local_files_only=local_files_only_for(model_args.model_name_or_path),
                cache_dir=model_args.cache_dir,
                revision=model_args.model_revision,
            )
    clock.mark("model loading")
    if model_args.freeze_backbone:
        frozen, trainable = freeze_backbone(model, model_args.freeze_backbone)
        logger.warning(
            f"--freeze_backbone {model_args.freeze_backbone}: {frozen / 1e6:.2f} M parameters frozen, "
            f"{trainable / 1e6:.2f} M trained (fewer parameters to fit: less overfitting on small data)."
        )
    checkpointing_flags = [
        f for f in ("gradient_checkpointing", "activation_checkpointing") if hasattr(training_args, f)
    ]
    if any(getattr(training_args, flag) for flag in checkpointing_flags):
        # The Trainer would call the model's own method, which transformers' ResNet lacks: do it here instead.
        logger.warning(
            f"--gradient_checkpointing: {apply_gradient_checkpointing(model)} ({CHECKPOINTING_TRADE}, measured on "
            "an H200)."
        )
        for flag in checkpointing_flags:
            setattr(training_args, flag, False)
    if data_args.image_size:
        processor = set_image_size(processor, model.config, data_args.image_size)
    data_config = resolve_data_config(processor)
    log_run_summary(
        training_args,
        model_args,
        data_args,
        dataset,
        report,
        settings,
        model,
        (data_config.height, data_config.width),
        random_init,
        head_note=describe_head(checkpoint_labels, label_names),
    )

    with reporting_write_failures("a checkpoint", output_dir, after=lambda: after_failed_save(training_args)):
        trainer, train_result, train_runtime = train_fitting_memory(
            lambda: with_run_record(
                build_trainer(model, processor, dataset, training_args, data_args, model_args.channels_last),
                identity,
                manifest,
            ),
            resume_from,
            data_args.image_size,
        )
    clock.mark("trainer set-up and validation preparation", inner={"training": train_runtime})
    if model_args.freeze_backbone:
        unfreeze_batch_norm(trainer.model)
    save_final_model(trainer, output_dir)
    clock.mark("final save")
    results_started = time.time()
    with reporting_write_failures(
        "the run's results", output_dir, after=lambda: after_failed_results(training_args, results_started)
    ):
        return finish_run(trainer, train_result, train_runtime, dataset, report, processor, push_to_hub, hub_token,
                          data_args, model_args, training_args, manifest, clock, random_init=random_init)  # fmt: skip


def finish_run(
    trainer,
    train_result,
    train_runtime: float,
    dataset: datasets.DatasetDict,
    report: DataReport,
    processor,
    push_to_hub: bool,
    hub_token: str | None,
    data_args: DataArguments,
    model_args: ModelArguments,
    training_args: FinetuneTrainingArguments,
    manifest: RunManifest | None,
    clock: PhaseClock,
    random_init: bool = False,
) -> FinetuneResult:
    """After the final model is saved: metrics, the validation pass, the card, the pipeline check and the push."""
    output_dir = Path(training_args.output_dir)
    label_names = dataset["train"].features["label"].names
    if trainer.is_world_process_zero():
        callback_of(trainer, OverfittingMonitor).save(output_dir)
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()

    # One prediction pass over validation gives the final metrics and serves the card and the pipeline check (a
    # collective call); it is logged and reported to the callbacks as `trainer.evaluate()` would, which would
    # otherwise be a second pass over the same images.
    validation_prediction = trainer.predict(trainer.eval_dataset, metric_key_prefix="eval")
    eval_metrics = dict(validation_prediction.metrics)
    trainer.log(eval_metrics)
    trainer.control = trainer.callback_handler.on_evaluate(trainer.args, trainer.state, trainer.control, eval_metrics)
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)
    metrics = {k.removeprefix("eval_"): v for k, v in eval_metrics.items() if isinstance(v, float)}
    clock.mark("final evaluation")
    train_sample = min(len(dataset["validation"]), MAX_TRAIN_ACCURACY_IMAGES)
    train_indices = pipeline_check_indices(len(dataset["train"]), train_sample)
    card_evaluation = evaluate_for_card(
        trainer, validation_prediction, dataset["train"], train_indices, processor, len(label_names)
    )
    clock.mark("training-sample accuracy for the card")
    check_indices = pipeline_check_indices(len(dataset["validation"]), PIPELINE_CHECK_IMAGES)
    check_logits = prediction_logits(validation_prediction)[check_indices]
    shut_down_data_loaders(trainer)  # the last pass over the data: its workers are done
    evaluated = [label_names[i] for i in check_logits.argmax(-1)]
    pipeline_predictions = []
    if trainer.is_world_process_zero():
        write_split_files(dataset, output_dir, data_roots(data_args.train_dir, data_args.validation_dir))
        card_inputs = build_card_inputs(
            data_args,
            model_args,
            training_args,
            dataset,
            report,
            metrics,
            card_evaluation,
            train_runtime,
            callback_of(trainer, OverfittingMonitor).events,
            architecture_of(trainer.model),
            random_init,
        )
        card_inputs.save(output_dir)
        write_model_card(output_dir, card_inputs)
        clock.mark("card and plots")
        pipeline_predictions = check_with_pipeline(
            output_dir, dataset["validation"], check_indices, evaluated, label_names, model_args.trust_remote_code
        )
        (output_dir / "pipeline_check.json").write_text(json.dumps(pipeline_predictions, indent=2, ensure_ascii=False))
        manifest.record(finished=True)
        clock.mark("pipeline check")
    if push_to_hub and trainer.is_world_process_zero():
        push_output_dir(
            output_dir,
            training_args.hub_model_id,
            private=training_args.hub_private_repo,
            token=hub_token,
            hub_strategy=getattr(training_args.hub_strategy, "value", training_args.hub_strategy),
        )
        clock.mark("push")
    if trainer.is_world_process_zero():
        logger.warning(clock.describe())
    pushed_to = training_args.hub_model_id if push_to_hub else None
    return FinetuneResult(output_dir, label_names, metrics, pipeline_predictions, pushed_to)
