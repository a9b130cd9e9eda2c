"""The product page's advice (docs/product-page.md), computed for a dataset and a machine: size tiers, presets,
ranges, hardware, and the advice the run gives when it diverges or overfits."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Tier:
    """A dataset-size tier of the product page and the configuration it recommends
    (docs/product-page.md#dataset-size-tiers)."""

    name: str
    min_images: int
    learning_rate: float
    num_train_epochs: int
    per_device_train_batch_size: int
    augmentation: str
    advice: str
    freeze_backbone: str | None = None

    def recommended(self, max_batch: int | None = None) -> dict[str, object]:
        """The tier's settings; the batch no larger than `max_batch` (the training images per process), as a
        batch larger than the data cannot run."""
        batch = self.per_device_train_batch_size
        values = {
            "learning_rate": self.learning_rate,
            "num_train_epochs": self.num_train_epochs,
            "per_device_train_batch_size": min(batch, max(1, max_batch)) if max_batch is not None else batch,
            "augmentation": self.augmentation,
        }
        if self.freeze_backbone:
            values["freeze_backbone"] = self.freeze_backbone
        return values


# The product page's tiers (docs/product-page.md#dataset-size-tiers): small 2,000-5,000 (lr 2e-5, 10-15 epochs,
# batch 8, heavy augmentation); medium 5,000-20,000 (lr 5e-5, 5-8 epochs, batch 16, standard); large
# 20,000-100,000 (lr 1e-4, 3-5 epochs, batch 16-32, light); very large over 100,000 (1-3 epochs for data over 20k);
# under 2,000 overfitting is likely.
TIERS = (
    Tier(
        "tiny", 0, 2e-5, 12, 8, "heavy",
        "under 2,000 images: overfitting likely with ResNet-101's capacity; consider microsoft/resnet-50, and "
        "train only the last stage (--freeze_backbone) with heavy augmentation",
        freeze_backbone="all_but_last",
    ),
    Tier("small", 2_000, 2e-5, 12, 8, "heavy",
         "2,000-5,000 images: use cautiously (ResNet-50 may do as well); heavy augmentation is essential"),
    Tier("medium", 5_000, 5e-5, 6, 16, "standard",
         "5,000-20,000 images: ResNet-101's optimal range; expect 2-3% over ResNet-50"),
    Tier("large", 20_000, 1e-4, 3, 32, "light", "20,000-100,000 images: ResNet-101 excels here"),
    Tier("very_large", 100_000, 1e-4, 2, 32, "light",
         "over 100,000 images: good, though ViT-Large may be 1-2% more accurate; ResNet-101 infers faster"),
)  # fmt: skip
TIERS_BY_NAME = {tier.name: tier for tier in TIERS}
# --preset: none, the dataset's own tier (auto), or a tier by the name the data report gives it.
PRESETS = ("none", "auto", *TIERS_BY_NAME)


def tier_for(num_images: int) -> Tier:
    return [tier for tier in TIERS if num_images >= tier.min_images][-1]


def preset_tier(preset: str, num_images: int) -> Tier | None:
    """The tier a `--preset` value names (`auto`: the dataset's own); None for `none`."""
    if preset == "none":
        return None
    if preset == "auto":
        return tier_for(num_images)
    return TIERS_BY_NAME[preset]


@dataclass(frozen=True)
class Setting:
    """A final option value and where it came from."""

    value: object
    source: str


def resolve_settings(
    current: dict[str, object], explicit: dict[str, str], tier: Tier | None, max_batch: int | None = None
) -> dict[str, Setting]:
    """Values given explicitly (command line or YAML) win over the preset, which wins over the defaults.

    Args:
        current: the option values after parsing (defaults, YAML and command line already merged).
        explicit: option name -> "command line" or "config file", for the options the user gave.
        tier: the preset's tier, or None without a preset.
        max_batch: the training images per process, which the preset's batch does not exceed.
    """
    recommended = tier.recommended(max_batch) if tier else {}
    settings = {}
    for name, value in current.items():
        if name in explicit:
            settings[name] = Setting(value, explicit[name])
        elif name in recommended:
            settings[name] = Setting(recommended[name], f"preset {tier.name}")
        else:
            settings[name] = Setting(value, "default")
    return settings


# (option, low, high, reason): the product page's ranges (docs/product-page.md#parameters-defaults-and-ranges).
PAGE_RANGES = (
    ("per_device_train_batch_size", 2, 32, "the recommended range for ResNet-101, constrained by model size"),
    ("num_train_epochs", 1, 20, "the recommended range; more epochs mostly overfit"),
    ("learning_rate", 1e-5, 1e-4, "the recommended range: the deep network needs careful tuning"),
)


# Where a value below the range fails otherwise than one above it.
BELOW_RANGE_REASONS = {
    "per_device_train_batch_size": (
        "the recommended range; use the largest batch that fits for stable training, with "
        "--gradient_accumulation_steps to reach it when memory is short"
    ),
    "num_train_epochs": "the recommended range; less than one epoch leaves images never seen",
    "learning_rate": "the recommended range; training this slowly may need many more epochs to converge",
}


def range_warnings(values: dict[str, float]) -> list[str]:
    """Warnings for values outside the recommended ranges (they still run)."""
    warnings = []
    for name, low, high, reason in PAGE_RANGES:
        value = values.get(name)
        if value is not None and not low <= value <= high:
            reason = BELOW_RANGE_REASONS.get(name, reason) if value < low else reason
            warnings.append(f"--{name} {value:g} is outside {recommended_range(name)}: {reason}.")
    return warnings


def recommended_range(option: str) -> str:
    """The recommended range of an option as help texts and advice quote it, e.g. "1e-5 to 1e-4" or "2-32"."""
    low, high = next((low, high) for name, low, high, _ in PAGE_RANGES if name == option)
    if isinstance(low, float) and low < 1e-3:
        return f"{low:.0e} to {high:.0e}".replace("e-0", "e-")
    return f"{low:g}-{high:g}"


def divergence_remedies(fp16: bool = False) -> str:
    """What to try when the loss blew up (docs/product-page.md#common-problems-and-their-fixes); fp16's narrow
    range is a cause only where fp16 ran."""
    precision = "use --bf16 instead of --fp16, " if fp16 else ""
    return (
        f"lower --learning_rate (recommended: {recommended_range('learning_rate')}), add --warmup_ratio 0.05, "
        f"{precision}check the data for corrupt labels or images, or lower --max_grad_norm"
    )


# What the run advises when the model overfits, which the monitor and the card say (the same page section).
OVERFITTING_ADVICE = (
    "fewer epochs (--num_train_epochs, or --early_stopping_patience 3 to stop at the best evaluation), a lower "
    "--learning_rate (down to 1e-5), stronger --augmentation (standard or heavy), more data, or "
    "--model_name_or_path microsoft/resnet-50 for small datasets"
)


def evaluation_cost_warning(
    num_train: int,
    num_validation: int,
    global_batch: int,
    epochs: float,
    eval_every: int | None,
    max_steps: int = -1,
) -> str | None:
    """Says when evaluation would dominate the run (an evaluation image costs about a third of a training one), and
    which --eval_steps would bring it to at most half the run's time: every tenth of the run, or more often where
    that is enough. `max_steps` (when positive) bounds the run, as it does the Trainer's."""
    if not eval_every or num_validation == 0:
        return None
    if max_steps > 0:
        steps, train_images = max_steps, max_steps * global_batch
    else:
        steps, train_images = max(1, -(-num_train // global_batch)) * epochs, num_train * epochs
    evaluations = int(steps // eval_every)
    eval_images = evaluations * num_validation
    if eval_images / 3 <= train_images:
        return None
    share = (eval_images / 3) / (eval_images / 3 + train_images)
    # Evaluating every k steps costs steps/k * num_validation/3 image-passes: at most the training's when k is this.
    enough = math.ceil(steps * num_validation / (3 * train_images))
    suggested = max(eval_every + 1, enough, int(steps // 10))
    fix = (
        f"Pass --eval_steps {suggested} (or --eval_strategy epoch)"
        if suggested < steps
        else "Pass --eval_strategy epoch (or no)"
    )
    return (
        f"Evaluating every {eval_every} step(s) runs {evaluations:,} evaluations of {num_validation:,} images "
        f"({eval_images:,} images) against {train_images:,.0f} training images: about {share:.0%} of the run's time "
        f"goes to evaluation. {fix} to evaluate less often."
    )


# Page: 4-8 for 8-12 GB, 8-16 for 16 GB, 16-32 for 24 GB and more (at 224x224, fp32 weights, mixed precision).
def recommended_batch_range(gpu_memory_gib: float) -> tuple[int, int] | None:
    if gpu_memory_gib >= 23:
        return 16, 32
    if gpu_memory_gib >= 15:
        return 8, 16
    if gpu_memory_gib >= 7.5:
        return 4, 8
    return None


# Measured on a 2-core AMD EPYC with AVX-512 BF16, channels_last, torch 2.14.1: the full ResNet-101 trains at about
# 2.6 images/s in fp32 and 4.6 under bf16 autocast at 224x224, batch 4 (benchmarks/RESULTS.md); cost scales with
# the number of pixels.
CPU_IMAGES_PER_SECOND_224 = {"fp32": 2.6, "bf16": 4.6}


def cpu_epoch_estimate_s(num_train: int, image_size: int, bf16: bool, cores: int) -> float:
    rate = CPU_IMAGES_PER_SECOND_224["bf16" if bf16 else "fp32"] * (224 / image_size) ** 2 * max(cores, 1) / 2
    return num_train / rate


def approximate_duration(seconds: float) -> str:
    """An estimate in the unit that reads best: "about 50 s", "about 12 min", "about 3.5 h", "about 2.1 days"."""
    if seconds < 90:
        return f"about {max(1, round(seconds, -1) if seconds >= 10 else round(seconds)):.0f} s"
    if seconds < 90 * 60:
        return f"about {seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"about {seconds / 3600:.1f} h"
    return f"about {seconds / 86400:.1f} days"


def hardware_advice(
    cuda_memory_gib: float | None, num_train: int, image_size: int, bf16: bool, cores: int, full_size_model: bool
) -> str:
    if cuda_memory_gib is not None:
        batch = recommended_batch_range(cuda_memory_gib)
        if batch is None:
            return (
                f"GPU with {cuda_memory_gib:.0f} GiB: below the 10 GB recommended at least for ResNet-101; use batch "
                "2-4, --fp16 and a smaller --image_size, or ResNet-50."
            )
        return f"GPU with {cuda_memory_gib:.0f} GiB: the recommended batch size is {batch[0]}-{batch[1]}."
    if not full_size_model:
        return "No GPU: training on the CPU."
    epoch = approximate_duration(cpu_epoch_estimate_s(num_train, image_size, bf16, cores))
    return (
        f"No GPU: CPU training of the full ResNet-101 is very slow (not recommended). Estimated "
        f"{epoch} per epoch of {num_train:,} images at {image_size}x{image_size} on {cores} cores."
    )


def describe_tier(num_images: int) -> str:
    """The tier of `num_images` training images and its settings, as `--preset auto` applies them (one process)."""
    tier = tier_for(num_images)
    recommended = ", ".join(f"{k}={v}" for k, v in tier.recommended(max_batch=num_images).items())
    # The training images the run fits, not the folder's: with validation split off, 2,300 images train on 1,956.
    return (
        f"dataset size tier: {tier.name}, by the {num_images:,} training images ({tier.advice}); recommended: "
        f"{recommended} (--preset auto applies it)"
    )
