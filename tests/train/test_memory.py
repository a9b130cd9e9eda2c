"""Out-of-memory recovery: the run goes on with a smaller per-device batch and the same effective batch."""

from __future__ import annotations

import json

import pytest
import torch

import hf_resnet101.train.run as training
from hf_resnet101.train.memory import BatchPlan, is_out_of_memory


@pytest.mark.parametrize(("per_device", "expected"), [(32, (16, 2)), (6, (3, 2)), (9, (3, 3)), (7, (1, 7)), (1, None)])
def test_smaller_plan_keeps_the_effective_batch(per_device, expected):
    smaller = BatchPlan(per_device, 1).smaller()
    assert (smaller and (smaller.per_device, smaller.accumulation)) == expected
    if smaller:
        assert smaller.effective == per_device


def test_out_of_memory_errors_are_recognised():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def simulate_device_memory(monkeypatch, max_batch: int, free_forwards: int = 0):
    """Training forward passes with more than `max_batch` images raise CUDA's out-of-memory error, after
    `free_forwards` passes that fit (an error mid-run, after optimizer steps and BatchNorm updates)."""
    build = training.build_trainer
    seen = {"forwards": 0, "hooked": set()}

    def check(module, args, kwargs):
        pixels = kwargs.get("pixel_values", args[0] if args else None)
        if not module.training:
            return
        seen["forwards"] += 1
        if pixels.shape[0] > max_batch and seen["forwards"] > free_forwards:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB (simulated)")

    def build_with_limit(model, *args, **kwargs):
        if id(model.model) not in seen["hooked"]:
            model.model.register_forward_pre_hook(check, with_kwargs=True)
            seen["hooked"].add(id(model.model))
        return build(model, *args, **kwargs)

    monkeypatch.setattr(training, "build_trainer", build_with_limit)


def history(out) -> list[dict]:
    return json.loads((out / "trainer_state.json").read_text())["log_history"]


def losses_and_rates(out) -> list[tuple[int, float, float]]:
    return [(e["step"], e["loss"], e["learning_rate"]) for e in history(out) if "loss" in e]


@pytest.fixture
def run_args(image_folder, tiny_resnet):
    def args(out, *extra):
        return [
            "--train_dir", str(image_folder), "--model_name_or_path", str(tiny_resnet), "--output_dir", str(out),
            "--num_train_epochs", "2", "--eval_strategy", "epoch", "--logging_steps", "1", "--seed", "5", *extra,
        ]  # fmt: skip

    return args


@pytest.fixture
def reference(finetune_main, run_args, tmp_path):
    """The run that fits: 2 images per device, 4 accumulation steps."""
    out = tmp_path / "fits"
    assert (
        finetune_main(run_args(out, "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "4")) == 0
    )
    return out


@pytest.mark.parametrize("free_forwards", [0, 2], ids=["first step", "mid-run"])
def test_out_of_memory_retries_with_the_same_effective_batch(
    finetune_main, run_args, reference, monkeypatch, caplog, tmp_path, free_forwards
):
    simulate_device_memory(monkeypatch, max_batch=2, free_forwards=free_forwards)
    out = tmp_path / "recovered"
    assert finetune_main(run_args(out, "--per_device_train_batch_size", "8")) == 0
    err = caplog.text
    assert "--per_device_train_batch_size 8 (CUDA out of memory" in err
    assert "with 4 per device and --gradient_accumulation_steps 2 (effective batch 8" in err
    assert "with 2 per device and --gradient_accumulation_steps 4 (effective batch 8" in err
    assert "from the start" in err
    # Same steps, same learning-rate schedule and, with the weights restored, the same losses as the run that fit.
    assert losses_and_rates(out) == losses_and_rates(reference)
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["train_batch_size"] == 2
    card = (out / "README.md").read_text()  # the card tells the batch that was really used
    assert "| per_device_train_batch_size | 2 |" in card and "| gradient_accumulation_steps | 4 |" in card


def test_out_of_memory_mid_run_resumes_from_the_last_checkpoint(
    finetune_main, run_args, reference, monkeypatch, caplog, tmp_path
):
    simulate_device_memory(monkeypatch, max_batch=4, free_forwards=2)
    out = tmp_path / "recovered"
    assert finetune_main(run_args(out, "--per_device_train_batch_size", "8", "--save_steps", "1")) == 0
    err = caplog.text
    assert "Out of memory at step 3 with --per_device_train_batch_size 8" in err
    assert f"from {out / 'checkpoint-2'}." in err
    recovered, fitted = losses_and_rates(out), losses_and_rates(reference)
    assert [(step, rate) for step, _, rate in recovered] == [(step, rate) for step, _, rate in fitted]


def test_out_of_memory_at_one_image_per_device_says_what_to_change(
    finetune_main, run_args, monkeypatch, capsys, tmp_path
):
    simulate_device_memory(monkeypatch, max_batch=0)
    assert finetune_main(run_args(tmp_path / "out", "--per_device_train_batch_size", "2")) == 2
    err = capsys.readouterr().err
    assert "Out of memory even at --per_device_train_batch_size 1" in err
    assert "--activation_checkpointing" in err
    assert "Traceback" not in err


def test_several_processes_get_the_flags_that_fit():
    from hf_resnet101.train.memory import multi_process_advice

    advice = multi_process_advice(BatchPlan(32, 2))
    assert "--per_device_train_batch_size 16 --gradient_accumulation_steps 4" in advice
    assert "--activation_checkpointing" in multi_process_advice(BatchPlan(1, 8))
