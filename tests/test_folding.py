"""Batch norms folded into ResNet convolutions for inference: the same logits, one layer fewer per convolution."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForImageClassification

from hf_resnet101.folding import fold_batch_norms
from hf_resnet101.inference import load_classifier


def batch_norms(model: torch.nn.Module) -> int:
    return sum(isinstance(module, torch.nn.BatchNorm2d) for module in model.modules())


def assert_folded_alike(model: torch.nn.Module, image_size: int, atol: float) -> None:
    """Folding a copy of `model` removes every BatchNorm2d (and counts them) and keeps the logits."""
    before = batch_norms(model)
    assert before > 0
    folded = copy.deepcopy(model)
    assert fold_batch_norms(folded) == before
    assert batch_norms(folded) == 0
    pixel_values = torch.randn(4, 3, image_size, image_size)
    with torch.no_grad():
        expected, got = model(pixel_values=pixel_values).logits, folded(pixel_values=pixel_values).logits
    torch.testing.assert_close(got, expected, atol=atol, rtol=1e-4)


def test_folding_keeps_a_trained_resnets_logits_and_removes_its_batch_norms(trained_run):
    model = AutoModelForImageClassification.from_pretrained(trained_run["output"]).eval()
    assert_folded_alike(model, image_size=64, atol=1e-5)


def scramble_batch_norms(model: torch.nn.Module) -> None:
    """Statistics and affine parameters far from the identity, so that a wrong or misplaced fold shows."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-2, 2, generator=generator)
            module.running_var.uniform_(0.1, 4, generator=generator)
            module.weight.data.uniform_(0.5, 2, generator=generator)
            module.bias.data.uniform_(-1, 1, generator=generator)


def test_folding_uses_each_layers_own_statistics(trained_run):
    model = AutoModelForImageClassification.from_pretrained(trained_run["output"]).eval()
    scramble_batch_norms(model)
    folded = copy.deepcopy(model)
    fold_batch_norms(folded)
    pixel_values = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            folded(pixel_values=pixel_values).logits, model(pixel_values=pixel_values).logits, atol=1e-4, rtol=1e-4
        )


def test_a_timm_resnet_is_folded_stem_blocks_and_shortcuts(tiny_models):
    # timm's test_resnet has a deep stem (an nn.Sequential, then bn1) and average-pool shortcuts.
    model = AutoModelForImageClassification.from_pretrained(tiny_models["timm"]).eval()
    scramble_batch_norms(model)
    assert_folded_alike(model, image_size=32, atol=1e-4)


def test_a_timm_model_of_another_family_is_left_as_it_is(tmp_path):
    import timm
    from transformers import TimmWrapperConfig

    pretrained_cfg = dict(timm.create_model("test_efficientnet", pretrained=False).pretrained_cfg)
    config = TimmWrapperConfig(architecture="test_efficientnet", pretrained_cfg=pretrained_cfg, num_labels=3)
    model = AutoModelForImageClassification.from_config(config).eval()
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    assert fold_batch_norms(model) == 0
    assert all(torch.equal(tensor, state[name]) for name, tensor in model.state_dict().items())


def test_a_model_in_training_mode_is_refused(tiny_resnet):
    model = AutoModelForImageClassification.from_pretrained(tiny_resnet).train()
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(model)


def test_other_models_are_left_as_they_are(tiny_models):
    model = AutoModelForImageClassification.from_pretrained(tiny_models["vit"]).eval()
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    assert fold_batch_norms(model) == 0
    assert all(torch.equal(tensor, state[name]) for name, tensor in model.state_dict().items())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_predicts_model_is_folded_in_its_precision(trained_run, precision):
    classifier = load_classifier(str(trained_run["output"]), device="cpu", precision=precision)
    assert batch_norms(classifier.model) == 0
    assert classifier.model.dtype == {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]


def test_predicts_timm_resnet_is_folded(tiny_models):
    classifier = load_classifier(str(tiny_models["timm"]), device="cpu", precision="fp32")
    assert batch_norms(classifier.model) == 0
