"""What is in the data: counts per class and split, unusable files, duplicates, sizes, and imbalance."""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..outputs import DATA_REPORT
from .images import ALPHA_MODES, HIGH_BIT_MODES, NOT_LOADED_BY_IMAGEFOLDER, left_out_files_note
from .scan import FileRecord

MAX_LISTED = 20
# Modes the package converts to RGB unlike transformers' `load_image` (Pillow's convert("RGB")), which a pipeline
# given a file path uses: 16-bit and wider grey is rescaled here, clipped there (nearly white); transparency is
# composited on grey here, dropped there.
CONVERTED_UNLIKE_PIPELINE = HIGH_BIT_MODES | ALPHA_MODES
# A palette or grey image naming a transparent colour is counted under its mode with this suffix (`P+transparency`).
TRANSPARENT_COLOUR = "+transparency"
# 16-bit grey is rescaled from its full range (value / 257): data that uses less of it keeps fewer grey levels,
# and below this many the report says so.
FEW_GREY_LEVELS = 64


def mode_of(record: FileRecord) -> str:
    """The image's mode as the report counts it: `P+transparency` for a palette image with a transparent colour."""
    return f"{record.mode}{TRANSPARENT_COLOUR}" if record.transparent else str(record.mode)


def high_bit_values(records: list[FileRecord]) -> dict | None:
    """The values the 16-bit and 32-bit integer grey images use, and the grey levels they keep in 8 bits; None
    without such images (float images in 0-1 are scaled by 255, not from the 16-bit range)."""
    ranges = [r.value_range for r in records if r.value_range is not None and r.mode != "F"]
    if not ranges:
        return None
    low, high = min(lo for lo, _ in ranges), max(hi for _, hi in ranges)
    levels = int(round(min(max(high, 0), 65535) / 257) - round(min(max(low, 0), 65535) / 257)) + 1
    return {"images": len(ranges), "min": low, "max": high, "grey_levels": levels}


@dataclass(frozen=True)
class LabelledFile:
    split: str
    label: str
    record: FileRecord


@dataclass
class Duplicates:
    """Groups of files with identical decoded pixels."""

    within_class: list[list[str]] = field(default_factory=list)
    conflicting_labels: list[dict] = field(default_factory=list)
    train_validation_leaks: list[dict] = field(default_factory=list)


def find_duplicates(files: list[LabelledFile]) -> Duplicates:
    """Identical images inside a class, across classes (conflicting labels), and across train and validation."""
    groups: dict[str, list[LabelledFile]] = defaultdict(list)
    for item in files:
        if item.record.usable and item.record.pixel_hash:
            groups[item.record.pixel_hash].append(item)
    found = Duplicates()
    for members in groups.values():
        if len(members) < 2:
            continue
        labels = sorted({m.label for m in members})
        if len(labels) > 1:
            found.conflicting_labels.append({"labels": labels, "paths": [m.record.path for m in members]})
            continue
        train = [m.record.path for m in members if m.split == "train"]
        validation = [m.record.path for m in members if m.split == "validation"]
        if train and validation:
            found.train_validation_leaks.append({"label": labels[0], "train": train, "validation": validation})
        if len(train) > 1 or len(validation) > 1:  # one group, however many splits it spans
            found.within_class.append([m.record.path for m in members])
    return found


@dataclass
class DataReport:
    """The dataset as the run sees it; saved as `data_report.json` and summarised on the console."""

    images_per_class: dict[str, dict[str, int]]
    unusable: list[dict]
    empty_classes: list[str]
    duplicates: Duplicates
    image_sizes: dict[str, dict[str, int]]
    modes: dict[str, int]
    formats: dict[str, int]
    # The values 16-bit grey images use and the grey levels they keep once rescaled to 8 bits (`high_bit_values`).
    high_bit_values: dict | None = None
    dropped_from_validation: list[str] = field(default_factory=list)
    dropped_conflicting: list[str] = field(default_factory=list)
    ignored_folders: list[str] = field(default_factory=list)
    # Files in the class folders of a type training does not read (.heic, .avif, .raw, videos), left out.
    left_out_files: list[str] = field(default_factory=list)
    # Images in sub-folders of class folders, left out: imagefolder would label them by the sub-folder.
    nested_images: int = 0
    # Images directly in a data folder, beside its class folders: left out, as they have no label.
    loose_images: int = 0
    # The images the run uses, per split and class: `images_per_class` (the usable images found) less those that
    # `left_out_by` names (--dedupe, --max_train_samples, --max_eval_samples). Set by `record_used`.
    images_used_per_class: dict[str, dict[str, int]] = field(default_factory=dict)
    left_out_by: list[str] = field(default_factory=list)
    # What the run trains on (see `data_digest`): part of the run's identity, so a changed folder is noticed.
    data_digest: str = ""

    @property
    def used_per_class(self) -> dict[str, dict[str, int]]:
        """The images the run uses per split and class (those found, until `record_used`)."""
        return self.images_used_per_class or self.images_per_class

    def record_used(self, images_per_class: dict[str, dict[str, int]], left_out_by: list[str]) -> None:
        """Records what the run uses after `left_out_by` (the options that left images out) took their share."""
        self.images_used_per_class = images_per_class
        self.left_out_by = list(dict.fromkeys(self.left_out_by + left_out_by))

    @property
    def num_train_images(self) -> int:
        return sum(self.used_per_class.get("train", {}).values())

    @property
    def imbalance_ratio(self) -> float:
        """Largest over smallest training class as trained on (classes with no images left out)."""
        counts = [c for c in self.used_per_class.get("train", {}).values() if c > 0]
        return max(counts) / min(counts) if counts else 1.0

    @property
    def converted_unlike_pipeline(self) -> dict[str, int]:
        """Images per mode that a pipeline given their files would see differently (`CONVERTED_UNLIKE_PIPELINE`)."""
        return {
            mode: count
            for mode, count in self.modes.items()
            if mode in CONVERTED_UNLIKE_PIPELINE or mode.endswith(TRANSPARENT_COLOUR)
        }

    def to_dict(self) -> dict:
        data = asdict(self)
        data["num_train_images"] = self.num_train_images
        data["imbalance_ratio"] = round(self.imbalance_ratio, 3)
        return data

    def save(self, output_dir: str | Path, roots: list[Path] | None = None) -> Path:
        """Writes `data_report.json`, with file paths relative to the data `roots` when given (see
        `folders.data_roots`): the file is published with the model, and absolute paths would show the user's
        directory names."""
        path = Path(output_dir) / DATA_REPORT
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(paths_relative_to(self.to_dict(), roots or []), indent=2, ensure_ascii=False))
        return path

    def summary_lines(self) -> list[str]:
        lines = []
        for split, counts in self.used_per_class.items():
            total = sum(counts.values())
            found = sum(self.images_per_class.get(split, {}).values())
            per_class = per_class_counts(counts)
            used = f" (of {found} usable found; {' and '.join(self.left_out_by)} left out the rest)"
            with_images = sum(1 for count in counts.values() if count)
            classes = f"{with_images} of {len(counts)}" if with_images != len(counts) else f"{len(counts)}"
            lines.append(f"{split}: {total} images in {classes} classes ({per_class})" + used * (found != total))
        if self.imbalance_ratio >= 1.5:
            lines.append(f"class imbalance: the largest training class is {self.imbalance_ratio:.1f}x the smallest")
        if self.image_sizes:
            w, h = self.image_sizes["width"], self.image_sizes["height"]
            lines.append(
                f"image sizes: width {w['min']}-{w['max']} (median {w['median']}), "
                f"height {h['min']}-{h['max']} (median {h['median']}); modes "
                + ", ".join(f"{mode}={count}" for mode, count in self.modes.items())
            )
        converted = self.converted_unlike_pipeline
        if converted:
            lines.append(
                f"16-bit or transparent images ({', '.join(f'{mode}={n}' for mode, n in converted.items())}): "
                "training, evaluation and `hf-resnet101 predict` turn them into 8-bit RGB (16-bit rescaled, "
                "transparency on grey), but transformers' pipeline given such a file clips 16-bit to nearly white "
                "and drops transparency, and scores it differently: convert them as the model card shows first"
            )
        if (values := self.high_bit_values) and values["grey_levels"] < FEW_GREY_LEVELS:
            lines.append(few_grey_levels_note(values))
        if self.unusable:
            lines.append(f"unusable files left out: {len(self.unusable)}")
            lines += [f"  {item['path']}: {item['reason']}" for item in self.unusable[:MAX_LISTED]]
            if len(self.unusable) > MAX_LISTED:
                lines.append(f"  ... and {len(self.unusable) - MAX_LISTED} more (see data_report.json)")
        if self.left_out_files:
            note = left_out_files_note([Path(path) for path in self.left_out_files], "the class folders")
            if any(Path(path).suffix.lower() in NOT_LOADED_BY_IMAGEFOLDER for path in self.left_out_files):
                note += (
                    " predict and evaluate read .avif and .qoi files, but training cannot: datasets' imagefolder, "
                    "which loads its folders, skips them."
                )
            lines.append(f"left out: {note}")
        if self.nested_images:
            lines.append(
                f"images in sub-folders of class folders, left out: {self.nested_images} (a class's images go "
                "directly in its folder: a sub-folder would become a label of its own)"
            )
        if self.loose_images:
            lines.append(
                f"images beside the class folders, left out: {self.loose_images} (an image has a label only inside "
                "its class's folder)"
            )
        if self.empty_classes:
            lines.append("class folders with no usable images (left out): " + ", ".join(self.empty_classes))
        if self.ignored_folders:
            ignored = ", ".join(self.ignored_folders)
            lines.append(f"folders ignored (names starting with '.' are not classes): {ignored}")
        dup = self.duplicates
        if dup.within_class:
            lines.append(f"identical images inside a class: {len(dup.within_class)} groups (harmless, but wasted)")
        if dup.conflicting_labels:
            lines.append(f"identical images under different labels: {len(dup.conflicting_labels)} groups")
        if dup.train_validation_leaks:
            verb = "left out of validation" if self.dropped_from_validation else "pass --dedupe to leave them out"
            lines.append(
                f"identical images in train and validation: {len(dup.train_validation_leaks)} groups "
                f"(they inflate the validation score; {verb})"
            )
        return lines


# Past this many classes the summary gives the spread of the counts and the smallest classes, not every class (400
# classes made two lines of 7,600 characters in the run's summary and inspect); data_report.json lists them all.
MAX_LISTED_CLASSES = 20


def per_class_counts(counts: dict[str, int]) -> str:
    """`cat=6, dog=2`, or for many classes `1-40 per class, median 12; fewest: a=1, b=1, c=2, ...`."""
    if len(counts) <= MAX_LISTED_CLASSES:
        return ", ".join(f"{name}={count}" for name, count in counts.items())
    values = sorted(counts.values())
    fewest = sorted(counts.items(), key=lambda item: (item[1], item[0]))[:5]
    return (
        f"{values[0]}-{values[-1]} per class, median {values[len(values) // 2]}; fewest: "
        + ", ".join(f"{name}={count}" for name, count in fewest)
        + "; all in data_report.json"
    )


def few_grey_levels_note(values: dict) -> str:
    """What rescaling from the full 16-bit range does to grey images that use a small part of it (12-bit scans
    stored as 16-bit, signed CT values), and what to do."""
    negative = " (values below 0 become 0)" if values["min"] < 0 else ""
    return (
        f"{values['images']} 16-bit grey images use values {values['min']:g} to {values['max']:g}{negative}: training "
        f"rescales them from 0-65535 to 8 bits, so they keep only {values['grey_levels']} grey levels. Convert them "
        "to 8-bit PNG first with a window suited to the data (e.g. each scanner's bit depth, or a CT window), so "
        "that the model sees their contrast"
    )


def paths_relative_to(value, roots: list[Path]):
    """`value` (nested dicts and lists) with every string naming a path inside one of `roots` made relative to it."""
    if isinstance(value, dict):
        return {key: paths_relative_to(item, roots) for key, item in value.items()}
    if isinstance(value, list):
        return [paths_relative_to(item, roots) for item in value]
    if isinstance(value, str) and Path(value).is_absolute():
        return path_inside(value, roots) or value
    return value


def path_inside(path_text: str, roots: list[Path]) -> str | None:
    """`path_text` relative to the first of `roots` that holds it, POSIX style; None when none does.

    The path as the folder shows it comes first (a class folder that links elsewhere stays `train/birds/1.jpg`),
    then where its links lead; a link that loops is taken as it is.
    """
    candidates = [Path(os.path.abspath(path_text))]
    with contextlib.suppress(OSError, RuntimeError):  # RuntimeError: a link loop (before Python 3.13)
        candidates.append(Path(path_text).resolve())
    for path in candidates:
        root = next((root for root in roots if path.is_relative_to(root)), None)
        if root is not None:
            return path.relative_to(root).as_posix()
    return None


def size_stats(values: list[int]) -> dict[str, int]:
    return {"min": int(min(values)), "median": int(np.median(values)), "max": int(max(values))}


def images_per_class_of(dataset) -> dict[str, dict[str, int]]:
    """Images per split and class of a built dataset (a `DatasetDict` whose `label` column is a `ClassLabel`)."""
    names = dataset["train"].features["label"].names
    return {split_name: class_counts(split["label"], names) for split_name, split in dataset.items()}


def class_counts(labels, names: list[str]) -> dict[str, int]:
    """Images per class name, from label ids; every class named, with 0 for those without images."""
    counts = Counter(labels)
    return {name: counts.get(i, 0) for i, name in enumerate(names)}


def build_report(
    files: list[LabelledFile],
    class_names: list[str],
    empty_classes: list[str],
    duplicates: Duplicates,
) -> DataReport:
    usable = [f for f in files if f.record.usable]
    images_per_class: dict[str, dict[str, int]] = {}
    for split in ("train", "validation"):
        counts = Counter(f.label for f in usable if f.split == split)
        if counts or split == "train":
            images_per_class[split] = {name: counts.get(name, 0) for name in class_names}
    unusable = [
        {"split": f.split, "label": f.label, "path": f.record.path, "reason": f.record.reason}
        for f in files
        if not f.record.usable
    ]
    sizes = {}
    if usable:
        sizes = {
            "width": size_stats([f.record.width for f in usable]),
            "height": size_stats([f.record.height for f in usable]),
        }
    return DataReport(
        images_per_class=images_per_class,
        unusable=unusable,
        empty_classes=empty_classes,
        duplicates=duplicates,
        image_sizes=sizes,
        modes=dict(Counter(mode_of(f.record) for f in usable).most_common()),
        formats=dict(Counter(f.record.format for f in usable).most_common()),
        high_bit_values=high_bit_values([f.record for f in usable]),
    )
