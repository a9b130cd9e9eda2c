"""The card's training curves: series read from the Trainer's log history, and the PNG."""

from __future__ import annotations

from PIL import Image

from hf_resnet101.evaluation.plots import save_training_curves, training_curves

LOG_HISTORY = [
    {"loss": 1.2, "step": 1, "epoch": 0.5},
    {"eval_loss": 1.0, "eval_accuracy": 0.5, "step": 2},
    {"loss": 0.8, "step": 3},
    {"eval_loss": 0.7, "eval_accuracy": 0.75, "step": 4},
    {"train_runtime": 3.0, "train_loss": 1.0, "step": 4},  # the summary entry: not a point of the curves
    {"eval_loss": 0.6},  # no step: left out
]


def test_series_by_step():
    assert training_curves(LOG_HISTORY) == {
        "train_loss": [(1, 1.2), (3, 0.8)],
        "eval_loss": [(2, 1.0), (4, 0.7)],
        "eval_accuracy": [(2, 0.5), (4, 0.75)],
    }


def test_curves_are_a_png(tmp_path):
    path = save_training_curves(LOG_HISTORY, tmp_path / "curves.png", train_accuracy=0.9)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > image.height


def test_nothing_logged_writes_nothing(tmp_path):
    assert save_training_curves([{"train_runtime": 1.0}], tmp_path / "curves.png") is None
    assert not (tmp_path / "curves.png").exists()
