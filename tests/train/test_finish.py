"""What a finished run says last: where the model is, its validation metrics, and how to use it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from transformers import Trainer

from hf_resnet101.train.finish import FinetuneResult


def test_closing_lines_say_where_the_model_is_and_how_to_load_it():
    local = FinetuneResult(Path("out"), ["cat", "dog"], {"accuracy": 0.875, "loss": 0.3, "f1_macro": 0.86})
    lines = local.closing_lines()
    assert lines[0] == "Model saved to out (validation accuracy 0.8750, f1_macro 0.8600)"
    assert lines[-1] == 'Use it: pipeline("image-classification", model="out")'
    pushed = FinetuneResult(Path("out"), ["cat", "dog"], {}, hub_model_id="me/pets").closing_lines()
    assert "pushed to https://huggingface.co/me/pets" in pushed[0] and 'model="me/pets"' in pushed[-1]
    rerun = FinetuneResult(Path("out"), ["cat", "dog"], {"accuracy": 0.875}, already_finished=True)
    assert rerun.closing_lines()[0] == "Model already in out (validation accuracy 0.8750)"  # nothing saved again


@pytest.mark.parametrize("options", [[], ["--load_best_model_at_end", "true"]], ids=["last-weights", "best-weights"])
def test_the_final_evaluation_is_the_one_made_of_the_final_weights(
    options, finetune_main, train_and_validation_folders, tiny_resnet, tmp_path, monkeypatch, capsys
):
    """Evaluating at every step (the product page's default), a run ends with weights it has evaluated already: the
    final evaluation takes those results instead of predicting the validation images again, and they are the
    saved model's own, as `hf-resnet101 evaluate` measures them."""
    predicted = []
    predict = Trainer.predict
    monkeypatch.setattr(
        Trainer, "predict", lambda self, dataset, **kw: predicted.append(kw) or predict(self, dataset, **kw)
    )
    train, validation = train_and_validation_folders
    out = tmp_path / "out"
    argv = ["--train_dir", str(train), "--validation_dir", str(validation), "--output_dir", str(out),
            "--model_name_or_path", str(tiny_resnet), "--seed", "3", "--learning_rate", "5e-3", *options]  # fmt: skip
    assert finetune_main(argv) == 0
    assert len(predicted) == 1  # the card's training sample only
    state = json.loads((out / "trainer_state.json").read_text())
    assert [entry["step"] for entry in state["log_history"] if "eval_accuracy" in entry] == [1, 2, 3, 4, 5, 6]

    run_cli(
        capsys, ["evaluate", str(out), str(validation), "--output_dir", str(tmp_path / "ev"), "--precision", "fp32"]
    )
    measured = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    reported = json.loads((out / "eval_results.json").read_text())
    for name in ("accuracy", "precision_macro", "recall_macro", "f1_macro"):
        assert reported[f"eval_{name}"] == pytest.approx(measured[name], abs=1e-6), name
    card = (out / "README.md").read_text()
    assert f"{reported['eval_accuracy']:.4f}" in card
