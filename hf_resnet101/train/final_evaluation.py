"""The final evaluation the model card reports: per-class results, confusion matrix, and training accuracy; and
the evaluation of the final weights, when the run evaluated them already."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import datasets
import numpy as np
from transformers import EvalPrediction, Trainer, TrainerCallback
from transformers.trainer_utils import PredictionOutput

from ..data.transforms import preprocess_for_evaluation
from ..evaluation.metrics import per_class_report
from .monitors import described_passes
from .run_state import ModelToTrain

# Training accuracy is measured on as many training images as there are validation images, up to this many: the
# overfitting check then costs about one more evaluation.
MAX_TRAIN_ACCURACY_IMAGES = 2_000


@dataclass
class CardEvaluation:
    per_class: dict[str, list[float]] = field(default_factory=dict)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    train_accuracy: float | None = None
    train_accuracy_images: int = 0


def prediction_logits(prediction: PredictionOutput) -> np.ndarray:
    logits = prediction.predictions
    return np.asarray(logits[0] if isinstance(logits, tuple) else logits, dtype=np.float32)


def evaluate_for_card(
    trainer: Trainer,
    validation: PredictionOutput,
    train: datasets.Dataset,
    train_indices: list[int],
    model: ModelToTrain,
    num_labels: int,
) -> CardEvaluation:
    """Per-class results from the validation predictions, and accuracy on the training images at `train_indices`
    (predicted with evaluation preprocessing).

    A collective call: run it on every process.
    """
    report = per_class_report(prediction_logits(validation), np.asarray(validation.label_ids), num_labels)
    train_accuracy = None
    if train_indices:
        with trainer.args.main_process_first(desc="preparing the training sample for evaluation"):
            sample = preprocess_for_evaluation(
                train.select(train_indices), model.processor, model.data_config, images="the card's training sample"
            )
        with described_passes(trainer, f"Card: accuracy on {len(train_indices)} training images"):
            predicted = trainer.predict(sample)
        train_accuracy = float((prediction_logits(predicted).argmax(-1) == np.asarray(predicted.label_ids)).mean())
    columns = ("precision", "recall", "f1", "support", "predicted")
    return CardEvaluation(
        per_class={column: report[column] for column in columns},
        confusion_matrix=report["confusion_matrix"],
        train_accuracy=train_accuracy,
        train_accuracy_images=len(train_indices),
    )


class EvaluationRecorder(TrainerCallback):
    """Keeps the predictions and metrics of the run's latest evaluation and, with `load_best_model_at_end`, of its
    best one, by step.

    A run that evaluates at its last step (every step, the product page's default, or every epoch) ends with the
    weights it just evaluated, or with the best ones it evaluated earlier (`load_best_model_at_end`): the final
    evaluation is then one already made, and is not computed a second time. Wrap the Trainer's `compute_metrics`
    with `recording` and add this callback: `on_evaluate` files the predictions the metrics were computed from.
    """

    def __init__(self):
        self._pending: EvalPrediction | None = None
        self._by_step: dict[int, PredictionOutput] = {}

    def recording(self, compute_metrics: Callable[[EvalPrediction], dict]) -> Callable[[EvalPrediction], dict]:
        def compute_and_keep(prediction: EvalPrediction) -> dict:
            self._pending = prediction
            return compute_metrics(prediction)

        return compute_and_keep

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        prediction, self._pending = self._pending, None
        if prediction is None or metrics is None:
            return
        output = PredictionOutput(prediction.predictions, prediction.label_ids, dict(metrics))
        self._by_step[state.global_step] = output
        # The Trainer decides whether this evaluation is the new best after this call: keep it, and the best so far
        # when the best weights are the ones to end with (predictions of a large split take hundreds of MB).
        kept = (state.global_step, state.best_global_step if args.load_best_model_at_end else None)
        self._by_step = {step: output for step, output in self._by_step.items() if step in kept}

    def evaluation_at(self, step: int | None) -> PredictionOutput | None:
        return self._by_step.get(step) if step is not None else None
