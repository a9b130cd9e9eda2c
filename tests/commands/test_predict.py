"""`hf-resnet101 predict`: the pipeline's results, one row per image, unreadable files reported in place."""

from __future__ import annotations

import csv
import json
import os

import pytest
from conftest import CLASS_COLOURS, run_cli, write_class_images
from PIL import Image
from transformers import pipeline

from hf_resnet101.commands.predict import collect_image_paths, predict_images
from hf_resnet101.data.images import to_rgb
from hf_resnet101.data.report import CONVERTED_UNLIKE_PIPELINE
from hf_resnet101.inference import load_classifier

CLASS_NAMES = sorted(CLASS_COLOURS)


@pytest.mark.parametrize("family", ["resnet", "timm", "vit"])
def test_predictions_equal_the_pipelines(tiny_models, image_folder, family):
    model = str(tiny_models[family])
    paths = collect_image_paths([image_folder])
    # fp32 as the plain pipeline runs (auto runs bf16 on a CPU with AVX-512 BF16 or AMX)
    results = predict_images(load_classifier(model, device="cpu", precision="fp32"), paths, top_k=2, batch_size=4)
    expected = pipeline("image-classification", model=model)([str(p) for p in paths], top_k=2, batch_size=4)
    assert [r.source for r in results] == [str(p) for p in paths]
    # The same labels in the same order; the scores up to float rounding (a CPU classifier runs channels-last).
    assert [[s["label"] for s in r.scores] for r in results] == [[s["label"] for s in e] for e in expected]
    assert [[s["score"] for s in r.scores] for r in results] == [
        [pytest.approx(s["score"], abs=1e-5) for s in e] for e in expected
    ]
    assert all(r.error is None for r in results)


def test_trained_model_writes_csv_with_an_error_row_for_an_unreadable_file(trained_run, tmp_path, capsys):
    images = write_class_images(tmp_path / "new", per_class=2)
    broken = images / "cat" / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    listed = tmp_path / "list.txt"
    listed.write_text("# images to check\nnew/cat/img_000.png\n\nnew/missing.png\n")
    output = tmp_path / "preds.csv"
    out, _ = run_cli(
        capsys, ["predict", str(trained_run["output"]), str(images), str(listed), "--output", str(output)]
    )
    assert "2 unreadable" in out

    rows = list(csv.DictReader(output.open(newline="", encoding="utf-8")))
    assert len(rows) == 3 * 2 + 1 + 2
    assert list(rows[0]) == ["path", "label_1", "score_1", "label_2", "score_2", "label_3", "score_3", "error"]
    by_path = {row["path"]: row for row in rows}
    assert "cannot identify image file" in by_path[str(broken)]["error"]
    assert by_path[str(broken)]["label_1"] == ""
    assert "no such file" in by_path[str(tmp_path / "new" / "missing.png")]["error"]
    readable = [row for row in rows if not row["error"]]
    assert all(row["label_1"] in CLASS_NAMES for row in readable)
    assert all(float(row["score_1"]) >= float(row["score_2"]) for row in readable)


def test_jsonl_output_and_printed_table(trained_run, capsys, tmp_path):
    model, validation = str(trained_run["output"]), trained_run["validation"]
    output = tmp_path / "preds.jsonl"
    run_cli(capsys, ["predict", model, str(validation / "cat"), "--top_k", "1", "--output", str(output)])
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 3
    assert all(len(r["predictions"]) == 1 and r["error"] is None for r in records)
    assert all(r["predictions"][0]["label"] in CLASS_NAMES for r in records)

    out, _ = run_cli(capsys, ["predict", model, str(validation / "élan vital" / "img_000.png")])
    assert "img_000.png" in out and "top 3" in out and "top 5" not in out  # --top_k 5, but the model has 3 classes
    assert any(name in out for name in CLASS_NAMES)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["predict", "{tmp}/no-model", "{images}"], "does not exist"),
        (
            ["predict", "nobody/no-such-model", "{images}"],
            "Could not load the model: nobody/no-such-model is not in the Hub cache",
        ),
        (["predict", "{model}", "{tmp}/nothing-here"], "does not exist"),
        (["predict", "{model}", "{tmp}/empty"], "holds no image files"),
        (["predict", "{model}", "{images}", "--output", "{tmp}/preds.xlsx"], ".csv or .jsonl"),
    ],
)
def test_bad_input_gets_a_message(trained_run, tmp_path, capsys, argv, expected):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    values = {"tmp": tmp_path, "model": trained_run["output"], "images": trained_run["validation"]}
    _, err = run_cli(capsys, [arg.format(**values) for arg in argv], expected_code=2)
    assert expected in err


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("{tmp}/taken.csv", "--output {tmp}/taken.csv is a folder: give a file name in it instead"),
        ("{tmp}/a-file/preds.csv", "{tmp}/a-file is a file, so no folder can be made there"),
        ("{tmp}/a-file/deeper/preds.jsonl", "{tmp}/a-file is a file, so no folder can be made there"),
    ],
)
def test_output_that_cannot_be_written_is_refused_before_the_model_loads(tmp_path, capsys, output, expected):
    (tmp_path / "taken.csv").mkdir()
    (tmp_path / "a-file").write_text("not a folder")
    write_class_images(tmp_path / "images", per_class=1)
    # A model that does not exist: had it been loaded first, its error would be the one said.
    argv = ["predict", str(tmp_path / "no-model"), str(tmp_path / "images"), "--output", output.format(tmp=tmp_path)]
    _, err = run_cli(capsys, argv, expected_code=2)
    assert err.count("error:") == 1 and expected.format(tmp=tmp_path) in err
    assert "does not exist" not in err


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_write_that_fails_midway_leaves_no_shorter_file(tmp_path, suffix):
    """A full disk or a file-size limit used to leave the rows written so far, a file that reads as complete."""
    import errno

    from hf_resnet101.commands.predict import write_predictions
    from hf_resnet101.errors import UsageError
    from hf_resnet101.inference import Classified

    def results():
        yield Classified("a.png", scores=[{"label": "cat", "score": 0.9}])
        raise OSError(errno.EFBIG, "File too large")

    output = tmp_path / f"preds{suffix}"
    output.write_text("an earlier run's predictions")
    with pytest.raises(UsageError, match=f"Could not write --output {output}: File too large. Nothing was written"):
        write_predictions(results(), output, top_k=1)
    assert output.read_text() == "an earlier run's predictions"
    assert [p.name for p in tmp_path.iterdir()] == [output.name]  # no partial file left beside it
    write_predictions([Classified("a.png", scores=[{"label": "cat", "score": 0.9}])], output, top_k=1)
    assert "cat" in output.read_text()


def test_an_output_folder_that_cannot_be_written_is_refused_first(tmp_path, monkeypatch):
    import os

    from hf_resnet101.commands.predict import check_output_path
    from hf_resnet101.errors import UsageError

    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as on a read-only file system (root included)
    with pytest.raises(UsageError, match="cannot be written to. Give a file in a folder you can write"):
        check_output_path(tmp_path / "new" / "preds.csv")


def test_list_files_from_windows_with_folders_are_read(trained_run, tmp_path, capsys):
    """A list saved by Windows Notepad (UTF-8 with a byte-order mark, CRLF) naming an image and a folder."""
    images = write_class_images(tmp_path / "new", per_class=2)
    listed = tmp_path / "list.txt"
    listed.write_bytes("new/cat/img_000.png\r\nnew/élan vital\r\n".encode("utf-8-sig"))
    output = tmp_path / "preds.csv"
    run_cli(capsys, ["predict", str(trained_run["output"]), str(listed), "--output", str(output)])
    rows = list(csv.DictReader(output.open(newline="", encoding="utf-8")))
    assert [row["path"] for row in rows] == [
        str(images / "cat" / "img_000.png"),
        str(images / "élan vital" / "img_000.png"),
        str(images / "élan vital" / "img_001.png"),
    ]
    assert all(row["error"] == "" and row["label_1"] in CLASS_NAMES for row in rows)


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (["https://example.com/cat.jpg"], "Input https://example.com/cat.jpg is a URL: predict reads local image"),
        (["{tmp}/urls.txt"], "Line 2 of list file {tmp}/urls.txt: http://example.com/a%20b.jpg is a URL"),
        (
            ["{tmp}/latin1.txt"],
            "List file {tmp}/latin1.txt is not UTF-8 text (byte 0xe9 on line 2): save it as UTF-8",
        ),
    ],
)
def test_urls_and_other_encodings_get_a_message(tmp_path, capsys, inputs, expected):
    write_class_images(tmp_path / "images", per_class=1)
    (tmp_path / "urls.txt").write_text("images/cat/img_000.png\nhttp://example.com/a%20b.jpg\n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("# from Windows\nélan vital/img_000.png\n".encode("latin-1"))
    argv = ["predict", str(tmp_path / "no-model"), *(item.format(tmp=tmp_path) for item in inputs)]
    _, err = run_cli(capsys, argv, expected_code=2)
    assert expected.format(tmp=tmp_path) in err
    assert "download the image first" in err.lower() or "UTF-8" in err


def test_every_readable_image_type_in_a_folder_is_classified_and_others_are_counted(trained_run, tmp_path, capsys):
    """AVIF and QOI (read by Pillow 11+) are classified; a HEIC photo (needs a plugin) is counted in a note; notes,
    hidden and system files are left out without a word."""
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.avif", "b.qoi", "c.jfif"):
        Image.new("RGB", (32, 32), (200, 60, 40)).save(folder / name, "JPEG" if name.endswith("jfif") else None)
    (folder / "IMG_0001.heic").write_bytes(b"\0\0\0\x18ftypheic")
    for other in ("README", "labels.csv", ".DS_Store", "Thumbs.db", "notes.txt", ".git/objects/3f/a1b2c3"):
        (folder / other).parent.mkdir(parents=True, exist_ok=True)
        (folder / other).write_text("not an image")
    out, err = run_cli(capsys, ["predict", str(trained_run["output"]), str(folder), "--top_k", "1"])
    assert all(name in out for name in ("a.avif", "b.qoi", "c.jfif")) and "IMG_0001" not in out
    assert f"note: 1 file(s) in {folder} are not of an image type read here (IMG_0001.heic)" in err
    assert not any(name in err for name in ("README", "labels.csv", ".DS_Store", "Thumbs.db", "notes.txt", "a1b2c3"))


def test_exit_status_is_1_when_no_image_could_be_read(trained_run, tmp_path, capsys):
    from hf_resnet101.commands.cli import main

    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    model = str(trained_run["output"])
    with pytest.raises(SystemExit) as ended:
        main(["predict", model, str(empty), str(broken)])
    out, err = capsys.readouterr()
    assert ended.value.code == 1 and "Traceback" not in err
    assert "error: none of the 2 images could be read" in err and "broken.jpg" in out and "empty.png" in out
    assert "empty file (0 bytes)" in out  # not Pillow's "cannot identify image file", as for a non-image

    with pytest.raises(SystemExit) as ended:  # one image classified: a success
        main(["predict", model, str(broken), str(trained_run["validation"] / "cat" / "img_000.png")])
    _, err = capsys.readouterr()
    assert ended.value.code == 0 and "1 of 2 images could not be read" in err


@pytest.mark.parametrize(("cpu_bf16", "cpu_bf16_auto"), [(True, True), (True, False), (False, False)],
                         ids=["x86-bf16", "arm-bf16", "no-bf16"])  # fmt: skip
def test_what_auto_runs_on_a_cpu_is_said_on_stderr(trained_run, capsys, monkeypatch, cpu_bf16, cpu_bf16_auto):
    from hf_resnet101 import inference

    monkeypatch.setattr(inference, "cpu_supports_bf16", lambda: cpu_bf16)
    monkeypatch.setattr(inference, "cpu_bf16_is_auto", lambda: cpu_bf16_auto)
    argv = ["predict", str(trained_run["output"]), str(trained_run["validation"] / "cat"), "--top_k", "1"]
    out, err = run_cli(capsys, argv)
    assert ("note: running in bf16" in err and "--precision fp32 for full precision" in err) is cpu_bf16_auto
    assert ("--precision bf16 ran ResNet-101 1.75x as fast" in err) is (cpu_bf16 and not cpu_bf16_auto)
    assert "note:" not in out and out.count("img_") == 3  # the table alone on stdout
    _, err = run_cli(capsys, [*argv, "--precision", "fp32"])
    assert "note:" not in err  # a precision chosen gets no advice
    out, err = run_cli(capsys, [*argv, "--precision", "fp16"])  # 5.5x slower than fp32 on a CPU: replaced
    assert f"so the model runs in {'bf16' if cpu_bf16 else 'fp32'}" in err and out.count("img_") == 3


def test_fp16_asked_for_on_a_cpu_runs_as_the_note_says(trained_run, tmp_path, capsys, monkeypatch):
    from hf_resnet101 import inference

    monkeypatch.setattr(inference, "cpu_supports_bf16", lambda: False)
    monkeypatch.setattr(inference, "cpu_bf16_is_auto", lambda: False)
    argv = ["evaluate", str(trained_run["output"]), str(trained_run["validation"]), "--precision", "fp16"]
    out, err = run_cli(capsys, [*argv, "--output_dir", str(tmp_path / "ev")])
    assert "so the model runs in fp32" in err and "(cpu, float32)" in out


def test_messy_files_get_the_pipelines_labels_or_their_own_error(tiny_resnet, tmp_path):
    """16-bit, CMYK, palette, EXIF-rotated and transparent files prepared in threads give the pipeline's results
    (for 16-bit and transparent files, the pipeline's on the image converted as training converts it, which the
    model card tells pipeline users to do); the files the pipeline cannot read get their error in place."""
    from messy_data import write_messy_folder

    write_messy_folder(tmp_path / "data")
    paths = [str(p) for p in collect_image_paths([tmp_path / "data"])]
    classifier = load_classifier(str(tiny_resnet), device="cpu", precision="fp32")  # as the plain pipeline runs
    results = predict_images(classifier, paths, top_k=2, batch_size=3)
    plain = pipeline("image-classification", model=str(tiny_resnet))
    unreadable = 0
    for result in results:
        try:
            theirs = plain(result.source, top_k=2)
            with Image.open(result.source) as image:
                if image.mode in CONVERTED_UNLIKE_PIPELINE or "transparency" in image.info:
                    theirs = plain(to_rgb(image), top_k=2)
        except Exception as error:  # noqa: BLE001 (whatever the pipeline raises, ours is reported, not raised)
            unreadable += 1
            expected = (
                "ValueError: empty file (0 bytes)" if os.path.getsize(result.source) == 0 else type(error).__name__
            )
            assert result.scores is None and result.error.startswith(expected), result.source
            continue
        assert result.error is None, result.source
        assert [s["label"] for s in result.scores] == [s["label"] for s in theirs], result.source
        assert [s["score"] for s in result.scores] == [pytest.approx(s["score"], abs=1e-5) for s in theirs]
    assert len(results) == len(paths) > 20 and 0 < unreadable < 6


def test_no_weight_loading_bar_before_the_table(trained_run, capsys):
    argv = ["predict", str(trained_run["output"]), str(trained_run["validation"] / "cat"), "--top_k", "1"]
    out, err = run_cli(capsys, argv)
    assert "Loading weights" not in err and out.count("img_") == 3


def test_only_the_weight_file_bars_are_hidden():
    from hf_resnet101.inference import WEIGHT_LOADING_BAR, WEIGHT_WRITING_BAR, hide_weight_file_bars

    def factory(*args, **kwargs):
        return kwargs

    assert hide_weight_file_bars(factory, (), {"desc": WEIGHT_LOADING_BAR})["disable"] is True
    assert hide_weight_file_bars(factory, (), {"desc": WEIGHT_WRITING_BAR})["disable"] is True
    assert "disable" not in hide_weight_file_bars(factory, (), {"desc": "Downloading model.safetensors"})


def test_predict_loads_no_training_libraries():
    """`predict` pays for torch, transformers and torchvision only: datasets (with pandas) cost 0.6 s of a 5 s
    single-image command on a 2-core CPU, the Trainer's modules 0.7 s, and predict needs neither."""
    import subprocess
    import sys

    unneeded = "{'datasets', 'evaluate', 'sklearn', 'matplotlib', 'transformers.trainer_callback'}"
    code = f"import sys; from hf_resnet101.commands import cli, predict; print(sorted({unneeded} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_a_hub_id_not_in_the_cache_offline_says_how_to_bring_the_model(image_folder, capsys):
    _, err = run_cli(capsys, ["predict", "someone/not-cached", str(image_folder)], expected_code=2)
    err = " ".join(err.split())
    assert "someone/not-cached is not in the Hub cache" in err and "and HF_HUB_OFFLINE is set" in err
    assert "`hf download someone/not-cached --local-dir DIR`, then give DIR here" in err
