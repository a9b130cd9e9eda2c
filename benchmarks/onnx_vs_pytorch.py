"""ONNX Runtime vs PyTorch inference speed on the CPU, for the same model and the same inputs.

    python benchmarks/onnx_vs_pytorch.py                          # ResNet-101 architecture, random weights, 224x224
    python benchmarks/onnx_vs_pytorch.py --model OUT --batches 20  # a trained output folder (or Hub id)

Both runtimes get the same thread count, the same fp32 batches and a warm-up batch each; the model is exported with
`hf_resnet101.commands.export.export_to_onnx`, as `hf-resnet101 export` does. The summary table is printed last.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hf_resnet101.commands.export import export_to_onnx
from hf_resnet101.commands.tables import format_table
from hf_resnet101.data.transforms import resolve_data_config
from hf_resnet101.inference import load_model_and_processor
from hf_resnet101.modeling import build_random_resnet101
from hf_resnet101.onnx_runtime import import_onnx_runtime, onnx_session, run_logits


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="A trained output folder or Hub id (default: random-weight ResNet-101).")
    parser.add_argument("--image_size", type=int, default=224, help="Input size for the random ResNet-101.")
    parser.add_argument("--num_labels", type=int, default=1000, help="Classes of the random ResNet-101.")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=5, help="Timed batches per runtime (after one warm-up).")
    parser.add_argument(
        "--rounds", type=int, default=2, help="Alternating rounds per runtime; the best counts (others share the CPU)."
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="Threads for both runtimes.")
    return parser.parse_args()


def cpu_name() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "")


def build_model(args: argparse.Namespace) -> tuple[torch.nn.Module, int, int, str]:
    if args.model:
        model, processor = load_model_and_processor(args.model, dtype=torch.float32)
        config = resolve_data_config(processor)
        return model, config.height, config.width, args.model
    model = build_random_resnet101([f"class {i}" for i in range(args.num_labels)]).eval()
    return model, args.image_size, args.image_size, "ResNet-101 architecture, random weights"


def images_per_second(run_batch, batch: np.ndarray, batches: int) -> float:
    run_batch(batch)  # warm-up: allocations, kernel selection
    started = time.perf_counter()
    for _ in range(batches):
        run_batch(batch)
    return batches * len(batch) / (time.perf_counter() - started)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    model, height, width, name = build_model(args)
    batch = np.random.default_rng(0).standard_normal((args.batch_size, 3, height, width), dtype=np.float32)

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        path = export_to_onnx(model, Path(tmp) / "model.onnx", height, width)
        export_s = time.perf_counter() - started
        session = onnx_session(path, threads=args.threads)

        def run_onnx(x):
            return run_logits(session, x)

        def run_torch(x):
            with torch.inference_mode():
                return model(pixel_values=torch.from_numpy(x)).logits.numpy()

        expected = run_torch(batch)
        max_diff = float(np.abs(run_onnx(batch) - expected).max())
        logit_scale = float(np.abs(expected).max())
        speeds = {"torch": [], "onnx": []}
        for _ in range(args.rounds):  # alternating, so a busy spell on a shared machine hits both runtimes
            speeds["torch"].append(images_per_second(run_torch, batch, args.batches))
            speeds["onnx"].append(images_per_second(run_onnx, batch, args.batches))
        torch_speed, onnx_speed = max(speeds["torch"]), max(speeds["onnx"])

    print(
        f"model: {name}, input {height}x{width}, batch {args.batch_size}, fp32; best of {args.rounds} rounds of "
        f"{args.batches} timed batches per runtime"
    )
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, {args.threads} threads per runtime")
    print(
        f"export: {export_s:.1f} s; max |logit difference| ONNX vs PyTorch: {max_diff:.2g} "
        f"(largest |logit| {logit_scale:.3g}, relative {max_diff / max(logit_scale, 1e-12):.1g})"
    )
    print(f"load average before the summary: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = [
        ["PyTorch (eager, inference_mode)", torch.__version__, f"{torch_speed:.1f}", "1.00x"],
        [
            "ONNX Runtime (CPUExecutionProvider)",
            import_onnx_runtime().__version__,
            f"{onnx_speed:.1f}",
            f"{onnx_speed / torch_speed:.2f}x",
        ],
    ]
    print(format_table(["runtime", "version", "images/s", "speed-up"], rows))


if __name__ == "__main__":
    main()
