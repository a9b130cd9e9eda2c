"""The metric modules load offline through `evaluate` and agree with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, top_k_accuracy_score
from transformers import EvalPrediction

from hf_resnet101.evaluation.metrics import build_compute_metrics, evaluation_metric_names, load_metric


def test_modules_load_by_path_offline():
    assert load_metric("classification_metrics").name == "classification_metrics"
    assert load_metric("top_k_accuracy").name == "top_k_accuracy"


@pytest.mark.parametrize("num_labels", [3, 8])
def test_compute_metrics_matches_sklearn(num_labels):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(60, num_labels)).astype(np.float32)
    labels = rng.integers(0, num_labels, size=60)
    metrics = build_compute_metrics(num_labels)(EvalPrediction(predictions=logits, label_ids=labels))
    predicted = logits.argmax(-1)
    macro = {"average": "macro", "zero_division": 0}
    assert metrics["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert metrics["precision_macro"] == pytest.approx(precision_score(labels, predicted, **macro))
    assert metrics["recall_macro"] == pytest.approx(recall_score(labels, predicted, **macro))
    assert metrics["f1_macro"] == pytest.approx(f1_score(labels, predicted, **macro))
    if num_labels > 5:
        expected = top_k_accuracy_score(labels, logits, k=5, labels=np.arange(num_labels))
        assert metrics["top_5_accuracy"] == pytest.approx(expected)
    else:
        assert "top_5_accuracy" not in metrics
    assert set(evaluation_metric_names(num_labels)) == {"loss", *metrics}  # what --metric_for_best_model takes


def test_macro_averages_count_classes_only_predicted():
    # Data of one class, two of five images predicted as a class the data lacks: that class's precision is 0 and
    # counts, as in scikit-learn's default macro average, so precision is not reported as a perfect 1.0.
    references, predictions = [0, 0, 0, 0, 0], [0, 0, 0, 1, 1]
    result = load_metric("classification_metrics").compute(
        predictions=predictions, references=references, num_labels=3
    )
    macro = {"average": "macro", "zero_division": 0}
    assert result["precision_macro"] == pytest.approx(precision_score(references, predictions, **macro)) == 0.5
    assert result["recall_macro"] == pytest.approx(recall_score(references, predictions, **macro)) == 0.3
    assert result["f1_macro"] == pytest.approx(f1_score(references, predictions, **macro)) == 0.375


def test_per_class_metrics():
    result = load_metric("classification_metrics").compute(
        predictions=[0, 0, 1, 2], references=[0, 1, 1, 2], num_labels=4, per_class=True
    )
    assert result["support"] == [1, 2, 1, 0]
    assert result["recall"][:3] == [1.0, 0.5, 1.0]
