"""The data report: counts per class and split, duplicates, imbalance, and the saved file without local paths."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from hf_resnet101.data.report import (
    MAX_LISTED,
    Duplicates,
    LabelledFile,
    build_report,
    class_counts,
    find_duplicates,
    high_bit_values,
    paths_relative_to,
)
from hf_resnet101.data.scan import FileRecord


def record(path: str, pixel_hash: str = "", width: int = 32, height: int = 24, reason: str = "") -> FileRecord:
    if reason:
        return FileRecord(path=path, size=10, mtime_ns=0, usable=False, reason=reason)
    return FileRecord(
        path=path, size=10, mtime_ns=0, usable=True, width=width, height=height, mode="RGB", format="PNG",
        pixel_hash=pixel_hash or path,
    )  # fmt: skip


def test_duplicates_are_told_apart_by_where_they_are():
    files = [
        LabelledFile("train", "cat", record("/d/cat/a.png", "same-cat")),
        LabelledFile("train", "cat", record("/d/cat/b.png", "same-cat")),
        LabelledFile("validation", "cat", record("/v/cat/c.png", "same-cat")),
        LabelledFile("train", "cat", record("/d/cat/x.png", "two-labels")),
        LabelledFile("train", "dog", record("/d/dog/x.png", "two-labels")),
        LabelledFile("train", "dog", record("/d/dog/unique.png")),
    ]
    found = find_duplicates(files)
    assert found.within_class == [["/d/cat/a.png", "/d/cat/b.png", "/v/cat/c.png"]]  # one group across splits
    assert found.train_validation_leaks == [
        {"label": "cat", "train": ["/d/cat/a.png", "/d/cat/b.png"], "validation": ["/v/cat/c.png"]}
    ]
    assert found.conflicting_labels == [{"labels": ["cat", "dog"], "paths": ["/d/cat/x.png", "/d/dog/x.png"]}]


def test_report_counts_usable_images_and_lists_the_rest():
    files = [LabelledFile("train", "cat", record(f"/d/cat/{i}.png", width=10 * (i + 1))) for i in range(6)]
    files += [
        LabelledFile("train", "dog", record("/d/dog/0.png")),
        LabelledFile("train", "dog", record("/d/dog/1.png")),
    ]
    files.append(LabelledFile("train", "dog", record("/d/dog/broken.png", reason="truncated file")))
    report = build_report(files, ["cat", "dog", "empty"], ["empty"], Duplicates())
    assert report.images_per_class == {"train": {"cat": 6, "dog": 2, "empty": 0}}
    assert report.num_train_images == 8 and report.imbalance_ratio == 3.0  # the empty class is left out
    assert report.image_sizes["width"] == {"min": 10, "median": 32, "max": 60}
    assert report.unusable == [
        {"split": "train", "label": "dog", "path": "/d/dog/broken.png", "reason": "truncated file"}
    ]
    lines = report.summary_lines()
    assert lines[0] == "train: 8 images in 2 of 3 classes (cat=6, dog=2, empty=0)"
    assert "class imbalance: the largest training class is 3.0x the smallest" in lines
    assert "  /d/dog/broken.png: truncated file" in lines
    assert "class folders with no usable images (left out): empty" in lines


def test_counts_and_imbalance_follow_the_images_the_run_uses():
    files = [LabelledFile("train", "cat", record(f"/d/cat/{i}.png")) for i in range(6)]
    files += [LabelledFile("train", "dog", record(f"/d/dog/{i}.png")) for i in range(2)]
    report = build_report(files, ["cat", "dog"], [], Duplicates())
    report.record_used({"train": {"cat": 2, "dog": 2}}, ["--max_train_samples 4"])
    assert report.num_train_images == 4 and report.imbalance_ratio == 1.0
    assert report.summary_lines()[0] == (
        "train: 4 images in 2 classes (cat=2, dog=2) (of 8 usable found; --max_train_samples 4 left out the rest)"
    )
    report.record_used({"train": {"cat": 2, "dog": 1}}, ["--dedupe"])
    assert report.left_out_by == ["--max_train_samples 4", "--dedupe"]


def test_class_counts_name_every_class_even_an_empty_one():
    assert class_counts([0, 2, 2, 0, 2], ["cat", "dog", "owl"]) == {"cat": 2, "dog": 0, "owl": 3}


def test_long_lists_of_unusable_files_are_cut_short():
    files = [LabelledFile("train", "cat", record(f"/d/cat/{i}.png", reason="not an image")) for i in range(25)]
    files.append(LabelledFile("train", "cat", record("/d/cat/ok.png")))
    lines = build_report(files, ["cat"], [], Duplicates()).summary_lines()
    assert sum(line.startswith("  /d/cat/") for line in lines) == MAX_LISTED
    assert f"  ... and {25 - MAX_LISTED} more (see data_report.json)" in lines


def test_saved_report_names_paths_relative_to_the_data_folders(tmp_path):
    data = tmp_path / "data"
    files = [LabelledFile("train", "cat", record(str(data / "cat" / "bad.png"), reason="empty file"))]
    files.append(LabelledFile("train", "cat", record(str(data / "cat" / "ok.png"))))
    path = build_report(files, ["cat"], [], Duplicates()).save(tmp_path / "out", roots=[data.resolve()])
    saved = json.loads(path.read_text())
    assert path.name == "data_report.json" and saved["unusable"][0]["path"] == "cat/bad.png"
    assert saved["num_train_images"] == 1 and str(tmp_path) not in path.read_text()


def test_paths_outside_the_roots_and_plain_strings_are_kept(tmp_path):
    value = {"a": [str(tmp_path / "x" / "1.png"), "/elsewhere/2.png", "cat"]}
    assert paths_relative_to(value, [tmp_path.resolve() / "x"]) == {"a": ["1.png", "/elsewhere/2.png", "cat"]}


def test_scans_stored_in_16_bits_with_few_values_and_transparent_palettes_are_named(
    finetune_main, tiny_resnet, tmp_path, caplog
):
    """12-bit scans in 16-bit files and signed CT values keep few grey levels once rescaled from 0-65535; a palette
    image with a transparent colour is composited on grey, which a plain pipeline does not: the log, the report and
    the card say both."""
    rng = np.random.default_rng(0)
    data = tmp_path / "scans"
    for name in ("normal", "nodule"):
        (data / name).mkdir(parents=True)
        for i in range(5):
            Image.fromarray((rng.random((24, 24)) * 4095).astype(np.uint16)).save(data / name / f"{i}.png")
        Image.fromarray((rng.random((24, 24)) * 4000 - 1000).astype(np.int32)).save(data / name / "hu.tif")
        palette = Image.fromarray(rng.integers(0, 2, (24, 24)).astype(np.uint8), "P")
        palette.putpalette([255, 255, 255, 200, 30, 30] + [0] * 762)
        palette.save(data / name / "marked.gif", transparency=0)
    out = tmp_path / "out"
    args = ["--train_dir", str(data), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet),
            "--max_steps", "1", "--eval_strategy", "no"]  # fmt: skip
    assert finetune_main(args) == 0
    report = json.loads((out / "data_report.json").read_text())
    assert report["high_bit_values"]["images"] == 12 and report["high_bit_values"]["min"] < 0
    assert report["high_bit_values"]["grey_levels"] <= 17 and report["modes"]["P+transparency"] == 2
    logged = " ".join(caplog.text.split())
    assert "12 16-bit grey images use values -" in logged and "(values below 0 become 0)" in logged
    assert "Convert them to 8-bit PNG first with a window suited to the data" in logged
    card = " ".join((out / "README.md").read_text().split())
    assert "P+transparency: 2" in card  # with the conversion a pipeline user must apply first
    assert "rescaled from 0-65535 to 8 bits, they kept only" in card


def test_few_grey_levels_are_counted_from_the_values_used():
    def scan(mode, value_range):
        return FileRecord("/d/a.png", 1, 0, True, width=4, height=4, mode=mode, value_range=value_range)

    assert high_bit_values([scan("I;16", (0, 65535))])["grey_levels"] == 256
    assert high_bit_values([scan("I;16", (0, 4095)), scan("I;16", (10, 4000))])["grey_levels"] == 17
    assert high_bit_values([scan("I", (-1000, 3000))]) == {"images": 1, "min": -1000, "max": 3000, "grey_levels": 13}
    assert high_bit_values([scan("F", (0.0, 1.0)), scan("RGB", None)]) is None  # floats in 0-1: scaled by 255


def test_hundreds_of_classes_are_summed_up_not_listed():
    """400 classes made two summary lines of 7,600 characters each (run summary and inspect)."""
    from hf_resnet101.data.report import per_class_counts

    counts = {f"species {i:03d}": 10 + i % 7 for i in range(400)} | {"rare": 1, "rarer": 1}
    line = per_class_counts(counts)
    assert line.startswith("1-16 per class, median 13; fewest: rare=1, rarer=1, species 000=10")
    assert line.endswith("all in data_report.json") and len(line) < 200
    assert per_class_counts({"cat": 6, "dog": 2}) == "cat=6, dog=2"
