"""The final evaluation the model card reports: per-class results, confusion matrix, and training accuracy."""

from __future__ import annotations

from dataclasses import dataclass, field

import datasets
import numpy as np
from transformers import Trainer

from .metrics import per_class_report
from .transforms import make_eval_batch_transform

# Training accuracy is measured on at most this many training images (evenly spread over the split).
MAX_TRAIN_ACCURACY_IMAGES = 2_000


@dataclass
class CardEvaluation:
    per_class: dict[str, list[float]] = field(default_factory=dict)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    train_accuracy: float | None = None
    train_accuracy_images: int = 0


def _logits(prediction) -> np.ndarray:
    logits = prediction.predictions
    return np.asarray(logits[0] if isinstance(logits, tuple) else logits, dtype=np.float32)


def spread_indices(num_images: int, count: int) -> list[int]:
    """At most `count` evenly spaced indices (splits are ordered by class, so every class is sampled)."""
    return sorted({round(i) for i in np.linspace(0, num_images - 1, min(count, num_images))}) if num_images else []


def evaluate_for_card(
    trainer: Trainer, train: datasets.Dataset, processor, num_labels: int, max_train_images: int | None = None
) -> CardEvaluation:
    """Predicts the validation split and a sample of the training split (with evaluation preprocessing).

    The training sample is as large as the validation split, capped at `MAX_TRAIN_ACCURACY_IMAGES`, so the
    overfitting check costs about one more evaluation. A collective call: run it on every process.
    """
    validation = trainer.predict(trainer.eval_dataset)
    report = per_class_report(_logits(validation), np.asarray(validation.label_ids), num_labels)
    limit = max_train_images or min(len(trainer.eval_dataset), MAX_TRAIN_ACCURACY_IMAGES)
    indices = spread_indices(len(train), limit)
    train_accuracy = None
    if indices:
        sample = train.select(indices).with_transform(make_eval_batch_transform(processor))
        predicted = trainer.predict(sample)
        train_accuracy = float((_logits(predicted).argmax(-1) == np.asarray(predicted.label_ids)).mean())
    columns = ("precision", "recall", "f1", "support")
    return CardEvaluation(
        per_class={column: report[column] for column in columns},
        confusion_matrix=report["confusion_matrix"],
        train_accuracy=train_accuracy,
        train_accuracy_images=len(indices),
    )
