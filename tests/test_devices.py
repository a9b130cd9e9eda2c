"""Precision choices: what each request becomes on each kind of hardware."""

from __future__ import annotations

import pytest

from hf_resnet101.devices import resolve_precision


@pytest.mark.parametrize(
    ("requested", "cuda", "cpu_bf16", "expected"),
    [
        ("auto", True, False, (True, False)),
        ("auto", False, True, (False, False)),  # fp32 measured faster than bf16 autocast on CPUs
        ("auto", False, False, (False, False)),
        ("fp16", False, True, (False, True)),  # fp16 on a CPU becomes bf16 where it is native
        ("fp16", False, False, (False, False)),
        ("bf16", True, False, (False, True)),
        ("fp32", True, True, (False, False)),
        ("fp32", False, True, (False, False)),
    ],
)
def test_resolve_precision(requested, cuda, cpu_bf16, expected):
    fp16, bf16, note = resolve_precision(requested, cuda_available=cuda, cpu_bf16=cpu_bf16)
    assert (fp16, bf16) == expected
    assert ("CUDA" if cuda else "CPU") in note


def test_precision_flag_and_contradictions(tmp_path):
    from hf_resnet101.arguments import FinetuneTrainingArguments
    from hf_resnet101.errors import UsageError

    args = FinetuneTrainingArguments(output_dir=str(tmp_path), precision="fp32")
    assert not args.fp16 and not args.bf16 and args.mixed_precision == "no"
    with pytest.raises(UsageError, match="contradicts"):
        FinetuneTrainingArguments(output_dir=str(tmp_path), precision="fp32", bf16=True)
    with pytest.raises(UsageError, match="--precision must be one of"):
        FinetuneTrainingArguments(output_dir=str(tmp_path), precision="int8")
