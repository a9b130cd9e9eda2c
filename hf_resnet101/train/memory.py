"""Device memory and worker processes: out-of-memory recovery (a smaller per-device batch with more gradient
accumulation, the same effective batch), and releasing what a finished or failed run holds."""

from __future__ import annotations

import gc
from dataclasses import dataclass

import torch
from accelerate.utils.memory import clear_device_cache, should_reduce_batch_size

from ..library_internals import stop_data_loader_workers


def is_out_of_memory(error: BaseException) -> bool:
    """True for a device (or CPU allocator) out-of-memory error, which a smaller batch may avoid."""
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, Exception) and should_reduce_batch_size(error)
    )


@dataclass(frozen=True)
class BatchPlan:
    """How the effective batch is split: images per device per forward pass, and passes per optimizer step."""

    per_device: int
    accumulation: int

    @property
    def effective(self) -> int:
        return self.per_device * self.accumulation

    def smaller(self) -> BatchPlan | None:
        """The next plan with the same effective batch: the per-device batch divided by its smallest factor
        (halved when even), the accumulation multiplied by it. None at a per-device batch of 1."""
        if self.per_device == 1:
            return None
        factor = next(f for f in range(2, self.per_device + 1) if self.per_device % f == 0)
        return BatchPlan(self.per_device // factor, self.accumulation * factor)


# Measured on an H200 (benchmarks/memory.py): the cost and the gain of --activation_checkpointing.
CHECKPOINTING_TRADE = "about 0.4x the peak memory, at 1.4x to 4x the step time"


def out_of_memory_advice(plan: BatchPlan, image_size: int | None) -> str:
    size = f" (now {image_size})" if image_size else ""
    return (
        f"Out of memory even at --per_device_train_batch_size {plan.per_device}. Lower the memory each image "
        f"needs: --activation_checkpointing ({CHECKPOINTING_TRADE}), --fp16 on a GPU, "
        f"a smaller --image_size{size}, or --freeze_backbone all_but_last; or use a GPU with more memory, or "
        "--model_name_or_path microsoft/resnet-50 (a shallower network: fewer activations kept per image)."
    )


def multi_process_advice(plan: BatchPlan) -> str:
    smaller = plan.smaller()
    retry = (
        f"--per_device_train_batch_size {smaller.per_device} --gradient_accumulation_steps {smaller.accumulation}"
        if smaller
        else "--activation_checkpointing"
    )
    return (
        f"Out of memory at --per_device_train_batch_size {plan.per_device} in a run of several processes, where "
        f"the batch cannot be changed in one process alone. Run again with {retry} (the same effective batch "
        "and learning-rate schedule); a complete checkpoint, if any, is resumed."
    )


def release_device_memory(trainer) -> None:
    """Drops what a failed run holds on the device: gradients, optimizer state, the Trainer's wrappers."""
    stop_data_loader_workers(trainer)
    trainer.model.zero_grad(set_to_none=True)
    trainer.accelerator.free_memory()  # its references to the optimizer, scheduler and dataloaders
    trainer.optimizer = trainer.lr_scheduler = None
    trainer.model_wrapped = trainer.model
    gc.collect()  # free_memory collected before it dropped its references: collect again now they are gone
    clear_device_cache(garbage_collection=True)
