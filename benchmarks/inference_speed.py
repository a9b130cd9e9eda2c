"""Inference speed: `pipeline("image-classification")` throughput and latency, ResNet-101 against ViT-Base.

    python benchmarks/inference_speed.py [--images 16] [--batch_size 8] [--package]

Both models have random weights (speed does not depend on them): ResNet-101 as this package trains it, and
ViT-Base from `ViTConfig()` defaults with its 224x224 processor. Generated 500x375 photo-like JPEGs. The product
page claims ResNet-101 infers 2-3x faster than ViT-Base; this prints what this machine measures, summary last.
With --package, both models run as `hf-resnet101 predict` runs them (`load_classifier`: --precision auto,
channels-last; `classify`: images prepared in threads) on image files, instead of a plain fp16 pipeline on images
in memory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor, pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_name, photo_like  # noqa: E402

from hf_resnet101.inference import classify, load_classifier  # noqa: E402
from hf_resnet101.modeling import build_random_resnet101, resnet_image_processor  # noqa: E402


def save_models(root: Path) -> dict[str, Path]:
    labels = [f"class_{i}" for i in range(10)]
    build_random_resnet101(labels).save_pretrained(root / "resnet-101")
    resnet_image_processor().save_pretrained(root / "resnet-101")
    vit = ViTForImageClassification(ViTConfig(num_labels=10))
    vit.save_pretrained(root / "vit-base")
    ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(root / "vit-base")
    return {"ResNet-101": root / "resnet-101", "ViT-Base": root / "vit-base"}


def measure(model_dir: Path, images: list, batch_size: int, files: list[str] | None) -> tuple[float, float, float]:
    """Throughput, single-image latency and forward-only throughput; through the package's path given `files`."""
    if files is not None:
        classifier = load_classifier(str(model_dir))
        run = lambda: list(classify(classifier, files, top_k=1, batch_size=batch_size))  # noqa: E731
    else:
        device = 0 if torch.cuda.is_available() else -1
        dtype = torch.float16 if torch.cuda.is_available() else torch.float32
        classifier = pipeline("image-classification", model=str(model_dir), device=device, dtype=dtype)
        run = lambda: classifier(images, batch_size=batch_size)  # noqa: E731
    classifier(images[:batch_size], batch_size=batch_size)  # warm-up
    started = time.perf_counter()
    run()
    throughput = len(images) / (time.perf_counter() - started)
    latencies = []
    for image in images[:5]:
        started = time.perf_counter()
        classifier(image)
        latencies.append(time.perf_counter() - started)
    return throughput, sorted(latencies)[len(latencies) // 2] * 1000, forward_throughput(classifier.model, batch_size)


def forward_throughput(model: torch.nn.Module, batch_size: int, repeats: int = 10) -> float:
    """The model alone on a ready batch (no image decoding or resizing), in the pipeline's device and dtype."""
    parameter = next(model.parameters())
    pixels = torch.randn(batch_size, 3, 224, 224, device=parameter.device, dtype=parameter.dtype)
    with torch.inference_mode():
        model(pixel_values=pixels)
        if parameter.is_cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(repeats):
            model(pixel_values=pixels)
        if parameter.is_cuda:
            torch.cuda.synchronize()
    return batch_size * repeats / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--package", action="store_true", help="Run both models as `hf-resnet101 predict` does.")
    args = parser.parse_args()
    images = [photo_like(i, 500, 375) for i in range(args.images)]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = None
        if args.package:
            files = [str(Path(tmp) / f"{i:04d}.jpg") for i in range(len(images))]
            for image, file in zip(images, files, strict=True):
                image.save(file, quality=90)
        for name, path in save_models(Path(tmp)).items():
            results[name] = measure(path, images, args.batch_size, files)
            print(f"{name}: {results[name][0]:.2f} images/s, {results[name][1]:.0f} ms per image", flush=True)
    resnet, vit = results["ResNet-101"], results["ViT-Base"]
    how = "the package's predict path" if args.package else "pipeline('image-classification')"
    print(f"\n{how}, batch {args.batch_size}; {machine_name()}")
    print("| model | pipeline images/s | latency ms (1 image) | model forward images/s |")
    print("|---|---|---|---|")
    for name, (throughput, latency, forward) in results.items():
        print(f"| {name} | {throughput:.2f} | {latency:.0f} | {forward:.1f} |")
    ratios = f"{resnet[0] / vit[0]:.2f}x | {vit[1] / resnet[1]:.2f}x | {resnet[2] / vit[2]:.2f}x"
    print(f"| ResNet-101 / ViT-Base | {ratios} |")


if __name__ == "__main__":
    main()
