"""`hf-resnet101 predict`: which images to classify, and the predictions as rows, CSV or JSON lines."""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from transformers import Pipeline

from ..data.images import is_image_file, is_left_out_file, left_out_files_note
from ..errors import UsageError, did_you_mean_path
from ..inference import Classified, classify, load_classifier, precision_hint_for
from .tables import format_table, print_note, progress_bar

LIST_FILE_SUFFIXES = (".txt", ".lst")
OUTPUT_FORMATS = (".csv", ".jsonl")
# A scheme and "//": http://, https://, ftp://, s3://, ... (a Windows drive, C:\ or C:/, has no "//")
URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


def is_url(text: str) -> bool:
    return bool(URL_PATTERN.match(text.strip()))


def url_error(url: str, where: str) -> UsageError:
    """URLs are not fetched: predict reads local files (and runs offline); the URL is quoted as given."""
    return UsageError(
        f"{where} {url} is a URL: predict reads local image files only. Download the image first (e.g. "
        f"`curl -O {url}`) and give the downloaded file."
    )


def list_file_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 list file; a byte-order mark (Windows Notepad writes one) is dropped.

    Raises:
        UsageError: when the file is not UTF-8 text.
    """
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        raise UsageError(
            f"List file {path} is not UTF-8 text (byte {error.object[error.start]:#04x} on line {line}): save it as "
            "UTF-8 (one path per line) and run again."
        ) from error


def read_list_file(path: Path) -> list[Path]:
    """Image paths listed one per line (blank lines and `#` comments skipped; relative ones are relative to the
    file); a listed folder is expanded as a folder on the command line is.

    Raises:
        UsageError: for a line that is a URL, a listed folder without images, or a file that is not UTF-8.
    """
    paths = []
    for number, line in enumerate(list_file_lines(path), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if is_url(line):
            raise url_error(line, f"Line {number} of list file {path}:")
        listed = Path(line).expanduser()
        listed = listed if listed.is_absolute() else path.parent / listed
        paths.extend(images_of_folder(listed) if listed.is_dir() else [listed])
    return paths


def in_hidden_folder(path: Path, folder: Path) -> bool:
    """`path` lies in a hidden folder below `folder` (.git, .cache, ...): what is there is not the user's images."""
    return any(part.startswith(".") for part in path.relative_to(folder).parts[:-1])


def folder_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """The image files under `folder` (recursively, sorted), and the files left out that may have been meant as
    images (`is_left_out_file`: not notes, hidden files or what hidden folders hold)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    left_out = [p for p in files if is_left_out_file(p) and not in_hidden_folder(p, folder)]
    return [p for p in files if is_image_file(p)], left_out


def images_of_folder(folder: Path) -> list[Path]:
    """The image files under `folder`; a note on stderr counts the files of other types left out.

    Raises:
        UsageError: when the folder holds no image files.
    """
    images, left_out = folder_files(folder)
    if left_out:
        print_note(f"note: {left_out_files_note(left_out, str(folder))}")
    if not images:
        raise UsageError(f"Folder {folder} holds no image files (looked recursively for .jpg, .png, ...).")
    return images


def collect_image_paths(inputs: Sequence[str | Path]) -> list[Path]:
    """Expands image files, folders (recursively) and list files (.txt, .lst) into image paths, in order.

    Paths named in a list file are kept even when missing: they get an error row, like unreadable images.

    Raises:
        UsageError: when an input is a URL or does not exist, a folder holds no images, or nothing is left to
            classify.
    """
    paths: list[Path] = []
    for given in inputs:
        if is_url(str(given)):
            raise url_error(str(given), "Input")
        item = Path(given)
        if not item.exists():
            raise UsageError(
                f"Input {item} does not exist: give image files, folders of images or a .txt list."
                + did_you_mean_path(item)
            )
        if item.is_dir():
            paths.extend(images_of_folder(item))
        elif item.suffix.lower() in LIST_FILE_SUFFIXES:
            paths.extend(read_list_file(item))
        else:
            paths.append(item)
    if not paths:
        raise UsageError(f"No images to classify in {', '.join(map(str, inputs))}.")
    return paths


def file_in_the_way(folder: Path) -> Path | None:
    """What stops `folder` from being made or used as a folder: `folder` itself, or the nearest existing path above
    it, when that is not a folder (a file); None when nothing is in the way."""
    for path in (folder, *folder.parents):
        if path.exists():
            return None if path.is_dir() else path
    return None


def unwritable_folder(folder: Path) -> Path | None:
    """The nearest existing folder at or above `folder` when nothing can be written in it (a read-only file system,
    no permission); None when `folder` can be made or written to."""
    existing = next(path for path in (folder.absolute(), *folder.absolute().parents) if path.exists())
    return None if os.access(existing, os.W_OK) else existing


def check_output_path(output: str | Path | None) -> None:
    """Refuses an --output that could not be written, before any image is classified.

    Raises:
        UsageError: for a name without .csv or .jsonl, an existing folder, or a file where a folder above it
            would have to be.
    """
    if output is None:
        return
    output = Path(output)
    if output.suffix.lower() not in OUTPUT_FORMATS:
        raise UsageError(f"--output {output}: the file name must end in {' or '.join(OUTPUT_FORMATS)}.")
    if output.is_dir():
        raise UsageError(
            f"--output {output} is a folder: give a file name in it instead, e.g. --output {output / 'predictions'}"
            f"{output.suffix}."
        )
    blocking = file_in_the_way(output.parent)
    if blocking is not None:
        raise UsageError(
            f"--output {output}: {blocking} is a file, so no folder can be made there. Give a path whose folders "
            "are folders (or do not exist yet)."
        )
    if (unwritable := unwritable_folder(output.parent)) is not None:
        raise UsageError(
            f"--output {output}: {unwritable} cannot be written to. Give a file in a folder you can write."
        )


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
    # Written beside it and moved into place whole: a full disk or a file-size limit used to leave a shorter file
    # that reads as a complete CSV.
    partial = output.with_name(f".{output.name}.partial")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        if output.suffix.lower() == ".jsonl":
            with partial.open("w", encoding="utf-8") as f:
                for result in results:
                    f.write(json.dumps(prediction_record(result), ensure_ascii=False) + "\n")
        else:
            with partial.open("w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(prediction_columns(top_k))
                writer.writerows(prediction_row(result, top_k) for result in results)
        os.replace(partial, output)
    except OSError as error:
        raise UsageError(
            f"Could not write --output {output}: {error.strerror or error}. Nothing was written there: give a file "
            "on a disk with room, or without a file-size limit (ulimit -f)."
        ) from error
    finally:
        partial.unlink(missing_ok=True)  # gone once moved into place; left by a failure or a stop otherwise
    return output


def exit_if_nothing_classified(results: Sequence[Classified]) -> None:
    """Ends the command with exit status 1 when not one image could be read, so a script or CI job sees the run fail
    (the rows, each with its error, are printed or written first); one classified image is a success (status 0).

    Raises:
        SystemExit: status 1, after a one-line summary on stderr.
    """
    if results and all(result.error is not None for result in results):
        print(
            f"error: none of the {len(results)} images could be read (each row's error says why); nothing was "
            "classified.",
            file=sys.stderr,
        )
        raise SystemExit(1)


def run_command(args: argparse.Namespace) -> None:
    """`hf-resnet101 predict MODEL INPUT...`: a table of the top labels, or a CSV / JSON-lines file; exit status 1
    when no image could be read."""
    check_output_path(args.output)
    paths = collect_image_paths(args.inputs)
    classifier = load_classifier(args.model, precision=args.precision)
    print_note(precision_hint_for(classifier, args.precision))
    with progress_bar(len(paths), "predict") as bar:
        results = predict_images(
            classifier, paths, top_k=args.top_k, batch_size=args.batch_size, on_progress=bar.update
        )
    failed = sum(result.error is not None for result in results)
    top_k = columns_for(classifier, args.top_k)
    if args.output:
        written = write_predictions(results, args.output, top_k)
        print(f"{len(results)} images ({failed} unreadable) -> {written}")
    else:
        rows = [
            [r.source, ", ".join(f"{s['label']} {s['score']:.3f}" for s in r.scores or []), r.error or ""]
            for r in results
        ]
        print(format_table(["path", f"top {top_k}", "error"], rows))
        if failed and failed < len(results):
            print(f"{failed} of {len(results)} images could not be read (see the error column).", file=sys.stderr)
    exit_if_nothing_classified(results)
