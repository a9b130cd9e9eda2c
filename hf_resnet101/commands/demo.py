"""The offline demo: scikit-learn's hand-written digits written as an image folder, then a real fine-tuning run."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image
from transformers.utils import logging

from ..config.options import DEFAULT_MODEL, DataArguments, FinetuneTrainingArguments, ModelArguments
from ..errors import UsageError
from ..modeling import build_random_resnet101, hub_is_reachable, resnet_image_processor
from ..train.phase_clock import time_before_the_run
from ..train.run import FinetuneResult, run_finetune

logger = logging.get_logger(__name__)

DEMO_IMAGE_SIZE = 64
DIGITS_PHASE = "writing the digits"


def write_digits_image_folder(root: str | Path) -> Path:
    """Writes the 1,797 digits of `sklearn.datasets.load_digits` as PNGs in one sub-folder per digit."""
    from sklearn.datasets import load_digits

    root = Path(root)
    digits = load_digits()
    pixels = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    for index, (image, target) in enumerate(zip(pixels, digits.target, strict=True)):
        class_dir = root / str(target)
        class_dir.mkdir(parents=True, exist_ok=True)
        path = class_dir / f"{index:04d}.png"
        if not path.exists():
            Image.fromarray(image, mode="L").save(path)
    return root


def demo_settings(pretrained: bool, epochs: float | None) -> dict:
    """Settings for the digits: the product page's learning rate from pretrained weights, a larger one from scratch."""
    epochs = 2 if epochs is None else epochs
    if pretrained:
        return {"learning_rate": 5e-5, "num_train_epochs": epochs, "per_device_train_batch_size": 32}
    # From random weights the product page's batch 4 and lr 5e-5 reach about 17% after an epoch: a from-scratch run
    # needs a larger batch and learning rate (measured: 86% after 2 epochs).
    return {"learning_rate": 1e-3, "num_train_epochs": epochs, "per_device_train_batch_size": 32}


def run_demo(
    output_dir: str | Path,
    epochs: float | None = None,
    seed: int = 42,
    time_before: dict[str, float] | None = None,
    precision: str = "auto",
) -> FinetuneResult:
    """`time_before`: the command's start-up (`phase_clock.time_before_the_run`), shown first in the run's time by
    phase, before the time spent writing the digits. `precision`: as training's `--precision`."""
    output_dir = Path(output_dir)
    started = time.perf_counter()
    data_dir = write_digits_image_folder(output_dir / "digits")
    time_before = (time_before or {}) | {DIGITS_PHASE: time.perf_counter() - started}
    pretrained = hub_is_reachable()
    settings = demo_settings(pretrained, epochs)
    if pretrained:
        logger.warning(f"Demo: fine-tuning {DEFAULT_MODEL} from the Hub on the digits.")
        model_and_processor = None
    else:
        logger.warning(
            f"Demo: the Hub is not reachable, so {DEFAULT_MODEL}'s pretrained weights cannot be downloaded. "
            "Training the same ResNet-101 architecture from random weights instead, with settings for that: "
            + ", ".join(f"{k}={v}" for k, v in settings.items())
            + f", image_size={DEMO_IMAGE_SIZE}, channels_last."
        )
        label_names = sorted(p.name for p in data_dir.iterdir() if p.is_dir())
        model_and_processor = (build_random_resnet101(label_names), resnet_image_processor())
    data_args = DataArguments(train_dir=str(data_dir), image_size=DEMO_IMAGE_SIZE, augmentation="none")
    model_args = ModelArguments()
    training_args = FinetuneTrainingArguments(
        output_dir=str(output_dir / "model"),
        eval_strategy="epoch",
        save_strategy="no",
        overwrite_output_dir=True,  # the demo always starts afresh
        logging_steps=10,
        per_device_eval_batch_size=128,
        seed=seed,
        precision=precision,
        disable_tqdm=False,
        **settings,
    )
    return run_finetune(
        data_args,
        model_args,
        training_args,
        model_and_processor=model_and_processor,
        random_init=model_and_processor is not None,  # built by build_random_resnet101
        time_before=time_before,
    )


def print_demo_report(result: FinetuneResult) -> None:
    print(
        "\nValidation metrics: "
        + ", ".join(
            f"{k}={v:.4f}" for k, v in result.eval_metrics.items() if "runtime" not in k and "per_second" not in k
        )
    )
    print("pipeline('image-classification') on validation images:")
    for row in result.pipeline_predictions:
        print(f"  true {row['true']}: predicted {row['pipeline']} (score {row['score']:.2f})")
    print("\n" + "\n".join(result.closing_lines()))


def run_command(args: argparse.Namespace) -> None:
    """`hf-resnet101 demo`: the offline demo run, then its report."""
    if args.epochs is not None and args.epochs <= 0:
        raise UsageError(f"--epochs must be positive, got {args.epochs:g}.")
    time_before = time_before_the_run() if args.whole_process else None
    result = run_demo(args.output_dir, args.epochs, args.seed, time_before, args.precision)
    print_demo_report(result)
