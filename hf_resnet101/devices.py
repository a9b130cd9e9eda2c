"""Device and precision decisions, made before the Trainer starts so every process agrees on them."""

from __future__ import annotations

import torch


def cpu_supports_bf16() -> bool:
    """True when the CPU runs bf16 matmuls natively (AVX-512 BF16 or AMX), where bf16 autocast pays."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(fp16: bool, bf16: bool, cuda_available: bool, cpu_bf16: bool) -> tuple[bool, bool, str]:
    """Chooses the mixed precision that the hardware can run.

    Returns:
        (fp16, bf16, note): the flags to use and a sentence saying what was chosen and why.
    """
    if cuda_available:
        if fp16:
            return True, False, "fp16 mixed precision on CUDA"
        if bf16:
            return False, True, "bf16 mixed precision on CUDA"
        return False, False, "fp32 on CUDA (pass --fp16 for mixed precision: faster and about half the memory)"
    if fp16:
        if cpu_bf16:
            return (
                False,
                True,
                "bf16 autocast on CPU (--fp16 asked for, but fp16 is slow on CPUs; bf16 is native here)",
            )
        return False, False, "fp32 on CPU (--fp16 asked for, but this CPU has no fast half precision)"
    if bf16:
        if cpu_bf16:
            return False, True, "bf16 autocast on CPU"
        return False, False, "fp32 on CPU (--bf16 asked for, but this CPU lacks native bf16)"
    hint = " (pass --bf16 for about twice the speed)" if cpu_bf16 else ""
    return False, False, f"fp32 on CPU{hint}"
