"""A real learning check: the digits shipped with scikit-learn, a tiny bottleneck ResNet from scratch."""

from __future__ import annotations

from transformers import AutoModelForImageClassification, ResNetConfig

from hf_resnet101.arguments import DataArguments, FinetuneTrainingArguments, ModelArguments
from hf_resnet101.demo import write_digits_image_folder
from hf_resnet101.modeling import label_mappings, resnet_image_processor
from hf_resnet101.training import run_finetune


def test_tiny_resnet_learns_the_digits(tmp_path):
    data = write_digits_image_folder(tmp_path / "digits")
    assert sum(1 for _ in data.rglob("*.png")) == 1797
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
    model = AutoModelForImageClassification.from_config(config)
    result = run_finetune(
        DataArguments(train_dir=str(data), image_size=32, augmentation="none"),
        ModelArguments(),
        FinetuneTrainingArguments(
            output_dir=str(tmp_path / "out"),
            per_device_train_batch_size=32,
            learning_rate=3e-3,
            num_train_epochs=4,
            eval_strategy="epoch",
            save_strategy="no",
            precision="fp32",
            seed=0,
        ),
        model_and_processor=(model, resnet_image_processor()),
    )
    assert result.eval_metrics["accuracy"] > 0.8, result.eval_metrics
    assert [row["pipeline"] for row in result.pipeline_predictions] == [
        row["evaluation"] for row in result.pipeline_predictions
    ]
