"""Top-k accuracy from class scores, as an `evaluate` module that loads offline by path."""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import top_k_accuracy_score

_DESCRIPTION = """
The fraction of examples whose true class is among the k highest-scoring classes (scikit-learn's
`top_k_accuracy_score`).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): one score (logit or probability) per class for each example.
    references (`list` of `int`): true class ids.
    k (`int`, optional): how many top classes count as a hit. Defaults to 5.
Returns:
    top_k_accuracy (float): named `top_{k}_accuracy`.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TopKAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("float32")), "references": datasets.Value("int64")}
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.top_k_accuracy_score.html"
            ],
        )

    def _compute(self, predictions, references, k=5):
        scores = np.asarray(predictions, dtype=np.float32)
        value = top_k_accuracy_score(references, scores, k=k, labels=np.arange(scores.shape[1]))
        return {f"top_{k}_accuracy": float(value)}
