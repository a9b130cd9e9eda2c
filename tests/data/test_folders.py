"""Image folders: class folders, the stratified validation split, and messy real folders (bad files left out and
reported, duplicates and leaks found, odd files reaching the model with the right pixels)."""

from __future__ import annotations

import csv
import json
import shutil
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, write_class_images
from messy_data import write_messy_folder
from PIL import Image

from hf_resnet101.data.folders import (
    find_split_folders,
    is_same_or_inside,
    labels_encoded_as_in_training,
    load_image_folders,
    plan_image_folders,
    scan_class_folders,
    stratified_order,
    stratified_split_indices,
)
from hf_resnet101.data.images import IMAGE_EXTENSIONS, to_rgb
from hf_resnet101.errors import UsageError


def test_split_folders_are_found_under_the_data_folder(tmp_path):
    (tmp_path / "cat").mkdir()
    assert find_split_folders(tmp_path) == (tmp_path, None)
    (tmp_path / "train").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "train" / "1.png")
    assert find_split_folders(tmp_path) == (tmp_path, None)  # a class of trains, beside cats
    (tmp_path / "train" / "cat").mkdir()
    assert find_split_folders(tmp_path) == (tmp_path / "train", None)
    (tmp_path / "val").mkdir()
    assert find_split_folders(tmp_path) == (tmp_path / "train", tmp_path / "val")


def test_split_folders_are_found_by_their_names_in_any_case(tmp_path, capsys):
    write_class_images(tmp_path / "Training", per_class=4, seed=1)
    write_class_images(tmp_path / "Validation", per_class=2, seed=2)
    assert find_split_folders(tmp_path) == (tmp_path / "Training", tmp_path / "Validation")
    with pytest.raises(
        UsageError, match="split folders, not class folders: give --train_dir .*Training --validation_dir"
    ):
        scan_class_folders(tmp_path)
    out, _ = run_cli(capsys, ["inspect", str(tmp_path)])
    assert f"validation: from {tmp_path / 'Validation'}" in out


def test_folders_are_compared_as_resolved_paths(tmp_path):
    (tmp_path / "data" / "cat").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "data")
    assert is_same_or_inside(tmp_path / "link" / "out", tmp_path / "data")  # through a link
    assert is_same_or_inside(tmp_path / "data" / "cat" / ".." / "x", tmp_path / "data")
    assert is_same_or_inside(tmp_path / "data", tmp_path / "data")
    assert not is_same_or_inside(tmp_path / "data-out", tmp_path / "data")  # a name that only starts the same
    assert not is_same_or_inside(tmp_path, tmp_path / "data")


def test_a_dataset_split_missing_a_class_keeps_the_training_label_ids():
    from datasets import ClassLabel, Dataset, DatasetDict

    plain = DatasetDict(
        train=Dataset.from_dict({"label": ["cat", "owl", "dog", "owl"]}),
        validation=Dataset.from_dict({"label": ["owl", "cat"]}),  # no dog: encoded alone, owl would become 1 (dog)
    )
    encoded = labels_encoded_as_in_training(plain, "birds")
    names = encoded["train"].features["label"].names
    assert names == ["cat", "dog", "owl"] and encoded["validation"].features["label"].names == names
    assert [names[i] for i in encoded["validation"]["label"]] == ["owl", "cat"]
    # Class labels of their own in validation are matched by name too
    other = ClassLabel(names=["cat", "owl"])
    labelled = DatasetDict(
        train=encoded["train"], validation=Dataset.from_dict({"label": [1, 0]}).cast_column("label", other)
    )
    assert [names[i] for i in labels_encoded_as_in_training(labelled, "birds")["validation"]["label"]] == [
        "owl",
        "cat",
    ]
    plain["validation"] = Dataset.from_dict({"label": ["owl", "emu"]})
    with pytest.raises(
        UsageError, match="validation split of dataset 'birds' has labels that no training image has: emu"
    ):
        labels_encoded_as_in_training(plain, "birds")


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


def test_training_leaves_out_what_imagefolder_cannot_load_and_evaluate_reads_it(tmp_path):
    """imagefolder skips .avif and .qoi: a training scan that counted them would report images never trained on."""
    write_class_images(tmp_path / "data", per_class=2, classes={"a": (0, 0, 0), "b": (9, 9, 9)})
    Image.new("RGB", (8, 8)).save(tmp_path / "data" / "a" / "photo.avif")
    (tmp_path / "data" / "a" / "photo.heic").write_bytes(b"\0\0\0\x18ftypheic")
    (tmp_path / "data" / "a" / "notes.txt").write_text("x")
    training = scan_class_folders(tmp_path / "data")
    assert training.num_images == 4
    assert [p.name for p in training.left_out_files] == ["photo.avif", "photo.heic"]
    evaluation = scan_class_folders(tmp_path / "data", "DATA", extensions=IMAGE_EXTENSIONS)
    assert evaluation.num_images == 5 and [p.name for p in evaluation.left_out_files] == ["photo.heic"]


def test_scan_reports_each_unusable_file_with_its_reason(tmp_path):
    expected = write_messy_folder(tmp_path / "data")
    plan = plan_image_folders(str(tmp_path / "data"), None, 0.2, seed=0, progress=False)
    unusable = {item["path"].rsplit("/", 1)[-1]: item["reason"] for item in plan.report.unusable}
    assert set(unusable) == set(expected)
    for name, word in expected.items():
        assert word in unusable[name], (name, unusable[name])
    all_files = [p for paths in plan.data_files.values() for p in paths]
    assert not any(p.endswith(("notes.txt", ".DS_Store", ".hidden.png")) for p in all_files)
    assert len(all_files) == 6 + 7 + 6 + 3  # plain images and every odd format
    assert plan.report.empty_classes == ["empty class"]
    assert plan.class_names == ["Red Things", "blue"]


def test_strict_lists_every_unusable_file_at_once(finetune_main, capsys, tmp_path):
    write_messy_folder(tmp_path / "data")
    code = finetune_main(["--train_dir", str(tmp_path / "data"), "--output_dir", str(tmp_path / "o"), "--strict"])
    err = capsys.readouterr().err
    assert code == 2
    for name in ("empty.jpg", "truncated.png", "not_really.jpg", "huge.png"):
        assert name in err


def test_training_on_a_messy_folder_completes_and_reports(finetune_main, tiny_resnet, tmp_path, caplog):
    write_messy_folder(tmp_path / "data")
    blue = tmp_path / "data" / "blue"
    Image.new("RGB", (8, 8)).save(blue / "photo.avif")  # predict reads it; training's imagefolder cannot
    (blue / "photo.heic").write_bytes(b"\0\0\0\x18ftypheic")
    (blue / "2024").mkdir()
    Image.new("RGB", (8, 8)).save(blue / "2024" / "nested.png")
    # Links: one that leads nowhere and one to itself are listed as unreadable; a folder link back to the class
    # folder (a loop) does not count the class's own images as nested ones.
    (blue / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (blue / "loop.jpg").symlink_to(blue / "loop.jpg")
    (blue / "2024" / "up").symlink_to(blue, target_is_directory=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "data" / "beside.png")  # no class folder: no label
    out = tmp_path / "out"
    args = ["--train_dir", str(tmp_path / "data"), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    assert finetune_main([*args, "--eval_strategy", "epoch"]) == 0
    report = json.loads((out / "data_report.json").read_text())
    unreadable = {item["path"]: item["reason"] for item in report["unusable"]}
    assert unreadable["data/blue/gone.jpg"].startswith("unreadable: ") and unreadable["data/blue/loop.jpg"].startswith(
        "unreadable: "
    )
    assert len(report["unusable"]) == 6 and not any(Path(path).is_absolute() for path in unreadable)
    assert (
        report["images_per_class"]["train"]["Red Things"] + report["images_per_class"]["validation"]["Red Things"]
        == 13
    )
    # Nothing is left out without a word: the log, the report and the card say what training did not read.
    assert sorted(report["left_out_files"]) == ["data/blue/photo.avif", "data/blue/photo.heic"]
    assert report["nested_images"] == 1 and report["loose_images"] == 1
    assert "predict and evaluate read .avif and .qoi files, but training cannot" in caplog.text
    assert "images in sub-folders of class folders, left out: 1" in caplog.text
    card = (out / "README.md").read_text()
    assert "2 files of a type training does not read" in card
    assert "1 images in sub-folders of class folders were left out" in card
    assert "1 images beside the class folders (with no class) were left out" in card
    assert "images beside the class folders, left out: 1" in caplog.text


def test_odd_files_reach_the_model_with_the_right_pixels(tmp_path):
    write_messy_folder(tmp_path / "data")
    dataset, _ = load_image_folders(str(tmp_path / "data"), None, 0.2, seed=0, progress=False)
    from datasets import concatenate_datasets

    both = concatenate_datasets([dataset["train"], dataset["validation"]])
    by_name = {}
    for item in both.cast_column("image", __import__("datasets").Image(decode=False)):
        by_name[item["image"]["path"].rsplit("/", 1)[-1]] = item["image"]["path"]
    ramp = np.asarray(to_rgb(Image.open(by_name["ramp16.png"])))
    assert len(set(ramp[0, :, 0].tolist())) > 50
    assert to_rgb(Image.open(by_name["rotated.JPG"])).size == (20, 40)


def test_identical_images_in_two_classes_are_an_error_unless_deduped(finetune_main, capsys, tiny_resnet, tmp_path):
    data = write_class_images(tmp_path / "data", per_class=6)
    shutil.copy(data / "cat" / "img_000.png", data / "Blue Jay" / "copy_of_cat.png")
    args = ["--train_dir", str(data), "--output_dir", str(tmp_path / "o"), "--model_name_or_path", str(tiny_resnet)]
    assert finetune_main(args) == 2
    err = capsys.readouterr().err
    assert "copy_of_cat.png" in err and "different labels" in err and "--dedupe" in err
    assert finetune_main([*args, "--dedupe", "--eval_strategy", "no"]) == 0
    report = json.loads((tmp_path / "o" / "data_report.json").read_text())
    assert len(report["dropped_conflicting"]) == 2
    found = sum(sum(counts.values()) for counts in report["images_per_class"].values())
    used = sum(sum(counts.values()) for counts in report["images_used_per_class"].values())
    assert (found, used, report["left_out_by"]) == (19, 17, ["--dedupe"])
    assert "Of the 19 usable images found, --dedupe left out 2." in (tmp_path / "o" / "README.md").read_text()


def test_dedupe_that_empties_a_class_says_so(tmp_path):
    data = write_class_images(tmp_path / "data", per_class=6)
    (data / "kitty").mkdir()
    for i in range(2):  # every image of kitty is a copy of a cat
        shutil.copy(data / "cat" / f"img_00{i}.png", data / "kitty" / f"k{i}.png")
    with pytest.raises(UsageError, match="--dedupe left no training images in class kitty: every one is a copy"):
        plan_image_folders(str(data), None, 0.15, seed=0, dedupe=True, progress=False)


def test_a_class_without_validation_images_is_named(tmp_path, caplog):
    data = write_class_images(tmp_path / "data", per_class=6)
    (data / "rare").mkdir()
    shutil.copy(data / "cat" / "img_000.png", data / "rare" / "only.png")  # one image: it stays in training
    (data / "cat" / "img_000.png").unlink()
    plan = plan_image_folders(str(data), None, 0.15, seed=0, progress=False)
    assert "rare" in plan.class_names and not any("/rare/" in p for p in plan.data_files["validation"])
    assert "Classes with no validation images (their accuracy is not measured" in caplog.text
    assert "rare (1 training image). Add images to them (a class needs two" in caplog.text


def test_a_class_missing_from_the_validation_folder_is_named_with_its_remedy(tmp_path, caplog):
    train = write_class_images(tmp_path / "train", per_class=4)
    validation = write_class_images(tmp_path / "val", per_class=2, seed=1)
    shutil.rmtree(validation / "cat")
    plan_image_folders(str(train), str(validation), 0.15, seed=0, progress=False)
    assert "cat (4 training images). Add images of them to --validation_dir." in caplog.text


@pytest.mark.parametrize("validation", ["copies", "unreadable"])
def test_no_image_left_for_validation_is_said_before_loading(finetune_main, capsys, tmp_path, validation):
    """A validation folder of copies of training images under --dedupe, or of files that cannot be read: the run
    says so (it ended in a traceback from `datasets`: 'Instruction "validation" corresponds to no data')."""
    train = write_class_images(tmp_path / "train", per_class=6)
    val = tmp_path / "validation"
    for name in ("cat", "Blue Jay"):
        (val / name).mkdir(parents=True)
        if validation == "copies":
            shutil.copy(train / name / "img_000.png", val / name / "copy.png")
        else:
            (val / name / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    argv = ["--train_dir", str(train), "--validation_dir", str(val), "--output_dir", str(out), "--dedupe"]
    assert finetune_main(argv) == 2
    err = capsys.readouterr().err
    expected = {
        "copies": "of the 2 validation images, 2 are copies of training images, which --dedupe left out",
        "unreadable": "of the 2 validation images, 2 cannot be read (listed above)",
    }[validation]
    assert f"No image is left for validation: {expected}." in err and "Traceback" not in err
    assert not out.exists()


def test_the_split_keeps_identical_images_of_a_class_together(tmp_path):
    """Six copies of one cat beside six other cats: the split holds out whole groups of copies, so it makes no leak
    of its own (it put copies on both sides), and the copies are one group in the report."""
    data = write_class_images(tmp_path / "data", per_class=6)
    for i in range(6):
        shutil.copy(data / "cat" / "img_000.png", data / "cat" / f"same_{i}.png")
    for seed in range(5):
        plan = plan_image_folders(str(data), None, 0.15, seed=seed, progress=False)
        copies = [path for path in (*plan.data_files["train"], *plan.data_files["validation"]) if "same_" in path]
        assert len(copies) == 6 and not plan.report.duplicates.train_validation_leaks
        assert any("/cat/" in path for path in plan.data_files["validation"])
        [group] = plan.report.duplicates.within_class
        assert len(group) == 7


def test_leakage_between_train_and_validation(tmp_path):
    train = write_class_images(tmp_path / "train", per_class=6, seed=1)
    validation = write_class_images(tmp_path / "val", per_class=3, seed=2)
    shutil.copy(train / "cat" / "img_001.png", validation / "cat" / "leaked.png")
    shutil.copy(train / "cat" / "img_002.png", train / "cat" / "twin.png")
    plan = plan_image_folders(str(train), str(validation), 0.15, seed=0, progress=False)
    assert len(plan.report.duplicates.train_validation_leaks) == 1
    assert len(plan.report.duplicates.within_class) == 1
    assert any(p.endswith("leaked.png") for p in plan.data_files["validation"])
    deduped = plan_image_folders(str(train), str(validation), 0.15, seed=0, dedupe=True, progress=False)
    assert not any(p.endswith("leaked.png") for p in deduped.data_files["validation"])
    assert deduped.report.dropped_from_validation[0].endswith("leaked.png")


def test_a_validation_folder_at_another_depth_than_training(finetune_main, tiny_resnet, tmp_path):
    """imagefolder drops its labels when the files lie at different depths; the scan's labels are used instead."""
    train = write_class_images(tmp_path / "data" / "birds" / "train", per_class=4, seed=1)
    validation = write_class_images(tmp_path / "val", per_class=2, seed=2)
    out = tmp_path / "out"
    argv = ["--train_dir", str(train), "--validation_dir", str(validation), "--output_dir", str(out),
            "--model_name_or_path", str(tiny_resnet), "--max_steps", "1", "--eval_strategy", "no"]  # fmt: skip
    assert finetune_main(argv) == 0
    rows = list(csv.DictReader((out / "splits.csv").open()))
    assert rows and all(row["path"].split("/")[-2] == row["label"] for row in rows)
    assert Counter(row["split"] for row in rows) == {"train": 12, "validation": 6}


@pytest.mark.parametrize("name", ["img[1].png", "a*b?.png"])
def test_file_names_with_glob_characters(tmp_path, name):
    data = write_class_images(tmp_path / "data", per_class=3)
    (data / "cat" / "img_000.png").rename(data / "cat" / name)
    dataset, _ = load_image_folders(str(data), None, 0.3, seed=0, progress=False)
    assert len(dataset["train"]) + len(dataset["validation"]) == 9


def test_class_names_in_either_unicode_form_are_one_label_and_look_alikes_are_named(tmp_path, caplog):
    """A validation folder written on macOS (decomposed names) matches training's composed names; two folders
    that differ only in that form are one class; names that differ only in case or end spaces are named."""
    composed = "élan"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    train = write_class_images(tmp_path / "train", per_class=3, classes={composed: (50, 190, 60), "cat": (1, 2, 3)})
    write_class_images(tmp_path / "train", per_class=2, seed=1, classes={decomposed: (60, 180, 70)})
    write_class_images(tmp_path / "train", per_class=2, seed=2, classes={"Cat": (9, 9, 9), " cat ": (8, 8, 8)})
    validation = write_class_images(tmp_path / "val", per_class=2, seed=3, classes={decomposed: (50, 190, 60)})
    write_class_images(tmp_path / "val", per_class=1, seed=4, classes={"cat": (1, 2, 3), "Cat": (9, 9, 9)})
    write_class_images(tmp_path / "val", per_class=1, seed=5, classes={" cat ": (8, 8, 8)})
    plan = plan_image_folders(str(train), str(validation), 0.15, seed=0, progress=False)
    assert plan.class_names == sorted([composed, "cat", "Cat", " cat "])
    assert plan.report.images_per_class["train"][composed] == 5
    assert plan.report.images_per_class["validation"][composed] == 2
    assert (
        "differ only in their Unicode form (composed or decomposed, as macOS and zip files write them)" in caplog.text
    )
    assert "differ only in case or in spaces at their ends are separate classes: ' cat ', 'Cat', 'cat'" in caplog.text


def test_a_file_name_that_datasets_cannot_open_is_left_out_and_named(tmp_path):
    """fsspec reads '::' as a chain of file systems: such a file is listed as unusable, and the rest train."""
    data = write_class_images(tmp_path / "data", per_class=3)
    (data / "cat" / "img_000.png").rename(data / "cat" / "shot::1.png")
    dataset, report = load_image_folders(str(data), None, 0.3, seed=0, progress=False)
    assert len(dataset["train"]) + len(dataset["validation"]) == 8
    [(path, reason)] = [(item["path"], item["reason"]) for item in report.unusable]
    assert path.endswith("shot::1.png") and reason == "its path holds '::', which datasets cannot open: rename it"


def test_a_sample_limit_keeps_the_classes_in_their_shares():
    labels = [0] * 5 + [1] * 5 + [2] * 5
    order = stratified_order(labels, seed=0)
    assert sorted(order) == list(range(15)) and {labels[i] for i in order[:3]} == {0, 1, 2}
    many = [0] * 80 + [1] * 20
    kept = [many[i] for i in stratified_order(many, seed=1)[:10]]
    assert kept.count(0) == 8 and kept.count(1) == 2
    assert stratified_order(many, seed=1) == stratified_order(many, seed=1) != stratified_order(many, seed=2)


def test_max_train_samples_keeps_every_class_or_says_which_it_lost(
    finetune_main, image_folder, tiny_resnet, tmp_path, caplog
):
    out = tmp_path / "out"
    argv = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet),
            "--max_steps", "1", "--eval_strategy", "no", "--per_device_train_batch_size", "2"]  # fmt: skip
    assert finetune_main([*argv, "--max_train_samples", "3"]) == 0
    trained = [row["label"] for row in csv.DictReader((out / "splits.csv").open()) if row["split"] == "train"]
    assert len(trained) == 3 and len(set(trained)) == 3  # one of each class, not three of one
    # The summary, the report and the card count the images trained on, and say what the limit left out.
    report = json.loads((out / "data_report.json").read_text())
    found = sum(report["images_per_class"]["train"].values())
    assert sum(report["images_used_per_class"]["train"].values()) == 3 < found
    assert report["left_out_by"] == ["--max_train_samples 3"] and report["num_train_images"] == 3
    assert f"(of {found} usable found; --max_train_samples 3 left out the rest)" in caplog.text
    assert "--max_train_samples 3 left out" in (out / "README.md").read_text()
    hyperparameters = json.loads((out / "card_inputs.json").read_text())["hyperparameters"]
    assert hyperparameters["max_steps"] == 1 and "num_train_epochs" not in hyperparameters  # not the unused default
    assert finetune_main([*argv, "--max_train_samples", "2", "--overwrite_output_dir"]) == 0
    assert "--max_train_samples 2 leaves no training images in class" in caplog.text
    # A limit above the split's size leaves nothing out and is not named; one that empties a validation class is.
    caplog.clear()
    limits = ["--max_train_samples", "1000", "--max_eval_samples", "2", "--overwrite_output_dir"]
    assert finetune_main([*argv, *limits]) == 0
    assert json.loads((out / "data_report.json").read_text())["left_out_by"] == ["--max_eval_samples 2"]
    assert "--max_train_samples 1000" not in caplog.text
    assert "--max_eval_samples 2 leaves no validation images in class" in caplog.text
    assert "its accuracy is not measured, and the card shows n/a" in caplog.text


def test_splits_name_images_of_a_linked_class_folder_by_their_place_in_the_data(finetune_main, tiny_resnet, tmp_path):
    data = write_class_images(tmp_path / "data" / "train", per_class=6)
    elsewhere = tmp_path / "store" / "birds"
    shutil.move(str(data / "cat"), str(elsewhere))
    (data / "cat").symlink_to(elsewhere, target_is_directory=True)  # a class kept on another disk, linked in
    out = tmp_path / "out"
    argv = ["--train_dir", str(data), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet),
            "--max_steps", "1", "--eval_strategy", "no"]  # fmt: skip
    assert finetune_main(argv) == 0
    cats = [row["path"] for row in csv.DictReader((out / "splits.csv").open()) if row["label"] == "cat"]
    assert cats and all(path.startswith("train/cat/img_") for path in cats), cats


def test_a_validation_row_of_splits_csv_names_the_validation_folders_file(tmp_path):
    """--train_dir a/images --validation_dir b/images: both folders write `images/...` rows in splits.csv."""
    import json

    from hf_resnet101.data.folders import data_roots, split_image_path
    from hf_resnet101.outputs import DATA_ROOTS

    for side in ("a", "b"):
        (tmp_path / side / "images" / "cat").mkdir(parents=True)
        (tmp_path / side / "images" / "cat" / "1.png").write_bytes(b"x")
    roots = data_roots(str(tmp_path / "a" / "images"), str(tmp_path / "b" / "images"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / DATA_ROOTS).write_text(json.dumps([str(root) for root in roots]))
    assert split_image_path(tmp_path / "out", "images/cat/1.png", "validation") == tmp_path / "b/images/cat/1.png"
    assert split_image_path(tmp_path / "out", "images/cat/1.png", "train") == tmp_path / "a/images/cat/1.png"


def image_dataset(folder):
    """A datasets Dataset of the images under `folder` (class sub-folders), labels as strings."""
    from datasets import Dataset, Features, Value
    from datasets import Image as ImageFeature

    paths = sorted(str(p) for p in folder.rglob("*.png"))
    rows = {"image": paths, "label": [Path(p).parent.name for p in paths]}
    return Dataset.from_dict(rows, features=Features({"image": ImageFeature(), "label": Value("string")}))


def test_a_dataset_saved_with_save_to_disk_is_loaded_and_one_split_is_the_training_one(tmp_path):
    """A folder save_to_disk wrote stopped the run with datasets' traceback ("Please use load_from_disk")."""
    from hf_resnet101.data.folders import load_hub_dataset

    images = write_class_images(tmp_path / "images", per_class=4)
    image_dataset(images).save_to_disk(str(tmp_path / "saved"))
    dataset = load_hub_dataset(str(tmp_path / "saved"), None, "image", "label", 0.25, seed=0)
    assert set(dataset) == {"train", "validation"} and len(dataset["train"]) + len(dataset["validation"]) == 12
    assert dataset["train"].features["label"].names == ["Blue Jay", "cat", "élan vital"]


def test_rows_without_a_label_are_named_before_anything_trains(tmp_path):
    from datasets import Dataset, DatasetDict

    from hf_resnet101.data.folders import check_every_row_labelled

    dataset = DatasetDict(train=Dataset.from_dict({"label": ["cat", None, "dog", None]}))
    with pytest.raises(
        UsageError, match=r"2 row\(s\) of the train split of dataset 'pets' have no 'label' \(rows 1, 3\)"
    ):
        check_every_row_labelled(dataset, "pets", "label")
    check_every_row_labelled(DatasetDict(train=Dataset.from_dict({"label": ["cat", "dog"]})), "pets", "label")


def test_an_unknown_dataset_config_is_one_line(tmp_path):
    from hf_resnet101.data.folders import load_hub_dataset

    image_dataset(write_class_images(tmp_path / "images", per_class=2)).to_parquet(
        str(tmp_path / "pq" / "data" / "train-00000-of-00001.parquet")
    )
    with pytest.raises(UsageError, match="could not be loaded: BuilderConfig 'nope' not found"):
        load_hub_dataset(str(tmp_path / "pq"), "nope", "image", "label", 0.25, seed=0)
