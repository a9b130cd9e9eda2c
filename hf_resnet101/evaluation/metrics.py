"""Evaluation metrics through `evaluate`, from modules shipped in the package so they load offline."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from importlib import resources

import evaluate
import numpy as np
from transformers import EvalPrediction

from ..errors import UsageError
from ..library_internals import compute_in_memory
from .confusion import compute_confusion_matrix

TOP_K = 5


def metric_module_path(name: str) -> str:
    return str(resources.files("hf_resnet101.evaluation") / "metric_modules" / name)


def load_metric(name: str) -> evaluate.EvaluationModule:
    """Loads one of the package's metric modules by path: no Hub access needed."""
    return evaluate.load(metric_module_path(name))


def evaluation_metric_names(num_labels: int) -> tuple[str, ...]:
    """What each evaluation reports (`build_compute_metrics`, and the loss): what --metric_for_best_model takes."""
    names = ("loss", "accuracy", "precision_macro", "recall_macro", "f1_macro")
    return (*names, f"top_{TOP_K}_accuracy") if num_labels > TOP_K else names


def check_best_model_metric(name: str | None, num_labels: int) -> None:
    """Stops before training on a --metric_for_best_model that evaluations do not report (the Trainer would fail at
    the first evaluation, after training up to it, and save no checkpoint).

    Raises:
        UsageError: naming the metrics there are, and the closest one.
    """
    names = evaluation_metric_names(num_labels)
    if name is None or name.removeprefix("eval_") in names:
        return
    given = name.removeprefix("eval_")
    close = [known for known in names if known.startswith(given)] or difflib.get_close_matches(given, names, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    if given == f"top_{TOP_K}_accuracy":
        hint = f" (top-{TOP_K} accuracy is measured only with more than {TOP_K} classes)"
    raise UsageError(
        f"--metric_for_best_model {name} is not a metric the evaluations report{hint}: they report {', '.join(names)}."
    )


def build_compute_metrics(num_labels: int) -> Callable[[EvalPrediction], dict[str, float]]:
    """`compute_metrics` for the Trainer: accuracy, macro precision/recall/F1 and, past 5 classes, top-5."""
    classification = load_metric("classification_metrics")
    top_k = load_metric("top_k_accuracy") if num_labels > TOP_K else None

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        logits = np.asarray(logits, dtype=np.float32)
        references = np.asarray(prediction.label_ids)
        # Evaluation may run at every step (the product page's default): the modules compute in memory, without
        # the cache `compute()` keeps for metrics gathered across processes or batches (library_internals.py).
        predictions = logits.argmax(-1)
        metrics = compute_in_memory(
            classification, predictions=predictions, references=references, num_labels=num_labels
        )
        if top_k is not None:
            metrics.update(compute_in_memory(top_k, predictions=logits, references=references, k=TOP_K))
        return metrics

    return compute_metrics


def per_class_report(logits: np.ndarray, references: np.ndarray, num_labels: int) -> dict[str, object]:
    """Per-class precision, recall, F1 and support, accuracy, and the confusion matrix (rows: true classes)."""
    predictions = np.asarray(logits).argmax(-1)
    report = load_metric("classification_metrics").compute(
        predictions=predictions, references=references, num_labels=num_labels, per_class=True
    )
    report["confusion_matrix"] = compute_confusion_matrix(references, predictions, num_labels).tolist()
    return report
