"""The full ResNet-101 against the paper's figures (needs the full-size network: slow)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hf_resnet101.modeling import build_random_resnet101, count_parameters


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
