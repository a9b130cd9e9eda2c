"""Presets: the page's dataset-size tiers, their recommendations, ranges and cost warnings."""

from __future__ import annotations

import json

import pytest
from conftest import write_class_images

from hf_resnet101.config.presets import (
    describe_tier,
    evaluation_cost_warning,
    range_warnings,
    resolve_settings,
    tier_for,
)


@pytest.mark.parametrize(
    ("images", "tier"),
    [(500, "tiny"), (1_999, "tiny"), (2_000, "small"), (4_999, "small"), (5_000, "medium"), (20_000, "large"),
     (100_000, "very_large")],
)  # fmt: skip
def test_tiers_follow_the_page(images, tier):
    assert tier_for(images).name == tier


def test_page_recommendations_per_tier():
    assert tier_for(3_000).recommended() == {
        "learning_rate": 2e-5, "num_train_epochs": 12, "per_device_train_batch_size": 8, "augmentation": "heavy"
    }  # fmt: skip
    assert tier_for(10_000).recommended()["learning_rate"] == 5e-5
    assert tier_for(50_000).recommended()["learning_rate"] == 1e-4
    assert tier_for(1_000).recommended()["freeze_backbone"] == "all_but_last"


def test_resolve_settings_is_pure():
    settings = resolve_settings({"learning_rate": 5e-5}, {}, tier_for(25_000))
    assert settings["learning_rate"].value == 1e-4


def test_range_warnings_give_the_page_reason():
    warnings = range_warnings({"per_device_train_batch_size": 64, "num_train_epochs": 3, "learning_rate": 1e-3})
    assert len(warnings) == 2
    assert "outside 2-32: the recommended range" in warnings[0] and "outside 1e-5 to 1e-4" in warnings[1]
    (below,) = range_warnings({"num_train_epochs": 0.5})
    assert "less than one epoch leaves images never seen" in below and "overfit" not in below
    assert "more epochs mostly overfit" in range_warnings({"num_train_epochs": 30})[0]
    (small_batch,) = range_warnings({"per_device_train_batch_size": 1})
    assert "largest batch that fits" in small_batch and "--gradient_accumulation_steps" in small_batch
    assert "model size" not in small_batch
    (slow,) = range_warnings({"learning_rate": 1e-6})
    assert "many more epochs" in slow and "careful tuning" not in slow


def test_evaluation_cost_is_estimated():
    assert evaluation_cost_warning(10_000, 1_500, 4, 1, eval_every=1) is not None
    message = evaluation_cost_warning(10_000, 1_500, 4, 1, eval_every=1)
    assert "2,500 evaluations" in message and "--eval_steps" in message
    assert evaluation_cost_warning(10_000, 1_500, 4, 1, eval_every=500) is None
    assert evaluation_cost_warning(10_000, 1_500, 4, 1, eval_every=None) is None


def test_the_evaluation_advice_follows_max_steps_and_always_evaluates_less_often():
    # 64 images, batch 4, evaluating 16 images every step: the suggestion must be less often than every step
    message = evaluation_cost_warning(64, 16, 4, 1, eval_every=1)
    assert "16 evaluations" in message and "--eval_steps 2 " in message
    assert evaluation_cost_warning(64, 16, 4, 1, eval_every=2) is None  # what it suggested is enough
    # max_steps bounds the run: 3 steps, 3 evaluations, not an epoch's 16
    message = evaluation_cost_warning(64, 16, 4, 1, eval_every=1, max_steps=3)
    assert "runs 3 evaluations" in message and "against 12 training images" in message
    # a run too short for any --eval_steps to help is told to evaluate per epoch
    assert "--eval_strategy epoch (or no)" in evaluation_cost_warning(8, 400, 4, 1, eval_every=1)


def test_every_tier_the_report_names_is_a_preset(finetune_main, image_folder, tiny_resnet, tmp_path, caplog):
    """The data summary names the tier ('tiny') that --preset auto applies; --preset tiny must name it too."""
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet),
            "--preset", "tiny", "--max_steps", "1", "--eval_strategy", "no"]  # fmt: skip
    assert finetune_main(args) == 0
    assert "freeze_backbone=all_but_last (preset tiny)" in caplog.text


def test_a_preset_batch_is_never_larger_than_the_training_images(finetune_main, tiny_resnet, tmp_path, caplog):
    """On 6 training images the tiny tier's batch of 8 stopped the run it had chosen; inspect recommended it."""
    data = write_class_images(tmp_path / "data", per_class=3)
    out = tmp_path / "out"
    args = ["--train_dir", str(data), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet),
            "--preset", "auto", "--max_steps", "1", "--eval_strategy", "no"]  # fmt: skip
    assert finetune_main(args) == 0
    train_images = json.loads((out / "data_report.json").read_text())["num_train_images"]
    assert train_images < 8 and f"per_device_train_batch_size={train_images} (preset tiny)" in caplog.text
    assert f"per_device_train_batch_size={train_images}," in describe_tier(train_images)
