"""The confusion matrix: counts for every class of the model, row-normalised colours, and its PNG."""

from __future__ import annotations

import numpy as np
from PIL import Image

from hf_resnet101.evaluation.confusion import compute_confusion_matrix, plot_confusion_matrix, row_normalised


def test_rows_are_true_classes_and_unseen_classes_still_get_a_row():
    matrix = compute_confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1], num_labels=3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]


def test_row_normalised_gives_recall_on_the_diagonal_and_zero_for_empty_rows():
    fractions = row_normalised(np.array([[1, 3], [0, 0]]))
    assert fractions.tolist() == [[0.25, 0.75], [0.0, 0.0]]


def test_plot_is_a_png_in_a_created_folder(tmp_path):
    matrix = compute_confusion_matrix([0, 1, 2], [0, 2, 2], num_labels=3)
    path = plot_confusion_matrix(matrix, ["cat", "Blue Jay", "tree"], tmp_path / "new" / "confusion.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 100 and image.height > 100


def test_many_classes_still_plot(tmp_path):
    names = [f"class {i}" for i in range(40)]  # past MAX_ANNOTATED_CLASSES: no numbers in the cells
    matrix = compute_confusion_matrix(list(range(40)), list(range(40)), num_labels=40)
    assert plot_confusion_matrix(matrix, names, tmp_path / "c.png").stat().st_size > 0


def test_names_the_font_cannot_draw_are_numbered_and_long_ones_cut(tmp_path, recwarn):
    """Chinese class names were drawn as empty boxes (with a warning per glyph in the run's log), and a
    200-character name pushed the matrix off the figure."""
    from hf_resnet101.evaluation.confusion import MAX_TICK_LABEL_CHARS, tick_labels

    names = ["cat", "中文", "鳥 birds", "x" * 200, "élan vital"]
    labels, numbered = tick_labels(names)
    assert labels[:3] == ["cat", "#1", "#2"] and labels[4] == "élan vital" and numbered
    assert len(labels[3]) == MAX_TICK_LABEL_CHARS and labels[3].endswith("…")
    assert tick_labels(["cat", "dog"]) == (["cat", "dog"], False)
    plot_confusion_matrix(np.eye(5, dtype=int), names, tmp_path / "cm.png")
    assert not [w for w in recwarn if "Glyph" in str(w.message)]


def test_the_figure_stops_growing_with_hundreds_of_classes(tmp_path):
    """Sized by the class count alone, 400 classes made a 22,020 x 21,900 px PNG (19.6 GB and minutes to draw), which
    Pillow itself refuses to open."""
    classes = 400
    names = [f"species {i}" for i in range(classes)]
    matrix = compute_confusion_matrix(list(range(classes)), list(range(classes)), num_labels=classes)
    path = plot_confusion_matrix(matrix, names, tmp_path / "many.png")
    with Image.open(path) as image:
        width, height = image.size
    assert width <= 25 * 120 and height <= 24 * 120  # MAX_FIGURE_INCHES (+1 for the colour bar) at 120 dpi
