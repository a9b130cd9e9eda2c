"""Shared pieces of the benchmarks: photo-like JPEG folders, step timing, the machine's name."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import TrainerCallback


def photo_like(seed: int, width: int, height: int) -> Image.Image:
    """Smooth gradients with texture: compresses and decodes like a photo, unlike pure noise or flat colour."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 215, size=3)
    slope = rng.uniform(-60, 60, size=(2, 3))
    pixels = base + (x[..., None] / width) * slope[0] + (y[..., None] / height) * slope[1]
    pixels += rng.normal(0, 10, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_jpeg_folder(root: Path, per_class: int, classes: int, size: tuple[int, int], seed: int = 0) -> Path:
    def write(i: int) -> None:
        folder = root / f"class_{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        photo_like(seed * 100_000 + i, *size).save(folder / f"{i:05d}.jpg", quality=90)

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(write, range(per_class * classes)))
    return root


class StepTimer(TrainerCallback):
    """Wall time of each optimizer step (including any evaluation that follows it)."""

    def __init__(self):
        self.times: list[float] = []
        self.first_step_wall: float | None = None  # time.time() at the end of the first step

    def on_train_begin(self, args, state, control, **kwargs):
        self.times = [time.perf_counter()]

    def on_step_end(self, args, state, control, **kwargs):
        self.step_done()

    def step_done(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # GPU work is asynchronous: a step ends when its kernels have run
        self.times.append(time.perf_counter())
        if self.first_step_wall is None:
            self.first_step_wall = time.time()

    def on_evaluate(self, args, state, control, **kwargs):
        self.times[-1] = time.perf_counter()  # the step's time includes its evaluation

    def steady_seconds_per_step(self, skip: int = 2) -> float:
        durations = np.diff(self.times)[skip:]
        return float(np.median(durations))


def bare_training_step(
    model: torch.nn.Module,
    forward,
    batch_size: int,
    image_size: int,
    dtype: torch.dtype | None,
    scale_loss: bool,
    channels_last: bool = True,
):
    """One training step on a fixed random batch, no data pipeline and no Trainer: the ceiling to compare with.

    The model goes to the GPU if there is one, channels_last unless told otherwise; fused AdamW (the Trainer's default
    optimizer with torch >= 2.8, on CPUs as on GPUs); autocast to `dtype` if given; a GradScaler when `scale_loss`
    and fp16. `forward(model, pixels)` returns the logits.
    Returns `step()`, which runs one step and waits for the device.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=layout).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
    scaler = torch.amp.GradScaler(device.type, enabled=scale_loss and dtype == torch.float16)
    x = torch.randn(batch_size, 3, image_size, image_size, device=device).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (batch_size,), device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(forward(model, x).float(), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def machine_name() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    name = f"{cpu}, {os.cpu_count()} cores"
    if torch.cuda.is_available():
        name += f"; GPU {torch.cuda.get_device_name(0)}"
    return name


CPU_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")

# Instruction-set caps that make this processor compute like one with fewer extensions, the nearest thing to
# measuring on another processor: oneDNN (convolutions), ATen's vectorised kernels and MKL (matrix products) each
# stop at the named set. "avx512_core" is an AVX-512 CPU without BF16 or AMX (the Intel Xeon); "avx2" one
# without AVX-512 (most desktop and older server CPUs). The cache sizes, core design and clock stay this machine's.
CPU_ISA_CAPS = {
    "native": {},
    "avx512_core": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}


def cpu_isa_cap_settings(name: str) -> str:
    """The environment settings of cap `name`, as they would be typed ("" for none)."""
    return " ".join(f"{key}={value}" for key, value in CPU_ISA_CAPS[name].items())


def apply_cpu_isa_cap(name: str) -> str:
    """Sets the environment that caps every command started after it at `name`'s instruction set; says which."""
    os.environ.update(CPU_ISA_CAPS[name])
    settings = cpu_isa_cap_settings(name)
    return f"capped with {settings}" if settings else "no instruction-set cap"


def cpu_description() -> str:
    """`lscpu`'s model name, which of the flags that decide CPU speed are present, and the core count.

    Two machines of the same kind here differ in exactly these flags (bf16 and AMX change which precision is fast),
    so every figure names them.
    """
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            key, _, value = line.partition(":")
            if key == "Model name":
                model = value.strip()
            elif key == "Flags":
                flags = set(value.split())
    except OSError:
        pass
    present = [flag for flag in CPU_FLAGS if flag in flags]
    absent = [flag for flag in CPU_FLAGS if flag not in flags]
    return (
        f"{model}; flags present: {', '.join(present) or 'none'}; absent: {', '.join(absent) or 'none'}; "
        f"{len(os.sched_getaffinity(0))} cores usable"
    )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
