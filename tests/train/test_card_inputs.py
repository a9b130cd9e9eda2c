"""What the card is made from: where the data came from, said without local paths, and what the figures mean."""

from __future__ import annotations

import shutil

from conftest import write_class_images

from hf_resnet101.config.options import DataArguments
from hf_resnet101.data.report import DataReport, Duplicates
from hf_resnet101.train.card_inputs import describe_data_source, validation_copies_of_training


def test_data_source_names_the_folders_not_the_paths_above_them(tmp_path, monkeypatch):
    folders = DataArguments(train_dir="/home/me/secret/birds/train", validation_dir="/home/me/secret/birds/val")
    described = describe_data_source(folders)
    assert described == "image folder `birds/train` and `birds/val`" and "secret" not in described
    assert describe_data_source(DataArguments(train_dir="/home/alice/birds")) == "image folder `birds`"
    monkeypatch.chdir(tmp_path)
    assert describe_data_source(DataArguments(train_dir="messy")) == "image folder `messy`"  # not `/messy`
    assert describe_data_source(DataArguments(dataset_name="cifar10")) == "the dataset `cifar10`"


def test_only_validation_copies_the_run_kept_are_counted():
    leaks = [{"label": "cat", "train": ["t/1.png"], "validation": ["v/1.png", "v/2.png"]}]
    report = DataReport({}, [], [], Duplicates(train_validation_leaks=leaks), {}, {}, {})
    assert validation_copies_of_training(report) == 2
    # --max_train_samples and --max_eval_samples: only copies evaluated whose original was trained on count
    assert validation_copies_of_training(report, {"train": {"t/1.png"}, "validation": {"v/2.png", "v/3.png"}}) == 1
    assert validation_copies_of_training(report, {"train": {"t/9.png"}, "validation": {"v/1.png", "v/2.png"}}) == 0
    report.dropped_from_validation = ["v/1.png", "v/2.png"]  # --dedupe
    assert validation_copies_of_training(report) == 0


def test_the_card_says_validation_holds_training_images_and_the_input_size_used(finetune_main, tiny_resnet, tmp_path):
    train = write_class_images(tmp_path / "birds" / "train", per_class=6, seed=1)
    validation = write_class_images(tmp_path / "birds" / "validation", per_class=2, seed=2)
    shutil.copy(train / "cat" / "img_000.png", validation / "cat" / "copy.png")
    out = tmp_path / "out"
    args = ["--train_dir", str(train), "--validation_dir", str(validation), "--output_dir", str(out),
            "--model_name_or_path", str(tiny_resnet), "--max_steps", "1", "--eval_strategy", "no"]  # fmt: skip
    assert finetune_main(args) == 0
    card = " ".join((out / "README.md").read_text().split())
    assert "Evaluated on the validation split (7 images). 1 of them is identical to training images" in card
    assert "the figures below overstate the accuracy on new images" in card
    assert "| image_size | 32 |" in card  # the processor's size, not None
    assert "Source: image folder `birds/train` and `birds/validation`." in card


def test_copies_are_counted_among_the_images_the_run_used(finetune_main, tiny_resnet, tmp_path):
    """With --max_train_samples and --max_eval_samples, the card counted every copy the scan found: 2 claimed
    where none of the evaluated images had been trained on."""
    import csv
    import json

    train = write_class_images(tmp_path / "d" / "train", per_class=6, seed=1)
    validation = write_class_images(tmp_path / "d" / "validation", per_class=2, seed=2)
    for name in ("cat", "Blue Jay"):
        shutil.copy(train / name / "img_000.png", validation / name / "copy.png")
    out = tmp_path / "out"
    args = ["--train_dir", str(train), "--validation_dir", str(validation), "--output_dir", str(out),
            "--model_name_or_path", str(tiny_resnet), "--max_steps", "1", "--eval_strategy", "no",
            "--max_train_samples", "4", "--max_eval_samples", "5"]  # fmt: skip
    assert finetune_main(args) == 0
    rows = list(csv.DictReader((out / "splits.csv").open(encoding="utf-8")))
    used = {split: {(tmp_path / "d" / row["path"]).read_bytes() for row in rows if row["split"] == split}
            for split in ("train", "validation")}  # fmt: skip
    expected = len(used["validation"] & used["train"])
    assert json.loads((out / "card_inputs.json").read_text())["validation_copies_of_training"] == expected
    card = " ".join((out / "README.md").read_text().split())
    assert "Up to" not in card
    assert ("identical to training images" in card) == (expected > 0)
