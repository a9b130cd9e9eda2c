"""The scan of image files: what is read once and cached."""

from __future__ import annotations

from conftest import write_class_images
from PIL import Image

from hf_resnet101.data.scan import inspect_file, scan_files


def test_second_scan_comes_from_the_cache(tmp_path, monkeypatch):
    write_class_images(tmp_path / "data", per_class=5)
    paths = sorted(str(p) for p in (tmp_path / "data").rglob("*.png"))
    first = scan_files(paths, "key", progress=False)
    calls = []
    monkeypatch.setattr("hf_resnet101.data.scan.inspect_file", lambda p: calls.append(p) or inspect_file(p))
    assert scan_files(paths, "key", progress=False) == first
    assert calls == []
    Image.new("RGB", (9, 9)).save(paths[0])  # changed file: scanned again
    again = scan_files(paths, "key", progress=False)
    assert calls == [paths[0]] and again[0].width == 9


def test_a_cache_of_another_shape_is_scanned_again(tmp_path):
    """Valid JSON of the wrong shape (a list, null, records missing fields) crashed every run and inspect."""
    write_class_images(tmp_path / "data", per_class=2)
    paths = sorted(str(p) for p in (tmp_path / "data").rglob("*.png"))
    first = scan_files(paths, "key", cache_dir=tmp_path / "cache", progress=False)
    (cache_file,) = (tmp_path / "cache").iterdir()
    for damaged in ("[]", "null", '{"version": 3, "records": [{"path": "x"}]}', '{"version": 3}'):
        cache_file.write_text(damaged)
        assert scan_files(paths, "key", cache_dir=tmp_path / "cache", progress=False) == first


def test_a_cache_folder_that_cannot_be_written_is_said_and_the_scan_goes_on(tmp_path, caplog):
    write_class_images(tmp_path / "data", per_class=2)
    paths = sorted(str(p) for p in (tmp_path / "data").rglob("*.png"))
    (tmp_path / "not-a-folder").write_text("")  # no folder can be made under it, as on a read-only home
    records = scan_files(paths, "key", cache_dir=tmp_path / "not-a-folder" / "scans", progress=False)
    assert len(records) == len(paths) and all(record.usable for record in records)
    assert "The scan's cache could not be saved in" in caplog.text and "HF_RESNET101_CACHE" in caplog.text
    assert (tmp_path / "not-a-folder").read_text() == ""
