"""The model card template ships in the package and renders metadata the Hub reads."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import yaml
from conftest import REPO_ROOT

from hf_resnet101.model_card import render_model_card, template_path


def test_template_is_the_top_level_file():
    assert template_path().read_text() == (REPO_ROOT / "model_card_template.md").read_text()


def test_wheel_ships_template_and_metric_modules(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "hf_resnet101/model_card_template.md" in names
    assert "hf_resnet101/metric_modules/top_k_accuracy/top_k_accuracy.py" in names
    template = zipfile.ZipFile(wheel).read("hf_resnet101/model_card_template.md").decode()
    assert template == (REPO_ROOT / "model_card_template.md").read_text()


def test_rendered_card_metadata():
    card = render_model_card(
        model_name="resnet101-birds",
        repo_id="me/resnet101-birds",
        base_model="microsoft/resnet-101",
        label_names=["Blue Jay", "cat"],
        eval_metrics={"accuracy": 0.8125, "f1_macro": 0.8, "loss": 0.3},
        split_sizes={"train": 100, "validation": 16},
        train_class_counts={"Blue Jay": 50, "cat": 50},
        hyperparameters={"learning_rate": 5e-5},
        precision="fp16 mixed precision on CUDA",
        train_runtime_s=3725,
    )
    text = str(card)
    metadata = yaml.safe_load(text.split("---")[1])
    assert metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == "image-classification"
    assert metadata["base_model"] == "microsoft/resnet-101"
    results = metadata["model-index"][0]["results"]
    assert {m["type"]: m["value"] for r in results for m in r["metrics"]} == {"accuracy": 0.8125, "f1_macro": 0.8}
    assert 'pipeline("image-classification", model="me/resnet101-birds")' in text
    assert "1 h 02 min 05 s" in text
    assert "| accuracy | 0.8125 |" in text
