"""The hardware rules: precision, data-loading workers and CPU threads, chosen from what the machine offers.

The machine is probed once (`probe_machine`); the choices are pure functions of what was found and what the user
asked for (`choose_hardware`), made as the options are parsed, before the Trainer starts, so every process agrees.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass

import psutil
import torch

# oneDNN instruction-set caps (`ONEDNN_MAX_CPU_ISA`) below its bf16 kernels: a process capped so has none.
ONEDNN_ISAS_WITHOUT_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")


def cpu_supports_bf16(environ: Mapping[str, str] | None = None) -> bool:
    """True when the CPU has bf16 instructions (AVX-512 BF16 or AMX on x86, the bf16 extension on Arm), where bf16
    pays: a bf16 ResNet-101 predicts 1.75x as fast as fp32 on a 2-core AMD EPYC with AVX-512 BF16.

    PyTorch's own check (`torch.ops.mkldnn._is_mkldnn_bf16_supported`) is also true on AVX-512 CPUs without them
    (Intel Skylake to Cascade Lake), where oneDNN emulates bf16: the same prediction ran at 0.50x fp32's speed with
    the instruction set capped there (benchmarks/RESULTS.md).
    """
    environ = os.environ if environ is None else environ
    if environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in ONEDNN_ISAS_WITHOUT_BF16:
        return False
    try:
        if platform.machine().lower() in X86_MACHINES:
            return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # on Arm: true with its bf16 extension only
    except (AttributeError, RuntimeError):
        return False


def cpu_bf16_is_auto(environ: Mapping[str, str] | None = None) -> bool:
    """True where `--precision auto` runs bf16 on a CPU: x86 CPUs with AVX-512 BF16 or AMX, where it was measured
    (a 2-core AMD EPYC with AVX-512 BF16, torch 2.14.1: training 1.5-1.9x and prediction 1.75x as fast as fp32, the
    digits demo within its seeds' spread; benchmarks/RESULTS.md). Arm CPUs with the bf16 extension run bf16 when asked
    for, not by default: its speed there is unmeasured."""
    return platform.machine().lower() in X86_MACHINES and cpu_supports_bf16(environ)


PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def resolve_precision(
    requested: str, cuda_available: bool, cpu_bf16: bool, cpu_bf16_auto: bool = False, asked_by: str = ""
) -> tuple[bool, bool, str]:
    """Chooses the mixed precision that the hardware runs best.

    `auto` means fp16 on a CUDA GPU (as the design asks); on a CPU, bf16 autocast where `cpu_bf16_auto`
    (`cpu_bf16_is_auto`), else fp32. An explicit choice is kept where the hardware can run it; `cpu_bf16` says
    whether the CPU has bf16 instructions at all (`cpu_supports_bf16`). `asked_by` names where a half precision
    was asked for in the note (default `--fp16` or `--bf16`).

    Returns:
        (fp16, bf16, note): the flags to use and a sentence saying what was chosen and why.
    """
    if cuda_available:
        if requested in ("auto", "fp16"):
            return True, False, "fp16 mixed precision on CUDA" + (" (auto)" if requested == "auto" else "")
        if requested == "bf16":
            return False, True, "bf16 mixed precision on CUDA"
        return False, False, "fp32 on CUDA (--precision fp32; fp16 is faster and takes about half the memory)"
    if requested == "auto":
        if cpu_bf16 and cpu_bf16_auto:
            return (
                False,
                True,
                "bf16 autocast on CPU (auto: this CPU has bf16 instructions, where bf16 trained 1.5-1.9x as fast as "
                "fp32; --precision fp32 for full precision)",
            )
        hint = "; --bf16 to try bf16 autocast, which this CPU supports" if cpu_bf16 else ""
        return False, False, f"fp32 on CPU (auto{hint})"
    asked_by = asked_by or f"--{requested}"
    if requested == "fp16":
        if cpu_bf16:
            return (
                False,
                True,
                f"bf16 autocast on CPU ({asked_by} asked for, but fp16 is slow on CPUs; bf16 is native here)",
            )
        return False, False, f"fp32 on CPU ({asked_by} asked for, but this CPU has no fast half precision)"
    if requested == "bf16":
        if cpu_bf16:
            return False, True, "bf16 autocast on CPU"
        return False, False, f"fp32 on CPU ({asked_by} asked for, but this CPU lacks native bf16)"
    return False, False, "fp32 on CPU (--precision fp32)"


MAX_AUTO_WORKERS = 16
# Images are decoded, resized and normalised in threads (Pillow's decoders and torch's kernels release the GIL).
MAX_PREPARING_THREADS = 8


def preparing_threads() -> int:
    """Threads that prepare images for evaluation and prediction: the machine's cores, at most 8."""
    return max(1, min(MAX_PREPARING_THREADS, os.cpu_count() or 1))


def local_process_count() -> int:
    """Training processes on this machine: `LOCAL_WORLD_SIZE`, which the launcher sets (1 without one)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def processes_not_started_note(environment: dict[str, str]) -> str | None:
    """A note when `accelerate launch --num_processes N` (N > 1) started one process: without --multi_gpu its
    simple launcher runs the script once (it sets the address for N processes, but no world size)."""
    launched_by_accelerate = "ACCELERATE_MIXED_PRECISION" in environment
    if launched_by_accelerate and "MASTER_ADDR" in environment and "WORLD_SIZE" not in environment:
        return (
            "accelerate launch was given several processes but started one: its --num_processes N starts N "
            "processes only with --multi_gpu, which on a machine without a GPU starts them on the CPU (--cpu starts "
            "one, and cannot be combined with --multi_gpu). This run trains in 1 process."
        )
    return None


# The prepared evaluation images a process holds in memory: at most this, and a quarter of the memory available.
MAX_HELD_EVALUATION_BYTES = 1 << 30


def available_memory_bytes() -> int | None:
    """Memory that can be allocated now without swapping, reclaimable file cache included (psutil), None where the
    system does not say."""
    try:
        return int(psutil.virtual_memory().available)
    except (OSError, RuntimeError, AttributeError):
        return None


def held_evaluation_budget(local_processes: int, available: int | None) -> int:
    """Bytes of prepared evaluation images each process may keep in memory between evaluations (see
    `data.transforms.held_in_memory`): 1 GiB, or a quarter of the `available` memory shared by the processes on
    this machine when that is less."""
    if available is None:
        return MAX_HELD_EVALUATION_BYTES
    return max(0, min(MAX_HELD_EVALUATION_BYTES, available // (4 * max(1, local_processes))))


def auto_dataloader_workers(cuda_available: bool, cpu_count: int, local_processes: int) -> int:
    """Worker processes per training process that decode and augment images.

    On a GPU, the CPU cores each process can have, less the one that drives the GPU (at most 16): ResNet-101
    trains at hundreds to thousands of images/s there, and one core decodes and augments a few hundred. On a
    CPU, none: the training itself needs every core, and decoding is a small share of a CPU step.
    """
    if not cuda_available:
        return 0
    per_process = max(1, cpu_count // max(1, local_processes))
    return max(1, min(MAX_AUTO_WORKERS, per_process - 1))


def parent_environment(pid: int) -> dict[str, str] | None:
    """The environment a process was started with (Linux /proc), or None where it cannot be read."""
    try:
        raw = open(f"/proc/{pid}/environ", "rb").read()  # noqa: SIM115 (one read)
    except OSError:
        return None
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


def set_by_launcher(variable: str, environ: Mapping[str, str], launcher_environ: Mapping[str, str] | None) -> bool:
    """True when `variable` is in this process's environment but not in its launcher's, as the user started it:
    the launcher put it there. False where the launcher's environment cannot be read."""
    return variable in environ and launcher_environ is not None and variable not in launcher_environ


def launcher_set_threads(environ: Mapping[str, str], launcher_environ: Mapping[str, str] | None) -> bool:
    """True when OMP_NUM_THREADS=1 was put there by the launcher, not asked for by the user.

    `accelerate launch` without `--cpu` (and torchrun with several processes) sets OMP_NUM_THREADS=1 for the script
    unless the user's environment has it, which leaves one core of a CPU-only machine training. The launcher's own
    environment, as the user started it, tells the two apart.
    """
    return environ.get("OMP_NUM_THREADS") == "1" and set_by_launcher("OMP_NUM_THREADS", environ, launcher_environ)


def cpu_threads_per_process(cpu_count: int, local_processes: int) -> int:
    """The cores each training process on this machine can have (what torch takes without a launcher)."""
    return max(1, cpu_count // max(1, local_processes))


def restore_cpu_threads(local_processes: int) -> str | None:
    """Gives a CPU run its share of the cores back when the launcher, not the user, limited it to one thread.

    Returns:
        A sentence for the run summary when the thread count was changed, else None.
    """
    if not launcher_set_threads(dict(os.environ), parent_environment(os.getppid())):
        return None
    threads = cpu_threads_per_process(len(os.sched_getaffinity(0)), local_processes)
    if threads <= 1:
        return None
    torch.set_num_threads(threads)
    return (
        f"CPU threads: {threads} per process (the launcher had set OMP_NUM_THREADS=1; set OMP_NUM_THREADS yourself "
        "to choose)"
    )


@dataclass(frozen=True)
class Machine:
    """What the machine running this process offers, as far as the choices below need to know."""

    cuda_available: bool
    cpu_bf16: bool  # native bf16 matmuls (AVX-512 BF16 or AMX; Arm's bf16 extension)
    cpu_bf16_auto: bool  # bf16 is `auto`'s choice on this CPU (`cpu_bf16_is_auto`)
    cpu_count: int
    local_processes: int  # training processes on this machine (`LOCAL_WORLD_SIZE`, set by the launcher)
    launcher_precision: str  # `accelerate launch --mixed_precision` (or its config file): no, fp16 or bf16


def probe_machine(use_cpu: bool) -> Machine:
    """Probes this machine once; `use_cpu` (--use_cpu) hides a GPU."""
    return Machine(
        cuda_available=torch.cuda.is_available() and not use_cpu,
        cpu_bf16=cpu_supports_bf16(),
        cpu_bf16_auto=cpu_bf16_is_auto(),
        cpu_count=os.cpu_count() or 1,
        local_processes=local_process_count(),
        launcher_precision=os.environ.get("ACCELERATE_MIXED_PRECISION", "no"),
    )


@dataclass(frozen=True)
class HardwareChoice:
    """The options the hardware decides, as the Trainer's arguments hold them."""

    use_cpu: bool
    fp16: bool
    bf16: bool
    precision_note: str  # what was chosen and why, for the run summary and the card
    dataloader_num_workers: int
    dataloader_persistent_workers: bool


def choose_hardware(
    requested_precision: str,
    workers: int | None,
    persistent_workers: bool | None,
    machine: Machine,
    asked_by: str = "",
) -> HardwareChoice:
    """Precision and data-loading workers for this machine; what the user set explicitly is kept where it can run.

    Args:
        requested_precision: auto, fp32, fp16 or bf16 (--precision, --fp16, --bf16); auto follows the launcher's
            --mixed_precision when it asked for fp16 or bf16.
        workers, persistent_workers: --dataloader_num_workers and --dataloader_persistent_workers, None when not
            given.
        asked_by: the flag that asked for the precision (`--precision fp16`), named in the note.
    """
    if requested_precision == "auto" and machine.launcher_precision in ("fp16", "bf16"):
        requested_precision = machine.launcher_precision
        asked_by = f"accelerate launch's mixed_precision {requested_precision} (its flag or config file)"
    fp16, bf16, note = resolve_precision(
        requested_precision, machine.cuda_available, machine.cpu_bf16, machine.cpu_bf16_auto, asked_by
    )
    if workers is None:
        workers = auto_dataloader_workers(machine.cuda_available, machine.cpu_count, machine.local_processes)
    return HardwareChoice(
        # On a machine without a GPU this also makes `accelerate launch --multi_gpu` run its processes with gloo.
        use_cpu=not machine.cuda_available,
        fp16=fp16,
        bf16=bf16,
        precision_note=note,
        dataloader_num_workers=workers,
        dataloader_persistent_workers=workers > 0 if persistent_workers is None else persistent_workers,
    )
