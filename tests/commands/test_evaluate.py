"""`hf-resnet101 evaluate`: training's metrics on held-out data, per-class table, confusion matrix, mistakes."""

from __future__ import annotations

import csv
import json
import shutil
import unicodedata

import numpy as np
import pytest
import torch
from conftest import run_cli, save_tiny_resnet, write_class_images
from PIL import Image
from transformers import AutoImageProcessor, EvalPrediction, ResNetForImageClassification

from hf_resnet101.evaluation.metrics import build_compute_metrics

TRAINING_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


def test_metrics_equal_the_training_runs_final_evaluation(trained_run, tmp_path, capsys):
    output_dir = tmp_path / "evaluation"
    out, _ = run_cli(
        capsys,
        ["evaluate", str(trained_run["output"]), str(trained_run["validation"]), "--output_dir", str(output_dir),
         "--precision", "fp32"],
    )  # fmt: skip
    trained = json.loads((trained_run["output"] / "eval_results.json").read_text())  # trained and evaluated in fp32
    metrics = json.loads((output_dir / "metrics.json").read_text())
    assert metrics["num_images"] == 9
    assert metrics["run_on"] == "cpu, float32" and "(cpu, float32)" in out
    for name in TRAINING_METRICS:
        assert metrics[name] == pytest.approx(trained[f"eval_{name}"], abs=1e-6), name
    assert "top_5_accuracy" not in metrics  # 3 classes

    per_class = list(csv.DictReader((output_dir / "per_class.csv").open(newline="", encoding="utf-8")))
    assert [row["class"] for row in per_class] == ["Blue Jay", "cat", "élan vital"]
    assert [int(row["support"]) for row in per_class] == [3, 3, 3]
    recall = [float(row["recall"]) for row in per_class]
    assert np.mean(recall) == pytest.approx(metrics["recall_macro"])

    mistakes = list(csv.DictReader((output_dir / "mistakes.csv").open(newline="", encoding="utf-8")))
    assert len(mistakes) == round((1 - metrics["accuracy"]) * 9)
    assert all(row["true"] != row["predicted"] for row in mistakes)
    scores = [float(row["score"]) for row in mistakes]
    assert scores == sorted(scores, reverse=True)
    assert (output_dir / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "accuracy" in out and "élan vital" in out and "confusion_matrix.png" in out


def test_show_mistakes_0_prints_no_mistakes_table_and_still_writes_them(trained_run, tmp_path, capsys):
    # Two classes' folders swapped, so there are mistakes to leave out whatever the tiny model learnt (CPU
    # training is not bit-reproducible: the validation folder itself was sometimes all right).
    data = shutil.copytree(trained_run["validation"], tmp_path / "swapped")
    (data / "cat").rename(data / "swap")
    (data / "Blue Jay").rename(data / "cat")
    (data / "swap").rename(data / "Blue Jay")
    out_dir = tmp_path / "evaluation"
    argv = ["evaluate", str(trained_run["output"]), str(data), "--output_dir", str(out_dir)]
    out, _ = run_cli(capsys, [*argv, "--precision", "fp32", "--show_mistakes", "0"])
    mistakes = list(csv.DictReader((out_dir / "mistakes.csv").open(newline="", encoding="utf-8")))
    assert mistakes
    assert "Most confident mistakes" not in out and "path  true  predicted" not in out


def test_top_5_past_five_classes_matches_a_direct_forward_pass(tmp_path, capsys):
    names = [f"class {i}" for i in range(7)]
    model_dir = save_tiny_resnet(tmp_path / "model")
    model = ResNetForImageClassification.from_pretrained(
        model_dir, num_labels=7, id2label=dict(enumerate(names)), ignore_mismatched_sizes=True
    )
    model.save_pretrained(model_dir)
    colours = {name: (30 * i, 255 - 30 * i, 100) for i, name in enumerate(names)}
    data = write_class_images(tmp_path / "data", per_class=2, classes=colours)
    # fp32 as the forward pass below: the untrained model's 7 logits lie close together, so where `auto` is bf16 its
    # rounding could reorder ranks 5 and 6 (seen in one test order on an AMD EPYC with AVX-512 BF16).
    argv = ["evaluate", str(model_dir), str(data), "--output_dir", str(tmp_path / "ev"), "--precision", "fp32"]
    run_cli(capsys, argv)
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())

    paths = sorted(data.rglob("*.png"))
    processor = AutoImageProcessor.from_pretrained(model_dir)
    pixel_values = processor([Image.open(p).convert("RGB") for p in paths], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        logits = model.eval()(pixel_values=pixel_values).logits.numpy()
    labels = np.asarray([names.index(p.parent.name) for p in paths])
    expected = build_compute_metrics(7)(EvalPrediction(predictions=logits, label_ids=labels))
    assert set(expected) == {*TRAINING_METRICS, "top_5_accuracy"}
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-6), name


def test_unknown_class_folder_is_reported_not_mapped(trained_run, tmp_path, capsys):
    data = write_class_images(tmp_path / "data", per_class=2, classes={"cat": (200, 60, 40), "zebra": (9, 9, 9)})
    model = str(trained_run["output"])
    _, err = run_cli(capsys, ["evaluate", model, str(data), "--output_dir", str(tmp_path / "ev")], expected_code=2)
    assert "zebra" in err and "--ignore_unknown_classes" in err

    out, _ = run_cli(
        capsys, ["evaluate", model, str(data), "--output_dir", str(tmp_path / "ev"), "--ignore_unknown_classes"]
    )
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["excluded_classes"] == {"zebra": 2}
    assert metrics["num_images"] == 2
    assert "zebra" in out


def test_unreadable_image_is_left_out_and_listed(trained_run, tmp_path, capsys):
    data = write_class_images(tmp_path / "data", per_class=2)
    (data / "cat" / "broken.png").write_bytes(b"\x89PNG broken")
    run_cli(capsys, ["evaluate", str(trained_run["output"]), str(data), "--output_dir", str(tmp_path / "ev")])
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["num_images"] == 6
    assert [entry["path"] for entry in metrics["unreadable"]] == [str(data / "cat" / "broken.png")]


def test_local_dataset_split_gives_the_folders_metrics(trained_run, tmp_path, capsys):
    model, validation = str(trained_run["output"]), str(trained_run["validation"])
    run_cli(capsys, ["evaluate", model, validation, "--output_dir", str(tmp_path / "folder")])
    argv = ["evaluate", model, "--dataset_name", validation, "--split", "train", "--output_dir", str(tmp_path / "ds")]
    run_cli(capsys, argv)
    from_folder = json.loads((tmp_path / "folder" / "metrics.json").read_text())
    from_dataset = json.loads((tmp_path / "ds" / "metrics.json").read_text())
    for name in TRAINING_METRICS:
        assert from_dataset[name] == pytest.approx(from_folder[name]), name


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["evaluate", "{tmp}/no-model", "{data}"], "does not exist"),
        (["evaluate", "{model}", "{tmp}/empty"], "holds no images"),
        (["evaluate", "{model}", "{tmp}/nothing-here"], "does not exist"),
        (["evaluate", "{model}"], "either DATA"),
        (["evaluate", "{tmp}/no-model", "{data}", "--dataset_name", "beans"], "either DATA"),  # before loading
    ],
)
def test_bad_input_gets_a_message(trained_run, tmp_path, capsys, argv, expected):
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    values = {"tmp": tmp_path, "model": trained_run["output"], "data": trained_run["validation"]}
    _, err = run_cli(capsys, [arg.format(**values) for arg in argv] + ["--output_dir", str(tmp_path / "ev")], 2)
    assert expected in err


def test_known_and_unknown_classes_are_separated_or_refused():
    from hf_resnet101.commands.evaluate import split_known_classes
    from hf_resnet101.errors import UsageError

    labels = ["cat", "dog"]
    both = {"cat": "cat", "dog": "dog"}
    assert split_known_classes(["cat", "dog"], labels, "DATA d", ignore_unknown=False) == (both, [])
    with pytest.raises(UsageError, match="classes that the model does not know: fox .*--ignore_unknown_classes"):
        split_known_classes(["cat", "fox"], labels, "DATA d", ignore_unknown=False)
    assert split_known_classes(["cat", "fox"], labels, "DATA d", ignore_unknown=True) == ({"cat": "cat"}, ["fox"])
    with pytest.raises(UsageError, match="None of the classes of DATA d"):
        split_known_classes(["fox"], labels, "DATA d", ignore_unknown=True)


def test_mistakes_are_listed_most_confident_first():
    from hf_resnet101.commands.evaluate import most_confident_mistakes, softmax

    probabilities = softmax(np.array([[3.0, 0.0], [0.0, 1.0], [0.0, 4.0], [2.0, 0.0]]))
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    mistakes = most_confident_mistakes(probabilities, np.array([0, 0, 0, 1]), ["a", "b", "c", "d"], ["cat", "dog"])
    assert [m["path"] for m in mistakes] == ["c", "d", "b"]
    assert mistakes[0] == {"path": "c", "true": "cat", "predicted": "dog", "score": pytest.approx(probabilities[2, 1])}


def test_per_class_csv_rows_name_every_class_of_the_model():
    from hf_resnet101.commands.evaluate import per_class_csv_rows

    scores = {"precision": [1.0, 0.5, 0.0, 0.0], "recall": [0.5, 1.0, 0.0, 0.0], "f1": [0.67, 0.67, 0.0, 0.0],
              "support": [2.0, 1.0, 0.0, 0.0], "predicted": [1, 2, 0, 1]}  # fmt: skip
    rows = per_class_csv_rows(scores, ["cat", "dog", "bird", "fox"])
    assert rows[1] == {"class": "dog", "precision": 0.5, "recall": 1.0, "f1": 0.67, "support": 1}
    # Not in the images and never predicted: no scores, as the macro averages leave it out; predicted: its zeros count.
    assert rows[2] == {"class": "bird", "precision": None, "recall": None, "f1": None, "support": 0}
    assert rows[3] == {"class": "fox", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_bf16_evaluation_says_so_and_agrees_with_fp32(trained_run, tmp_path, capsys):
    """The --precision path a GPU's fp16 takes (the model converted, inputs cast by the pipeline), run on the CPU."""
    argv = ["evaluate", str(trained_run["output"]), str(trained_run["validation"])]
    run_cli(capsys, [*argv, "--output_dir", str(tmp_path / "fp32"), "--precision", "fp32"])
    out, _ = run_cli(capsys, [*argv, "--output_dir", str(tmp_path / "bf16"), "--precision", "bf16"])
    fp32, bf16 = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("fp32", "bf16"))
    assert bf16["run_on"] == "cpu, bfloat16" and "(cpu, bfloat16)" in out
    assert bf16["num_images"] == fp32["num_images"] == 9
    assert bf16["accuracy"] == pytest.approx(fp32["accuracy"], abs=1 / 9 + 1e-9)  # at most one near tie flips


@pytest.mark.parametrize("cpu_bf16_auto", [True, False], ids=["x86-bf16", "other-cpu"])
def test_auto_evaluates_in_what_training_runs_on_the_cpu(trained_run, tmp_path, capsys, monkeypatch, cpu_bf16_auto):
    """`auto` on a CPU: bf16 where training's auto is bf16 (x86 with AVX-512 BF16 or AMX), else fp32; the results
    and metrics.json say which."""
    from hf_resnet101 import inference

    monkeypatch.setattr(inference, "cpu_bf16_is_auto", lambda: cpu_bf16_auto)
    monkeypatch.setattr(inference, "cpu_supports_bf16", lambda: cpu_bf16_auto)
    argv = ["evaluate", str(trained_run["output"]), str(trained_run["validation"]), "--output_dir", str(tmp_path)]
    out, err = run_cli(capsys, argv)
    run_on = "cpu, bfloat16" if cpu_bf16_auto else "cpu, float32"
    assert json.loads((tmp_path / "metrics.json").read_text())["run_on"] == run_on and f"({run_on})" in out
    assert ("--precision fp32 for full precision" in err) is cpu_bf16_auto


def evaluate_argv(trained_run, data, output_dir) -> list[str]:
    return ["evaluate", str(trained_run["output"]), str(data), "--output_dir", str(output_dir), "--precision", "fp32"]


def test_an_output_dir_that_cannot_be_written_is_refused_before_loading(tmp_path, capsys, monkeypatch):
    import os

    data = write_class_images(tmp_path / "data", per_class=1)
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as on a read-only file system (root included)
    argv = ["evaluate", str(tmp_path / "no-model"), str(data), "--output_dir", str(tmp_path / "ev")]
    _, err = run_cli(capsys, argv, expected_code=2)
    assert f"--output_dir {tmp_path / 'ev'}: {tmp_path} cannot be written to" in err and "no-model" not in err


def test_a_failed_write_keeps_the_metrics_in_the_message(trained_run, tmp_path, capsys, monkeypatch):
    import errno

    from hf_resnet101.commands import evaluate

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(evaluate, "write_evaluation", full_disk)
    argv = ["evaluate", str(trained_run["output"]), str(trained_run["validation"]), "--output_dir",
            str(tmp_path / "ev"), "--precision", "fp32"]  # fmt: skip
    _, err = run_cli(capsys, argv, expected_code=2)
    assert "Could not write the evaluation to" in err and "No space left on device" in err
    assert "Its metrics on 9 images: accuracy " in err


@pytest.mark.parametrize(
    ("output_dir", "expected"),
    [
        ("{data}/cat", "--output_dir {data}/cat is inside DATA {data}: the next evaluation of {data} would read"),
        ("{data}", "--output_dir {data} is inside DATA {data}"),
        ("{data}/../data/new", "is inside DATA {data}: "),
        (
            "{run}",
            "--output_dir {run} is a model's folder (it holds run_manifest.json, run_identity.json, config.json",
        ),
        ("{tmp}/a-file", "--output_dir {tmp}/a-file: {tmp}/a-file is a file, not a folder"),
        ("{tmp}/a-file/ev", "--output_dir {tmp}/a-file/ev: {tmp}/a-file is a file, not a folder"),
        ("{tmp}/figures", "--output_dir {tmp}/figures holds confusion_matrix.png, which no evaluation wrote"),
        ("{tmp}/onnx", "--output_dir {tmp}/onnx is a model's folder (it holds config.json, model.onnx): its files are "
         "the model, and evaluation results are kept apart from them."),
    ],
)  # fmt: skip
def test_output_dir_that_must_not_be_written_is_refused_before_loading(
    trained_run, tmp_path, capsys, output_dir, expected
):
    data = write_class_images(tmp_path / "data", per_class=1)
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "confusion_matrix.png").write_bytes(b"someone's figure")
    (tmp_path / "onnx").mkdir()  # what `export` writes, in short
    for name in ("model.onnx", "config.json", "preprocessor_config.json", "labels.json"):
        (tmp_path / "onnx" / name).write_text("{}")
    run_confusion = (trained_run["output"] / "confusion_matrix.png").read_bytes()
    values = {"data": data, "run": trained_run["output"], "tmp": tmp_path}
    # A model that does not exist: had anything been loaded first, its error would be the one said.
    argv = ["evaluate", str(tmp_path / "no-model"), str(data), "--output_dir", output_dir.format(**values)]
    _, err = run_cli(capsys, argv, expected_code=2)
    assert err.count("error:") == 1 and err.count("\n") == 1 and expected.format(**values) in err
    assert "Give a folder" in err
    assert sorted(p.name for p in (data / "cat").iterdir()) == ["img_000.png"]
    assert (trained_run["output"] / "confusion_matrix.png").read_bytes() == run_confusion
    assert (tmp_path / "figures" / "confusion_matrix.png").read_bytes() == b"someone's figure"


def test_an_earlier_evaluations_folder_is_written_over(trained_run, tmp_path, capsys):
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "notes.md").write_text("kept")
    run_cli(capsys, evaluate_argv(trained_run, trained_run["validation"], tmp_path / "ev"))
    run_cli(capsys, evaluate_argv(trained_run, trained_run["validation"], tmp_path / "ev"))
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["num_images"] == 9
    assert (tmp_path / "ev" / "notes.md").read_text() == "kept"


def test_class_folders_in_decomposed_unicode_are_the_models_labels(trained_run, tmp_path, capsys):
    """macOS writes file names decomposed (NFD); the model's label "élan vital" is composed (NFC)."""
    decomposed = unicodedata.normalize("NFD", "élan vital")
    assert decomposed != "élan vital"
    data = write_class_images(
        tmp_path / "data", per_class=2, classes={decomposed: (50, 190, 60), "cat": (200, 60, 40)}
    )
    out, _ = run_cli(capsys, evaluate_argv(trained_run, data, tmp_path / "ev"))
    per_class = list(csv.DictReader((tmp_path / "ev" / "per_class.csv").open(newline="", encoding="utf-8")))
    assert {row["class"]: int(row["support"]) for row in per_class} == {"Blue Jay": 0, "cat": 2, "élan vital": 2}
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["num_images"] == 4


def test_a_class_that_differs_only_in_case_is_named_so(trained_run, tmp_path, capsys):
    data = write_class_images(tmp_path / "data", per_class=1, classes={"Cat": (200, 60, 40), "cat": (200, 60, 40)})
    _, err = run_cli(capsys, evaluate_argv(trained_run, data, tmp_path / "ev"), expected_code=2)
    assert "does not know: Cat (differs only in case from the model's label cat) (the model's labels" in err
    write_class_images(tmp_path / "only", per_class=1, classes={"BLUE JAY": (40, 70, 200)})
    _, err = run_cli(capsys, evaluate_argv(trained_run, tmp_path / "only", tmp_path / "ev"), expected_code=2)
    assert "(BLUE JAY (differs only in case from the model's label Blue Jay)) is a label of the model" in err


def test_every_readable_image_type_is_evaluated_and_others_are_counted(trained_run, tmp_path, capsys):
    """AVIF and QOI (read by Pillow 11+) are evaluated; a HEIC photo (needs a plugin) is counted in one line; notes,
    hidden and system files are left out without a word."""
    data = write_class_images(tmp_path / "data", per_class=1)
    Image.new("RGB", (32, 32), (200, 60, 40)).save(data / "cat" / "a.avif")
    Image.new("RGB", (32, 32), (40, 70, 200)).save(data / "Blue Jay" / "b.qoi")
    (data / "cat" / "IMG_0001.heic").write_bytes(b"\0\0\0\x18ftypheic")
    (data / "cat" / "IMG_0002.HEIC").write_bytes(b"\0\0\0\x18ftypheic")
    for other in ("README.md", ".DS_Store", "Thumbs.db", "labels.json"):
        (data / "cat" / other).write_text("not an image")
    (data / "cat" / "more").mkdir()
    Image.new("RGB", (32, 32)).save(data / "cat" / "more" / "nested.png")
    out, _ = run_cli(capsys, evaluate_argv(trained_run, data, tmp_path / "ev"))
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["num_images"] == 5 and metrics["unreadable"] == []
    assert f"left out: 2 file(s) in {data} are not of an image type read here (IMG_0001.heic, IMG_0002.HEIC)" in out
    assert "left out: 1 images in sub-folders of the class folders" in out
    assert not any(name in out for name in ("README", ".DS_Store", "Thumbs.db", "labels.json"))


def test_a_folder_of_split_folders_is_pointed_to_its_held_out_one(trained_run, tmp_path, capsys):
    """evaluate takes DATA: the hint named training's --train_dir and --validation_dir, which it does not have."""
    data = tmp_path / "data"
    shutil.copytree(trained_run["train"], data / "train")
    shutil.copytree(trained_run["validation"], data / "test")
    _, err = run_cli(capsys, ["evaluate", str(trained_run["output"]), str(data)], expected_code=2)
    err = " ".join(err.split())
    assert f"DATA {data} holds split folders, not class folders: give {data / 'test'} (images the model" in err
    assert "--train_dir" not in err and "Class folders with no images" not in err


def test_evaluating_on_the_runs_training_images_is_said_to_overstate(trained_run, tmp_path, capsys):
    """evaluate measures a model on images it was not trained on; given its own training folder, it said nothing."""
    argv = ["evaluate", str(trained_run["output"]), str(trained_run["train"]), "--output_dir", str(tmp_path / "ev")]
    _, err = run_cli(capsys, argv)
    assert "note: 24 of the 24 images are the run's training images" in " ".join(err.split())
    argv = [
        "evaluate",
        str(trained_run["output"]),
        str(trained_run["validation"]),
        "--output_dir",
        str(tmp_path / "v"),
    ]
    _, err = run_cli(capsys, argv)
    assert "training images" not in err
