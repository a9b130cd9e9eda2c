"""Folder scanning and the stratified validation split."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import write_class_images

from hf_resnet101.data.folders import load_image_folders, scan_class_folders, stratified_split_indices


def test_split_holds_out_every_class_and_is_reproducible():
    labels = [0] * 100 + [1] * 10 + [2] * 2 + [3] * 1
    train, val = stratified_split_indices(labels, 0.15, seed=7)
    counts = Counter(labels[i] for i in val)
    assert counts == {0: 15, 1: 2, 2: 1}  # a single-image class stays in training
    assert sorted(train + val) == list(range(len(labels)))
    assert stratified_split_indices(labels, 0.15, seed=7) == (train, val)
    assert stratified_split_indices(labels, 0.15, seed=8) != (train, val)


@pytest.mark.parametrize("fraction", [0.01, 0.5, 0.99])
def test_split_keeps_at_least_one_training_image_per_class(fraction):
    labels = [0] * 3 + [1] * 2
    train, val = stratified_split_indices(labels, fraction, seed=0)
    assert {labels[i] for i in train} == {0, 1}
    assert {labels[i] for i in val} == {0, 1}


def test_label_names_are_folder_names_exactly(tmp_path):
    classes = {"Blue Jay": (0, 0, 200), "élan": (0, 200, 0), "UPPER case": (200, 0, 0)}
    write_class_images(tmp_path / "data", per_class=4, classes=classes)
    (tmp_path / "data" / "Blue Jay" / ".DS_Store").write_bytes(b"\0\1")
    (tmp_path / "data" / "Blue Jay" / "notes.txt").write_text("x")
    (tmp_path / "data" / "empty class").mkdir()
    dataset, _ = load_image_folders(str(tmp_path / "data"), None, 0.25, seed=0)
    assert dataset["train"].features["label"].names == sorted(classes)
    assert len(dataset["train"]) + len(dataset["validation"]) == 12
    assert scan_class_folders(tmp_path / "data").empty_classes == ["empty class"]


def test_upper_case_extensions_are_images(tmp_path):
    write_class_images(tmp_path / "data", per_class=2, classes={"a": (0, 0, 0), "b": (1, 1, 1)})
    for image in (tmp_path / "data").rglob("*.png"):
        image.rename(image.with_suffix(".PNG"))
    assert scan_class_folders(tmp_path / "data").num_images == 4
