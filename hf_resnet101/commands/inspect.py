"""`hf-resnet101 inspect`: the data report and the product page's advice (docs/product-page.md) for a folder,
without training."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config.hardware import cpu_bf16_is_auto
from ..config.presets import describe_tier, evaluation_cost_warning, hardware_advice
from ..config.resolve import IMBALANCE_RATIO
from ..data.folders import find_split_folders, plan_image_folders
from ..data.report import DataReport
from ..errors import UsageError, did_you_mean_path

PAGE_BATCH_SIZE = 4


@dataclass
class Inspection:
    report: DataReport
    lines: list[str]


def inspect_folder(
    data: str | Path,
    validation_dir: str | Path | None = None,
    train_val_split: float = 0.15,
    seed: int = 42,
    *,
    dedupe: bool = False,
    strict: bool = False,
    image_size: int = 224,
) -> Inspection:
    if not Path(data).is_dir():
        raise UsageError(
            f"DATA {data} {'is not a folder' if Path(data).exists() else 'does not exist'}: give the folder of class "
            f"sub-folders (or the one holding train/ and validation/ folders).{did_you_mean_path(data)}"
        )
    train_dir, found_validation = find_split_folders(Path(data))
    validation_dir = validation_dir or found_validation
    plan = plan_image_folders(
        str(train_dir),
        str(validation_dir) if validation_dir else None,
        train_val_split,
        seed,
        strict=strict,
        dedupe=dedupe,
        train_name="DATA" if train_dir == Path(data) else "--train_dir",
    )
    report = plan.report
    num_train, num_validation = len(plan.data_files["train"]), len(plan.data_files["validation"])
    total = num_train + num_validation
    validation_source = (
        f"from {validation_dir}"
        if validation_dir
        else f"split off, {num_validation} of {total} images ({num_validation / max(total, 1):.0%}; "
        f"--train_val_split {train_val_split:g} per class, at least one image of each class)"
    )
    lines = [
        f"training folder: {train_dir}; validation: {validation_source}",
        *report.summary_lines(),
        describe_tier(num_train),
    ]
    if report.imbalance_ratio >= IMBALANCE_RATIO:
        lines.append(
            "For the class imbalance: training judges its evaluations by macro F1, and --class_weighting balanced "
            "weights the loss by class (or collect more images of the small classes)."
        )
    cuda_gib = torch.cuda.get_device_properties(0).total_memory / 2**30 if torch.cuda.is_available() else None
    lines.append(
        hardware_advice(cuda_gib, num_train, image_size, cpu_bf16_is_auto(), os.cpu_count() or 1, full_size_model=True)
    )
    cost = evaluation_cost_warning(num_train, num_validation, PAGE_BATCH_SIZE, 1, eval_every=1)
    if cost:
        lines.append("With the defaults (batch 4, evaluation every step): " + cost)
    return Inspection(report, lines)


def run_command(args: argparse.Namespace) -> None:
    """`hf-resnet101 inspect DATA`: the report printed, and written as JSON with --output."""
    result = inspect_folder(
        args.data,
        args.validation_dir,
        args.train_val_split,
        args.seed,
        dedupe=args.dedupe,
        strict=args.strict,
        image_size=args.image_size,
    )
    print("\n".join(result.lines))
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result.report.to_dict(), f, indent=2, ensure_ascii=False)
        print(f"Full report: {args.output}")
