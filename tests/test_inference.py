"""Inference on a trained model: where the model comes from, unreadable images, and results in the input's order."""

from __future__ import annotations

import time

import pytest
import torch
from PIL import Image

from hf_resnet101.errors import UsageError
from hf_resnet101.inference import (
    Classified,
    classify,
    load_model_and_processor,
    prepared_chunks,
    read_or_describe,
    sort_results,
)


def test_a_missing_model_folder_says_what_predict_takes(tmp_path):
    with pytest.raises(UsageError, match="does not exist: give the output folder of a training run"):
        load_model_and_processor(str(tmp_path / "missing"))


def test_a_batch_of_zero_is_a_usage_error_not_a_range_error(tiny_resnet, image_folder):
    from hf_resnet101.inference import load_classifier

    images = [str(path) for path in sorted(image_folder.rglob("*.png"))[:2]]
    with pytest.raises(UsageError, match="--batch_size must be at least 1, got 0"):
        list(classify(load_classifier(str(tiny_resnet), "cpu"), images, top_k=1, batch_size=0))


def test_model_loads_in_eval_mode_with_its_processor(tiny_resnet):
    model, processor = load_model_and_processor(str(tiny_resnet))
    assert not model.training and model.config.num_labels == 4
    assert processor.size == {"shortest_edge": 32}


def test_unreadable_images_are_reported_by_position(tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (8, 8)).save(good)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    sources = [str(good), str(tmp_path / "broken.png"), str(tmp_path / "gone.png")]
    images, positions, errors = sort_results(map(read_or_describe, sources))
    assert len(images) == 1 and images[0].mode == "RGB" and positions == [0]
    assert set(errors) == {1, 2} and errors[2].startswith("FileNotFoundError: no such file")


def test_classify_keeps_the_order_in_chunks_and_reports_progress(tmp_path):
    calls = []

    def classifier(images, **options):
        calls.append((len(images), options))
        return [[{"label": "bright" if image.getpixel((0, 0))[0] > 100 else "dark", "score": 1.0}] for image in images]

    paths = []
    for i in range(20):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (4, 4), (200 if i % 2 else 10,) * 3).save(path)
        paths.append(str(path))
    paths[3] = str(tmp_path / "missing.png")
    progress = []
    results = list(classify(classifier, paths, top_k=1, batch_size=2, on_progress=progress.append))
    assert [r.source for r in results] == paths
    assert results[0].scores[0]["label"] == "dark" and results[1].scores[0]["label"] == "bright"
    assert (
        results[3] == Classified(paths[3], scores=None, error=results[3].error) and "no such file" in results[3].error
    )
    assert progress == [16, 4] and [n for n, _ in calls] == [15, 4]  # chunks of 8 batches; the missing file left out
    assert calls[0][1] == {"top_k": 1, "batch_size": 2}


def test_pil_images_are_named_by_position_or_given_names():
    images = [Image.new("RGB", (4, 4)) for _ in range(2)]
    results = list(classify(lambda imgs, **_: [[]] * len(imgs), images, top_k=1))
    assert [r.source for r in results] == ["image 0", "image 1"]
    named = list(classify(lambda imgs, **_: [[]] * len(imgs), images, top_k=1, names=["a", "b"]))
    assert [r.source for r in named] == ["a", "b"]


def test_a_cpu_classifier_runs_channels_last_and_predicts_as_the_saved_layout_does(tiny_resnet):
    import torch
    from transformers import pipeline

    from hf_resnet101.inference import load_classifier

    classifier = load_classifier(str(tiny_resnet), device="cpu", precision="fp32")  # auto may be bf16 on this CPU
    convolutions = [m.weight for m in classifier.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convolutions and all(w.is_contiguous(memory_format=torch.channels_last) for w in convolutions)
    images = [Image.new("RGB", (40, 30), (40 * i, 255 - 30 * i, 90)) for i in range(6)]
    as_saved = pipeline("image-classification", model=str(tiny_resnet), device=-1)
    for ours, theirs in zip(classifier(images, top_k=4, batch_size=3), as_saved(images, top_k=4), strict=True):
        assert {r["label"]: pytest.approx(r["score"], abs=1e-4) for r in ours} == {
            r["label"]: r["score"] for r in theirs
        }


@pytest.mark.parametrize(
    ("requested", "device", "cpu_bf16", "cpu_bf16_auto", "expected"),
    [("auto", "cuda", True, True, "fp16"), ("auto", "cpu", True, True, "bf16"), ("auto", "cpu", True, False, "fp32"),
     ("auto", "cpu", False, False, "fp32"), ("auto", "mps", False, False, "fp32"),
     ("bf16", "cpu", False, False, "bf16"), ("fp32", "cuda", False, False, "fp32"),
     ("fp32", "cpu", True, True, "fp32"), ("fp16", "cuda", False, False, "fp16"),
     ("fp16", "cpu", True, False, "bf16"), ("fp16", "cpu", False, False, "fp32")],
)  # fmt: skip
def test_auto_precision_is_what_training_runs_on_the_same_hardware(
    requested, device, cpu_bf16, cpu_bf16_auto, expected
):
    from hf_resnet101.config.hardware import resolve_precision
    from hf_resnet101.inference import inference_precision

    assert inference_precision(requested, device, cpu_bf16, cpu_bf16_auto) == expected
    if requested == "auto" and device in ("cuda", "cpu"):
        fp16, bf16, _ = resolve_precision("auto", device == "cuda", cpu_bf16, cpu_bf16_auto)
        assert expected == ("fp16" if fp16 else "bf16" if bf16 else "fp32")


def test_an_unknown_precision_is_refused():
    from hf_resnet101.errors import UsageError
    from hf_resnet101.inference import inference_precision

    with pytest.raises(UsageError, match="choose one of auto, fp32, fp16, bf16"):
        inference_precision("int8", "cpu")


@pytest.mark.parametrize("ahead", [True, False], ids=["ahead", "in-turn"])
def test_threaded_decoding_keeps_the_order_and_the_errors(tmp_path, ahead):
    from concurrent.futures import ThreadPoolExecutor

    paths = []
    for i in range(24):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (8 + i, 8), (10 * i, 0, 0)).save(path)
        paths.append(str(path))
    (tmp_path / "5.png").write_bytes(b"broken")
    paths[9] = str(tmp_path / "gone.png")
    with ThreadPoolExecutor(4) as pool:
        chunks = list(prepared_chunks(paths, 10, pool, None, ahead))
    assert [(start, chunk) for start, chunk, _ in chunks] == [(0, paths[:10]), (10, paths[10:20]), (20, paths[20:])]
    serial = sort_results(map(read_or_describe, paths))
    for start, chunk, (images, positions, errors) in chunks:
        expected = sort_results(map(read_or_describe, chunk))
        assert positions == expected[1] and errors == expected[2]
        assert [image.size[0] - 8 - start for image in images] == positions  # each image where its path was
    assert set(serial[2]) == {5, 9}


@pytest.mark.parametrize("ahead", [True, False], ids=["ahead", "in-turn"])
def test_images_prepared_ahead_or_in_turn_classify_as_the_pipeline_does(tiny_resnet, tmp_path, monkeypatch, ahead):
    from transformers import pipeline

    from hf_resnet101 import inference
    from hf_resnet101.config import hardware

    monkeypatch.setattr(hardware, "preparing_threads", lambda: 8)  # more threads than this machine may have
    paths = []
    for i in range(21):
        path = tmp_path / f"{i}.jpg"
        Image.new("RGB", (30 + 7 * i, 50 - i), (11 * i, 255 - 9 * i, 40)).save(path)
        paths.append(str(path))
    (tmp_path / "4.jpg").write_bytes(b"not a jpeg")
    classifier = inference.load_classifier(str(tiny_resnet), device="cpu", precision="fp32")  # as the pipeline runs
    results = list(inference.classify(classifier, paths, top_k=2, batch_size=2, prepare_ahead=ahead))
    readable = [p for i, p in enumerate(paths) if i != 4]
    expected = iter(pipeline("image-classification", model=str(tiny_resnet))(readable, top_k=2, batch_size=2))
    assert [r.source for r in results] == paths and "cannot identify image file" in results[4].error
    for result in results[:4] + results[5:]:
        theirs = next(expected)
        assert [s["label"] for s in result.scores] == [s["label"] for s in theirs]
        assert [s["score"] for s in result.scores] == [pytest.approx(s["score"], abs=1e-5) for s in theirs]


def test_a_consumer_that_stops_early_leaves_the_later_chunks_unread(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from hf_resnet101 import inference

    read = []

    def slow_read(source):
        time.sleep(0.05)
        read.append(source)
        return Image.new("RGB", (4, 4))

    monkeypatch.setattr(inference, "read_image", slow_read)
    sources = [str(i) for i in range(40)]
    with ThreadPoolExecutor(1) as pool:
        chunks = inference.prepared_chunks(sources, 4, pool, None, ahead=True)
        start, chunk, (images, _, _) = next(chunks)
        assert start == 0 and chunk == sources[:4] and len(images) == 4
        chunks.close()  # the next chunk was submitted: its first image may be being read, the others wait
    assert read in (sources[:4], sources[:5])  # those waiting were cancelled, and no later chunk was started


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_run.sh runs it)")
def test_a_gpu_classifier_runs_fp16_channels_last_and_agrees_with_the_cpu(tiny_resnet, tmp_path):
    from hf_resnet101.inference import load_classifier

    paths = []
    for i in range(12):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (40 + 5 * i, 30), (20 * i, 255 - 20 * i, 90)).save(path)
        paths.append(str(path))
    gpu = load_classifier(str(tiny_resnet))  # auto: fp16, channels-last
    assert gpu.device.type == "cuda" and gpu.model.dtype == torch.float16
    convolutions = [m.weight for m in gpu.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convolutions)
    cpu = load_classifier(str(tiny_resnet), device="cpu")
    for ours, reference in zip(classify(gpu, paths, top_k=4), classify(cpu, paths, top_k=4), strict=True):
        assert {s["label"]: pytest.approx(s["score"], abs=2e-2) for s in ours.scores} == {
            s["label"]: s["score"] for s in reference.scores
        }
