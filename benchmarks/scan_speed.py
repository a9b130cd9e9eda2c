"""How long the pre-training scan of an image folder takes, first time and cached.

    python benchmarks/scan_speed.py [--images 10000] [--width 500 --height 375] [--data DIR]

Writes photo-like JPEGs (smooth gradients plus noise, about 30-60 KB at 500x375) into a temporary folder of
10 classes, then times `plan_image_folders` twice: the first scan decodes every file, the second reads the
cache. Prints one summary table last.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from hf_resnet101.data.folders import plan_image_folders


def photo_like(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(0, 255, size=3)
    slope = rng.uniform(-0.4, 0.4, size=(2, 3))
    pixels = base + x[..., None] * slope[0] + y[..., None] * slope[1] + rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_folder(root: Path, count: int, width: int, height: int) -> None:
    def write(i: int) -> None:
        rng = np.random.default_rng(i)
        folder = root / f"class_{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        photo_like(rng, width, height).save(folder / f"{i:06d}.jpg", quality=90)

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(write, range(count)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--data", default=None, help="Keep the generated folder here and reuse it on later runs.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HF_RESNET101_CACHE"] = str(Path(tmp) / "cache")  # a fresh cache: the first scan decodes all
        data = Path(args.data) if args.data else Path(tmp) / "data"
        if not data.exists():
            started = time.perf_counter()
            write_folder(data, args.images, args.width, args.height)
            print(f"wrote {args.images} JPEGs in {time.perf_counter() - started:.1f} s")
        timings = []
        for label in ("first scan", "cached scan"):
            started = time.perf_counter()
            plan = plan_image_folders(str(data), None, 0.15, seed=0, progress=False)
            timings.append((label, time.perf_counter() - started))
        usable = sum(len(paths) for paths in plan.data_files.values())
    print(f"\n| {args.images} JPEGs {args.width}x{args.height}, {os.cpu_count()} cores | seconds | files/s |")
    print("|---|---|---|")
    for label, seconds in timings:
        print(f"| {label} | {seconds:.2f} | {args.images / seconds:,.0f} |")
    print(f"\n({usable} usable files)")


if __name__ == "__main__":
    main()
