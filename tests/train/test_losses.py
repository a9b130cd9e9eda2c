"""Class weighting: balanced weights, the weighted loss, and a run on imbalanced data."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import write_class_images

from hf_resnet101.train.losses import balanced_class_weights, make_weighted_loss


def test_balanced_class_weights_and_loss():
    weights = balanced_class_weights([90, 10, 0])
    assert weights.tolist() == pytest.approx([100 / 180, 100 / 20, 0.0])
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    labels = torch.tensor([1, 1])
    loss = make_weighted_loss(weights)({"logits": logits}, labels)
    expected = torch.nn.functional.cross_entropy(logits, labels)  # same class: weighting cancels out
    assert loss.item() == pytest.approx(expected.item())


def test_weighted_training_on_imbalanced_data(finetune_main, tiny_resnet, tmp_path):
    data = write_class_images(tmp_path / "d", per_class=4)
    write_class_images(tmp_path / "d", per_class=16, classes={"cat": (200, 60, 40)}, seed=3)
    out = tmp_path / "out"
    args = ["--train_dir", str(data), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    assert finetune_main([*args, "--class_weighting", "balanced", "--eval_strategy", "epoch"]) == 0
    report = json.loads((out / "data_report.json").read_text())
    assert report["imbalance_ratio"] >= 3
