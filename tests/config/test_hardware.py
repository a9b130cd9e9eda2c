"""Precision choices: what each request becomes on each kind of hardware."""

from __future__ import annotations

import pytest
import torch

from hf_resnet101.config.hardware import resolve_precision


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
    from hf_resnet101.config.options import FinetuneTrainingArguments
    from hf_resnet101.errors import UsageError

    args = FinetuneTrainingArguments(output_dir=str(tmp_path), precision="fp32")
    assert not args.fp16 and not args.bf16 and args.mixed_precision == "no"
    with pytest.raises(UsageError, match="contradicts"):
        FinetuneTrainingArguments(output_dir=str(tmp_path), precision="fp32", bf16=True)
    with pytest.raises(UsageError, match="--precision must be one of"):
        FinetuneTrainingArguments(output_dir=str(tmp_path), precision="int8")


@pytest.mark.parametrize(
    ("cuda", "cpus", "processes", "expected"),
    [(True, 16, 1, 15), (True, 64, 1, 16), (True, 16, 4, 3), (True, 2, 2, 1), (False, 16, 1, 0)],
)
def test_auto_dataloader_workers(cuda, cpus, processes, expected):
    from hf_resnet101.config.hardware import auto_dataloader_workers

    assert auto_dataloader_workers(cuda, cpus, processes) == expected


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


def test_worker_processes_augment_exactly_as_the_training_process(finetune_main, image_folder, tiny_resnet, tmp_path):
    """Persistent workers over two epochs see each epoch's augmentation: the run equals one without workers."""
    import json

    def losses(workers: str) -> list[float]:
        out = tmp_path / f"workers-{workers}"
        args = [
            "--train_dir", str(image_folder), "--model_name_or_path", str(tiny_resnet), "--output_dir", str(out),
            "--num_train_epochs", "2", "--eval_strategy", "no", "--logging_steps", "1", "--seed", "3",
            "--augmentation", "heavy", "--dataloader_num_workers", workers,
        ]  # fmt: skip
        assert finetune_main(args) == 0
        history = json.loads((out / "trainer_state.json").read_text())["log_history"]
        return [entry["loss"] for entry in history if "loss" in entry]

    assert losses("2") == losses("0")


def run_with_two_workers(finetune_main, image_folder, tiny_resnet, tmp_path, monkeypatch):
    """A short run with two data workers and evaluation every step; returns the Trainer it built, still referenced."""
    import hf_resnet101.train.run as training

    kept = []
    build = training.build_trainer
    monkeypatch.setattr(training, "build_trainer", lambda *a, **k: kept.append(build(*a, **k)) or kept[-1])
    args = [
        "--train_dir", str(image_folder), "--model_name_or_path", str(tiny_resnet),
        "--output_dir", str(tmp_path / "o"), "--max_steps", "2", "--eval_steps", "1", "--dataloader_num_workers", "2",
    ]  # fmt: skip
    assert finetune_main(args) == 0
    return kept[-1]


def test_no_worker_process_outlives_the_run(finetune_main, image_folder, tiny_resnet, tmp_path, monkeypatch):
    """Even while the Trainer is still referenced (as by a notebook or a benchmark), the run's persistent data
    workers, training's and every evaluation's, are stopped when it returns."""
    import multiprocessing

    assert run_with_two_workers(finetune_main, image_folder, tiny_resnet, tmp_path, monkeypatch) is not None
    assert multiprocessing.active_children() == []


def test_evaluation_reads_prepared_tensors_in_process(finetune_main, image_folder, tiny_resnet, tmp_path, monkeypatch):
    """With training workers asked for, evaluation and prediction still load in the training process (their
    tensors are prepared once), the evaluation loader is made once, and the training loader keeps its workers."""
    trainer = run_with_two_workers(finetune_main, image_folder, tiny_resnet, tmp_path, monkeypatch)
    evaluation = trainer.get_eval_dataloader()
    assert evaluation.num_workers == 0 and trainer.get_eval_dataloader() is evaluation
    assert trainer.get_test_dataloader(trainer.eval_dataset).num_workers == 0
    assert trainer.get_train_dataloader().num_workers == 2
    assert trainer.args.dataloader_num_workers == 2 and trainer.args.dataloader_persistent_workers


@pytest.mark.slow
def test_torch_compile_run(finetune_main, image_folder, tiny_resnet, tmp_path):
    """The Trainer's --torch_compile works with the package's model preparation (channels_last, collate)."""
    out = tmp_path / "out"
    args = [
        "--train_dir", str(image_folder), "--model_name_or_path", str(tiny_resnet), "--output_dir", str(out),
        "--max_steps", "3", "--eval_strategy", "no", "--torch_compile",
    ]  # fmt: skip
    assert finetune_main(args) == 0
    from safetensors.torch import load_file

    assert load_file(out / "model.safetensors").keys() == load_file(tiny_resnet / "model.safetensors").keys()
    assert (out / "pipeline_check.json").is_file()


def machine(cuda: bool, cpu_bf16: bool = False, launcher: str = "no", cpus: int = 16, processes: int = 1):
    from hf_resnet101.config.hardware import Machine

    return Machine(
        cuda_available=cuda, cpu_bf16=cpu_bf16, cpu_count=cpus, local_processes=processes, launcher_precision=launcher
    )


def test_hardware_choices_follow_the_machine_and_keep_what_was_set():
    from hf_resnet101.config.hardware import choose_hardware

    gpu = choose_hardware("auto", None, None, machine(cuda=True, processes=2))
    assert (gpu.use_cpu, gpu.fp16, gpu.bf16, gpu.dataloader_num_workers, gpu.dataloader_persistent_workers) == (
        False,
        True,
        False,
        7,
        True,
    )
    cpu = choose_hardware("auto", None, None, machine(cuda=False, cpu_bf16=True))
    assert (cpu.use_cpu, cpu.fp16, cpu.bf16, cpu.dataloader_num_workers, cpu.dataloader_persistent_workers) == (
        True,
        False,
        False,
        0,
        False,
    )
    # the launcher's --mixed_precision counts as asked for; explicit workers and persistence are kept
    launched = choose_hardware("auto", 3, False, machine(cuda=True, launcher="bf16"))
    assert (launched.bf16, launched.dataloader_num_workers, launched.dataloader_persistent_workers) == (True, 3, False)
    assert "bf16" in launched.precision_note
