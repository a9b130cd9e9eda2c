"""The run summary's lines: what training starts from, where its values came from, how data is loaded."""

from __future__ import annotations

import torch

from hf_resnet101.config.options import FinetuneTrainingArguments, ModelArguments
from hf_resnet101.config.presets import Setting
from hf_resnet101.train.summary import (
    describe_compilation,
    describe_data_loading,
    describe_device,
    describe_eval_steps,
    describe_settings,
    describe_start,
)


def test_settings_are_listed_with_their_sources():
    settings = {"learning_rate": Setting(3e-5, "command line"), "augmentation": Setting("heavy", "preset small")}
    assert describe_settings(settings) == "learning_rate=3e-05 (command line), augmentation=heavy (preset small)"


def test_random_weights_are_said_as_such():
    model = torch.nn.Linear(2, 2)
    said = describe_start(ModelArguments(), model, random_init=True)
    assert said.startswith("Linear, trained from random initialisation, not fine-tuned")
    assert describe_start(ModelArguments(), model, random_init=False) == "microsoft/resnet-101"


def test_data_loading_in_process_or_by_workers(tmp_path):
    in_process = FinetuneTrainingArguments(output_dir=str(tmp_path), dataloader_num_workers=0, report_to="none")
    assert "in the training process" in describe_data_loading(in_process)
    workers = FinetuneTrainingArguments(output_dir=str(tmp_path), dataloader_num_workers=2, report_to="none")
    assert describe_data_loading(workers).startswith("data loading: 2 worker process(es) per device, persistent")


def test_compilation_is_said_with_its_mode(tmp_path):
    plain = FinetuneTrainingArguments(output_dir=str(tmp_path), report_to="none")
    assert describe_compilation(plain) is None
    graphs = FinetuneTrainingArguments(
        output_dir=str(tmp_path), torch_compile_mode="reduce-overhead", report_to="none"
    )
    said = describe_compilation(graphs)
    assert said.startswith("compilation: torch.compile (backend inductor, mode reduce-overhead)")
    assert "first training step and the first evaluation compile" in said


def test_a_fractional_eval_steps_is_said_as_the_share_of_the_run():
    assert describe_eval_steps(10) == " every 10 steps"
    assert describe_eval_steps(0.5) == " every 50% of the training steps"


def test_a_cpu_is_named_without_an_index():
    assert describe_device(torch.device("cpu", 0)) == "cpu"
    assert describe_device(torch.device("cuda", 1)) == "cuda:1"


def test_a_timm_model_is_named_by_its_timm_architecture_too():
    from types import SimpleNamespace

    import torch

    from hf_resnet101.train.summary import architecture_of

    class TimmWrapperForImageClassification(torch.nn.Module):
        config = SimpleNamespace(architecture="resnet50")

    class ResNetForImageClassification(torch.nn.Module):
        config = SimpleNamespace(architectures=["ResNetForImageClassification"])

    assert architecture_of(TimmWrapperForImageClassification()) == "TimmWrapperForImageClassification (timm resnet50)"
    assert architecture_of(ResNetForImageClassification()) == "ResNetForImageClassification"
