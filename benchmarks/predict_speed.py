"""Prediction speed: the package's `classify` (what `hf-resnet101 predict` and `evaluate` run) against a plain
`pipeline("image-classification")` given the same image paths, alternating, in one process.

    python benchmarks/predict_speed.py [--images 32] [--batch_size 8] [--rounds 3]
        [--model resnet101,timm_resnet101,tiny,vit] [--sizes 500x375,3000x2000] [--precision auto]
        [--ahead auto|on|off] [--onnx]

Both run the same model on the same device: ResNet-101 with random weights (speed does not depend on them;
transformers', or timm's behind transformers' TimmWrapper as `timm_resnet101`), `tiny` (a two-stage ResNet whose
forward pass costs almost nothing, so the CPU work around it, decoding, resizing and normalising, bounds the speed
as it does beside a fast GPU), or `vit` (ViT-Base, the product page's comparison, so both models are measured the
same way). The package's path loads the model as `load_classifier` does (its `--precision`, channels-last, batch
norms folded) and decodes in threads; the plain pipeline decodes in its own loop, in the precision
the model was saved in. With `--onnx`, the model is also exported as `hf-resnet101 export` does it and the export
folder classified as `predict EXPORT_DIR` does (ONNX Runtime on the CPU, fp32, threaded decoding): a third path in
the same rounds. Generated photo-like JPEGs, each size in turn. Prints images/s per round, then the best round of
each and their ratios, summary last.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import (
    ResNetConfig,
    ResNetForImageClassification,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessor,
    pipeline,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_name, photo_like  # noqa: E402

from hf_resnet101.commands.export import export_model  # noqa: E402
from hf_resnet101.inference import best_device, classify, load_classifier  # noqa: E402
from hf_resnet101.modeling import build_random_resnet101, resnet_image_processor  # noqa: E402

LABELS = [f"class_{i}" for i in range(10)]


def save_model(root: Path, kind: str) -> Path:
    path = root / kind
    if kind == "vit":  # ViT-Base from `ViTConfig()` defaults, as benchmarks/inference_speed.py builds it
        ViTForImageClassification(ViTConfig(num_labels=len(LABELS))).save_pretrained(path)
        ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(path)
        return path
    if kind == "timm_resnet101":  # timm's ResNet-101 behind transformers' TimmWrapper, as a timm/ checkpoint loads
        import timm
        from transformers import AutoModelForImageClassification, TimmWrapperConfig

        pretrained_cfg = dict(timm.create_model("resnet101", pretrained=False).pretrained_cfg)
        config = TimmWrapperConfig(architecture="resnet101", pretrained_cfg=pretrained_cfg, num_labels=len(LABELS))
        AutoModelForImageClassification.from_config(config).save_pretrained(path)  # its processor is in config.json
        return path
    if kind == "resnet101":
        model = build_random_resnet101(LABELS)
    else:
        config = ResNetConfig(depths=[1, 1], hidden_sizes=[16, 32], embedding_size=8, layer_type="bottleneck")
        model = ResNetForImageClassification(config)
    model.save_pretrained(path)
    resnet_image_processor().save_pretrained(path)
    return path


def write_images(root: Path, size: tuple[int, int], count: int) -> list[str]:
    paths = []
    for i in range(count):
        path = root / f"{size[0]}x{size[1]}_{i:04d}.jpg"
        photo_like(i, *size).save(path, quality=90)
        paths.append(str(path))
    return paths


def timed(run, count: int) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    run()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return count / (time.perf_counter() - started)


def measure(
    model_dir: Path,
    paths: list[str],
    batch_size: int,
    rounds: int,
    precision: str,
    ahead: bool | None,
    export_dir: Path | None = None,
) -> dict[str, float]:
    device = best_device()
    package = load_classifier(str(model_dir), device=device, precision=precision)
    plain = pipeline("image-classification", model=str(model_dir), device=device)
    runs = {
        "package": lambda: list(classify(package, paths, top_k=1, batch_size=batch_size, prepare_ahead=ahead)),
        "pipeline": lambda: plain(paths, top_k=1, batch_size=batch_size),
    }
    if export_dir is not None:
        exported = load_classifier(str(export_dir))
        runs["export"] = lambda: list(classify(exported, paths, top_k=1, batch_size=batch_size, prepare_ahead=ahead))
    for run in runs.values():  # warm-up: first calls pay for kernel selection and allocation
        run()
    best = dict.fromkeys(runs, 0.0)
    for round_number in range(rounds):
        for name, run in runs.items():
            speed = timed(run, len(paths))
            best[name] = max(best[name], speed)
            print(f"  round {round_number + 1}, {name}: {speed:.1f} images/s", flush=True)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--model",
        default="resnet101,tiny",
        help="resnet101, timm_resnet101 (needs timm), tiny, vit (ViT-Base), comma-separated.",
    )
    parser.add_argument("--sizes", default="500x375,3000x2000", help="Image sizes, WxH, comma-separated.")
    parser.add_argument("--precision", default="auto", help="The package's --precision (auto, fp32, fp16, bf16).")
    parser.add_argument(
        "--ahead",
        choices=("auto", "on", "off"),
        default="auto",
        help="classify's prepare_ahead: auto (on off a CPU), on or off.",
    )
    parser.add_argument("--onnx", action="store_true",
                        help="Also classify its ONNX export with ONNX Runtime (needs onnx, onnxruntime).")  # fmt: skip
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for kind in args.model.split(","):
            model_dir = save_model(root, kind)
            export_dir = export_model(str(model_dir), root / f"{kind}_onnx")[0].parent if args.onnx else None
            for size_text in args.sizes.split(","):
                size = tuple(int(n) for n in size_text.split("x"))
                paths = write_images(root, size, args.images)
                print(f"{kind}, {size_text}:", flush=True)
                ahead = {"auto": None, "on": True, "off": False}[args.ahead]
                best = measure(model_dir, paths, args.batch_size, args.rounds, args.precision, ahead, export_dir)
                rows.append((kind, size_text, best["package"], best["pipeline"], best.get("export")))
    print(f"\nbest of {args.rounds} rounds, {args.images} images, batch {args.batch_size}, package --precision "
          f"{args.precision}, --ahead {args.ahead}, on {best_device()}; {machine_name()}")  # fmt: skip
    if not args.onnx:
        print("| model | images | package images/s | plain pipeline images/s | package / pipeline |")
        print("|---|---|---|---|---|")
        for kind, size_text, package, plain, _ in rows:
            print(f"| {kind} | {size_text} | {package:.1f} | {plain:.1f} | {package / plain:.2f}x |")
        return
    print("| model | images | package images/s | export (ONNX Runtime) images/s | plain pipeline images/s "
          "| package / pipeline | export / pipeline | export / package |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for kind, size_text, package, plain, exported in rows:
        print(f"| {kind} | {size_text} | {package:.1f} | {exported:.1f} | {plain:.1f} | {package / plain:.2f}x "
              f"| {exported / plain:.2f}x | {exported / package:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
