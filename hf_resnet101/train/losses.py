"""Class-weighted cross-entropy for imbalanced classes (`--class_weighting balanced`)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def balanced_class_weights(counts: list[int]) -> torch.Tensor:
    """Inverse class frequency, scaled so the weights average to 1 over the images (sklearn's "balanced")."""
    counts_t = torch.tensor(counts, dtype=torch.float32)
    present = counts_t > 0
    weights = torch.zeros_like(counts_t)
    weights[present] = counts_t.sum() / (present.sum() * counts_t[present])
    return weights


def make_weighted_loss(weights: torch.Tensor) -> Callable:
    """A `compute_loss_func` for the Trainer: weighted cross-entropy, correct under gradient accumulation."""

    def weighted_cross_entropy(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"].float()
        class_weights = weights.to(logits.device)
        total = F.cross_entropy(logits, labels, weight=class_weights, reduction="sum")
        if num_items_in_batch is not None:
            # The Trainer sums micro-batch losses over accumulation steps: normalise by the images of the whole step.
            return total / num_items_in_batch
        return total / class_weights[labels].sum().clamp_min(1e-12)

    return weighted_cross_entropy
