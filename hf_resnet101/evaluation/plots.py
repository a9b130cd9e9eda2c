"""The card's training/validation curves as a PNG file (matplotlib, Agg); the confusion matrix is in `confusion`."""

from __future__ import annotations

from pathlib import Path


def training_curves(log_history: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """(step, value) series from `trainer.state.log_history`: training loss, validation loss and accuracy."""
    keys = {"train_loss": "loss", "eval_loss": "eval_loss", "eval_accuracy": "eval_accuracy"}
    return {
        name: [(entry["step"], entry[key]) for entry in log_history if key in entry and "step" in entry]
        for name, key in keys.items()
    }


def _save(figure, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    return path


def save_training_curves(
    log_history: list[dict], path: str | Path, train_accuracy: float | None = None
) -> Path | None:
    """Loss (training and validation) and validation accuracy per step; None when nothing was logged.

    `train_accuracy`, the final accuracy on training images, is drawn as a marker next to the last validation
    accuracy so the gap between the two shows.
    """
    curves = training_curves(log_history)
    if not any(curves.values()):
        return None
    from matplotlib.figure import Figure  # imported here: matplotlib adds ~0.5 s to start-up

    figure = Figure(figsize=(11, 4))
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for name, label in (("train_loss", "training loss"), ("eval_loss", "validation loss")):
        if curves[name]:
            loss_axes.plot(*zip(*curves[name], strict=True), marker=".", label=label)
    loss_axes.set_xlabel("step")
    loss_axes.set_ylabel("loss")
    loss_axes.set_title("Loss")
    loss_axes.legend()
    if curves["eval_accuracy"]:
        steps, values = zip(*curves["eval_accuracy"], strict=True)
        accuracy_axes.plot(steps, values, marker=".", label="validation accuracy")
        if train_accuracy is not None:
            accuracy_axes.scatter([steps[-1]], [train_accuracy], color="C3", zorder=3, label="training accuracy (end)")
        accuracy_axes.legend()
    accuracy_axes.set_ylim(0, 1.02)
    accuracy_axes.set_xlabel("step")
    accuracy_axes.set_ylabel("accuracy")
    accuracy_axes.set_title("Accuracy")
    return _save(figure, Path(path))
