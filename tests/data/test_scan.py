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
