"""`hf-resnet101 evaluate`: a trained model measured on held-out labelled images, with the training metrics.

The metrics come from the package's own `evaluate` modules through the same `compute_metrics` that the Trainer
uses, so a run on the validation folder reproduces the training run's final evaluation.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasets import ClassLabel, load_dataset
from transformers import EvalPrediction, Pipeline
from transformers.utils import logging

from ..data.folders import is_same_or_inside, scan_class_folders
from ..data.images import IMAGE_EXTENSIONS, left_out_files_note
from ..errors import UsageError
from ..evaluation.confusion import plot_confusion_matrix
from ..evaluation.metrics import build_compute_metrics, per_class_report
from ..inference import classify, describe_inference, load_classifier, precision_hint_for
from ..modeling import is_onnx_export
from ..outputs import (
    CONFUSION_MATRIX,
    EVALUATION_METRICS,
    EVALUATION_MISTAKES,
    EVALUATION_PER_CLASS,
    MODEL_CONFIG,
    MODEL_WEIGHTS,
    ONNX_MODEL,
    RUN_IDENTITY,
    RUN_MANIFEST,
    split_rows,
)
from .predict import file_in_the_way, unwritable_folder
from .tables import format_table, print_note, progress_bar

logger = logging.get_logger(__name__)


@dataclass
class LabelledImages:
    """Images to evaluate on, with their true class ids in the model's numbering."""

    sources: Sequence  # paths, or a lazy sequence of PIL images
    names: list[str]
    labels: list[int]
    description: str
    excluded_classes: dict[str, int] = field(default_factory=dict)  # class name -> images left out
    left_out_files: list[Path] = field(default_factory=list)  # files of other types in the class folders
    nested_images: int = 0  # images in sub-folders of the class folders, left out


@dataclass
class Evaluation:
    """What an evaluation measured."""

    metrics: dict[str, float]
    per_class: list[dict]
    mistakes: list[dict]
    confusion: np.ndarray
    label_names: list[str]
    num_images: int
    unreadable: list[dict] = field(default_factory=list)
    excluded_classes: dict[str, int] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


def model_label_names(classifier: Pipeline) -> list[str]:
    id2label = classifier.model.config.id2label
    return [id2label[i] for i in range(len(id2label))]


def composed(name: str) -> str:
    """`name` in composed Unicode (NFC): "é" as one character, as most systems write it; macOS writes file names
    decomposed (NFD: "e" and a combining accent), which look the same but compare unequal."""
    return unicodedata.normalize("NFC", name)


def match_labels(found: Sequence[str], label_names: Sequence[str]) -> dict[str, str]:
    """The data's class names that are labels of the model, each with that label, compared in composed Unicode."""
    labels = {composed(label): label for label in label_names}
    return {name: labels[composed(name)] for name in found if composed(name) in labels}


def with_case_hint(name: str, label_names: Sequence[str]) -> str:
    """`name`, and the model's label it differs from only in letter case, if any (Cat and cat)."""
    same = [label for label in label_names if composed(label).casefold() == composed(name).casefold()]
    return f"{name} (differs only in case from the model's label {same[0]})" if same else name


def split_known_classes(
    found: Sequence[str], label_names: Sequence[str], where: str, ignore_unknown: bool
) -> tuple[dict[str, str], list[str]]:
    """Separates the data's class names into those the model knows and the rest.

    Returns:
        (known, unknown): each known class name with the model's label it is (the same name in composed Unicode,
        see `composed`), and the other names.

    Raises:
        UsageError: for unknown classes unless `ignore_unknown`, or when no class is known at all.
    """
    known = match_labels(found, label_names)
    unknown = [name for name in found if name not in known]
    described = ", ".join(with_case_hint(name, label_names) for name in unknown)
    if not known:
        raise UsageError(
            f"None of the classes of {where} ({described}) is a label of the model "
            f"({', '.join(label_names)}). Is this the data the model was trained for?"
        )
    if unknown and not ignore_unknown:
        raise UsageError(
            f"{where} has classes that the model does not know: {described} (the model's labels: "
            f"{', '.join(label_names)}). Rename or remove those folders, or pass --ignore_unknown_classes to "
            "evaluate on the known classes only."
        )
    if unknown:
        logger.warning(f"Left out of the evaluation, unknown to the model: {described}.")
    return known, unknown


def labelled_folder(data_dir: str | Path, label_names: Sequence[str], ignore_unknown: bool = False) -> LabelledImages:
    """The images (of every type `IMAGE_EXTENSIONS` names) of a folder with one sub-folder per class, labelled by
    folder name."""
    folders = scan_class_folders(data_dir, "DATA", extensions=IMAGE_EXTENSIONS)
    known, unknown = split_known_classes(folders.class_names, label_names, f"DATA {data_dir}", ignore_unknown)
    label2id = {name: i for i, name in enumerate(label_names)}
    paths = [(str(path), label2id[label]) for name, label in known.items() for path in folders.files_by_class[name]]
    return LabelledImages(
        sources=[path for path, _ in paths],
        names=[path for path, _ in paths],
        labels=[label for _, label in paths],
        description=str(data_dir),
        excluded_classes={name: len(folders.files_by_class[name]) for name in unknown},
        left_out_files=folders.left_out_files,
        nested_images=folders.nested_images,
    )


class ColumnImages(Sequence):
    """A dataset's image column, decoded one item at a time (a whole split would not fit in memory)."""

    def __init__(self, dataset, column: str):
        self.dataset, self.column = dataset, column

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index][self.column]


def labelled_hub_split(
    dataset_name: str,
    split: str,
    label_names: Sequence[str],
    *,
    config_name: str | None = None,
    image_column: str = "image",
    label_column: str = "label",
    ignore_unknown: bool = False,
) -> LabelledImages:
    """One split of a Hub (or local) dataset, labelled by the names in its label column."""
    try:
        dataset = load_dataset(dataset_name, config_name, split=split)
    except (FileNotFoundError, ConnectionError, ValueError) as error:
        raise UsageError(f"Could not load split {split!r} of dataset {dataset_name!r}: {error}") from error
    for column in (image_column, label_column):
        if column not in dataset.column_names:
            raise UsageError(
                f"Dataset {dataset_name!r} has no column {column!r} (columns: {', '.join(dataset.column_names)}). "
                "Name the right ones with --image_column_name and --label_column_name."
            )
    feature = dataset.features[label_column]
    values = dataset[label_column]
    names = [feature.int2str(v) for v in values] if isinstance(feature, ClassLabel) else [str(v) for v in values]
    where = f"dataset {dataset_name} ({split})"
    known, unknown = split_known_classes(sorted(set(names)), label_names, where, ignore_unknown)
    keep = [i for i, name in enumerate(names) if name in known]
    label2id = {name: i for i, name in enumerate(label_names)}
    kept = dataset.select(keep).select_columns([image_column])
    return LabelledImages(
        sources=ColumnImages(kept, image_column),
        names=[f"{dataset_name}/{split}/{i}" for i in keep],
        labels=[label2id[known[names[i]]] for i in keep],
        description=where,
        excluded_classes={name: names.count(name) for name in unknown},
    )


def collect_logits(
    classifier: Pipeline,
    data: LabelledImages,
    batch_size: int = 8,
    on_progress: Callable[[int], object] | None = None,
) -> tuple[np.ndarray, list[int], list[dict]]:
    """Runs the pipeline for raw logits; returns them, the positions they belong to, and the unreadable images."""
    label_names = model_label_names(classifier)
    label2id = {name: i for i, name in enumerate(label_names)}
    rows, positions, unreadable = [], [], []
    results = classify(
        classifier,
        data.sources,
        top_k=len(label_names),
        batch_size=batch_size,
        function_to_apply="none",
        names=data.names,
        on_progress=on_progress,
    )
    for position, result in enumerate(results):
        if result.error is not None:
            unreadable.append({"path": result.source, "error": result.error})
            continue
        logits = np.empty(len(label_names), dtype=np.float32)
        for entry in result.scores:
            logits[label2id[entry["label"]]] = entry["score"]
        rows.append(logits)
        positions.append(position)
    return np.stack(rows) if rows else np.empty((0, len(label_names)), np.float32), positions, unreadable


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def per_class_csv_rows(scores: dict, label_names: Sequence[str]) -> list[dict]:
    """The rows of `per_class.csv`: precision, recall, F1 and support for every class of the model, from
    `metrics.per_class_report`. A class the images lack and the model never predicted has no scores (empty cells,
    as the macro averages leave it out), not scikit-learn's zeros."""
    columns = ("precision", "recall", "f1")
    rows = []
    for i, name in enumerate(label_names):
        measured = scores["support"][i] > 0 or scores["predicted"][i] > 0
        rows.append(
            {"class": name}
            | {column: scores[column][i] if measured else None for column in columns}
            | {"support": int(scores["support"][i])}
        )
    return rows


def most_confident_mistakes(
    probabilities: np.ndarray, references: np.ndarray, names: Sequence[str], label_names: Sequence[str]
) -> list[dict]:
    """The wrong predictions, most confident first: path, true class, predicted class, its probability."""
    predictions = probabilities.argmax(-1)
    wrong = np.flatnonzero(predictions != references)
    order = wrong[np.argsort(-probabilities[wrong, predictions[wrong]], kind="stable")]
    return [
        {
            "path": names[i],
            "true": label_names[references[i]],
            "predicted": label_names[predictions[i]],
            "score": float(probabilities[i, predictions[i]]),
        }
        for i in order
    ]


def evaluate_model(
    classifier: Pipeline,
    data: LabelledImages,
    batch_size: int = 8,
    on_progress: Callable[[int], object] | None = None,
) -> Evaluation:
    """Measures the classifier on labelled images: training's metrics, per-class scores, confusion, mistakes.

    Raises:
        UsageError: when none of the images can be read.
    """
    label_names = model_label_names(classifier)
    logits, positions, unreadable = collect_logits(classifier, data, batch_size, on_progress)
    if not positions:
        raise UsageError(f"None of the {len(data.names)} images of {data.description} could be read.")
    if unreadable:
        logger.warning(
            f"{len(unreadable)} unreadable images left out of the evaluation (listed in {EVALUATION_METRICS})."
        )
    references = np.asarray([data.labels[i] for i in positions])
    names = [data.names[i] for i in positions]
    compute_metrics = build_compute_metrics(len(label_names))
    metrics = compute_metrics(EvalPrediction(predictions=logits, label_ids=references))
    report = per_class_report(logits, references, len(label_names))
    return Evaluation(
        metrics=metrics,
        per_class=per_class_csv_rows(report, label_names),
        mistakes=most_confident_mistakes(softmax(logits), references, names, label_names),
        confusion=np.asarray(report["confusion_matrix"]),
        label_names=label_names,
        num_images=len(positions),
        unreadable=unreadable,
        excluded_classes=data.excluded_classes,
    )


def write_csv(path: Path, rows: list[dict], columns: Sequence[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_evaluation(
    evaluation: Evaluation, output_dir: str | Path, model: str, data: str, run_on: str | None = None
) -> dict[str, Path]:
    """Writes metrics.json, per_class.csv, mistakes.csv and confusion_matrix.png; returns their paths. `run_on`:
    the device and precision the model ran in (`describe_inference`)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "model": model,
        "data": data,
        "run_on": run_on,
        "num_images": evaluation.num_images,
        **evaluation.metrics,
        "excluded_classes": evaluation.excluded_classes,
        "unreadable": evaluation.unreadable,
    }
    metrics_path = output_dir / EVALUATION_METRICS
    metrics_path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    files = {
        "metrics": metrics_path,
        "per_class": write_csv(
            output_dir / EVALUATION_PER_CLASS, evaluation.per_class, ["class", "precision", "recall", "f1", "support"]
        ),
        "mistakes": write_csv(
            output_dir / EVALUATION_MISTAKES, evaluation.mistakes, ["path", "true", "predicted", "score"]
        ),
        "confusion_matrix": plot_confusion_matrix(
            evaluation.confusion,
            evaluation.label_names,
            output_dir / CONFUSION_MATRIX,
            title=f"{Path(model).name} on {data} ({evaluation.num_images} images)",
        ),
    }
    evaluation.files = files
    return files


# What evaluate writes in --output_dir, and the files that mark a folder as a model's (a training run's: its
# manifest, identity, config and weights; an export's model.onnx).
EVALUATION_FILES = (EVALUATION_METRICS, EVALUATION_PER_CLASS, EVALUATION_MISTAKES, CONFUSION_MATRIX)
MODEL_FOLDER_FILES = (RUN_MANIFEST, RUN_IDENTITY, MODEL_CONFIG, MODEL_WEIGHTS, ONNX_MODEL)
EVALUATION_SUMMARY_KEYS = frozenset({"model", "data", "num_images"})


def written_by_evaluate(metrics_file: Path) -> bool:
    """`metrics_file` is a metrics.json as evaluate writes it (with model, data and num_images), not another tool's
    file of that name."""
    try:
        summary = json.loads(metrics_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and summary.keys() >= EVALUATION_SUMMARY_KEYS


def files_evaluate_would_replace(folder: Path) -> list[str]:
    """The files of `folder` that an evaluation would write over though no evaluation wrote them: evaluate's file
    names present, unless the folder's metrics.json is an earlier evaluation's (then they are its files)."""
    present = [name for name in EVALUATION_FILES if (folder / name).exists()]
    return [] if written_by_evaluate(folder / EVALUATION_METRICS) else present


def folder_of_its_own(folder: str | Path) -> Path:
    """A new folder beside `folder` for its evaluation: `runs/birds` -> `runs/birds-evaluation`."""
    resolved = Path(folder).expanduser().resolve()
    return resolved.parent / f"{resolved.name}-evaluation"


def check_output_dir(output_dir: str | Path, data_folders: Sequence[tuple[str, str]] = ()) -> None:
    """Refuses an --output_dir evaluate must not write to, before anything is loaded: a file, a folder inside the
    data (its confusion_matrix.png would be read as an image by the next evaluation), a model's folder (a training
    run's confusion_matrix.png is its model card's figure), or one holding files of evaluate's names that no
    evaluation wrote. A new or empty folder, or an earlier evaluation's, is fine.

    Args:
        data_folders: (option, folder) pairs of the local data evaluated, e.g. ("DATA", "data/test").

    Raises:
        UsageError: saying what the folder is and which folder to give instead.
    """
    output_dir = Path(output_dir)
    blocking = file_in_the_way(output_dir)
    if blocking is not None:
        raise UsageError(
            f"--output_dir {output_dir}: {blocking} is a file, not a folder. Give a folder (new, empty or an earlier "
            f"evaluation's) for {', '.join(EVALUATION_FILES)}."
        )
    for option, folder in data_folders:
        if is_same_or_inside(output_dir, folder):
            raise UsageError(
                f"--output_dir {output_dir} is inside {option} {folder}: the next evaluation of {folder} would read "
                f"{CONFUSION_MATRIX} as an image. Give a folder outside the data, e.g. --output_dir "
                f"{folder_of_its_own(folder)}."
            )
    if (unwritable := unwritable_folder(output_dir)) is not None:
        raise UsageError(f"--output_dir {output_dir}: {unwritable} cannot be written to. Give a folder you can write.")
    if not output_dir.is_dir():
        return
    model_files = [name for name in MODEL_FOLDER_FILES if (output_dir / name).exists()]
    if model_files:
        why = (
            "its files are the model, and evaluation results are kept apart from them"
            if is_onnx_export(output_dir)
            else f"evaluate would replace a training run's {CONFUSION_MATRIX}, the figure its model card shows "
            "for the validation split"
        )
        raise UsageError(
            f"--output_dir {output_dir} is a model's folder (it holds {', '.join(model_files)}): {why}. Give a folder "
            f"of its own, e.g. --output_dir {folder_of_its_own(output_dir)}."
        )
    replaced = files_evaluate_would_replace(output_dir)
    if replaced:
        raise UsageError(
            f"--output_dir {output_dir} holds {', '.join(replaced)}, which no evaluation wrote and evaluate would "
            "replace. Give a folder that is new, empty or an earlier evaluation's."
        )


def local_data_folders(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The local folders evaluated: DATA, or a --dataset_name that is a folder on this machine."""
    if args.data is not None:
        return [("DATA", args.data)]
    return [("--dataset_name", args.dataset_name)] if Path(args.dataset_name).is_dir() else []


def load_evaluation_data(args: argparse.Namespace, label_names: list[str]):
    if args.data is not None:
        return labelled_folder(args.data, label_names, args.ignore_unknown_classes)
    return labelled_hub_split(
        args.dataset_name,
        args.split,
        label_names,
        config_name=args.dataset_config_name,
        image_column=args.image_column_name,
        label_column=args.label_column_name,
        ignore_unknown=args.ignore_unknown_classes,
    )


def trained_on_note(model: str, sources: Sequence[object]) -> str | None:
    """A note when images evaluated are the training images of the run that made `model` (by its splits.csv):
    its figures on them say how well it learned them, not how it does on new images."""
    rows = split_rows(model, "train") if Path(model).is_dir() else None
    if not rows:
        return None
    from ..data.folders import split_image_path  # `datasets` is only needed here

    trained = {os.path.realpath(split_image_path(model, row, "train")) for row in rows if row}
    count = sum(1 for source in sources if isinstance(source, str) and os.path.realpath(source) in trained)
    if not count:
        return None
    return (
        f"note: {count} of the {len(sources)} images are the run's training images (its splits.csv lists them): "
        "the figures overstate how the model does on new images. Evaluate on images it did not train on (its "
        "validation split, or a held-out folder)."
    )


def run_command(args: argparse.Namespace) -> None:
    """`hf-resnet101 evaluate MODEL DATA`: metrics, per-class results and the most confident mistakes, printed and
    written to --output_dir."""
    if (args.data is None) == (args.dataset_name is None):
        raise UsageError("Give either DATA (a folder of class sub-folders) or --dataset_name, not both or neither.")
    check_output_dir(args.output_dir, local_data_folders(args))
    classifier = load_classifier(args.model, precision=args.precision)
    print_note(precision_hint_for(classifier, args.precision))
    data = load_evaluation_data(args, model_label_names(classifier))
    print_note(trained_on_note(args.model, data.sources))
    with progress_bar(len(data.names), "evaluate") as bar:
        evaluation = evaluate_model(classifier, data, args.batch_size, on_progress=bar.update)
    run_on = describe_inference(classifier)
    try:
        files = write_evaluation(evaluation, args.output_dir, args.model, data.description, run_on)
    except OSError as error:  # a full disk, a file-size limit: the minutes of evaluation are not lost for it
        metrics = ", ".join(f"{name} {value:.4f}" for name, value in evaluation.metrics.items())
        raise UsageError(
            f"Could not write the evaluation to {args.output_dir}: {error.strerror or error}. Its metrics on "
            f"{evaluation.num_images} images: {metrics}. Give an --output_dir on a disk with room to keep its files."
        ) from error
    print(f"{args.model} on {data.description}: {evaluation.num_images} images ({run_on})")
    print(format_table(["metric", "value"], list(evaluation.metrics.items())))
    print()
    columns = ["class", "precision", "recall", "f1", "support"]
    # n/a: a class the images lack and the model never predicted (left out of the macro averages).
    print(
        format_table(columns, [["n/a" if row[c] is None else row[c] for c in columns] for row in evaluation.per_class])
    )
    if evaluation.mistakes and args.show_mistakes:
        shown = evaluation.mistakes[: args.show_mistakes]
        print(f"\nMost confident mistakes ({len(shown)} of {len(evaluation.mistakes)}):")
        columns = ["path", "true", "predicted", "score"]
        print(format_table(columns, [[row[c] for c in columns] for row in shown]))
    for name, count in evaluation.excluded_classes.items():
        print(f"left out: class {name!r} ({count} images), unknown to the model")
    if evaluation.unreadable:
        print(f"left out: {len(evaluation.unreadable)} unreadable images (listed in {files['metrics']})")
    if data.left_out_files:
        print(f"left out: {left_out_files_note(data.left_out_files, data.description)}")
    if data.nested_images:
        print(
            f"left out: {data.nested_images} images in sub-folders of the class folders (a class's images go "
            "directly in its folder)"
        )
    print("\nwritten: " + ", ".join(str(path) for path in files.values()))
