"""Loading image folders and Hub datasets into a `DatasetDict` with train and validation splits."""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, load_dataset
from datasets import Image as ImageFeature
from transformers.utils import logging

from ..errors import UsageError, did_you_mean_path
from ..outputs import DATA_ROOTS, SPLITS
from .images import TRAINING_IMAGE_EXTENSIONS, is_image_file, is_left_out_file
from .report import (
    DataReport,
    Duplicates,
    LabelledFile,
    build_report,
    find_duplicates,
    images_per_class_of,
    path_inside,
)
from .scan import scan_files

logger = logging.get_logger(__name__)

TRAIN_SPLIT_NAMES = ("train", "training")
VALIDATION_SPLIT_NAMES = ("validation", "valid", "val")
TEST_SPLIT_NAMES = ("test", "testing")
SPLIT_NAMES = (*TRAIN_SPLIT_NAMES, *VALIDATION_SPLIT_NAMES)


@dataclass
class ClassFolders:
    """The images of an image folder, grouped by class folder name."""

    root: Path
    files_by_class: dict[str, list[Path]]
    empty_classes: list[str] = field(default_factory=list)
    ignored_folders: list[str] = field(default_factory=list)
    # Files in the class folders left out by their type that may have been meant as images (`is_left_out_file`).
    left_out_files: list[Path] = field(default_factory=list)
    # Images in sub-folders of the class folders: left out (imagefolder would label them by the sub-folder).
    nested_images: int = 0
    # Images directly in the root, outside any class folder: left out (they have no label).
    loose_images: int = 0

    @property
    def class_names(self) -> list[str]:
        return sorted(self.files_by_class)

    @property
    def num_images(self) -> int:
        return sum(len(files) for files in self.files_by_class.values())


def unsafe_label_characters(name: str) -> list[str]:
    """The control and format characters of a class name (newline, tab, ESC, zero-width, ...), escaped.

    A label is written into the model card's tables and YAML, the log and config.json; such characters break the
    first two, can rewrite a terminal (ANSI escape codes) and hide what the label really is.
    """
    return sorted({repr(c)[1:-1] for c in name if unicodedata.category(c).startswith("C")})


def check_class_folder_names(root: Path, names: list[str]) -> None:
    """Stops on class folder names that cannot be shown safely as labels.

    Raises:
        UsageError: naming each such folder (escaped) and the characters to remove.
    """
    bad = {name: unsafe_label_characters(name) for name in names}
    bad = {name: chars for name, chars in bad.items() if chars}
    if bad:
        listing = "\n".join(f"  {str(root / name)!r}: {', '.join(chars)}" for name, chars in sorted(bad.items()))
        raise UsageError(
            f"{len(bad)} class folder name(s) in {str(root)!r} hold control characters (newline, tab, escape codes, "
            f"...), which would break the model card, the log and the labels:\n{listing}\n"
            "Rename these folders (the folder names become the labels), then run again."
        )


def check_dataset_label_names(dataset_name: str, names: list[str]) -> None:
    """Stops on a dataset's label names that cannot be shown safely (see `unsafe_label_characters`).

    Raises:
        UsageError: naming each such label (escaped).
    """
    bad = {name: unsafe_label_characters(str(name)) for name in names}
    listing = "\n".join(f"  {name!r}: {', '.join(chars)}" for name, chars in bad.items() if chars)
    if listing:
        raise UsageError(
            f"Dataset {dataset_name!r} has label names with control characters (newline, tab, escape codes, ...), "
            f"which would break the model card, the log and the labels:\n{listing}\n"
            "Give the labels clean names (e.g. with datasets' `cast_column` and a new `ClassLabel`), then run again."
        )


def find_split_folders(data: Path) -> tuple[Path, Path | None]:
    """DATA itself holds the class folders, or DATA/train (and DATA/validation, valid or val) do; the split folders'
    names in any case (`Train/`, `Val/`), and `training/` for `train/`. A `train/` holding images and no folders
    is a class (trains among cars and buses), not a split."""
    folders = {p.name.lower(): p for p in sorted(data.iterdir()) if p.is_dir()} if data.is_dir() else {}
    train = next((folders[name] for name in TRAIN_SPLIT_NAMES if name in folders), None)
    if train is None or not any(p.is_dir() for p in train.iterdir()):
        return data, None
    return train, next((folders[name] for name in VALIDATION_SPLIT_NAMES if name in folders), None)


def split_folders_hint(root: Path, what: str = "--train_dir") -> str:
    """What to give instead of a folder that holds split folders (train/, validation/, test/) rather than classes;
    empty for one that does not. Training takes the training and validation folders; `evaluate` (DATA) a held-out
    one."""
    train, validation = find_split_folders(root)
    if what == "--train_dir":
        if train == root:
            return ""
        return f"give --train_dir {train}" + (f" --validation_dir {validation}" if validation is not None else "")
    folders = {p.name.lower(): p for p in sorted(root.iterdir()) if p.is_dir()}
    held_out = [p for p in (validation, *(folders.get(name) for name in TEST_SPLIT_NAMES)) if p is not None]
    if held_out:
        return f"give {' or '.join(str(p) for p in dict.fromkeys(held_out))} (images the model did not train on)"
    return f"give {train}, if the model did not train on it" if train != root else ""


def count_nested_images(class_dir: Path, extensions: frozenset[str]) -> int:
    """Images in the sub-folders of a class folder, links followed, each real folder once; a link back to the class
    folder or above it is not followed (it would count the class's own images, or every class's)."""
    class_real = os.path.realpath(class_dir)
    seen = {class_real}
    count = 0
    for folder, subfolders, names in os.walk(class_dir, followlinks=True):
        if folder != str(class_dir):
            count += sum(1 for name in names if is_image_file(Path(folder) / name, extensions))
        kept = []
        for name in subfolders:
            real = os.path.realpath(os.path.join(folder, name))
            if real not in seen and not class_real.startswith(real + os.sep):
                seen.add(real)
                kept.append(name)
        subfolders[:] = kept
    return count


def class_name(folder_name: str) -> str:
    """The label a class folder gives: its name as written, in Unicode's composed form (NFC). macOS and zip files
    write names decomposed (NFD), so the same visible name could otherwise be two labels, or a validation folder's
    class could be unknown to training."""
    return unicodedata.normalize("NFC", folder_name)


def warn_about_look_alike_class_names(folder_names: list[str], root: Path) -> None:
    """Names the class folders that are one class by their composed form, and those that differ only in case or in
    spaces at their ends, which stay separate classes."""
    by_label: dict[str, list[str]] = {}
    by_look: dict[str, set[str]] = {}
    for name in folder_names:
        label = class_name(name)
        by_label.setdefault(label, []).append(name)
        by_look.setdefault(label.strip().casefold(), set()).add(label)
    merged = [label for label, names in by_label.items() if len(names) > 1]
    if merged:
        logger.warning(
            f"Class folders in {root} whose names differ only in their Unicode form (composed or decomposed, as "
            f"macOS and zip files write them) are one class each: {', '.join(repr(label) for label in merged)}."
        )
    alike = [sorted(labels) for labels in by_look.values() if len(labels) > 1]
    if alike:
        listing = "; ".join(", ".join(repr(label) for label in labels) for labels in alike)
        logger.warning(
            f"Class folders in {root} whose names differ only in case or in spaces at their ends are separate "
            f"classes: {listing}. Merge the folders if each group is one class."
        )


def scan_class_folders(
    root: str | Path, what: str = "--train_dir", extensions: frozenset[str] = TRAINING_IMAGE_EXTENSIONS
) -> ClassFolders:
    """Lists the image files (by `extensions`: by default those training's imagefolder loads) of a folder with one
    sub-folder per class.

    Folders whose names start with a dot (`.hidden`, `..dots`) are not classes (hidden by convention, and
    imagefolder skips them too): they are left out and listed as ignored. Other files in the class folders are left
    out; those that may have been meant as images are listed in `left_out_files`.

    Raises:
        UsageError: when the folder is missing, holds no class sub-folders, holds no images, or a class folder's
            name holds control characters.
    """
    root = Path(root)
    if not root.exists():
        raise UsageError(f"{what} {root} does not exist.{did_you_mean_path(root)}")
    if not root.is_dir():
        raise UsageError(f"{what} {root} is not a folder: give a folder with one sub-folder of images per class.")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    ignored = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("."))
    if ignored:
        logger.warning(
            f"Folders in {root} whose names start with '.' are not classes and are ignored: {', '.join(ignored)}."
        )
    check_class_folder_names(root, [p.name for p in class_dirs])
    loose_images = [p for p in root.iterdir() if p.is_file() and is_image_file(p, extensions)]
    if not class_dirs:
        hint = f" It holds {len(loose_images)} images directly." if loose_images else ""
        raise UsageError(
            f"{what} {root} has no class sub-folders.{hint} Put the images of each class in their own "
            f"sub-folder (e.g. {root}/cat/1.jpg, {root}/dog/2.jpg); the folder names become the labels."
        )
    if loose_images:
        logger.warning(f"{len(loose_images)} images directly in {root} (outside any class folder) are ignored.")
    files_by_class, empty, nested, left_out = {}, [], 0, []
    for class_dir in class_dirs:
        # A link that leads nowhere (or to itself) is kept: the scan lists it as unreadable rather than skip it.
        files = sorted(
            p for p in class_dir.iterdir() if (p.is_file() or p.is_symlink()) and is_image_file(p, extensions)
        )
        left_out += sorted(p for p in class_dir.iterdir() if p.is_file() and is_left_out_file(p, extensions))
        nested += count_nested_images(class_dir, extensions)
        name = class_name(class_dir.name)
        if files:
            files_by_class[name] = sorted([*files_by_class.get(name, []), *files])
        else:
            empty.append(name)
    empty = sorted(set(empty) - set(files_by_class))
    if not files_by_class:
        if split := split_folders_hint(root, what):
            raise UsageError(f"{what} {root} holds split folders, not class folders: {split}.")
        raise UsageError(
            f"{what} {root} holds no images in its class sub-folders "
            f"(looked for {', '.join(sorted(extensions)[:8])}, ...)."
        )
    warn_about_look_alike_class_names([p.name for p in class_dirs], root)
    if empty:
        logger.warning(f"Class folders with no images in {root} (left out): {', '.join(empty)}.")
    return ClassFolders(
        root,
        files_by_class,
        empty,
        ignored,
        left_out_files=left_out,
        nested_images=nested,
        loose_images=len(loose_images),
    )


def same_folder(first: str | Path, second: str | Path) -> bool:
    """The same folder, however named (links and `..` resolved)."""
    return Path(first).expanduser().resolve() == Path(second).expanduser().resolve()


def is_same_or_inside(path: str | Path, folder: str | Path) -> bool:
    """`path` is `folder` or lies under it (links and `..` resolved)."""
    return Path(path).expanduser().resolve().is_relative_to(Path(folder).expanduser().resolve())


def check_folders_apart(train_dir: str | None, validation_dir: str | None, output_dir: str) -> None:
    """Refuses a validation folder that is the training folder, and an output folder in the data.

    Raises:
        UsageError: validation on the training images (its accuracy would say nothing about new images), or an
            output folder inside an image folder (the next run there would read the run's plots and checkpoint
            files as a class of images).
    """
    if train_dir is not None and validation_dir is not None and same_folder(validation_dir, train_dir):
        raise UsageError(
            f"--validation_dir {validation_dir} is the training folder: validation must be on images the model does "
            "not train on, or its accuracy says nothing about new images. Give a separate folder, or leave "
            "--validation_dir out to hold out part of each class (--train_val_split)."
        )
    for option, folder in (("--train_dir", train_dir), ("--validation_dir", validation_dir)):
        if folder is not None and is_same_or_inside(output_dir, folder):
            raise UsageError(
                f"--output_dir {output_dir} is inside {option} {folder}: the run's plots and checkpoints would be "
                f"read as images of a class by the next run on {folder}. Choose an output folder outside the data."
            )


def check_class_sets(train_counts: dict[str, int], validation_counts: dict[str, int] | None, train_root, val_root):
    """At least two training classes; every validation class known to training."""
    present = sorted(name for name, count in train_counts.items() if count)
    if len(present) < 2:
        raise UsageError(
            f"--train_dir {train_root} has a single class with usable images ({', '.join(present) or 'none'}): "
            "classification needs at least two class sub-folders with images."
        )
    if validation_counts is None:
        return
    unknown = sorted(name for name, count in validation_counts.items() if count and not train_counts.get(name))
    if unknown:
        raise UsageError(
            f"--validation_dir {val_root} has classes that the training folder lacks: {', '.join(unknown)}. "
            "Every validation class needs training images; fix the folder names or add the images."
        )


def stratified_split_indices(labels: list[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Splits indices per class: about `fraction` of each class for validation, at least one image per class.

    A class with a single image stays in training. The split depends only on the labels, the fraction and the
    seed, so it is reproducible.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    train_idx, val_idx = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        n_val = 0 if len(members) < 2 else min(len(members) - 1, max(1, round(fraction * len(members))))
        val_idx.extend(members[:n_val].tolist())
        train_idx.extend(members[n_val:].tolist())
    return sorted(train_idx), sorted(val_idx)


def scan_folder_files(folders: ClassFolders, split: str, progress: bool = True) -> list[LabelledFile]:
    paths = [str(p) for files in folders.files_by_class.values() for p in files]
    labels = [name for name, files in folders.files_by_class.items() for _ in files]
    records = scan_files(paths, cache_key=str(folders.root.resolve()), progress=progress)
    return [LabelledFile(split, label, record) for label, record in zip(labels, records, strict=True)]


def unusable_error(files: list[LabelledFile]) -> UsageError:
    listing = "\n".join(f"  {f.record.path}: {f.record.reason}" for f in files)
    return UsageError(
        f"{len(files)} unusable file(s) (--strict):\n{listing}\nRemove or replace them, or drop --strict to train "
        "without them."
    )


def conflicting_labels_error(groups: list[dict]) -> UsageError:
    listing = "\n".join(f"  {' | '.join(group['labels'])}: {', '.join(group['paths'])}" for group in groups[:20])
    more = f"\n  ... and {len(groups) - 20} more groups" if len(groups) > 20 else ""
    return UsageError(
        f"{len(groups)} group(s) of identical images carry different labels:\n{listing}{more}\n"
        "An image cannot be two classes at once: move each to its right class folder, or pass --dedupe to leave "
        "all copies out of training and validation."
    )


def assign_validation_split(files: list[LabelledFile], fraction: float, seed: int) -> list[LabelledFile]:
    """Moves a stratified, seeded fraction of the usable training files to the validation split.

    Identical images of a class move together: a copy on each side would be a train/validation leak that the split
    itself made. Without identical images the split is that of the files one by one.
    """
    copies: dict[tuple[str, str], list[int]] = {}
    for i, f in enumerate(files):
        if f.record.usable:
            copies.setdefault((f.label, f.record.pixel_hash or f.record.path), []).append(i)
    groups = list(copies.values())
    class_ids = {name: i for i, name in enumerate(sorted({label for label, _ in copies}))}
    _, val_idx = stratified_split_indices([class_ids[label] for label, _ in copies], fraction, seed)
    to_validation = {i for group in val_idx for i in groups[group]}
    if not to_validation:
        raise UsageError("Too few images to split off a validation set: give --validation_dir or add images.")
    share = len(to_validation) / sum(len(group) for group in groups)
    if share > max(2 * fraction, fraction + 0.1):
        logger.warning(
            f"The split holds out {share:.0%} of the images for validation, not the {fraction:.0%} "
            f"--train_val_split asks: each class keeps at least one validation image, and these classes are small. "
            "Give --validation_dir, or add images, to train on more of them."
        )
    return [LabelledFile("validation", f.label, f.record) if i in to_validation else f for i, f in enumerate(files)]


@dataclass
class FolderPlan:
    """What a scan decided: the files of each split, the class names, and the report."""

    data_files: dict[str, list[str]]
    class_names: list[str]
    report: DataReport
    labels: dict[str, str] = field(default_factory=dict)  # the class of each file of `data_files`, by path


def plan_image_folders(
    train_dir: str,
    validation_dir: str | None,
    train_val_split: float,
    seed: int,
    *,
    strict: bool = False,
    dedupe: bool = False,
    progress: bool = True,
    train_name: str = "--train_dir",
) -> FolderPlan:
    """Scans class folders, leaves out unusable files and splits off validation if needed; loads nothing.
    `train_name`: how messages name the training folder (`inspect` takes it as DATA).

    Raises:
        UsageError: for folders that cannot be trained on, for unusable files under `strict`, and for identical
            images under different labels unless `dedupe` leaves them out.
    """
    train = scan_class_folders(train_dir, train_name)
    validation = scan_class_folders(validation_dir, "--validation_dir") if validation_dir else None
    files = scan_folder_files(train, "train", progress)
    if validation is not None:
        files += scan_folder_files(validation, "validation", progress)
    unusable = [f for f in files if not f.record.usable]
    if unusable and strict:
        raise unusable_error(unusable)
    usable_counts = {
        split: Counter(f.label for f in files if f.record.usable and f.split == split)
        for split in ("train", "validation")
    }
    check_class_sets(
        usable_counts["train"],
        usable_counts["validation"] if validation else None,
        train.root,
        validation.root if validation else None,
    )
    class_names = sorted(name for name, count in usable_counts["train"].items() if count)
    empty = sorted(set(train.files_by_class) - set(class_names)) + train.empty_classes
    if validation is None:
        files = assign_validation_split(files, train_val_split, seed)

    duplicates = find_duplicates(files)
    dropped_conflicting, dropped_leaks = set(), set()
    if duplicates.conflicting_labels:
        if not dedupe:
            raise conflicting_labels_error(duplicates.conflicting_labels)
        dropped_conflicting = {p for group in duplicates.conflicting_labels for p in group["paths"]}
    if dedupe:
        dropped_leaks = {p for leak in duplicates.train_validation_leaks for p in leak["validation"]}
    report = build_report(files, class_names, sorted(set(empty)), duplicates)
    report.dropped_conflicting = sorted(dropped_conflicting)
    report.dropped_from_validation = sorted(dropped_leaks)
    scanned = [folders for folders in (train, validation) if folders]
    report.ignored_folders = [str(folders.root / name) for folders in scanned for name in folders.ignored_folders]
    report.left_out_files = [str(path) for folders in scanned for path in folders.left_out_files]
    report.nested_images = sum(folders.nested_images for folders in scanned)
    report.loose_images = sum(folders.loose_images for folders in scanned)

    dropped = dropped_conflicting | dropped_leaks
    data_files = {
        split: [
            f.record.path
            for f in files
            if f.split == split and f.record.usable and f.label in class_names and f.record.path not in dropped
        ]
        for split in ("train", "validation")
    }
    check_kept_classes(data_files, files, class_names, dropped, validation_given=validation is not None)
    kept = {path for paths in data_files.values() for path in paths}
    kept_labels = {
        split: Counter(f.label for f in files if f.split == split and f.record.path in kept)
        for split in report.images_per_class
    }
    report.record_used(
        {split: {name: labels[name] for name in class_names} for split, labels in kept_labels.items()},
        ["--dedupe"] if dropped else [],
    )
    report.data_digest = data_digest((f.split, f.label, f.record.pixel_hash) for f in files if f.record.path in kept)
    labels = {f.record.path: f.label for f in files if f.record.path in kept}
    return FolderPlan(data_files, class_names, report, labels)


def check_kept_classes(
    data_files: dict[str, list[str]], files, class_names: list[str], dropped: set[str], validation_given: bool = False
) -> None:
    """After the split and `--dedupe`: every class keeps training images, validation keeps some, and a class without
    validation images is named (its accuracy is not measured: a class of one image, or one missing from
    --validation_dir).

    Raises:
        UsageError: when `--dedupe` left a class without training images (all of them copies of other classes'), or
            no validation image is left (all unusable, or copies of training images that `--dedupe` left out).
    """
    label_of = {f.record.path: f.label for f in files}
    counts = {split: Counter(label_of[path] for path in paths) for split, paths in data_files.items()}
    emptied = [name for name in class_names if not counts["train"][name]]
    if emptied:
        raise UsageError(
            f"--dedupe left no training images in class {', '.join(emptied)}: every one is a copy of an image "
            f"labelled otherwise ({len(dropped)} images left out in all). Remove or rename that folder, or keep "
            "each image under one label only."
        )
    if not data_files["validation"]:
        raise UsageError(no_validation_left_message([f for f in files if f.split == "validation"], dropped))
    unmeasured = [name for name in class_names if not counts["validation"][name]]
    if unmeasured:
        described = ", ".join(f"{name} ({counted(counts['train'][name], 'training image')})" for name in unmeasured)
        remedy = (
            "Add images of them to --validation_dir"
            if validation_given
            else "Add images to them (a class needs two different ones for the split to hold one out) or give "
            "--validation_dir"
        )
        logger.warning(
            f"Classes with no validation images (their accuracy is not measured, and the card shows n/a): "
            f"{described}. {remedy}."
        )


def no_validation_left_message(validation_files, dropped: set[str]) -> str:
    """Why no validation image is left, counted, and what to do."""
    unusable = sum(not f.record.usable for f in validation_files)
    copies = sum(f.record.path in dropped for f in validation_files)
    causes = []
    if unusable:
        causes.append(f"{unusable} cannot be read (listed above)")
    if copies:
        causes.append(f"{copies} are copies of training images, which --dedupe left out")
    found = f"of the {len(validation_files)} validation images, {' and '.join(causes)}" if causes else "none found"
    remedy = "Give validation images that are readable and not copies of training images"
    if copies:
        remedy += " (or leave out --dedupe: the leak is then reported, and the card names it)"
    return f"No image is left for validation: {found}. {remedy}."


def data_digest(items) -> str:
    """A sha256 over the (split, label, pixel hash) of every image used, in a fixed order.

    The scan already hashes each image's pixels, so this costs nothing and ignores renames and re-saves, but notices
    an image added, removed, changed or moved to another class or split.
    """
    digest = hashlib.sha256()
    for split, label, pixel_hash in sorted(items):
        digest.update(f"{split}\t{label}\t{pixel_hash}\n".encode())
    return digest.hexdigest()


def load_image_folders(
    train_dir: str,
    validation_dir: str | None,
    train_val_split: float,
    seed: int,
    cache_dir: str | None = None,
    *,
    strict: bool = False,
    dedupe: bool = False,
    progress: bool = True,
) -> tuple[DatasetDict, DataReport]:
    """`plan_image_folders`, then the planned files loaded with `datasets`' imagefolder."""
    plan = plan_image_folders(
        train_dir, validation_dir, train_val_split, seed, strict=strict, dedupe=dedupe, progress=progress
    )
    # data_files are glob patterns: escape names such as "img[1].jpg".
    patterns = {split: [glob.escape(path) for path in paths] for split, paths in plan.data_files.items()}
    # The labels are the scan's: imagefolder's own, from folder names, are dropped when the training and validation
    # folders lie at different depths (--train_dir data/birds/train --validation_dir val).
    dataset = load_dataset("imagefolder", data_files=patterns, cache_dir=cache_dir, drop_labels=True)
    return with_planned_labels(dataset, plan), plan.report


def with_planned_labels(dataset: DatasetDict, plan: FolderPlan) -> DatasetDict:
    """`dataset` (imagefolder's, without labels) with a `label` column of the plan's classes, by image path."""
    label_of = {}
    for path, label in plan.labels.items():  # by the path as given and as resolved: imagefolder may give either
        label_of[os.path.abspath(path)] = label_of[os.path.realpath(path)] = label
    classes = ClassLabel(names=plan.class_names)
    labelled = DatasetDict()
    for split, data in dataset.items():
        labels = []
        for path in image_paths(data):
            label = label_of.get(os.path.abspath(path)) or label_of.get(os.path.realpath(path))
            if label is None:
                raise UsageError(f"imagefolder loaded {path}, which the scan of the class folders did not list.")
            labels.append(classes.str2int(label))
        labelled[split] = data.add_column("label", labels).cast_column("label", classes)
    return labelled


def split_off_validation(train: Dataset, fraction: float, seed: int, label_column: str = "label") -> DatasetDict:
    train_idx, val_idx = stratified_split_indices(train[label_column], fraction, seed)
    if not val_idx:
        raise UsageError("Too few images to split off a validation set: give --validation_dir or add images.")
    return DatasetDict(train=train.select(train_idx), validation=train.select(val_idx))


def load_hub_dataset(
    dataset_name: str,
    config_name: str | None,
    image_column: str,
    label_column: str,
    train_val_split: float,
    seed: int,
    cache_dir: str | None = None,
) -> DatasetDict:
    """Loads a Hub (or local) dataset and returns train/validation splits with `image` and `label` columns."""
    raw = load_dataset_as_given(dataset_name, config_name, cache_dir)
    if "train" not in raw:
        raise UsageError(f"Dataset {dataset_name!r} has no 'train' split (it has: {', '.join(raw)}).")
    for column in (image_column, label_column):
        if column not in raw["train"].column_names:
            raise UsageError(
                f"Dataset {dataset_name!r} has no column {column!r} "
                f"(columns: {', '.join(raw['train'].column_names)}). "
                "Name the right ones with --image_column_name and --label_column_name."
            )
    val_name = next((name for name in VALIDATION_SPLIT_NAMES if name in raw), None)
    unused = [name for name in raw if name not in ("train", val_name)]
    if unused:
        logger.warning(
            f"Dataset {dataset_name!r} also has the split(s) {', '.join(unused)}, which training leaves alone: "
            f"measure the model on it with `hf-resnet101 evaluate OUT --dataset_name {dataset_name} --split "
            f"{unused[0]}`."
        )
    dataset = DatasetDict(train=raw["train"])
    if val_name:
        dataset["validation"] = raw[val_name]
    dataset = dataset.select_columns([image_column, label_column])
    check_every_row_labelled(dataset, dataset_name, label_column)
    if image_column != "image":
        dataset = dataset.rename_column(image_column, "image")
    if label_column != "label":
        dataset = dataset.rename_column(label_column, "label")
    dataset = labels_encoded_as_in_training(dataset, dataset_name)
    check_dataset_label_names(dataset_name, dataset["train"].features["label"].names)
    if not isinstance(dataset["train"].features["image"], ImageFeature):
        dataset = dataset.cast_column("image", ImageFeature())
    if "validation" not in dataset:
        dataset = split_off_validation(dataset["train"], train_val_split, seed)
    return dataset


def load_dataset_as_given(dataset_name: str, config_name: str | None, cache_dir: str | None) -> DatasetDict:
    """`load_dataset`, or `load_from_disk` for a folder `save_to_disk` wrote; each failure a user can fix is one line.

    Raises:
        UsageError: for a dataset not found, not reachable offline, of another config, or a single split saved with
            `save_to_disk` (training needs named splits).
    """
    from datasets import Dataset, load_from_disk

    saved = Path(dataset_name)
    if (saved / "dataset_dict.json").is_file() or (saved / "state.json").is_file():  # written by save_to_disk
        loaded = load_from_disk(dataset_name)
        # One split saved alone: its images are the training images (load_dataset refused the folder).
        return DatasetDict(train=loaded) if isinstance(loaded, Dataset) else loaded
    try:
        return load_dataset(dataset_name, config_name, cache_dir=cache_dir)
    except FileNotFoundError as error:
        raise UsageError(f"Dataset {dataset_name!r} was not found (on the Hub or locally): {error}") from error
    except ConnectionError as error:
        offline = " (HF_HUB_OFFLINE is set, and it is not in the cache)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise UsageError(
            f"Could not reach the Hub to load dataset {dataset_name!r}{offline}. Download it where there is a "
            f"network (`hf download {dataset_name} --repo-type dataset --local-dir DIR`, then --dataset_name DIR), "
            "or use a local folder with --train_dir."
        ) from error
    except ValueError as error:  # an unknown config ("BuilderConfig 'x' not found. Available: [...]"), and the like
        raise UsageError(f"Dataset {dataset_name!r} could not be loaded: {error}") from error


def check_every_row_labelled(dataset: DatasetDict, dataset_name: str, label_column: str) -> None:
    """Stops on rows without a label: they crashed the split (comparing None with a class) or, with a validation
    split, the run after training (a NaN label in a batch).

    Raises:
        UsageError: naming the split, how many rows and the first of them.
    """
    for split, data in dataset.items():
        # None, or ClassLabel's -1 ("no label", as in the test splits of many Hub datasets)
        unlabelled = -1 if isinstance(data.features[label_column], ClassLabel) else None
        missing = [index for index, label in enumerate(data[label_column]) if label is None or label == unlabelled]
        if missing:
            first = ", ".join(str(index) for index in missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise UsageError(
                f"{len(missing)} row(s) of the {split} split of dataset {dataset_name!r} have no {label_column!r} "
                f"(rows {first}): give every row a label, or filter them out first "
                f"(`dataset.filter(lambda row: row[{label_column!r}] is not None)`)."
            )


def labels_encoded_as_in_training(dataset: DatasetDict, dataset_name: str) -> DatasetDict:
    """Every split's labels as ids of one `ClassLabel`: the training split's, or its sorted label values when its
    labels are plain strings or numbers. Encoded split by split, a validation split missing a class would number the
    rest otherwise (its "élan vital" images becoming "cat").

    Raises:
        UsageError: a split holds labels that the training split does not.
    """
    train = dataset["train"]
    if not isinstance(train.features["label"], ClassLabel):
        train = train.class_encode_column("label")
    classes = train.features["label"]
    encoded = DatasetDict(train=train)
    for split, data in dataset.items():
        feature = data.features["label"]
        if split == "train" or feature == classes:
            encoded[split] = data if split != "train" else train
            continue
        values = [feature.int2str(v) if isinstance(feature, ClassLabel) else str(v) for v in data["label"]]
        unknown = sorted(set(values) - set(classes.names))
        if unknown:
            raise UsageError(
                f"The {split} split of dataset {dataset_name!r} has labels that no training image has: "
                f"{', '.join(unknown[:10])}. A model cannot learn them: fix the labels, or leave those images out."
            )
        features = data.features.copy()
        features["label"] = classes
        ids = [classes.str2int(v) for v in values]
        encoded[split] = data.map(  # reading the labels only: no image is decoded
            lambda _, indices, ids=ids: {"label": [ids[i] for i in indices]},
            input_columns="label",
            with_indices=True,
            batched=True,
            features=features,
        )
    return encoded


def stratified_order(labels: Sequence[int], seed: int) -> list[int]:
    """Indices in an order whose every prefix holds each class in about its share of the whole: each class's
    indices shuffled with the seed, placed at evenly spaced positions through the order (the j-th of a class of n at
    (j + 0.5) / n), ties in a seeded random order."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    positions = np.empty(len(labels))
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        positions[members] = (np.arange(len(members)) + 0.5) / len(members)
    return np.lexsort((rng.random(len(labels)), positions)).tolist()


def limit_samples(dataset: DatasetDict, max_train: int | None, max_eval: int | None, seed: int) -> DatasetDict:
    """Keeps at most `max_train`/`max_eval` images, stratified by class with the seed (`stratified_order`); names
    any class left without training images (a limit below the number of classes, or a class too rare for it)."""
    names = dataset["train"].features["label"].names
    consequence = {
        "train": "training images in class {}: the model keeps its label but never learns it",
        "validation": "validation images in class {}: its accuracy is not measured, and the card shows n/a",
    }
    for split, limit, flag in (
        ("train", max_train, "--max_train_samples"),
        ("validation", max_eval, "--max_eval_samples"),
    ):
        if limit is None or limit >= len(dataset[split]):
            continue
        had = {names[label] for label in dataset[split]["label"]}
        # flattened here, while loading, and not by the first `cast_column` (with a progress bar, mid-set-up)
        kept = stratified_order(dataset[split]["label"], seed)[:limit]
        dataset[split] = dataset[split].select(kept).flatten_indices()
        lost = sorted(had - {names[label] for label in dataset[split]["label"]})
        if lost:
            logger.warning(
                f"{flag} {limit} leaves no {consequence[split].format(', '.join(lost))}. Raise the limit, or leave "
                "it out."
            )
    return dataset


def image_paths(split: Dataset) -> list[str | None]:
    """The file path of every image of a split (None for images stored as bytes)."""
    column = split.cast_column("image", ImageFeature(decode=False))["image"]
    return [item.get("path") for item in column]


def data_roots(train_dir: str | None, validation_dir: str | None) -> list[Path]:
    """The folders that published paths are relative to: the parent of each data folder, so a path starts with the
    data folder's own name (`train/cat/1.jpg`, `validation/cat/2.jpg`) and names nothing above it."""
    roots = [Path(p).resolve().parent for p in (train_dir, validation_dir) if p]
    return list(dict.fromkeys(roots))


def relative_image_path(image_path: str | None, roots: list[Path]) -> str:
    """A path inside a data folder, POSIX style; just the file name for one outside them (a Hub dataset's cache).

    `splits.csv` is published with the model: an absolute path would show the user's directory names.
    """
    if not image_path:
        return ""
    return path_inside(image_path, roots) or Path(image_path).name


def write_split_files(dataset: DatasetDict, output_dir: str | os.PathLike, roots: list[Path] | None = None) -> Path:
    """Writes `splits.csv` (split, label, path) so the split can be audited and reproduced.

    Paths are relative to `roots` (see `data_roots`), which are kept in `DATA_ROOTS`, a local file that is
    never pushed, so local tools (`export`) can still find the images.
    """
    roots = roots or []
    output_dir = Path(output_dir)
    path = output_dir / SPLITS
    path.parent.mkdir(parents=True, exist_ok=True)
    names = dataset["train"].features["label"].names
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "label", "path"])
        for split_name, split in dataset.items():
            for label, image_path in zip(split["label"], image_paths(split), strict=True):
                writer.writerow([split_name, names[label], relative_image_path(image_path, roots)])
    if roots:
        (output_dir / DATA_ROOTS).write_text(json.dumps([str(root) for root in roots]))
    return path


def split_image_path(output_dir: str | os.PathLike, relative: str, split: str = "train") -> Path:
    """The local file a `splits.csv` path names: under the first data root the run recorded that holds it, the
    validation folder's first for a validation row (`data_roots` lists the training folder's, then the validation
    folder's: with `--train_dir a/images --validation_dir b/images` both write `images/...`)."""
    root_file = Path(output_dir) / DATA_ROOTS
    roots = [Path(root) for root in json.loads(root_file.read_text())] if root_file.is_file() else []
    if split == "validation":
        roots.reverse()
    candidates = [root / relative for root in roots] or [Path(output_dir) / relative]
    return next((path for path in candidates if path.is_file()), candidates[0])


def report_from_dataset(dataset: DatasetDict) -> DataReport:
    """A report with the counts of an already-built dataset (Hub datasets are not scanned file by file)."""
    return DataReport(
        images_per_class=images_per_class_of(dataset),
        unusable=[],
        empty_classes=[],
        duplicates=Duplicates(),
        image_sizes={},
        modes={},
        formats={},
        # Hub datasets are identified by their fingerprints (name, configuration, revision and processing).
        data_digest=data_digest((name, "", split._fingerprint) for name, split in dataset.items()),
    )


def counted(count: int, noun: str) -> str:
    """`1 training image`, `3 training images`."""
    return f"{count} {noun}" + ("" if count == 1 else "s")
