"""Options resolved from the command line, a config file, a preset and the data: what wins, and the checks."""

from __future__ import annotations

import json

import pytest

from hf_resnet101.config.options import DataArguments, FinetuneTrainingArguments, ModelArguments
from hf_resnet101.config.parser import ConfigParser
from hf_resnet101.config.resolve import apply_settings, check_settings, choose_best_model_metric


def parse(args: list[str], tmp_path):
    parser = ConfigParser((DataArguments, ModelArguments, FinetuneTrainingArguments))
    data, model, training = parser.parse_args_and_config(
        ["--train_dir", str(tmp_path), "--output_dir", str(tmp_path / "o"), *args]
    )
    return data, model, training, parser.explicit_options


def test_explicit_values_win_over_a_preset_and_sources_are_kept(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("num_train_epochs: 3\n")
    data, model, training, explicit = parse(
        ["--config", str(config), "--preset", "medium", "--learning_rate", "3e-5"], tmp_path
    )
    settings = apply_settings(data, model, training, explicit, num_train_images=50)
    assert training.learning_rate == 3e-5 and settings["learning_rate"].source == "command line"
    assert training.num_train_epochs == 3 and settings["num_train_epochs"].source == "config file"
    assert training.per_device_train_batch_size == 16 and settings["per_device_train_batch_size"].source == (
        "preset medium"
    )
    assert data.augmentation == "standard"


def test_auto_preset_uses_the_dataset_size(tmp_path):
    data, model, training, explicit = parse(["--preset", "auto"], tmp_path)
    apply_settings(data, model, training, explicit, num_train_images=30_000)
    assert (training.learning_rate, training.per_device_train_batch_size, data.augmentation) == (1e-4, 32, "light")


def test_no_preset_keeps_the_page_defaults(tmp_path):
    data, model, training, explicit = parse([], tmp_path)
    settings = apply_settings(data, model, training, explicit, num_train_images=30_000)
    assert (training.learning_rate, training.per_device_train_batch_size, training.num_train_epochs) == (5e-5, 4, 1)
    assert {s.source for s in settings.values()} == {"default"}


def test_check_settings_stops_on_a_batch_larger_than_the_data(tmp_path):
    _, _, training, _ = parse(["--per_device_train_batch_size", "16"], tmp_path)
    from hf_resnet101.errors import UsageError

    with pytest.raises(UsageError, match="larger than the 10 training images"):
        check_settings(training, num_train=10, num_validation=2, warn=print)
    warnings = []
    _, _, training, _ = parse(["--learning_rate", "1e-3"], tmp_path)
    check_settings(training, num_train=1_000, num_validation=200, warn=warnings.append)
    assert any("--learning_rate" in w for w in warnings) and any("evaluations" in w for w in warnings)


def test_imbalance_switches_the_best_model_metric_unless_chosen(tmp_path):
    _, _, training, explicit = parse([], tmp_path)
    choose_best_model_metric(training, explicit, ratio=5.0)
    assert training.metric_for_best_model == "f1_macro"
    _, _, training, explicit = parse(["--metric_for_best_model", "accuracy"], tmp_path)
    choose_best_model_metric(training, explicit, ratio=5.0)
    assert training.metric_for_best_model == "accuracy"


def test_preset_auto_end_to_end(finetune_main, image_folder, tiny_resnet, tmp_path):
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    assert finetune_main([*args, "--preset", "auto", "--max_steps", "2", "--eval_strategy", "no"]) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["train_batch_size"] == 8  # the tiny tier's batch size
