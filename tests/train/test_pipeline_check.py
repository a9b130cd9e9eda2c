"""The saved folder loaded back through `pipeline`: several classes checked, a broken label mapping caught."""

from __future__ import annotations

import json
import shutil

import datasets
import numpy as np
import pytest
from conftest import CLASS_COLOURS, run_cli
from PIL import Image

from hf_resnet101.data.images import to_rgb
from hf_resnet101.errors import UsageError
from hf_resnet101.inference import read_image
from hf_resnet101.publish.card import CardInputs, render_model_card
from hf_resnet101.train.pipeline_check import check_with_pipeline, pipeline_check_indices


def test_indices_are_spread_over_the_split():
    assert pipeline_check_indices(100, 5) == [0, 25, 50, 74, 99]
    assert pipeline_check_indices(3, 8) == [0, 1, 2]


def validation_split(folder) -> datasets.Dataset:
    paths = sorted(str(p) for p in folder.rglob("*.png"))
    names = sorted(CLASS_COLOURS)
    labels = [names.index(p.split("/")[-2]) for p in paths]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    return datasets.Dataset.from_dict({"image": paths, "label": labels}, features=features)


def test_a_broken_label_mapping_is_caught(trained_run, tmp_path):
    names = sorted(CLASS_COLOURS)
    validation = validation_split(trained_run["validation"])
    results = check_with_pipeline(trained_run["output"], validation, [0, 1], ["x", "y"], names)
    assert {r["pipeline"] for r in results} <= set(names) and len(results) == 2
    broken = tmp_path / "broken"
    shutil.copytree(trained_run["output"], broken)
    config = json.loads((broken / "config.json").read_text())
    config["id2label"] = {i: f"LABEL_{i}" for i in config["id2label"]}
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(UsageError, match="id2label"):
        check_with_pipeline(broken, validation, [0, 1], ["x", "y"], names)


def write_sixteen_bit_classes(root, per_class: int, seed: int):
    """Grey 16-bit PNGs (mode I;16, as scanners and medical imaging write them), one brightness per class: Pillow's
    convert("RGB") clips all three to nearly white, so only a correct conversion tells them apart."""
    rng = np.random.default_rng(seed)
    for name, level in [("dark", 50), ("mid", 128), ("bright", 210)]:
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(level + rng.normal(0, 15, (36, 36)), 0, 255) * 257
            Image.fromarray(pixels.astype(np.uint16)).save(folder / f"{i}.png")
    return root


def test_a_run_on_sixteen_bit_images_is_scored_alike_by_the_run_predict_evaluate_and_its_check(
    finetune_main, tiny_resnet, tmp_path, capsys, caplog
):
    train = write_sixteen_bit_classes(tmp_path / "train", per_class=10, seed=1)
    validation = write_sixteen_bit_classes(tmp_path / "validation", per_class=4, seed=2)
    out = tmp_path / "out"
    args = ["--train_dir", str(train), "--validation_dir", str(validation), "--output_dir", str(out)]
    code = finetune_main([*args, "--model_name_or_path", str(tiny_resnet), "--max_steps", "12",
                          "--learning_rate", "1e-2", "--eval_strategy", "no", "--seed", "0"])  # fmt: skip
    assert code == 0
    logged = " ".join(caplog.text.split())
    assert "16-bit or transparent images (I;16=42)" in logged and "clips 16-bit to nearly white" in logged
    checked = json.loads((out / "pipeline_check.json").read_text())
    assert all(row["pipeline"] == row["evaluation"] for row in checked)
    card = (out / "README.md").read_text()
    assert "**16-bit or transparent images.** 42 of the images" in card and "def to_rgb(image):" in card

    run_metrics = json.loads((out / "eval_results.json").read_text())
    run_cli(
        capsys, ["evaluate", str(out), str(validation), "--precision", "fp32", "--output_dir", str(tmp_path / "ev")]
    )
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(run_metrics["eval_accuracy"])
    assert metrics["f1_macro"] == pytest.approx(run_metrics["eval_f1_macro"])


@pytest.mark.parametrize("mode", ["I;16", "I", "F", "RGBA", "LA", "PA", "P", "RGB"])
def test_the_cards_conversion_snippet_gives_trainings_pixels(mode, tmp_path):
    """The card's `to_rgb` (for pipeline users of 16-bit or transparent images) is the package's, pixel for pixel."""
    inputs = CardInputs(
        model_name="scans",
        base_model=None,
        label_names=["a", "b"],
        images_per_class={"train": {"a": 2, "b": 2}, "validation": {"a": 1, "b": 1}},
        eval_metrics={"accuracy": 1.0},
        hyperparameters={},
        precision="fp32",
        devices="cpu",
        train_runtime_s=1.0,
        converted_modes={"I;16": 6},
    )
    card = str(render_model_card(inputs))
    snippet = card.split("```python")[2].split("```")[0].replace("classifier(", "# classifier(")
    namespace: dict = {}
    exec(snippet, namespace)  # noqa: S102 - the card's own example, run as a reader would
    rng = np.random.default_rng(0)
    if mode in ("I;16", "I"):
        image = Image.fromarray(rng.integers(0, 65535, (9, 7)).astype(np.uint16 if mode == "I;16" else np.int32))
    elif mode == "F":
        image = Image.fromarray(rng.random((9, 7)).astype(np.float32))
    elif mode == "P":  # a palette image with a transparent colour
        image = Image.fromarray(rng.integers(0, 4, (9, 7)).astype(np.uint8), mode="L").convert("P")
        image.info["transparency"] = 0
    else:
        image = Image.fromarray(rng.integers(0, 255, (9, 7, 4)).astype(np.uint8), mode="RGBA").convert(mode)
    assert image.mode == mode
    expected = np.asarray(to_rgb(image.copy()))
    assert np.array_equal(np.asarray(namespace["to_rgb"](image.copy())), expected)
    assert np.array_equal(np.asarray(read_image(image.copy())), expected)  # predict and evaluate's decoding
