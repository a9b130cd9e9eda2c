"""`hf-resnet101 export`: ONNX with a dynamic batch and its settings beside it, checked against PyTorch."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import onnxruntime
import pytest
import torch
from conftest import run_cli
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification

from hf_resnet101.commands.export import LogitsOnly


@pytest.mark.parametrize("family", ["resnet", "timm", "vit"])
def test_onnx_matches_pytorch_on_real_images_with_any_batch(tiny_models, image_folder, tmp_path, capsys, family):
    model_dir, out = tiny_models[family], tmp_path / "onnx"
    images = sorted(image_folder.rglob("*.png"))[::4]
    out_text, _ = run_cli(capsys, ["export", str(model_dir), str(out), "--check_images", *map(str, images)])
    assert "matches PyTorch" in out_text
    check = json.loads((out / "export_check.json").read_text())
    assert check["passed"] and check["images"] == len(images) and check["max_abs_diff"] <= 1e-4

    model = AutoModelForImageClassification.from_pretrained(model_dir).eval()
    labels = json.loads((out / "labels.json").read_text())
    assert labels == [model.config.id2label[i] for i in range(model.config.num_labels)]
    processor = AutoImageProcessor.from_pretrained(out)  # the settings written beside the ONNX file
    pixel_values = processor([Image.open(p).convert("RGB") for p in images[:3]], return_tensors="pt")["pixel_values"]
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"pixel_values": pixel_values.numpy()})[0]
    with torch.no_grad():
        expected = model(pixel_values=pixel_values).logits.numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-3)
    # predict runs the export as the model's own folder: same labels (a timm export lacked the file it asked for)
    predict = ["predict", "--top_k", "1", "--output"]
    run_cli(capsys, [*predict, str(tmp_path / "export.csv"), str(out), *map(str, images)])
    run_cli(capsys, [*predict, str(tmp_path / "model.csv"), "--precision", "fp32", str(model_dir), *map(str, images)])
    labels_of = [
        [row.split(",")[1] for row in (tmp_path / name).read_text().splitlines()]
        for name in ("export.csv", "model.csv")
    ]
    assert labels_of[0] == labels_of[1] and len(labels_of[0]) == len(images) + 1


def test_trained_run_is_checked_on_its_validation_images(trained_run, finetune_main, tmp_path, capsys):
    run_cli(capsys, ["export", str(trained_run["output"]), str(tmp_path / "onnx")])
    check = json.loads((tmp_path / "onnx" / "export_check.json").read_text())
    assert "splits.csv" in check["image_source"] and check["images"] == 8
    assert json.loads((tmp_path / "onnx" / "labels.json").read_text()) == ["Blue Jay", "cat", "élan vital"]
    assert (tmp_path / "onnx" / "preprocessor_config.json").is_file()
    assert json.loads((tmp_path / "onnx" / "config.json").read_text())["label2id"]["élan vital"] == 2
    # Training cannot start from an export (no PyTorch weights): it says what the folder is and what to give instead,
    # before anything is written.
    out = tmp_path / "retrained"
    argv = ["--train_dir", str(trained_run["validation"]), "--output_dir", str(out)]
    assert finetune_main([*argv, "--model_name_or_path", str(tmp_path / "onnx")]) == 2
    err = capsys.readouterr().err
    assert "is an ONNX export (model.onnx, no PyTorch weights; the training run's output folder" in err
    assert "give a Hub model id" in err and "`hf-resnet101 predict` and `evaluate` run the export" in err
    assert "Traceback" not in err and "no file named" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        (None, "no splits.csv in "),
        (["train,cat,train/cat/1.png"], "splits.csv lists no validation images"),
        (["train,cat,", "validation,cat,"], "the validation images in splits.csv are rows of a dataset, not files"),
        (["validation,cat,validation/cat/9.png"], "the validation images splits.csv lists are no longer where"),
    ],
)
def test_export_says_why_it_checks_on_random_pixels(tiny_resnet, tmp_path, capsys, rows, reason):
    """A run on a Hub dataset's parquet rows lists no image files: the export names that, not a missing file."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_resnet, run_dir)
    if rows is not None:
        (run_dir / "splits.csv").write_text("\n".join(["split,label,path", *rows]) + "\n")
    run_cli(capsys, ["export", str(run_dir), str(tmp_path / "onnx")])
    source = json.loads((tmp_path / "onnx" / "export_check.json").read_text())["image_source"]
    assert source.startswith("random-pixel images (") and reason in source and "give --check_images" in source


def test_an_export_that_differs_from_pytorch_fails_loudly(tiny_resnet, tmp_path, capsys, monkeypatch):
    forward = LogitsOnly.forward
    monkeypatch.setattr(LogitsOnly, "forward", lambda self, pixel_values: forward(self, pixel_values) + 0.01)
    _, err = run_cli(capsys, ["export", str(tiny_resnet), str(tmp_path / "onnx")], expected_code=2)
    assert "does not match PyTorch" in err and "atol=0.0001" in err
    assert not (tmp_path / "onnx" / "model.onnx").exists()
    assert (tmp_path / "onnx" / "model.onnx.failed").exists()


def test_export_never_writes_over_another_models_files(tiny_models, tmp_path, capsys):
    other = tmp_path / "other-run"
    shutil.copytree(tiny_models["vit"], other)
    before = {path.name: path.read_bytes() for path in other.iterdir()}
    for out in (other, tiny_models["resnet"]):  # another model's folder, the model's own folder
        _, err = run_cli(capsys, ["export", str(tiny_models["resnet"]), str(out)], expected_code=2)
        assert "already holds files" in err and "is not an earlier export" in err and "config.json" in err
        assert not (out / "model.onnx").exists()
    assert {path.name: path.read_bytes() for path in other.iterdir()} == before
    (tmp_path / "a-file").write_text("x")
    _, err = run_cli(capsys, ["export", str(tiny_models["resnet"]), str(tmp_path / "a-file")], expected_code=2)
    assert "is a file" in err


def test_an_earlier_exports_folder_is_written_over(tiny_resnet, tmp_path, capsys, monkeypatch):
    out = tmp_path / "onnx"
    out.mkdir()  # an empty folder is taken
    forward = LogitsOnly.forward
    with monkeypatch.context() as patch:  # a failed export first: its graph is set aside as model.onnx.failed
        patch.setattr(LogitsOnly, "forward", lambda self, pixel_values: forward(self, pixel_values) + 0.01)
        run_cli(capsys, ["export", str(tiny_resnet), str(out)], expected_code=2)
    assert (out / "model.onnx.failed").exists()
    out_text, _ = run_cli(capsys, ["export", str(tiny_resnet), str(out)])
    assert "matches PyTorch" in out_text
    assert (out / "model.onnx").exists() and not (out / "model.onnx.failed").exists()
    assert json.loads((out / "export_check.json").read_text())["passed"]
    run_cli(capsys, ["export", str(tiny_resnet), str(out)])  # and again
    # An export is not exported again; the message does not offer the export folder it refused.
    _, err = run_cli(capsys, ["export", str(out), str(tmp_path / "again")], expected_code=2)
    assert "is an ONNX export" in err and "written by `hf-resnet101 export`" not in err


def test_missing_onnxruntime_says_what_to_install(tiny_resnet, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    _, err = run_cli(capsys, ["export", str(tiny_resnet), str(tmp_path / "onnx")], expected_code=2)
    assert "pip install 'hf-resnet101[export]'" in err


def test_missing_model(tmp_path, capsys):
    _, err = run_cli(capsys, ["export", str(tmp_path / "no-model"), str(tmp_path / "onnx")], expected_code=2)
    assert "does not exist" in err


def test_unreadable_check_image(tiny_resnet, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    argv = ["export", str(tiny_resnet), str(tmp_path / "onnx"), "--check_images", str(broken)]
    _, err = run_cli(capsys, argv, expected_code=2)
    assert "cannot read" in err and "broken.jpg" in err
    assert not (tmp_path / "onnx").exists()  # nothing written that was not checked


def test_a_folder_given_as_check_images_is_searched_for_images(tiny_resnet, image_folder, tmp_path, capsys):
    """It was read as a file: "cannot read train (no such file)"."""
    out, _ = run_cli(capsys, ["export", str(tiny_resnet), str(tmp_path / "onnx"), "--check_images", str(image_folder)])
    check = json.loads((tmp_path / "onnx" / "export_check.json").read_text())
    assert check["passed"] and check["images"] == 8  # spread over the folder's 24
    assert "matches PyTorch on 8 given images" in " ".join(out.split())


@pytest.mark.slow
def test_full_resnet101_exports_and_matches(tmp_path, capsys):
    from hf_resnet101.modeling import build_random_resnet101, resnet_image_processor

    model_dir = tmp_path / "resnet-101"
    build_random_resnet101(["a", "b", "c"]).save_pretrained(model_dir)
    resnet_image_processor().save_pretrained(model_dir)
    run_cli(capsys, ["export", str(model_dir), str(tmp_path / "onnx")])
    check = json.loads((tmp_path / "onnx" / "export_check.json").read_text())
    assert check["passed"] and check["top1_agreement"] == 1.0
