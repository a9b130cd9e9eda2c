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
