"""Peak training memory of ResNet-101 per batch size, with and without gradient checkpointing and mixed precision.

    python benchmarks/memory.py [--batch_sizes 4,8] [--image_size 224] [--steps 4]

A training step as the package runs it (channels_last, AdamW, the package's `apply_gradient_checkpointing`)
on random tensors. On CUDA: peak memory handed out by the allocator (`torch.cuda.max_memory_allocated`,
weights, gradients and optimizer state included), every configuration in this process with the peak reset in
between; mixed precision is fp16. On a CPU: each configuration's peak RSS, in its own process; mixed
precision is bf16. Images/s of the same steps show what checkpointing costs. Prints one summary table last.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bare_training_step, machine_name, peak_rss_mib  # noqa: E402


def measure(batch_size: int, image_size: int, mixed: bool, checkpointing: bool, steps: int) -> dict:
    from hf_resnet101.modeling import apply_gradient_checkpointing, build_random_resnet101

    cuda = torch.cuda.is_available()
    dtype = (torch.float16 if cuda else torch.bfloat16) if mixed else None
    model = build_random_resnet101([str(i) for i in range(10)])
    if checkpointing:
        apply_gradient_checkpointing(model)
    step = bare_training_step(
        model, lambda m, x: m(pixel_values=x).logits, batch_size, image_size, dtype, scale_loss=True
    )
    del model  # the step holds it
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    try:
        for _ in range(steps):
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
    except torch.OutOfMemoryError:
        return {"peak_mib": float("inf"), "images_per_s": 0.0}
    finally:
        del step
    steady = sorted(times[1:] or times)[len(times[1:] or times) // 2]
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
        torch.cuda.empty_cache()
    else:
        peak = peak_rss_mib()
    return {"peak_mib": peak, "images_per_s": batch_size / steady}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cuda = torch.cuda.is_available()
    parser.add_argument("--batch_sizes", default="32,64,128,256" if cuda else "4,8")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # batch,mixed,checkpointing: one CPU configuration
    args = parser.parse_args()
    if args.one:
        batch, mixed, checkpointing = (int(v) for v in args.one.split(","))
        print("RESULT " + json.dumps(measure(batch, args.image_size, bool(mixed), bool(checkpointing), args.steps)))
        return
    mixed_name = "fp16" if cuda else "bf16"
    rows = []
    for batch, mixed, checkpointing in itertools.product(
        [int(b) for b in args.batch_sizes.split(",")], (False, True), (False, True)
    ):
        if cuda:
            result = measure(batch, args.image_size, mixed, checkpointing, args.steps)
        else:
            one = f"{batch},{int(mixed)},{int(checkpointing)}"
            done = subprocess.run(
                [sys.executable, __file__, "--one", one, "--image_size", str(args.image_size), "--steps",
                 str(args.steps)], capture_output=True, text=True,
            )  # fmt: skip
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if not lines:
                print(f"batch {batch} failed:\n{done.stderr[-2000:]}")
                continue
            result = json.loads(lines[-1][7:])
        row = (batch, mixed_name if mixed else "fp32", "on" if checkpointing else "off", result)
        print(row, flush=True)
        rows.append(row)
    print_summary(rows, args, cuda)


def print_summary(rows: list, args, cuda: bool) -> None:
    what = "peak allocated GPU memory" if cuda else "peak RSS"
    print(f"\nResNet-101 training step, {args.image_size}x{args.image_size}, AdamW, channels_last; {machine_name()}")
    print(f"| batch | precision | checkpointing | {what} MiB | images/s | memory vs fp32 without checkpointing |")
    print("|---|---|---|---|---|---|")
    plain = {batch: r["peak_mib"] for batch, p, c, r in rows if p == "fp32" and c == "off"}
    for batch, precision, checkpointing, result in rows:
        peak = result["peak_mib"]
        shown = "out of memory" if peak == float("inf") else f"{peak:.0f}"
        ratio = peak / plain[batch] if plain.get(batch) not in (None, float("inf")) else float("nan")
        print(f"| {batch} | {precision} | {checkpointing} | {shown} | {result['images_per_s']:.1f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
