"""A real learning check: the digits shipped with scikit-learn, a tiny bottleneck ResNet from scratch."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForImageClassification, ResNetConfig

from hf_resnet101.commands.demo import write_digits_image_folder
from hf_resnet101.config.hardware import cpu_supports_bf16
from hf_resnet101.config.options import DataArguments, FinetuneTrainingArguments, ModelArguments
from hf_resnet101.modeling import label_mappings, resnet_image_processor
from hf_resnet101.train.run import run_finetune


def train_digits(data, output_dir, precision: str):
    names = [str(d) for d in range(10)]
    id2label, label2id = label_mappings(names)
    config = ResNetConfig(
        depths=[1, 1, 1],
        hidden_sizes=[32, 64, 128],
        embedding_size=16,
        layer_type="bottleneck",
        num_labels=10,
        id2label=id2label,
        label2id=label2id,
    )
    torch.manual_seed(0)
    model = AutoModelForImageClassification.from_config(config)
    return run_finetune(
        DataArguments(train_dir=str(data), image_size=32, augmentation="none"),
        ModelArguments(),
        FinetuneTrainingArguments(
            output_dir=str(output_dir),
            per_device_train_batch_size=32,
            learning_rate=3e-3,
            num_train_epochs=4,
            eval_strategy="epoch",
            save_strategy="no",
            precision=precision,
            seed=0,
        ),
        model_and_processor=(model, resnet_image_processor()),
    )


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    data = write_digits_image_folder(tmp_path_factory.mktemp("digits") / "digits")
    assert sum(1 for _ in data.rglob("*.png")) == 1797
    return data


@pytest.fixture(scope="module")
def fp32_run(digits, tmp_path_factory):
    return train_digits(digits, tmp_path_factory.mktemp("fp32") / "out", "fp32")


def test_tiny_resnet_learns_the_digits(fp32_run):
    assert fp32_run.eval_metrics["accuracy"] > 0.8, fp32_run.eval_metrics
    assert [row["pipeline"] for row in fp32_run.pipeline_predictions] == [
        row["evaluation"] for row in fp32_run.pipeline_predictions
    ]


@pytest.mark.skipif(not cpu_supports_bf16(), reason="bf16 autocast runs natively only on CPUs with AVX-512 BF16/AMX")
def test_mixed_precision_keeps_the_accuracy(digits, fp32_run, tmp_path):
    """bf16 autocast (the mixed precision this CPU runs; fp16 on a GPU) within 2 points of fp32."""
    bf16_run = train_digits(digits, tmp_path / "bf16", "bf16")
    assert "bf16" in json.loads((tmp_path / "bf16" / "card_inputs.json").read_text())["precision"]
    assert abs(bf16_run.eval_metrics["accuracy"] - fp32_run.eval_metrics["accuracy"]) <= 0.02
