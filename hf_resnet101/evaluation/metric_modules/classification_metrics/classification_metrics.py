"""Accuracy with macro precision, recall and F1, as an `evaluate` module that loads offline by path."""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

_DESCRIPTION = """
Accuracy, and precision, recall and F1 averaged over classes (macro), computed with scikit-learn.
With `per_class=True` the per-class precision, recall, F1 and support are returned as lists too.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class ids.
    references (`list` of `int`): true class ids.
    num_labels (`int`, optional): number of classes; classes never seen count with zero support.
    per_class (`bool`, optional): also return per-class lists. Defaults to False.
Returns:
    accuracy, precision_macro, recall_macro, f1_macro (floats); with per_class: precision, recall, f1, support and
    predicted (how many images each class was predicted for). A class with neither support nor predictions is left
    out of the macro averages (its per-class scores are 0 by scikit-learn's zero_division, and mean nothing).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ClassificationMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, num_labels=None, per_class=False):
        labels = list(range(num_labels)) if num_labels else None
        precision, recall, f1, support = precision_recall_fscore_support(
            references, predictions, labels=labels, average=None, zero_division=0
        )
        # Macro averages over the classes that occur in the references or the predictions, as sklearn does
        # without `labels`: a class the model predicts but the data lacks counts, with precision 0.
        predicted = np.bincount(np.asarray(predictions, dtype=int), minlength=len(support))[: len(support)]
        present = (np.asarray(support) > 0) | (predicted > 0)
        result = {
            "accuracy": float(accuracy_score(references, predictions)),
            "precision_macro": float(np.mean(precision[present])),
            "recall_macro": float(np.mean(recall[present])),
            "f1_macro": float(np.mean(f1[present])),
        }
        if per_class:
            result.update(
                precision=precision.tolist(),
                recall=recall.tolist(),
                f1=f1.tolist(),
                support=support.tolist(),
                predicted=predicted.tolist(),
            )
        return result
