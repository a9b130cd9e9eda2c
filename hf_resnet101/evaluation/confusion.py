"""The confusion matrix and its plot (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix

# Past this many classes the cells are too small to carry their counts.
MAX_ANNOTATED_CLASSES = 30


def compute_confusion_matrix(references: Sequence[int], predictions: Sequence[int], num_labels: int) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns, for every class of the model."""
    return confusion_matrix(references, predictions, labels=list(range(num_labels)))


def row_normalised(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its total (the recall of that class on the diagonal); empty rows stay zero."""
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)


def plot_confusion_matrix(matrix: np.ndarray, label_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Writes a PNG: colours are row-normalised (per-class recall), numbers are counts."""
    size = max(4.0, 0.45 * len(label_names) + 2.5)
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # imported here: matplotlib adds ~0.5 s to start-up
    from matplotlib.figure import Figure

    figure = Figure(figsize=(size + 1.0, size))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(row_normalised(matrix), cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class")
    ticks = np.arange(len(label_names))
    axes.set_xticks(ticks, labels=label_names, rotation=60, ha="right", rotation_mode="anchor")
    axes.set_yticks(ticks, labels=label_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title or "Confusion matrix")
    if len(label_names) <= MAX_ANNOTATED_CLASSES:
        fractions = row_normalised(matrix)
        for (row, column), count in np.ndenumerate(matrix):
            colour = "white" if fractions[row, column] > 0.5 else "black"
            axes.text(column, row, str(count), ha="center", va="center", color=colour, fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path
