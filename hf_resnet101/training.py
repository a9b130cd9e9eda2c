"""The fine-tuning run: data, model, Trainer, saving, the model card and the pipeline check."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import datasets
import numpy as np
import torch
import transformers
from transformers import Trainer, pipeline, set_seed
from transformers.utils import logging

from .arguments import DataArguments, FinetuneTrainingArguments, ModelArguments
from .data import limit_samples, load_hub_dataset, load_image_folders, write_split_files
from .errors import UsageError
from .hub import push_output_dir
from .metrics import build_compute_metrics
from .model_card import render_model_card
from .modeling import count_parameters, load_image_processor, load_model_for_labels, local_files_only_for
from .transforms import (
    build_train_transform,
    collate,
    make_eval_batch_transform,
    make_train_batch_transform,
    resolve_data_config,
    set_image_size,
)

logger = logging.get_logger(__name__)

PIPELINE_CHECK_IMAGES = 8
CARD_HYPERPARAMETERS = (
    "learning_rate",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "optim",
    "seed",
    "eval_strategy",
    "eval_steps",
)


@dataclass
class FinetuneResult:
    """What a finished run produced."""

    output_dir: Path
    label_names: list[str]
    eval_metrics: dict[str, float]
    pipeline_predictions: list[dict] = field(default_factory=list)


def setup_logging(training_args: FinetuneTrainingArguments) -> None:
    log_level = training_args.get_process_log_level()
    logging.set_verbosity(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def load_data(data_args: DataArguments, model_args: ModelArguments, seed: int) -> datasets.DatasetDict:
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
    else:
        dataset = load_image_folders(
            data_args.train_dir, data_args.validation_dir, data_args.train_val_split, seed, model_args.cache_dir
        )
    return limit_samples(dataset, data_args.max_train_samples, data_args.max_eval_samples, seed)


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


def log_run_summary(
    training_args: FinetuneTrainingArguments,
    model_args: ModelArguments,
    data_args: DataArguments,
    dataset: datasets.DatasetDict,
    model: torch.nn.Module,
    image_size: tuple[int, int],
) -> None:
    if training_args.process_index != 0:
        return
    names = dataset["train"].features["label"].names
    per_class = class_counts(dataset["train"], names)
    global_batch = (
        training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * training_args.world_size
    )
    lines = [
        f"data: {len(dataset['train'])} training and {len(dataset['validation'])} validation images, "
        f"{len(names)} classes",
        "images per class (train): " + ", ".join(f"{name}={count}" for name, count in per_class.items()),
        f"model: {model_args.model_name_or_path} ({count_parameters(model) / 1e6:.2f} M parameters), "
        f"input {image_size[0]}x{image_size[1]}, augmentation {data_args.augmentation}",
        f"device: {training_args.device} x {training_args.world_size} process(es); precision: "
        f"{training_args.precision_note}",
        f"batch: {training_args.per_device_train_batch_size} per device, global {global_batch}; "
        f"learning rate {training_args.learning_rate:g}; epochs {training_args.num_train_epochs:g}; "
        f"evaluation: {training_args.eval_strategy.value}"
        + (f" every {training_args.eval_steps:g} steps" if training_args.eval_strategy.value == "steps" else ""),
    ]
    logger.warning("Run summary:\n  " + "\n  ".join(lines))


def build_trainer(
    model,
    processor,
    dataset: datasets.DatasetDict,
    training_args: FinetuneTrainingArguments,
    data_args: DataArguments,
    channels_last: bool,
) -> Trainer:
    data_config = resolve_data_config(processor)
    train_transform = build_train_transform(data_config, data_args.augmentation)
    train = dataset["train"].with_transform(make_train_batch_transform(train_transform))
    validation = dataset["validation"].with_transform(make_eval_batch_transform(processor))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    num_labels = len(dataset["train"].features["label"].names)
    return Trainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=validation,
        processing_class=processor,
        data_collator=partial(collate, channels_last=channels_last),
        compute_metrics=build_compute_metrics(num_labels),
    )


def pipeline_check_indices(num_images: int, count: int) -> list[int]:
    """Evenly spaced indices, so the check sees several classes (splits are ordered by class)."""
    return sorted({round(i) for i in np.linspace(0, num_images - 1, min(count, num_images))})


def predict_labels(trainer: Trainer, indices: list[int], label_names: list[str]) -> list[str]:
    """The evaluation path's predictions for some validation images (a collective call: run it on every process)."""
    logits = trainer.predict(trainer.eval_dataset.select(indices)).predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    return [label_names[i] for i in np.asarray(logits).argmax(-1)]


def check_with_pipeline(
    output_dir: Path, validation: datasets.Dataset, indices: list[int], evaluated: list[str], label_names: list[str]
) -> list[dict]:
    """Reloads the saved folder with `pipeline` and compares its labels with the evaluation's predictions.

    Raises:
        UsageError: when the pipeline returns labels that are not the class names (a broken label mapping).
    """
    sample = validation.select(indices)
    images = [image.convert("RGB") for image in sample["image"]]
    classifier = pipeline("image-classification", model=str(output_dir), device=-1)
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


def run_finetune(
    data_args: DataArguments,
    model_args: ModelArguments,
    training_args: FinetuneTrainingArguments,
    model_and_processor: tuple | None = None,
) -> FinetuneResult:
    """Runs the whole job. `model_and_processor` replaces loading from `--model_name_or_path` (offline demo)."""
    setup_logging(training_args)
    # The Trainer's own push would replace the model card with its generic one: this package pushes itself.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    set_seed(training_args.seed)
    output_dir = Path(training_args.output_dir)

    with training_args.main_process_first(desc="loading the dataset"):
        dataset = load_data(data_args, model_args, training_args.seed)
    label_names = dataset["train"].features["label"].names
    if len(label_names) < 2:
        raise UsageError(f"The training data has a single class ({label_names}): at least two are needed.")

    model, processor = model_and_processor or load_model_and_processor(model_args, label_names)
    if data_args.image_size:
        set_image_size(processor, model.config, data_args.image_size)
    data_config = resolve_data_config(processor)
    log_run_summary(training_args, model_args, data_args, dataset, model, (data_config.height, data_config.width))

    trainer = build_trainer(model, processor, dataset, training_args, data_args, model_args.channels_last)
    started = time.perf_counter()
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    train_runtime = time.perf_counter() - started
    trainer.save_model()
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()

    eval_metrics = trainer.evaluate()
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)
    metrics = {k.removeprefix("eval_"): v for k, v in eval_metrics.items() if isinstance(v, float)}

    check_indices = pipeline_check_indices(len(dataset["validation"]), PIPELINE_CHECK_IMAGES)
    evaluated = predict_labels(trainer, check_indices, label_names)
    pipeline_predictions = []
    if trainer.is_world_process_zero():
        write_split_files(dataset, output_dir)
        card = render_model_card(
            model_name=output_dir.name,
            repo_id=training_args.hub_model_id or str(output_dir),
            base_model=model_args.model_name_or_path,
            label_names=label_names,
            eval_metrics=metrics,
            split_sizes={name: len(split) for name, split in dataset.items()},
            train_class_counts=class_counts(dataset["train"], label_names),
            hyperparameters={name: getattr(training_args, name) for name in CARD_HYPERPARAMETERS},
            precision=training_args.precision_note,
            train_runtime_s=train_runtime,
            dataset_name=data_args.dataset_name,
        )
        card.save(output_dir / "README.md")
        pipeline_predictions = check_with_pipeline(
            output_dir, dataset["validation"], check_indices, evaluated, label_names
        )
        (output_dir / "pipeline_check.json").write_text(json.dumps(pipeline_predictions, indent=2, ensure_ascii=False))
    if push_to_hub and trainer.is_world_process_zero():
        push_output_dir(
            output_dir,
            training_args.hub_model_id,
            private=training_args.hub_private_repo,
            token=training_args.hub_token,
        )
    return FinetuneResult(output_dir, label_names, metrics, pipeline_predictions)
