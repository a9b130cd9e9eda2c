"""Input pipeline speed on one core: JPEG file to a normalised 224x224 training tensor.

    python benchmarks/input_pipeline.py [--large 12] [--small 60]

Compares the baseline recipe's transforms (full decode, torchvision RandomResizedCrop, flip, ToTensor,
Normalize) with this package's training path (draft-mode decoding of large JPEGs, the same crop and flip on
the torchvision v2 transforms on uint8 tensors from `decode_jpeg`, per-image seeding, normalisation in the
collate step) on 3000x2000 and 500x375 photo-like JPEGs, with torch and Pillow limited to one thread. Prints
one summary table last.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms import Compose, Normalize, RandomHorizontalFlip, RandomResizedCrop, ToTensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_name, photo_like  # noqa: E402

from hf_resnet101.data.transforms import (  # noqa: E402
    INDEX_COLUMN,
    DataConfig,
    SeededTrainTransform,
    build_train_transform,
    collate,
)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
BATCH = 4


def images_per_second(paths: list[Path], run_one, repeats: int = 2) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        for i, path in enumerate(paths):
            run_one(i, path)
    return repeats * len(paths) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", type=int, default=12, help="Number of 3000x2000 JPEGs.")
    parser.add_argument("--small", type=int, default=60, help="Number of 500x375 JPEGs.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    baseline = Compose([RandomResizedCrop(224), RandomHorizontalFlip(), ToTensor(), Normalize(MEAN, STD)])
    package = SeededTrainTransform(build_train_transform(DataConfig(224, 224, MEAN, STD), "light"), seed=0,
                                   min_short_side=448)  # fmt: skip

    def run_baseline(i, path):
        with Image.open(path) as image:
            return baseline(image.convert("RGB"))

    def run_package(i, path):
        # The DataLoader hands the transform a batch at a time (the product page's default batch of 4): the
        # per-batch work
        # (one RNG fork, one normalisation) is shared by its images, as in training.
        pending.append((i, path))
        if len(pending) < BATCH and i < len(paths) - 1:
            return None
        images = [{"path": str(p), "bytes": None} for _, p in pending]
        batch = package({"image": images, INDEX_COLUMN: [j for j, _ in pending], "label": [0] * len(pending)})
        pending.clear()
        return collate([{"pixel_values": x, "label": 0} for x in batch["pixel_values"]], mean=MEAN, std=STD)

    pending = []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, count, size in (("3000x2000", args.large, (3000, 2000)), ("500x375", args.small, (500, 375))):
            paths = []
            for i in range(count):
                path = Path(tmp) / f"{label}-{i}.jpg"
                photo_like(i, *size).save(path, quality=90)
                paths.append(path)
            base = images_per_second(paths, run_baseline)
            ours = images_per_second(paths, run_package)
            rows.append((label, base, ours))
            print(f"{label}: baseline {base:.1f}/s, package {ours:.1f}/s", flush=True)
    print(f"\nInput pipeline, one core; {machine_name()}")
    print("| JPEG size | baseline images/s/core | package images/s/core | ratio |")
    print("|---|---|---|---|")
    for label, base, ours in rows:
        print(f"| {label} | {base:.1f} | {ours:.1f} | {ours / base:.2f}x |")


if __name__ == "__main__":
    main()
