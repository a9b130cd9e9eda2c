"""Hardware rules: precision per kind of hardware, data-loading workers, CPU threads under the launcher."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_resnet101.config.hardware import held_evaluation_budget, local_process_count, resolve_precision


@pytest.mark.parametrize(
    ("requested", "cuda", "cpu_bf16", "cpu_bf16_auto", "expected"),
    [
        ("auto", True, False, False, (True, False)),
        ("auto", True, True, True, (True, False)),  # a GPU's fp16, whatever its host CPU has
        ("auto", False, True, True, (False, True)),  # x86 with AVX-512 BF16/AMX: bf16 measured 1.5-1.9x fp32
        ("auto", False, True, False, (False, False)),  # Arm's bf16 extension: unmeasured, bf16 only when asked
        ("auto", False, False, False, (False, False)),
        ("fp16", False, True, False, (False, True)),  # fp16 on a CPU becomes bf16 where it is native
        ("fp16", False, False, False, (False, False)),
        ("bf16", False, True, False, (False, True)),
        ("bf16", False, False, False, (False, False)),  # emulated bf16 is slower than fp32: refused with a note
        ("bf16", True, False, False, (False, True)),
        ("fp32", True, True, True, (False, False)),
        ("fp32", False, True, True, (False, False)),
    ],
)
def test_resolve_precision(requested, cuda, cpu_bf16, cpu_bf16_auto, expected):
    fp16, bf16, note = resolve_precision(requested, cuda, cpu_bf16, cpu_bf16_auto)
    assert (fp16, bf16) == expected
    assert ("CUDA" if cuda else "CPU") in note
    assert ("bf16" in note.split("(")[0]) is bf16  # the note names what runs first, then why


@pytest.mark.parametrize(
    ("cuda", "cpus", "processes", "expected"),
    [(True, 16, 1, 15), (True, 64, 1, 16), (True, 16, 4, 3), (True, 2, 2, 1), (False, 16, 1, 0)],
)
def test_auto_dataloader_workers(cuda, cpus, processes, expected):
    from hf_resnet101.config.hardware import auto_dataloader_workers

    assert auto_dataloader_workers(cuda, cpus, processes) == expected


def test_launcher_threads_are_told_from_the_users():
    from hf_resnet101.config.hardware import cpu_threads_per_process, launcher_set_threads

    assert launcher_set_threads({"OMP_NUM_THREADS": "1"}, {"PATH": "/bin"})  # put there by the launcher
    assert not launcher_set_threads({"OMP_NUM_THREADS": "1"}, {"OMP_NUM_THREADS": "1"})  # asked for by the user
    assert not launcher_set_threads({"OMP_NUM_THREADS": "1"}, None)  # unknown: left alone
    assert not launcher_set_threads({}, {})
    assert cpu_threads_per_process(16, 2) == 8 and cpu_threads_per_process(2, 4) == 1


def machine(cuda: bool, cpu_bf16: bool = False, launcher: str = "no", cpus: int = 16, processes: int = 1):
    from hf_resnet101.config.hardware import Machine

    return Machine(
        cuda_available=cuda,
        cpu_bf16=cpu_bf16,
        cpu_bf16_auto=cpu_bf16,
        cpu_count=cpus,
        local_processes=processes,
        launcher_precision=launcher,
    )


def test_hardware_choices_follow_the_machine_and_keep_what_was_set():
    from hf_resnet101.config.hardware import choose_hardware

    gpu = choose_hardware("auto", None, None, machine(cuda=True, processes=2))
    assert (gpu.use_cpu, gpu.fp16, gpu.bf16, gpu.dataloader_num_workers, gpu.dataloader_persistent_workers) == (
        False,
        True,
        False,
        7,
        True,
    )
    cpu = choose_hardware("auto", None, None, machine(cuda=False, cpu_bf16=True))
    assert (cpu.use_cpu, cpu.fp16, cpu.bf16, cpu.dataloader_num_workers, cpu.dataloader_persistent_workers) == (
        True,
        False,
        True,
        0,
        False,
    )
    assert "--precision fp32" in cpu.precision_note  # how to opt out
    plain_cpu = choose_hardware("auto", None, None, machine(cuda=False))
    assert (plain_cpu.fp16, plain_cpu.bf16) == (False, False)
    # the launcher's --mixed_precision counts as asked for; explicit workers and persistence are kept
    launched = choose_hardware("auto", 3, False, machine(cuda=True, launcher="bf16"))
    assert (launched.bf16, launched.dataloader_num_workers, launched.dataloader_persistent_workers) == (True, 3, False)
    assert "bf16" in launched.precision_note
    launched_cpu = choose_hardware("auto", None, None, machine(cuda=False, launcher="fp16"))
    assert (
        "fp32 on CPU (accelerate launch's mixed_precision fp16 (its flag or config file) asked for"
        in launched_cpu.precision_note
    )
    assert "fp32 on CPU (--fp16 asked for" in choose_hardware("fp16", None, None, machine(cuda=False)).precision_note
    by_precision = choose_hardware("fp16", None, None, machine(cuda=False), "--precision fp16")
    assert "fp32 on CPU (--precision fp16 asked for" in by_precision.precision_note


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "mkldnn_bf16", "expected"),
    [
        (True, False, True, True),  # AVX-512 BF16 (AMD Zen 4, Intel Cooper Lake)
        (False, True, True, True),  # AMX (Intel Sapphire Rapids)
        (False, False, True, False),  # AVX-512 without them: PyTorch's mkldnn check says yes, bf16 is emulated
        (False, False, False, False),
    ],
)
def test_bf16_counts_only_where_the_instructions_exist(monkeypatch, avx512_bf16, amx, mkldnn_bf16, expected):
    import platform

    import torch

    from hf_resnet101.config.hardware import cpu_supports_bf16

    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: mkldnn_bf16, raising=False)
    assert cpu_supports_bf16({}) is expected
    assert cpu_supports_bf16({"ONEDNN_MAX_CPU_ISA": "avx512_core"}) is False  # capped below oneDNN's bf16 kernels
    assert cpu_supports_bf16({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}) is expected


@pytest.mark.parametrize(
    ("machine_name", "mkldnn_bf16", "expected"), [("aarch64", True, False), ("aarch64", False, False)]
)
def test_auto_runs_bf16_only_on_x86_cpus_where_it_was_measured(monkeypatch, machine_name, mkldnn_bf16, expected):
    import platform

    import torch

    from hf_resnet101.config.hardware import cpu_bf16_is_auto, cpu_supports_bf16

    monkeypatch.setattr(platform, "machine", lambda: machine_name)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: mkldnn_bf16, raising=False)
    assert cpu_supports_bf16({}) is mkldnn_bf16  # Arm's bf16 extension runs bf16 when asked for
    assert cpu_bf16_is_auto({}) is expected


def test_auto_follows_the_instructions_on_x86(monkeypatch):
    import platform

    import torch

    from hf_resnet101.config.hardware import cpu_bf16_is_auto

    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    for has_avx512_bf16 in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: has_avx512_bf16)  # noqa: B023
        assert cpu_bf16_is_auto({}) is has_avx512_bf16
        assert cpu_bf16_is_auto({"ONEDNN_MAX_CPU_ISA": "AVX2"}) is False


GIB = 1 << 30


@pytest.mark.parametrize(
    ("processes", "available", "expected"),
    [
        (1, None, GIB),  # available memory unknown: the cap
        (1, 64 * GIB, GIB),
        (1, 2 * GIB, GIB // 2),  # a quarter of what is available
        (4, 2 * GIB, GIB // 8),  # shared by the machine's processes
        (1, 0, 0),
    ],
)
def test_held_evaluation_budget(processes, available, expected):
    assert held_evaluation_budget(processes, available) == expected


def test_local_process_count_is_the_launchers(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert local_process_count() == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert local_process_count() == 4


def test_available_memory_counts_what_can_be_had_without_swapping():
    from hf_resnet101.config.hardware import available_memory_bytes

    available = available_memory_bytes()
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():  # Linux: MemAvailable, which counts the reclaimable page cache (MemFree does not)
        line = next(line for line in meminfo.read_text().splitlines() if line.startswith("MemAvailable:"))
        assert abs(available - int(line.split()[1]) * 1024) < 512 * 2**20
    else:
        assert available is None or available > 0


def test_a_launcher_asked_for_processes_it_did_not_start_is_named():
    from hf_resnet101.config.hardware import processes_not_started_note

    simple_launcher = {"ACCELERATE_MIXED_PRECISION": "no", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    note = processes_not_started_note(simple_launcher)
    assert "started one" in note and "--cpu starts one, and cannot be combined with --multi_gpu" in note
    assert processes_not_started_note(simple_launcher | {"WORLD_SIZE": "2", "RANK": "0"}) is None  # --multi_gpu
    assert processes_not_started_note({"ACCELERATE_MIXED_PRECISION": "no"}) is None  # one process asked for
    assert processes_not_started_note({"MASTER_ADDR": "127.0.0.1"}) is None  # not accelerate's launcher
