"""The model: where it comes from, the full ResNet-101 against the paper's figures (slow), frozen backbones,
gradient checkpointing."""

from __future__ import annotations

import pytest
import torch
from conftest import run_cli
from safetensors.torch import load_file
from torch.utils.flop_counter import FlopCounterMode

from hf_resnet101 import modeling
from hf_resnet101.errors import UsageError
from hf_resnet101.modeling import (
    build_random_resnet101,
    check_model_source,
    count_parameters,
    freeze_batch_norm,
    is_resnet101,
    license_id_problem,
    looks_like_local_path,
    resnet101_config,
    unfreeze_batch_norm_layers,
)


@pytest.mark.slow
def test_resnet101_matches_the_paper():
    model = build_random_resnet101([f"class_{i}" for i in range(1000)]).eval()
    assert model.config.depths == [3, 4, 23, 3]
    assert model.config.hidden_sizes == [256, 512, 1024, 2048]
    assert count_parameters(model) / 1e6 == pytest.approx(44.55, abs=0.05)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(pixel_values=torch.zeros(1, 3, 224, 224))
    multiply_adds = counter.get_total_flops() / 2
    assert multiply_adds / 1e9 == pytest.approx(7.8, abs=0.1)


def test_resnet101_is_told_from_other_models(tiny_models):
    import timm
    from transformers import AutoModelForImageClassification, ResNetConfig, TimmWrapperConfig

    def timm_wrapper(architecture: str):
        pretrained_cfg = dict(timm.create_model(architecture, pretrained=False).pretrained_cfg)
        config = TimmWrapperConfig(architecture=architecture, pretrained_cfg=pretrained_cfg, num_labels=3)
        return AutoModelForImageClassification.from_config(config)

    resnet50 = ResNetConfig(depths=[3, 4, 6, 3], hidden_sizes=[256, 512, 1024, 2048], layer_type="bottleneck")
    basic_blocks = ResNetConfig(depths=[3, 4, 23, 3], hidden_sizes=[64, 128, 256, 512], layer_type="basic")
    with torch.device("meta"):  # the architecture without allocating its weights
        assert is_resnet101(AutoModelForImageClassification.from_config(resnet101_config(["a", "b"])))
        assert is_resnet101(timm_wrapper("resnet101"))
        assert is_resnet101(timm_wrapper("resnet101d"))
        assert not is_resnet101(AutoModelForImageClassification.from_config(resnet50))
        assert not is_resnet101(AutoModelForImageClassification.from_config(basic_blocks))
        assert not is_resnet101(timm_wrapper("resnet50"))
    for family in ("resnet", "timm", "vit"):
        assert not is_resnet101(AutoModelForImageClassification.from_pretrained(tiny_models[family]))


@pytest.mark.parametrize(
    ("name", "local"),
    [("microsoft/resnet-101", False), ("resnet-101", False), ("./out", True), ("/tmp/out", True),
     ("~/runs/out", True), ("runs/2024/out", True)],
)  # fmt: skip
def test_hub_ids_are_told_from_folders(name, local):
    assert looks_like_local_path(name) is local


def test_model_source_errors_say_what_to_give(tmp_path):
    give = "a folder with config.json"
    with pytest.raises(UsageError, match=f"has no config.json: give {give}"):
        check_model_source(str(tmp_path), give)
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(UsageError, match=f"is a file: give {give}"):
        check_model_source(str(tmp_path / "weights.bin"), give)
    with pytest.raises(UsageError, match=f"does not exist: give {give}"):
        check_model_source(str(tmp_path / "missing"), give)
    check_model_source("user/model", give)  # a Hub id: left to the download


def test_a_timm_model_without_timm_says_how_to_install_it(tmp_path, monkeypatch):
    folder = tmp_path / "timm-model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "timm_wrapper", "architecture": "resnet101"}')
    check_model_source(str(folder), "x")  # timm is installed in the test environment
    check_model_source("timm/resnet101.a1h_in1k", "x")
    monkeypatch.setattr(modeling, "timm_installed", lambda: False)
    for name in (str(folder), "timm/resnet101.a1h_in1k"):
        with pytest.raises(UsageError, match="is a timm model, and timm is not installed: pip install timm"):
            check_model_source(name, "x")
    check_model_source("microsoft/resnet-101", "x")  # transformers' own ResNet needs no timm


def test_frozen_batch_norm_keeps_the_statistics_and_converts_back():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
    model.train()
    for _ in range(3):  # running statistics other than the initial ones
        model(torch.randn(8, 3, 6, 6) * 3 + 1)
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-1, 1)
    x = torch.randn(2, 3, 6, 6)
    expected = model.eval()(x)
    frozen = freeze_batch_norm(model)
    assert type(frozen[1]).__name__ == "FrozenBatchNorm2d"
    frozen.train()  # a frozen layer ignores the mode: the batch's own statistics are never used
    assert torch.allclose(frozen(x), expected, atol=1e-6)
    restored = unfreeze_batch_norm_layers(frozen).eval()
    assert type(restored[1]) is torch.nn.BatchNorm2d
    assert torch.allclose(restored(x), expected, atol=1e-6)
    assert freeze_batch_norm(torch.nn.BatchNorm2d(4)).__class__.__name__ == "FrozenBatchNorm2d"  # the module itself


def test_freeze_backbone_trains_only_the_last_stage(finetune_main, image_folder, tiny_resnet, tmp_path):
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet)]
    assert finetune_main([*args, "--freeze_backbone", "all_but_last", "--learning_rate", "1e-2"]) == 0
    before, after = load_file(tiny_resnet / "model.safetensors"), load_file(out / "model.safetensors")
    stem = "resnet.embedder.embedder.convolution.weight"
    first_stage = "resnet.encoder.stages.0.layers.0.layer.0.convolution.weight"
    last_stage = "resnet.encoder.stages.1.layers.0.layer.0.convolution.weight"
    assert torch.equal(before[stem], after[stem]) and torch.equal(before[first_stage], after[first_stage])
    assert not torch.equal(before[last_stage], after[last_stage])
    assert "resnet.embedder.embedder.normalization.num_batches_tracked" in after  # saved as plain BatchNorm


@pytest.mark.parametrize("family", ["timm", "vit"])
def test_freeze_backbone_keeps_the_first_stages_of_every_family(
    finetune_main, image_folder, tiny_models, tmp_path, family
):
    """The stem and first stage (ViT: embeddings and first block) keep their weights; the last one trains."""
    from transformers import AutoModelForImageClassification

    from hf_resnet101.modeling import backbone_stages

    model_dir, out = tiny_models[family], tmp_path / "out"
    model = AutoModelForImageClassification.from_pretrained(model_dir)
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    stages = [[names[id(p)] for p in stage.parameters()] for stage in backbone_stages(model)]
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(model_dir),
            "--max_steps", "2", "--per_device_train_batch_size", "8", "--learning_rate", "1e-2"]  # fmt: skip
    assert finetune_main([*args, "--freeze_backbone", "all_but_last"]) == 0
    # Loaded, not read from the files: transformers may save ViT's weights under their earlier names.
    before = dict(model.named_parameters())
    after = dict(AutoModelForImageClassification.from_pretrained(out).named_parameters())
    assert all(torch.equal(before[name], after[name]) for name in [*stages[0], *stages[1]])
    assert not all(torch.equal(before[name], after[name]) for name in stages[-1])


def test_resnet_gradient_checkpointing_gives_the_same_gradients(tiny_resnet):
    from transformers import AutoModelForImageClassification

    from hf_resnet101.modeling import apply_gradient_checkpointing

    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    grads = []
    for checkpointed in (False, True):
        model = AutoModelForImageClassification.from_pretrained(tiny_resnet).train()
        if checkpointed:
            assert apply_gradient_checkpointing(model) == "gradient checkpointing of 2 residual blocks"
        model(pixel_values=x).logits.sum().backward()
        grads.append(model.resnet.embedder.embedder.convolution.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


@pytest.mark.parametrize("family", ["resnet", "timm"])
def test_gradient_checkpointing_run(finetune_main, image_folder, tiny_models, tmp_path, caplog, family):
    out = tmp_path / "out"
    model = str(tiny_models[family])
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", model]
    # Two full batches: the tiny timm model cannot train on a last batch of one image (BatchNorm on 1x1 maps).
    assert finetune_main([*args, "--gradient_checkpointing", "--eval_strategy", "no", "--max_steps", "2"]) == 0
    assert (out / "model.safetensors").is_file()
    expected = {"resnet": "gradient checkpointing of 2 residual blocks", "timm": "built-in gradient checkpointing"}
    assert f"Activation checkpointing: {expected[family]}" in caplog.text


def test_the_card_license_of_a_known_base_model_family_without_its_card_here():
    from hf_resnet101.modeling import base_model_license

    assert base_model_license("microsoft/resnet-101", "microsoft/resnet-101") == "apache-2.0"
    assert base_model_license("google/vit-base-patch16-224", "google/vit-base-patch16-224") == "apache-2.0"
    assert base_model_license("someone/unknown-model", "someone/unknown-model") == "other"
    assert base_model_license("/no/such/folder", None) == "other"


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("mit", None),
        ("cc-by-nc-4.0", None),
        ("llama3.1", None),  # a Hub id outside the common list, well formed: not checked offline
        ("MIT", "did you mean mit?"),
        ("apache2", "did you mean apache-2.0?"),
        ("Apache 2.0", "did you mean apache-2.0?"),
        ("my license", "they are lower case"),
    ],
)
def test_license_ids_are_checked_for_what_the_hub_takes(given, problem):
    found = license_id_problem(given)
    assert found is None if problem is None else problem in found


def test_a_wrong_license_stops_training_and_the_card_command(
    finetune_main, image_folder, trained_run, tmp_path, capsys
):
    argv = ["--train_dir", str(image_folder), "--output_dir", str(tmp_path / "out"), "--license", "MIT"]
    assert finetune_main(argv) == 2
    assert "--license 'MIT' is not a Hub license id (did you mean mit?" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    run_cli(capsys, ["card", str(trained_run["output"]), "--license", "apache2"], expected_code=2)
