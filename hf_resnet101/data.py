"""Loading image folders and Hub datasets into a `DatasetDict` with train and validation splits."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, load_dataset
from datasets import Image as ImageFeature
from transformers.utils import logging

from .errors import UsageError

logger = logging.get_logger(__name__)

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".bmp", ".dib", ".gif", ".tif", ".tiff", ".webp"}
    | {".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".jp2", ".j2k", ".pcx", ".sgi", ".psd", ".icns"}
)
VALIDATION_SPLIT_NAMES = ("validation", "valid", "val")


@dataclass
class ClassFolders:
    """The images of an image folder, grouped by class folder name."""

    root: Path
    files_by_class: dict[str, list[Path]]
    empty_classes: list[str] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return sorted(self.files_by_class)

    @property
    def num_images(self) -> int:
        return sum(len(files) for files in self.files_by_class.values())


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def scan_class_folders(root: str | Path, what: str = "--train_dir") -> ClassFolders:
    """Lists the image files of a folder with one sub-folder per class.

    Raises:
        UsageError: when the folder is missing, holds no class sub-folders, or holds no images.
    """
    root = Path(root)
    if not root.exists():
        raise UsageError(f"{what} {root} does not exist.")
    if not root.is_dir():
        raise UsageError(f"{what} {root} is not a folder: give a folder with one sub-folder of images per class.")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose_images = [p for p in root.iterdir() if p.is_file() and is_image_file(p)]
    if not class_dirs:
        hint = f" It holds {len(loose_images)} images directly:" if loose_images else ""
        raise UsageError(
            f"{what} {root} has no class sub-folders.{hint} put the images of each class in their own "
            f"sub-folder (e.g. {root}/cat/1.jpg, {root}/dog/2.jpg); the folder names become the labels."
        )
    if loose_images:
        logger.warning(f"{len(loose_images)} images directly in {root} (outside any class folder) are ignored.")
    files_by_class, empty = {}, []
    for class_dir in class_dirs:
        files = sorted(p for p in class_dir.rglob("*") if p.is_file() and is_image_file(p))
        if files:
            files_by_class[class_dir.name] = files
        else:
            empty.append(class_dir.name)
    if empty:
        logger.warning(f"Class folders with no images in {root} (left out): {', '.join(empty)}.")
    if not files_by_class:
        raise UsageError(
            f"{what} {root} holds no images in its class sub-folders "
            f"(looked for {', '.join(sorted(IMAGE_EXTENSIONS)[:8])}, ...)."
        )
    return ClassFolders(root=root, files_by_class=files_by_class, empty_classes=empty)


def check_class_sets(train: ClassFolders, validation: ClassFolders | None) -> None:
    if len(train.files_by_class) < 2:
        only = ", ".join(train.class_names)
        raise UsageError(
            f"--train_dir {train.root} has a single class ({only}): classification needs at least two class "
            "sub-folders with images."
        )
    if validation is None:
        return
    unknown = sorted(set(validation.files_by_class) - set(train.files_by_class))
    if unknown:
        raise UsageError(
            f"--validation_dir {validation.root} has classes that the training folder lacks: {', '.join(unknown)}. "
            "Every validation class needs training images; fix the folder names or add the images."
        )
    missing = sorted(set(train.files_by_class) - set(validation.files_by_class))
    if missing:
        logger.warning(f"Classes with no validation images (their accuracy is not measured): {', '.join(missing)}.")


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


def load_image_folders(
    train_dir: str, validation_dir: str | None, train_val_split: float, seed: int, cache_dir: str | None = None
) -> DatasetDict:
    """Loads class folders with `datasets`' imagefolder; splits off a stratified validation set if needed."""
    train = scan_class_folders(train_dir, "--train_dir")
    validation = scan_class_folders(validation_dir, "--validation_dir") if validation_dir else None
    check_class_sets(train, validation)
    data_files = {"train": [str(p) for files in train.files_by_class.values() for p in files]}
    if validation is not None:
        data_files["validation"] = [str(p) for files in validation.files_by_class.values() for p in files]
    dataset = load_dataset("imagefolder", data_files=data_files, cache_dir=cache_dir)
    dataset = _force_class_names(dataset, train.class_names)
    if validation is None:
        dataset = split_off_validation(dataset["train"], train_val_split, seed)
    return dataset


def _force_class_names(dataset: DatasetDict, names: list[str]) -> DatasetDict:
    """Makes the label names those of the training folder (imagefolder infers them from all files)."""
    found = dataset["train"].features["label"].names
    if found == names:
        return dataset
    raise UsageError(f"Class names read by imagefolder {found} differ from the training folders {names}.")


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
    try:
        raw = load_dataset(dataset_name, config_name, cache_dir=cache_dir)
    except FileNotFoundError as error:
        raise UsageError(f"Dataset {dataset_name!r} was not found (on the Hub or locally): {error}") from error
    except ConnectionError as error:
        raise UsageError(
            f"Could not reach the Hub to load dataset {dataset_name!r}. Offline, use a cached copy "
            "(HF_DATASETS_OFFLINE=1) or a local folder with --train_dir."
        ) from error
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
    dataset = DatasetDict(train=raw["train"])
    if val_name:
        dataset["validation"] = raw[val_name]
    dataset = dataset.select_columns([image_column, label_column])
    if image_column != "image":
        dataset = dataset.rename_column(image_column, "image")
    if label_column != "label":
        dataset = dataset.rename_column(label_column, "label")
    if not isinstance(dataset["train"].features["label"], ClassLabel):
        dataset = dataset.class_encode_column("label")
    if not isinstance(dataset["train"].features["image"], ImageFeature):
        dataset = dataset.cast_column("image", ImageFeature())
    if "validation" not in dataset:
        dataset = split_off_validation(dataset["train"], train_val_split, seed)
    return dataset


def limit_samples(dataset: DatasetDict, max_train: int | None, max_eval: int | None, seed: int) -> DatasetDict:
    """Keeps at most `max_train`/`max_eval` images (shuffled with the seed, so classes stay mixed)."""
    for split, limit in (("train", max_train), ("validation", max_eval)):
        if limit is not None and limit < len(dataset[split]):
            dataset[split] = dataset[split].shuffle(seed=seed).select(range(limit))
    return dataset


def image_paths(split: Dataset) -> list[str | None]:
    """The file path of every image of a split (None for images stored as bytes)."""
    column = split.cast_column("image", ImageFeature(decode=False))["image"]
    return [item.get("path") for item in column]


def write_split_files(dataset: DatasetDict, output_dir: str | os.PathLike) -> Path:
    """Writes `splits.csv` (split, label, path) so the split can be audited and reproduced."""
    path = Path(output_dir) / "splits.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    names = dataset["train"].features["label"].names
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "label", "path"])
        for split_name, split in dataset.items():
            for label, image_path in zip(split["label"], image_paths(split), strict=True):
                writer.writerow([split_name, names[label], image_path or ""])
    return path
