"""What the model card is made from, gathered from the run: nothing local (no paths), the base model a Hub id."""

from __future__ import annotations

from pathlib import Path

import datasets
import torch
from transformers.utils import logging

from ..config.options import DataArguments, FinetuneTrainingArguments, ModelArguments
from ..data.folders import SPLIT_NAMES, image_paths
from ..data.report import DataReport, images_per_class_of
from ..modeling import base_model_license, count_parameters, is_resnet101, resolve_base_model
from ..publish.card import CardInputs, collect_hyperparameters, describe_devices, public_inputs
from .final_evaluation import CardEvaluation

logger = logging.get_logger(__name__)


def describe_data_source(data_args: DataArguments) -> str:
    """The data's origin for the card: a Hub dataset's name, or the image folders' names; a split folder's
    (`train`, `val`) with the folder holding it (`birds/train`), no other part of its path."""
    if data_args.dataset_name:
        return f"the dataset `{data_args.dataset_name}`"
    folders = [Path(p).expanduser().resolve() for p in (data_args.train_dir, data_args.validation_dir) if p]
    return "image folder " + " and ".join(f"`{folder_name(p)}`" for p in folders)


def folder_name(folder: Path) -> str:
    if folder.name.lower() in SPLIT_NAMES and folder.parent.name:
        return f"{folder.parent.name}/{folder.name}"
    return folder.name


def validation_copies_of_training(report: DataReport, used: dict[str, set[str]] | None = None) -> int:
    """Validation images identical to a training image, both of which the run used: they inflate the validation
    figures. `used`: the paths of each split as trained and evaluated (`--max_train_samples` and
    `--max_eval_samples` keep part of what the scan found); without it, every copy the scan found that --dedupe
    did not leave out."""
    dropped = set(report.dropped_from_validation)
    copies = set()
    for leak in report.duplicates.train_validation_leaks:
        if used is not None and not used.get("train", set()).intersection(leak["train"]):
            continue  # its training original was not trained on
        copies.update(path for path in leak["validation"] if used is None or path in used.get("validation", ()))
    return len(copies - dropped)


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
    selection: dict | None = None,
    model: torch.nn.Module | None = None,
    input_size: tuple[int, int] | None = None,
) -> CardInputs:
    """What the card shows; nothing local: the base model is a Hub id or left out, and so is the model path.
    `model` (the trained one) gives its size and whether it is a ResNet-101; `input_size` (height, width) is the
    size the run fed it, shown as the image size where --image_size was not given."""
    label_names = dataset["train"].features["label"].names
    hyperparameters = collect_hyperparameters(data_args, model_args, training_args)
    if hyperparameters.get("image_size") is None and input_size is not None:
        height, width = input_size
        hyperparameters["image_size"] = height if height == width else f"{height}x{width}"
    base_model = None if random_init else resolve_base_model(model_args.model_name_or_path, model_args.base_model_id)
    inputs = CardInputs(
        model_name=Path(training_args.output_dir).name,
        repo_id=training_args.hub_model_id,
        base_model=base_model,
        license=model_args.license or base_model_license(model_args.model_name_or_path, base_model),
        random_init=random_init,
        architecture=architecture,
        resnet101=model is not None and is_resnet101(model),
        parameters=None if model is None else count_parameters(model),
        label_names=label_names,
        images_per_class=images_per_class_of(dataset),
        eval_metrics=metrics,
        hyperparameters=hyperparameters,
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
        left_out_files=len(report.left_out_files),
        nested_images=report.nested_images,
        loose_images=report.loose_images,
        validation_copies_of_training=validation_copies_of_training(
            report, {name: set(image_paths(split)) for name, split in dataset.items()}
        ),
        images_found=sum(sum(counts.values()) for counts in report.images_per_class.values()),
        left_out_by=list(report.left_out_by),
        converted_modes=report.converted_unlike_pipeline,
        high_bit_values=report.high_bit_values,
        empty_classes=list(report.empty_classes),
        overfitting_events=overfitting_events,
        selection=selection,
    )
    return public_inputs(inputs)  # saved as card_inputs.json, which is published too
