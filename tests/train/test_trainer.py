"""The Trainer the run uses: its loss for every process count and accumulation, its class counts, its evaluation
read in process."""

from __future__ import annotations

import json
import re
import sys
from types import SimpleNamespace

import pytest
from conftest import REPO_ROOT, logged_losses, run_offline, write_class_images
from transformers import TrainingArguments

from hf_resnet101.train.trainer import loading_in_process

RECIPE = str(REPO_ROOT / "recipes" / "finetune.py")


def test_loaders_made_in_process_leave_the_run_arguments_as_they_were(tmp_path):
    args = TrainingArguments(
        str(tmp_path), dataloader_num_workers=2, dataloader_persistent_workers=True, dataloader_drop_last=True
    )
    trainer = SimpleNamespace(args=args)
    with loading_in_process(trainer):
        assert (trainer.args.dataloader_num_workers, trainer.args.dataloader_persistent_workers) == (0, False)
        assert not trainer.args.dataloader_drop_last  # evaluations score every validation image
    assert trainer.args is args and (args.dataloader_num_workers, args.dataloader_persistent_workers) == (2, True)
    assert args.dataloader_drop_last


def test_drop_last_drops_training_batches_only(finetune_main, tiny_resnet, tmp_path):
    train = write_class_images(tmp_path / "train", per_class=4, seed=1)
    validation = write_class_images(tmp_path / "val", per_class=12, seed=2)  # 36 images: one batch of 32 and 4
    out = tmp_path / "out"
    argv = [
        "--train_dir",
        str(train),
        "--validation_dir",
        str(validation),
        "--output_dir",
        str(out),
        "--model_name_or_path",
        str(tiny_resnet),
        "--dataloader_drop_last",
        "--eval_strategy",
        "epoch",
    ]
    assert finetune_main(argv) == 0
    card_inputs = json.loads((out / "card_inputs.json").read_text())
    assert sum(card_inputs["per_class"]["support"]) == 36
    assert (out / "README.md").is_file()


def test_two_processes_match_one_with_the_same_global_batch(image_folder, tiny_resnet, tmp_path):
    # fp32: the evaluation is compared with the saved model's loss computed in fp32 (`auto` is bf16 on some CPUs)
    common = ["--train_dir", str(image_folder), "--model_name_or_path", str(tiny_resnet), "--eval_strategy", "epoch",
              "--save_strategy", "no", "--logging_steps", "1", "--precision", "fp32"]  # fmt: skip
    single = run_offline([sys.executable, RECIPE, *common, "--output_dir", str(tmp_path / "one"),
                  "--per_device_train_batch_size", "8"])  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip
    # A learning rate outside the page's range (the first logged loss comes before any update): warned about once
    two = ["--output_dir", str(tmp_path / "two"), "--per_device_train_batch_size", "4", "--learning_rate", "1e-6",
           "--per_device_eval_batch_size", "1"]  # fmt: skip
    double = run_offline([*launch, RECIPE, *common, *two], HF_RESNET101_CACHE=str(tmp_path / "cache"))
    assert double.returncode == 0, double.stderr[-3000:]
    assert "x 2 process(es)" in double.stderr and "global 8" in double.stderr
    assert double.stderr.count("Run summary") == 1  # the main process reports, the other stays quiet
    assert double.stderr.count("--learning_rate 1e-06 is outside") == 1
    assert "find_unused_parameters=True" not in double.stderr  # DDP's extra graph pass at every step is off
    # Scanned once (one progress bar starts); the second process finds every verdict in the cache.
    assert len(re.findall(r"Scanning images:\s+0%", double.stderr)) == 1
    one = json.loads((tmp_path / "one" / "trainer_state.json").read_text())
    two = json.loads((tmp_path / "two" / "trainer_state.json").read_text())
    assert one["global_step"] == two["global_step"] == 3
    # The same images make the first global batch in both runs, before any update: the logged loss is the same
    # loss, not the process count times it (BatchNorm sees 4 images a process instead of 8, hence the tolerance).
    one_losses, two_losses = logged_losses(tmp_path / "one"), logged_losses(tmp_path / "two")
    assert two_losses[1] == pytest.approx(one_losses[1], rel=0.15), (one_losses, two_losses)
    metrics = json.loads((tmp_path / "two" / "eval_results.json").read_text())
    assert metrics["eval_samples_per_second"] > 0 and 0 <= metrics["eval_accuracy"] <= 1
    # Each process scored half the validation images: with the main process's BatchNorm statistics, the ones saved
    # (each process's own, before: the metrics were not the saved model's).
    assert metrics["eval_loss"] == pytest.approx(saved_model_loss(tmp_path / "two", image_folder), rel=1e-4)


def saved_model_loss(output_dir, image_folder) -> float:
    """The mean cross-entropy of the saved model on the run's validation images (splits.csv), one image at a time."""
    import csv

    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(output_dir).eval()
    processor = AutoImageProcessor.from_pretrained(output_dir)
    rows = [row for row in csv.DictReader((output_dir / "splits.csv").open(encoding="utf-8"))
            if row["split"] == "validation"]  # fmt: skip
    losses = []
    for row in rows:
        with Image.open(image_folder.parent / row["path"]) as image:  # paths from the folder above the data
            pixels = processor(image.convert("RGB"), return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            logits = model(pixel_values=pixels).logits
        label = torch.tensor([model.config.label2id[row["label"]]])
        losses.append(torch.nn.functional.cross_entropy(logits, label).item())
    assert len(losses) > 1
    return sum(losses) / len(losses)


def test_gradient_accumulation_logs_the_loss_of_the_whole_batch(finetune_main, image_folder, tiny_resnet, tmp_path):
    common = ["--train_dir", str(image_folder), "--model_name_or_path", str(tiny_resnet), "--eval_strategy", "no",
              "--save_strategy", "no", "--logging_steps", "1", "--max_steps", "1"]  # fmt: skip
    assert finetune_main([*common, "--output_dir", str(tmp_path / "big"), "--per_device_train_batch_size", "8"]) == 0
    assert finetune_main([*common, "--output_dir", str(tmp_path / "accumulated"), "--per_device_train_batch_size",
                          "4", "--gradient_accumulation_steps", "2"]) == 0  # fmt: skip
    big, accumulated = logged_losses(tmp_path / "big")[1], logged_losses(tmp_path / "accumulated")[1]
    # Two half batches average to the whole batch's loss (not their sum); BatchNorm statistics differ slightly.
    assert accumulated == pytest.approx(big, rel=0.15)
