"""Options resolved from the command line, a config file, a preset and the data: what wins, and the checks."""

from __future__ import annotations

import json

import pytest

from hf_resnet101.config.options import DataArguments, FinetuneTrainingArguments, ModelArguments
from hf_resnet101.config.parser import ConfigParser
from hf_resnet101.config.resolve import check_settings, resolve_run_options


def parse(args: list[str], tmp_path):
    parser = ConfigParser((DataArguments, ModelArguments, FinetuneTrainingArguments))
    data, model, training = parser.parse_args_and_config(
        ["--train_dir", str(tmp_path), "--output_dir", str(tmp_path / "o"), *args]
    )
    return data, model, training, parser.explicit_options


def resolve(data, model, training, explicit, num_train_images=1_000, imbalance_ratio=1.0):
    return resolve_run_options(data, model, training, explicit, num_train_images, 200, imbalance_ratio)


def test_explicit_values_win_over_a_preset_and_sources_are_kept(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("num_train_epochs: 3\n")
    data, model, training, explicit = parse(
        ["--config", str(config), "--preset", "medium", "--learning_rate", "3e-5"], tmp_path
    )
    options = resolve(data, model, training, explicit, num_train_images=50)
    settings, resolved = options.settings, options.training
    assert resolved.learning_rate == 3e-5 and settings["learning_rate"].source == "command line"
    assert resolved.num_train_epochs == 3 and settings["num_train_epochs"].source == "config file"
    assert resolved.per_device_train_batch_size == 16 and settings["per_device_train_batch_size"].source == (
        "preset medium"
    )
    assert options.data.augmentation == "standard"
    # what the user gave is left as given: the run reads the resolved options only
    assert (training.per_device_train_batch_size, data.augmentation) == (4, "light")


def test_auto_preset_uses_the_dataset_size(tmp_path):
    data, model, training, explicit = parse(["--preset", "auto"], tmp_path)
    options = resolve(data, model, training, explicit, num_train_images=30_000)
    resolved = options.training
    assert (resolved.learning_rate, resolved.per_device_train_batch_size, options.data.augmentation) == (
        1e-4,
        32,
        "light",
    )


def test_no_preset_keeps_the_page_defaults(tmp_path):
    data, model, training, explicit = parse([], tmp_path)
    options = resolve(data, model, training, explicit, num_train_images=30_000)
    resolved = options.training
    assert (resolved.learning_rate, resolved.per_device_train_batch_size, resolved.num_train_epochs) == (5e-5, 4, 1)
    assert {s.source for s in options.settings.values()} == {"default"}


def test_check_settings_stops_on_a_batch_larger_than_the_data(tmp_path):
    _, _, training, _ = parse(["--per_device_train_batch_size", "16"], tmp_path)
    from hf_resnet101.errors import UsageError

    with pytest.raises(UsageError, match="larger than the 10 training images"):
        check_settings(training, num_train=10, num_validation=2, warn=print)
    # A preset's batch is no larger than the data: the large tier's 32 becomes 21 on 21 images
    options = resolve(*parse(["--preset", "large"], tmp_path), num_train_images=21)
    assert options.training.per_device_train_batch_size == 21
    assert options.settings["per_device_train_batch_size"].source == "preset large"
    warnings = []
    _, _, training, _ = parse(["--learning_rate", "1e-3"], tmp_path)
    check_settings(training, num_train=1_000, num_validation=200, warn=warnings.append)
    assert any("--learning_rate" in w for w in warnings) and any("evaluations" in w for w in warnings)


def test_an_accumulated_batch_larger_than_the_data_is_warned_about(tmp_path):
    _, _, training, _ = parse(["--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "100"], tmp_path)
    warnings = []
    check_settings(training, num_train=15, num_validation=5, warn=warnings.append)
    assert any(
        "(4 per step x 100 accumulation steps = 400) is larger than the 15 training images" in w for w in warnings
    )
    assert any("accumulating more than 4 steps changes nothing" in w for w in warnings)
    warnings.clear()
    _, _, training, _ = parse(["--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "3"], tmp_path)
    check_settings(training, num_train=15, num_validation=5, warn=warnings.append)
    assert not any("global batch" in w for w in warnings)


def test_epochs_out_of_range_are_not_warned_about_when_max_steps_sets_the_length(tmp_path):
    warnings = []
    _, _, training, _ = parse(["--num_train_epochs", "30", "--max_steps", "2"], tmp_path)
    check_settings(training, num_train=100, num_validation=20, warn=warnings.append)
    assert not any("--num_train_epochs" in w for w in warnings)
    _, _, training, _ = parse(["--num_train_epochs", "30"], tmp_path)
    check_settings(training, num_train=100, num_validation=20, warn=warnings.append)
    assert any("--num_train_epochs 30 is outside 1-20" in w for w in warnings)


def test_imbalance_switches_the_best_model_metric_unless_chosen(tmp_path):
    options = resolve(*parse([], tmp_path), imbalance_ratio=5.0)
    assert (options.training.metric_for_best_model, options.training.greater_is_better) == ("f1_macro", True)
    options = resolve(*parse(["--metric_for_best_model", "accuracy"], tmp_path), imbalance_ratio=5.0)
    assert options.training.metric_for_best_model == "accuracy"
    assert resolve(*parse([], tmp_path), imbalance_ratio=1.5).training.metric_for_best_model == "accuracy"


def test_class_weighting_is_advised_only_where_not_given(tmp_path, caplog):
    resolve(*parse([], tmp_path), imbalance_ratio=5.0)
    assert "Consider --class_weighting balanced" in caplog.text
    caplog.clear()
    resolve(*parse(["--class_weighting", "balanced"], tmp_path), imbalance_ratio=5.0)
    assert "Consider --class_weighting" not in caplog.text


def test_the_imbalance_note_says_whether_macro_f1_chooses_the_weights_kept(tmp_path, caplog):
    """Macro F1 chooses the model only where the best evaluation's weights are kept; by default the last are."""
    resolve(*parse([], tmp_path), imbalance_ratio=5.0)
    assert "macro F1 is the metric for the best model (this run keeps its last weights" in caplog.text
    assert "chosen by macro F1" not in caplog.text
    caplog.clear()
    resolve(
        *parse(["--load_best_model_at_end", "--save_steps", "1", "--eval_steps", "1"], tmp_path), imbalance_ratio=5
    )
    assert "the best model is chosen by macro F1, which weighs every class equally" in caplog.text


def test_preset_auto_end_to_end(finetune_main, image_folder, tiny_resnet, tmp_path):
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    assert finetune_main([*args, "--preset", "auto", "--max_steps", "2", "--eval_strategy", "no"]) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["train_batch_size"] == 8  # the tiny tier's batch size


def test_resolved_options_are_read_only_and_keep_the_token_out_of_the_trainers_arguments(tmp_path):
    import dataclasses

    data, model, training, explicit = parse(
        ["--push_to_hub", "--hub_model_id", "me/birds", "--hub_token", "hf_secret", "--gradient_checkpointing"],
        tmp_path,
    )
    options = resolve(data, model, training, explicit)
    for frozen in (options, options.data, options.model):
        with pytest.raises(dataclasses.FrozenInstanceError):
            frozen.augmentation = "heavy"
    assert options.push.repo_id == "me/birds" and options.gradient_checkpointing
    # the Trainer pickles its arguments into training_args.bin: no token there, no push of its own, no
    # gradient-checkpointing call on a model that lacks the method
    assert (options.training.hub_token, options.training.push_to_hub, options.training.gradient_checkpointing) == (
        None,
        False,
        False,
    )
    assert (training.push_to_hub, training.gradient_checkpointing) == (True, True)  # the parsed ones untouched
