"""What a finished run says last: where the model is, its validation metrics, and how to use it."""

from __future__ import annotations

from pathlib import Path

from hf_resnet101.train.finish import FinetuneResult


def test_closing_lines_say_where_the_model_is_and_how_to_load_it():
    local = FinetuneResult(Path("out"), ["cat", "dog"], {"accuracy": 0.875, "loss": 0.3, "f1_macro": 0.86})
    lines = local.closing_lines()
    assert lines[0] == "Model saved to out (validation accuracy 0.8750, f1_macro 0.8600)"
    assert lines[-1] == 'Use it: pipeline("image-classification", model="out")'
    pushed = FinetuneResult(Path("out"), ["cat", "dog"], {}, hub_model_id="me/pets").closing_lines()
    assert "pushed to https://huggingface.co/me/pets" in pushed[0] and 'model="me/pets"' in pushed[-1]
