"""An `export` folder run with ONNX Runtime: `predict` and `evaluate` take it as they take the run's own folder."""

from __future__ import annotations

import csv
import json
import shutil
import sys

import numpy as np
import pytest
import torch
from conftest import run_cli
from transformers import AutoModelForImageClassification

from hf_resnet101.errors import UsageError
from hf_resnet101.inference import describe_inference, load_classifier, onnx_runtime_hint
from hf_resnet101.onnx_runtime import OnnxRuntimeModel, load_onnx_model_and_processor


@pytest.fixture(scope="module")
def exported_run(trained_run, tmp_path_factory):
    """The shared training run exported as `hf-resnet101 export` writes it."""
    from hf_resnet101.commands.export import export_model

    out = tmp_path_factory.mktemp("exported") / "onnx"
    export_model(str(trained_run["output"]), out)
    return out


def predictions(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_predict_on_an_export_gives_the_models_labels_and_scores(trained_run, exported_run, tmp_path, capsys):
    validation = str(trained_run["validation"])
    pytorch_csv, onnx_csv = str(tmp_path / "pt.csv"), str(tmp_path / "onnx.csv")
    run_cli(capsys, ["predict", str(trained_run["output"]), validation, "--precision", "fp32", "--top_k", "3",
                     "--output", pytorch_csv])  # fmt: skip
    out, _ = run_cli(capsys, ["predict", str(exported_run), validation, "--top_k", "3", "--output", onnx_csv])
    assert "9 images (0 unreadable)" in out
    expected, got = predictions(pytorch_csv), predictions(onnx_csv)
    assert [row["path"] for row in got] == [row["path"] for row in expected]
    assert {row["label_1"] for row in got} <= {"Blue Jay", "cat", "élan vital"}
    for mine, theirs in zip(got, expected, strict=True):
        assert [mine[f"label_{k}"] for k in (1, 2, 3)] == [theirs[f"label_{k}"] for k in (1, 2, 3)]
        assert float(mine["score_1"]) == pytest.approx(float(theirs["score_1"]), abs=1e-4)


def test_evaluate_on_an_export_reports_the_models_metrics_and_the_runtime(trained_run, exported_run, tmp_path, capsys):
    validation = str(trained_run["validation"])
    run_cli(capsys, ["evaluate", str(trained_run["output"]), validation, "--precision", "fp32",
                     "--output_dir", str(tmp_path / "pt")])  # fmt: skip
    out, _ = run_cli(capsys, ["evaluate", str(exported_run), validation, "--output_dir", str(tmp_path / "onnx")])
    assert "(cpu, float32, ONNX Runtime)" in out
    expected = json.loads((tmp_path / "pt" / "metrics.json").read_text())
    got = json.loads((tmp_path / "onnx" / "metrics.json").read_text())
    assert got["num_images"] == expected["num_images"] == 9
    assert got["run_on"] == "cpu, float32, ONNX Runtime" and expected["run_on"] == "cpu, float32"
    for name in ("accuracy", "f1_macro"):
        assert got[name] == pytest.approx(expected[name])


def test_the_runtime_model_gives_pytorchs_logits(trained_run, exported_run):
    model, processor = load_onnx_model_and_processor(exported_run)
    reference = AutoModelForImageClassification.from_pretrained(trained_run["output"]).eval()
    assert model.config.id2label == reference.config.id2label
    pixel_values = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(
            model(pixel_values=pixel_values).logits.numpy(),
            reference(pixel_values=pixel_values).logits.numpy(),
            atol=1e-4,
            rtol=1e-3,
        )


def test_an_export_runs_in_fp32_only(trained_run, exported_run, capsys):
    classifier = load_classifier(str(exported_run), precision="auto")
    assert isinstance(classifier.model, OnnxRuntimeModel)
    assert describe_inference(classifier) == "cpu, float32, ONNX Runtime"
    for precision in ("bf16", "fp16"):
        with pytest.raises(UsageError, match="an ONNX export runs in fp32 with ONNX Runtime"):
            load_classifier(str(exported_run), precision=precision)
    argv = ["predict", str(exported_run), str(trained_run["validation"]), "--precision", "bf16"]
    _, err = run_cli(capsys, argv, expected_code=2)
    assert "give the training run's output folder" in err


def test_the_note_names_a_faster_way_only_where_there_is_one():
    assert "GPU" in onnx_runtime_hint(gpu=True, cpu_bf16_auto=False)
    assert "bf16" in onnx_runtime_hint(gpu=False, cpu_bf16_auto=True)
    assert onnx_runtime_hint(gpu=False, cpu_bf16_auto=False) is None


def test_an_export_folder_missing_its_settings_says_what_is_missing(trained_run, exported_run, tmp_path, capsys):
    broken = tmp_path / "onnx"
    shutil.copytree(exported_run, broken)
    (broken / "preprocessor_config.json").unlink()
    _, err = run_cli(capsys, ["predict", str(broken), str(trained_run["validation"])], expected_code=2)
    assert "has model.onnx but no preprocessor_config.json" in err and "Export the training run's folder" in err


def test_a_damaged_graph_says_to_export_again(trained_run, exported_run, tmp_path, capsys):
    damaged = tmp_path / "onnx"
    shutil.copytree(exported_run, damaged)
    (damaged / "model.onnx").write_bytes((exported_run / "model.onnx").read_bytes()[:1000])  # cut short
    _, err = run_cli(capsys, ["evaluate", str(damaged), str(trained_run["validation"])], expected_code=2)
    assert "ONNX Runtime could not load" in err and "export the training run's folder again" in err


def test_a_graph_with_other_names_is_refused(trained_run, exported_run, tmp_path, capsys):
    import onnx

    renamed = tmp_path / "onnx"
    shutil.copytree(exported_run, renamed)
    graph = onnx.load(str(renamed / "model.onnx"))
    for node in graph.graph.node:
        node.input[:] = ["input" if name == "pixel_values" else name for name in node.input]
    graph.graph.input[0].name = "input"
    onnx.save(graph, str(renamed / "model.onnx"))
    _, err = run_cli(capsys, ["predict", str(renamed), str(trained_run["validation"])], expected_code=2)
    assert "takes ['input']" in err and "input pixel_values, output logits" in err


def test_missing_onnxruntime_says_what_to_install(trained_run, exported_run, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    _, err = run_cli(capsys, ["predict", str(exported_run), str(trained_run["validation"])], expected_code=2)
    assert "Running an ONNX export needs onnxruntime: pip install 'hf-resnet101[export]'" in err
