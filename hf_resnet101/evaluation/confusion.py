"""The confusion matrix and its plot (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix

# Past this many classes the cells are too small to carry their counts.
MAX_ANNOTATED_CLASSES = 30
# Longer class names are cut on the axes (a 200-character name pushed the matrix off the figure).
MAX_TICK_LABEL_CHARS = 32
# Past this many classes the names are not written on the axes (they would overlap), and the figure stops growing:
# sized by the class count alone, 400 classes made a 482-megapixel PNG that took 19.6 GB and minutes to draw.
MAX_LABELLED_CLASSES = 60
MAX_FIGURE_INCHES = 24.0


def compute_confusion_matrix(references: Sequence[int], predictions: Sequence[int], num_labels: int) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns, for every class of the model."""
    return confusion_matrix(references, predictions, labels=list(range(num_labels)))


def row_normalised(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its total (the recall of that class on the diagonal); empty rows stay zero."""
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)


def drawable(text: str, font) -> bool:
    """Whether `font` (matplotlib's `FT2Font`) has a glyph for every character of `text`."""
    return all(font.get_char_index(ord(character)) for character in text)


def tick_labels(label_names: Sequence[str]) -> tuple[list[str], bool]:
    """What the axes can show of each class name: names the plotting font cannot draw (Chinese, with
    matplotlib's default font) become their class number, `#3`, instead of empty boxes; long ones are cut. Also
    whether any name was numbered (the figure then says where the names are)."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    font = FT2Font(font_manager.findfont(font_manager.FontProperties()))
    labels, numbered = [], False
    for index, name in enumerate(label_names):
        if not drawable(name, font):
            labels.append(f"#{index}")
            numbered = True
        elif len(name) > MAX_TICK_LABEL_CHARS:
            labels.append(name[: MAX_TICK_LABEL_CHARS - 1] + "…")
        else:
            labels.append(name)
    return labels, numbered


def plot_confusion_matrix(matrix: np.ndarray, label_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Writes a PNG: colours are row-normalised (per-class recall), numbers are counts."""
    size = min(max(4.0, 0.45 * len(label_names) + 2.5), MAX_FIGURE_INCHES)
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # imported here: matplotlib adds ~0.5 s to start-up
    from matplotlib.figure import Figure

    figure = Figure(figsize=(size + 1.0, size))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(row_normalised(matrix), cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the true class")
    if len(label_names) <= MAX_LABELLED_CLASSES:
        labels, numbered = tick_labels(label_names)
        ticks = np.arange(len(labels))
        axes.set_xticks(ticks, labels=labels, rotation=60, ha="right", rotation_mode="anchor")
        axes.set_yticks(ticks, labels=labels)
        if numbered:  # their names are in config.json's id2label, the card's per-class table and per_class.csv
            figure.text(0.01, 0.01, "#N: class number N (id2label in config.json)", fontsize=8)
    else:  # too many to name: the order is the model's, and the per-class results are in the table
        axes.set_xticks([])
        axes.set_yticks([])
        figure.text(0.01, 0.01, f"{len(label_names)} classes in id2label order (config.json)", fontsize=10)
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
