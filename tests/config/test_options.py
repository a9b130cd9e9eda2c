"""Option declarations and their validation: precision and data-loading workers."""

from __future__ import annotations

import pytest
import torch


def test_precision_flag_and_contradictions(tmp_path):
    from hf_resnet101.config.options import FinetuneTrainingArguments
    from hf_resnet101.errors import UsageError

    args = FinetuneTrainingArguments(output_dir=str(tmp_path), precision="fp32")
    assert not args.fp16 and not args.bf16 and args.mixed_precision == "no"
    with pytest.raises(UsageError, match="contradicts"):
        FinetuneTrainingArguments(output_dir=str(tmp_path), precision="fp32", bf16=True)
    with pytest.raises(UsageError, match="--precision must be one of"):
        FinetuneTrainingArguments(output_dir=str(tmp_path), precision="int8")


def test_dataloader_defaults_and_explicit_workers(tmp_path):
    from hf_resnet101.config.options import FinetuneTrainingArguments
    from hf_resnet101.errors import UsageError

    args = FinetuneTrainingArguments(output_dir=str(tmp_path))
    if torch.cuda.is_available():  # the GPU machine: workers by default, kept alive
        assert args.dataloader_num_workers > 0 and args.dataloader_persistent_workers
    else:
        assert args.dataloader_num_workers == 0 and not args.dataloader_persistent_workers
    args = FinetuneTrainingArguments(output_dir=str(tmp_path), dataloader_num_workers=2)
    assert args.dataloader_persistent_workers  # workers are kept alive between epochs unless asked otherwise
    args = FinetuneTrainingArguments(
        output_dir=str(tmp_path), dataloader_num_workers=2, dataloader_persistent_workers=False
    )
    assert not args.dataloader_persistent_workers
    with pytest.raises(UsageError, match="--dataloader_num_workers must be 0 or more"):
        FinetuneTrainingArguments(output_dir=str(tmp_path), dataloader_num_workers=-1)


def test_warmup_ratio(tmp_path):
    from hf_resnet101.config.options import FinetuneTrainingArguments
    from hf_resnet101.errors import UsageError

    assert FinetuneTrainingArguments(output_dir=str(tmp_path), warmup_ratio=0.1).warmup_steps == 0.1
    with pytest.raises(UsageError, match="choose one"):
        FinetuneTrainingArguments(output_dir=str(tmp_path), warmup_ratio=0.1, warmup_steps=5)


@pytest.mark.parametrize("flag", ["--gradient_checkpointing", "--activation_checkpointing"])
def test_checkpointing_by_either_name_without_a_deprecation_warning(tmp_path, flag):
    import warnings

    from hf_resnet101.config.options import DataArguments, FinetuneTrainingArguments, ModelArguments
    from hf_resnet101.config.parser import ConfigParser
    from hf_resnet101.config.resolve import resolve_run_options

    parser = ConfigParser((DataArguments, ModelArguments, FinetuneTrainingArguments))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # transformers' "`gradient_checkpointing` is deprecated" warning fails here
        data, model, training = parser.parse_args_and_config(
            ["--train_dir", str(tmp_path), "--output_dir", str(tmp_path / "out"), flag]
        )
    assert training.gradient_checkpointing
    options = resolve_run_options(data, model, training, {}, 100, 20, 1.0)
    assert options.gradient_checkpointing  # applied by the run itself (transformers' ResNet has none)


def test_a_seed_out_of_range_is_refused_before_anything_runs(
    finetune_main, image_folder, tiny_resnet, tmp_path, capsys
):
    out = tmp_path / "out"
    argv = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    assert finetune_main([*argv, "--seed", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--seed must be from 0 to 4294967295, got -1" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--gradient_accumulation_steps", "-1", "--gradient_accumulation_steps must be positive, got -1"),
        ("--gradient_accumulation_steps", "0", "--gradient_accumulation_steps must be positive, got 0"),
        ("--learning_rate", "nan", "--learning_rate must be a finite number, got nan"),
        ("--num_train_epochs", "inf", "--num_train_epochs must be a finite number, got inf"),
        ("--per_device_eval_batch_size", "0", "--per_device_eval_batch_size must be positive, got 0"),
        ("--eval_steps", "0", "--eval_steps must be positive, got 0"),
        ("--save_total_limit", "0", "--save_total_limit must be positive, got 0"),
        ("--max_grad_norm", "-1", "--max_grad_norm must be 0 or more, got -1"),
        ("--label_smoothing_factor", "2", "--label_smoothing_factor must be 0 or more and below 1, got 2"),
        ("--adam_beta2", "1", "--adam_beta2 must be 0 or more and below 1, got 1"),
        ("--adam_epsilon", "-0.1", "--adam_epsilon must be 0 or more, got -0.1"),
        ("--image_size", "3", "--image_size must be at least 32 (a ResNet shrinks its input 32 times), got 3"),
    ],
)
def test_numbers_that_cannot_work_are_refused_before_anything_runs(
    finetune_main, image_folder, tmp_path, capsys, flag, value, message
):
    out = tmp_path / "out"
    assert finetune_main(["--train_dir", str(image_folder), "--output_dir", str(out), flag, value]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("metric", "message"),
    [
        ("f1", "--metric_for_best_model f1 is not a metric the evaluations report (did you mean f1_macro?)"),
        ("top_5_accuracy", "(top-5 accuracy is measured only with more than 5 classes)"),
    ],
)
def test_a_best_model_metric_that_evaluations_lack_is_refused_before_training(
    finetune_main, image_folder, tiny_resnet, tmp_path, capsys, metric, message
):
    out = tmp_path / "out"
    argv = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    assert finetune_main([*argv, "--metric_for_best_model", metric]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not list(out.glob("checkpoint-*")) and not (out / "trainer_state.json").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--early_stopping_patience", "1", "--eval_strategy", "epoch"],
         "--early_stopping_patience keeps the best evaluation's weights (--load_best_model_at_end), which needs "
         "checkpoints on the evaluations' schedule (transformers' rule): evaluation is by epoch, saving by steps. "
         "Give --save_strategy epoch, or --save_strategy best."),
        (["--load_best_model_at_end", "--eval_steps", "2", "--save_steps", "3"],
         "--load_best_model_at_end needs --save_steps to be a multiple of --eval_steps (transformers' rule; the best "
         "weights are kept in memory between checkpoints): --save_steps 3 is not a multiple of --eval_steps 2. Give "
         "--save_steps 4."),
        (["--load_best_model_at_end", "--eval_strategy", "no"],
         "--load_best_model_at_end keeps the best evaluation's weights, and with --eval_strategy no nothing is "
         "evaluated: give --eval_strategy steps (or epoch), or leave --load_best_model_at_end out."),
        (["--early_stopping_patience", "2", "--load_best_model_at_end", "False"],
         "--early_stopping_patience ends training on the best evaluation's weights (--load_best_model_at_end), and "
         "--load_best_model_at_end False was given"),
    ],
)  # fmt: skip
def test_keeping_the_best_weights_without_a_checkpoint_at_each_evaluation_is_explained(
    finetune_main, image_folder, tmp_path, capsys, flags, message
):
    out = tmp_path / "out"
    assert finetune_main(["--train_dir", str(image_folder), "--output_dir", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_freezing_can_be_turned_off_over_a_preset(finetune_main, image_folder, tiny_resnet, tmp_path, caplog):
    """--preset auto freezes the backbone on small data; --freeze_backbone none keeps every stage training."""
    out = tmp_path / "out"
    argv = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet),
            "--preset", "auto", "--max_steps", "1", "--eval_strategy", "no"]  # fmt: skip
    assert finetune_main([*argv, "--freeze_backbone", "none"]) == 0
    assert "freeze_backbone=None (command line)" in caplog.text and "parameters frozen" not in caplog.text
    caplog.clear()
    assert finetune_main([*argv, "--overwrite_output_dir"]) == 0
    assert "freeze_backbone=all_but_last (preset" in caplog.text and "parameters frozen" in caplog.text
    assert "; length: --max_steps 1 (num_train_epochs does not apply)" in caplog.text  # not the preset's epochs


def test_dedupe_and_strict_are_refused_with_a_dataset_rather_than_ignored():
    """Nothing scans a dataset's rows: --dedupe was ignored while the card listed it as applied."""
    from hf_resnet101.config.options import DataArguments
    from hf_resnet101.errors import UsageError

    with pytest.raises(UsageError, match="--dedupe check the image files of a folder"):
        DataArguments(dataset_name="pets", dedupe=True)
    with pytest.raises(UsageError, match="--dedupe and --strict check the image files of a folder"):
        DataArguments(dataset_name="pets", dedupe=True, strict=True)
    assert DataArguments(train_dir="data", dedupe=True).dedupe
