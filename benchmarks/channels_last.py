"""Is channels_last the faster layout for ResNet-101 training on this CPU, at every instruction-set level?

    python benchmarks/channels_last.py [--steps 6] [--batch_size 4] [--image_size 224]
        [--cpu_isa native,avx512_core,avx2]

The package trains channels-last on every device (`--channels_last`, on by default). That choice was measured on an
AVX-512 BF16 processor; this script checks it where oneDNN, ATen and MKL are capped at fewer extensions (see
`common.CPU_ISA_CAPS`: an AVX-512 CPU without BF16, an AVX2 CPU), the nearest this machine can come to other
processors. Each cap runs in its own process (the caps are read when the libraries start). In it, a bare fp32
training step (no data pipeline, no Trainer: `common.bare_training_step`) of the full ResNet-101 runs in each
layout, the two alternating step by step so a slow spell of a shared machine hits both; the medians are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CPU_ISA_CAPS, bare_training_step, cpu_description, cpu_isa_cap_settings  # noqa: E402


def time_layouts(args) -> dict:
    """Median seconds per step in each layout, in this process (its instruction set already capped)."""
    import torch

    from hf_resnet101.modeling import build_random_resnet101

    labels = [f"class_{i}" for i in range(10)]
    steps = {}
    for channels_last in (False, True):
        torch.manual_seed(0)
        steps[channels_last] = bare_training_step(
            build_random_resnet101(labels), lambda model, pixels: model(pixel_values=pixels).logits,
            args.batch_size, args.image_size, dtype=None, scale_loss=False, channels_last=channels_last,
        )  # fmt: skip
    times = {False: [], True: []}
    for step in steps.values():
        step()  # warm-up: oneDNN builds its kernels on the first step
    for _ in range(args.steps):
        for channels_last, step in steps.items():
            started = time.perf_counter()
            step()
            times[channels_last].append(time.perf_counter() - started)
    return {
        "threads": torch.get_num_threads(),
        "contiguous_s": statistics.median(times[False]),
        "channels_last_s": statistics.median(times[True]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="Timed steps per layout (after one warm-up step).")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--cpu_isa", default=",".join(CPU_ISA_CAPS), help="Comma-separated caps to measure.")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the cap this process runs under
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(time_layouts(args)))
        return
    rows = []
    for cap in args.cpu_isa.split(","):
        env = {**os.environ, **CPU_ISA_CAPS[cap]}
        command = [sys.executable, __file__, "--one", cap, "--steps", str(args.steps),
                   "--batch_size", str(args.batch_size), "--image_size", str(args.image_size)]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.split("RESULT ", 1)[1])
        rows.append((cap, cpu_isa_cap_settings(cap), result))
        print(f"{cap}: {result}", flush=True)
    print(f"\nResNet-101 training step, fp32, batch {args.batch_size}, {args.image_size}x{args.image_size}, median "
          f"of {args.steps} alternating steps per layout")  # fmt: skip
    print(f"Processor: {cpu_description()}")
    print("| instruction set | caps | threads | contiguous s/step | channels_last s/step | channels_last speed-up |")
    print("|---|---|---|---|---|---|")
    for cap, caps, result in rows:
        speed_up = result["contiguous_s"] / result["channels_last_s"]
        print(f"| {cap} | {caps or 'none'} | {result['threads']} | {result['contiguous_s']:.2f} | "
              f"{result['channels_last_s']:.2f} | {speed_up:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
