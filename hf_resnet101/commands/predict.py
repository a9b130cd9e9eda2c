"""`hf-resnet101 predict`: which images to classify, and the predictions as rows, CSV or JSON lines."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from transformers import Pipeline

from ..data.images import is_image_file
from ..errors import UsageError
from ..inference import Classified, classify, load_classifier, precision_hint_for
from .tables import format_table, print_note, progress_bar

LIST_FILE_SUFFIXES = (".txt", ".lst")
OUTPUT_FORMATS = (".csv", ".jsonl")


def read_list_file(path: Path) -> list[Path]:
    """Paths listed one per line (blank lines and `#` comments skipped); relative ones are relative to the file."""
    paths = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            listed = Path(line).expanduser()
            paths.append(listed if listed.is_absolute() else path.parent / listed)
    return paths


def images_in_folder(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image_file(p))


def collect_image_paths(inputs: Sequence[str | Path]) -> list[Path]:
    """Expands image files, folders (recursively) and list files (.txt, .lst) into image paths, in order.

    Paths named in a list file are kept even when missing: they get an error row, like unreadable images.

    Raises:
        UsageError: when an input does not exist, a folder holds no images, or nothing is left to classify.
    """
    paths: list[Path] = []
    for item in map(Path, inputs):
        if not item.exists():
            raise UsageError(f"Input {item} does not exist: give image files, folders of images or a .txt list.")
        if item.is_dir():
            found = images_in_folder(item)
            if not found:
                raise UsageError(f"Folder {item} holds no image files (looked recursively for .jpg, .png, ...).")
            paths.extend(found)
        elif item.suffix.lower() in LIST_FILE_SUFFIXES:
            paths.extend(read_list_file(item))
        else:
            paths.append(item)
    if not paths:
        raise UsageError(f"No images to classify in {', '.join(map(str, inputs))}.")
    return paths


def check_output_path(output: str | Path | None) -> None:
    if output is not None and Path(output).suffix.lower() not in OUTPUT_FORMATS:
        raise UsageError(f"--output {output}: the file name must end in {' or '.join(OUTPUT_FORMATS)}.")


def predict_images(
    classifier: Pipeline,
    paths: Sequence[Path],
    *,
    top_k: int = 5,
    batch_size: int = 8,
    on_progress: Callable[[int], object] | None = None,
) -> list[Classified]:
    """The pipeline's top-k labels and scores for each image, in input order (an error for unreadable ones)."""
    if top_k < 1 or batch_size < 1:
        raise UsageError(f"--top_k ({top_k}) and --batch_size ({batch_size}) must be at least 1.")
    return list(
        classify(classifier, [str(p) for p in paths], top_k=top_k, batch_size=batch_size, on_progress=on_progress)
    )


def columns_for(classifier: Pipeline, top_k: int) -> int:
    """Label/score column pairs to write: `top_k`, capped at the model's number of classes as the pipeline caps it."""
    return min(top_k, classifier.model.config.num_labels)


def prediction_columns(top_k: int) -> list[str]:
    ranks = [(f"label_{rank}", f"score_{rank}") for rank in range(1, top_k + 1)]
    return ["path", *[name for pair in ranks for name in pair], "error"]


def prediction_row(result: Classified, top_k: int) -> list[str]:
    """One flat row: path, label/score pairs (blank past the number of classes or for errors), error."""
    cells = [result.source]
    scores = result.scores or []
    for rank in range(top_k):
        cells += [scores[rank]["label"], f"{scores[rank]['score']:.6f}"] if rank < len(scores) else ["", ""]
    return [*cells, result.error or ""]


def prediction_record(result: Classified) -> dict:
    return {"path": result.source, "predictions": result.scores or [], "error": result.error}


def write_predictions(results: Iterable[Classified], output: str | Path, top_k: int) -> Path:
    """Writes CSV (one flat row per image) or JSON lines (one object per image), chosen by the file suffix."""
    output = Path(output)
    check_output_path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".jsonl":
        with output.open("w", encoding="utf-8") as f:
            for result in results:
                f.write(json.dumps(prediction_record(result), ensure_ascii=False) + "\n")
        return output
    with output.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(prediction_columns(top_k))
        writer.writerows(prediction_row(result, top_k) for result in results)
    return output


def run_command(args: argparse.Namespace) -> None:
    """`hf-resnet101 predict MODEL INPUT...`: a table of the top labels, or a CSV / JSON-lines file."""
    check_output_path(args.output)
    paths = collect_image_paths(args.inputs)
    classifier = load_classifier(args.model, precision=args.precision)
    print_note(precision_hint_for(classifier, args.precision))
    with progress_bar(len(paths), "predict") as bar:
        results = predict_images(
            classifier, paths, top_k=args.top_k, batch_size=args.batch_size, on_progress=bar.update
        )
    failed = sum(result.error is not None for result in results)
    if args.output:
        written = write_predictions(results, args.output, columns_for(classifier, args.top_k))
        print(f"{len(results)} images ({failed} unreadable) -> {written}")
        return
    rows = [
        [r.source, ", ".join(f"{s['label']} {s['score']:.3f}" for s in r.scores or []), r.error or ""] for r in results
    ]
    print(format_table(["path", f"top {args.top_k}", "error"], rows))
    if failed:
        print(f"{failed} of {len(results)} images could not be read (see the error column).", file=sys.stderr)
