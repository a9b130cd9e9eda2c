"""Command-line and YAML options: data, model and training arguments.

Field names follow `TrainingArguments` and the transformers image-classification example, so flags users
already know carry over. Defaults that differ from `TrainingArguments` are the product page's (docs/product-page.md).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from transformers import TrainingArguments

from ..errors import UsageError
from ..modeling import is_hub_id, license_id_problem
from .hardware import PRECISIONS, choose_hardware, probe_machine
from .presets import PRESETS, recommended_range

DEFAULT_MODEL = "microsoft/resnet-101"
AUGMENTATIONS = ("none", "light", "standard", "heavy")
CLASS_WEIGHTINGS = ("none", "balanced")
MIN_IMAGE_SIZE = 32  # a ResNet downsamples 32 times: a smaller input leaves its last stage nothing to normalise
# `--report_to` values whose package may be missing, the importable names that serve each, and the extra to install.
TRACKER_PACKAGES = {"tensorboard": (("tensorboard", "tensorboardX"), "dashboard"), "trackio": (("trackio",), None)}
COMMON_TRAINING_OPTIONS = (
    "gradient_accumulation_steps",
    "max_steps",
    "weight_decay",
    "lr_scheduler_type",
    "save_strategy",
    "save_steps",
    "load_best_model_at_end",
    "seed",
    "resume_from_checkpoint",
    "activation_checkpointing",
    "torch_compile",
    "fp16",
    "bf16",
    "use_cpu",
    "report_to",
    "push_to_hub",
    "hub_model_id",
    "hub_private_repo",
    "hub_strategy",
    "hub_token",
)


@dataclass(frozen=True)
class DataArguments:
    """Where the images come from and how they are split (read-only: see `config.resolve`)."""

    train_dir: str | None = field(
        default=None, metadata={"help": "Folder with one sub-folder of images per class (the training set)."}
    )
    validation_dir: str | None = field(
        default=None,
        metadata={"help": "Folder with the same class sub-folders for validation. Without it, one is split off."},
    )
    dataset_name: str | None = field(
        default=None,
        metadata={"help": "A dataset on the Hub (or a local dataset script/folder) instead of --train_dir."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "The dataset configuration name."})
    image_column_name: str = field(default="image", metadata={"help": "Column holding the images."})
    label_column_name: str = field(default="label", metadata={"help": "Column holding the class labels."})
    train_val_split: float = field(
        default=0.15,
        metadata={"help": "Fraction of each class held out for validation when there is no validation set."},
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep only this many training images (for quick runs and debugging)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Keep only this many validation images (for quick runs and debugging)."}
    )
    image_size: int | None = field(
        default=None,
        metadata={"help": "Square input resolution for training and evaluation; the model's own by default."},
    )
    augmentation: str = field(
        default="light",
        metadata={"help": "Training augmentation strength: none, light (crop and flip), standard, heavy."},
    )
    preset: str = field(
        default="none",
        metadata={
            "help": "Apply the recommended configuration for a dataset size: auto (from the data), tiny, small, "
            "medium, large, very_large, or none. Options given explicitly always win over a preset."
        },
    )
    strict: bool = field(
        default=False, metadata={"help": "Stop with a list of all unusable files instead of leaving them out."}
    )
    dedupe: bool = field(
        default=False,
        metadata={
            "help": "Leave identical copies of training images out of validation, and images that appear under "
            "two labels out of both splits."
        },
    )
    class_weighting: str = field(
        default="none",
        metadata={"help": "none, or balanced: weight the loss by inverse class frequency (for imbalanced classes)."},
    )

    def __post_init__(self):
        if self.dataset_name is None and self.train_dir is None:
            raise UsageError("Give the training images: --train_dir DIR (one sub-folder per class) or --dataset_name.")
        if self.dataset_name is not None and self.train_dir is not None:
            raise UsageError("--train_dir and --dataset_name both given: choose one source of training images.")
        if self.dataset_name is not None and self.validation_dir is not None:
            raise UsageError("--validation_dir only goes with --train_dir; a Hub dataset brings its own splits.")
        if self.dataset_name is not None and (self.dedupe or self.strict):
            # They work on the scan of a folder's files; a dataset's rows are not scanned, and the card said the
            # copies were left out while every row was trained on.
            given = " and ".join(flag for flag, on in (("--dedupe", self.dedupe), ("--strict", self.strict)) if on)
            raise UsageError(
                f"{given} check the image files of a folder (--train_dir); a dataset's rows are not scanned. Leave "
                f"{'them' if ' and ' in given else 'it'} out, or clean the dataset first."
            )
        if not 0.0 < self.train_val_split < 1.0:
            raise UsageError(f"--train_val_split must be between 0 and 1 (exclusive), got {self.train_val_split}.")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UsageError(f"--{name} must be a positive integer, got {value}.")
        if self.image_size is not None and self.image_size < MIN_IMAGE_SIZE:
            raise UsageError(
                f"--image_size must be at least {MIN_IMAGE_SIZE} (a ResNet shrinks its input 32 times), got "
                f"{self.image_size}."
            )
        if self.preset not in PRESETS:
            raise UsageError(f"--preset must be one of {', '.join(PRESETS)}, got {self.preset!r}.")
        if self.class_weighting not in CLASS_WEIGHTINGS:
            raise UsageError(
                f"--class_weighting must be one of {', '.join(CLASS_WEIGHTINGS)}, got {self.class_weighting!r}."
            )
        if self.augmentation not in AUGMENTATIONS:
            raise UsageError(f"--augmentation must be one of {', '.join(AUGMENTATIONS)}, got {self.augmentation!r}.")
        for name in ("train_dir", "validation_dir"):
            path = getattr(self, name)
            if path is not None:
                object.__setattr__(self, name, os.path.expanduser(path))  # a frozen dataclass sets its own fields so


@dataclass(frozen=True)
class ModelArguments:
    """Which checkpoint to fine-tune and how to load it (read-only: see `config.resolve`)."""

    model_name_or_path: str = field(
        default=DEFAULT_MODEL,
        metadata={"help": "Hub id or local folder of an image-classification checkpoint (ResNet, timm, ViT, ...)."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where downloaded models and datasets are cached."})
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of the checkpoint."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run code shipped with a Hub model or dataset. Only for repos you trust."}
    )
    base_model_id: str | None = field(
        default=None,
        metadata={
            "help": "Hub id USER/NAME of the weights a local --model_name_or_path holds, for the card's base_model "
            "(default: what the folder records, else none)."
        },
    )
    license: str | None = field(
        default=None,
        metadata={
            "help": "The model card's license, as a Hub license id (apache-2.0, mit, cc-by-nc-4.0, other, ...). "
            "Default: the base model's, as its card records it (a local folder, or the Hub cache), else apache-2.0 "
            "for microsoft/resnet-* and google/vit-* (theirs), else other."
        },
    )
    freeze_backbone: str | None = field(
        default=None,
        metadata={
            "help": "Train fewer parameters on small data: all_but_last freezes every stage but the last, a number N "
            "freezes the stem and the first N stages, none (or 0) trains all (over a preset's choice). The "
            "classification head always trains."
        },
    )
    channels_last: bool = field(
        default=True,
        metadata={"help": "Use the channels-last memory layout for convolutions (faster on CPU and GPU)."},
    )

    def __post_init__(self):
        spec = self.freeze_backbone
        if spec is not None and spec.strip().lower() in ("none", "0"):  # said so, a preset's freezing is not applied
            object.__setattr__(self, "freeze_backbone", None)
        elif spec is not None and spec != "all_but_last" and not (spec.isdigit() and int(spec) > 0):
            raise UsageError(
                f"--freeze_backbone takes all_but_last, a positive number of stages, or none, got {spec!r}."
            )
        if self.license is not None and (problem := license_id_problem(self.license)):
            raise UsageError(problem)
        if self.base_model_id is not None and not is_hub_id(self.base_model_id):
            raise UsageError(
                f"--base_model_id takes a Hub id such as microsoft/resnet-101, got {self.base_model_id!r}: the card's "
                "base_model must name a model on the Hub."
            )


@dataclass
class FinetuneTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the product page's defaults (docs/product-page.md#parameters-defaults-and-ranges).

    Differences from `TrainingArguments`: `per_device_train_batch_size` 4, `learning_rate` 5e-5,
    `num_train_epochs` 1, `eval_strategy` "steps" with `eval_steps` 1, `remove_unused_columns` False (the
    image column is needed by the transforms), `metric_for_best_model` "accuracy".
    """

    output_dir: str | None = field(default=None, metadata={"help": "Where the model, metrics and card are written."})
    per_device_train_batch_size: int = field(
        default=4,
        metadata={
            "help": f"Images per device per step (recommended: {recommended_range('per_device_train_batch_size')})."
        },
    )
    learning_rate: float = field(
        default=5e-5, metadata={"help": f"Peak learning rate (recommended: {recommended_range('learning_rate')})."}
    )
    num_train_epochs: float = field(
        default=1.0,
        metadata={"help": f"Passes over the training set (recommended: {recommended_range('num_train_epochs')})."},
    )
    eval_strategy: str = field(default="steps", metadata={"help": "When to evaluate: no, steps or epoch."})
    eval_steps: float | None = field(
        default=1, metadata={"help": "Evaluate every this many steps (recommended: 1, for careful monitoring)."}
    )
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Kept False: the transforms need the image column."}
    )
    metric_for_best_model: str | None = field(
        default="accuracy", metadata={"help": "Metric that picks the best checkpoint."}
    )
    precision: str = field(
        default="auto",
        metadata={
            "help": "auto (fp16 on a CUDA GPU; bf16 autocast on an x86 CPU with AVX-512 BF16 or AMX; fp32 on other "
            "CPUs), fp32, fp16 or bf16. --fp16 and --bf16 are the same as --precision fp16/bf16."
        },
    )
    per_device_eval_batch_size: int = field(
        default=32, metadata={"help": "Images per device per evaluation step (no gradients: larger is faster)."}
    )
    logging_steps: float = field(default=10, metadata={"help": "Log the training loss every this many steps."})
    logging_nan_inf_filter: bool = field(
        default=False, metadata={"help": "Kept False so a NaN loss is seen (and stops the run) at once."}
    )
    save_total_limit: int | None = field(
        default=2, metadata={"help": "Keep at most this many checkpoints (the best one is always kept)."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start over in an output folder that holds a previous run, instead of resuming it."},
    )
    save_every_minutes: float = field(
        default=30.0,
        metadata={"help": "Also save a checkpoint every this many minutes (0: only every --save_steps)."},
    )
    warmup_ratio: float = field(
        default=0.0, metadata={"help": "Linear warmup over this fraction of all steps (helps slow starts)."}
    )
    ddp_find_unused_parameters: bool | None = field(
        default=False,
        metadata={
            "help": "With several processes, search each step for parameters the forward pass left unused. Off: "
            "every parameter of these classifiers is used (frozen ones are left out anyway), and the search costs an "
            "extra pass over the autograd graph at every step (transformers turns it on for its models)."
        },
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "Stop after this many evaluations without improvement of --metric_for_best_model."},
    )
    dataloader_num_workers: int | None = field(
        default=None,
        metadata={
            "help": "Worker processes that decode and augment images. Default: on a GPU, the CPU cores per process "
            "less one (at most 16), persistent between epochs; on a CPU 0, as the training needs every core. "
            "Evaluation reads its images, prepared once, in the training process."
        },
    )
    dataloader_persistent_workers: bool | None = field(
        default=None,
        metadata={"help": "Keep the workers alive between epochs (default: yes whenever there are workers)."},
    )
    push_to_hub: bool = field(
        default=False,
        metadata={"help": "Push the output folder (model, card, metrics) to --hub_model_id once, at the end."},
    )
    verbose: bool = field(
        default=False,
        metadata={"help": "Show the libraries' own messages (expected warnings, load reports, data progress)."},
    )

    def __post_init__(self):
        if not self.output_dir:
            raise UsageError("Give --output_dir: the folder that receives the model, its metrics and its card.")
        check_number_ranges(self)
        if self.max_steps == 0:  # the Trainer reads it as a limit and still runs one step; a negative means epochs
            raise UsageError(
                "--max_steps 0 would still train one step: give a positive number of steps, or leave it out (-1, "
                "the default) to train for --num_train_epochs."
            )
        if self.num_train_epochs <= 0 and self.max_steps <= 0:
            raise UsageError(f"--num_train_epochs must be positive, got {self.num_train_epochs}.")
        if self.fp16 and self.bf16:
            raise UsageError("--fp16 and --bf16 both given: choose one mixed precision.")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise UsageError(f"--warmup_ratio must be in [0, 1), got {self.warmup_ratio}.")
        if self.warmup_ratio and self.warmup_steps:
            raise UsageError("--warmup_ratio and --warmup_steps both given: choose one.")
        if self.warmup_ratio:
            self.warmup_steps = self.warmup_ratio  # transformers 5 reads a float below 1 as a fraction of all steps
        if self.early_stopping_patience is not None:
            if self.early_stopping_patience <= 0:
                raise UsageError(f"--early_stopping_patience must be positive, got {self.early_stopping_patience}.")
            if self.eval_strategy in ("no", None):
                raise UsageError("--early_stopping_patience needs evaluations: set --eval_strategy steps or epoch.")
            self.load_best_model_at_end = True  # early stopping keeps the best model, not the last
        if self.load_best_model_at_end:
            check_checkpoint_at_each_evaluation(self)
        if self.resume_from_checkpoint and self.overwrite_output_dir:
            raise UsageError("--resume_from_checkpoint and --overwrite_output_dir contradict each other: choose one.")
        if self.push_to_hub and not self.hub_model_id:
            raise UsageError("--push_to_hub needs --hub_model_id USER/NAME: the repository to create or update.")
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}.")
        if (self.fp16 or self.bf16) and self.precision not in ("auto", "fp16" if self.fp16 else "bf16"):
            raise UsageError(f"--precision {self.precision} contradicts --{'fp16' if self.fp16 else 'bf16'}.")
        if not 0 <= self.seed < 2**32:  # what numpy's and torch's seeding take; set_seed would raise mid-start
            raise UsageError(f"--seed must be from 0 to {2**32 - 1}, got {self.seed}.")
        if self.dataloader_num_workers is not None and self.dataloader_num_workers < 0:
            raise UsageError(f"--dataloader_num_workers must be 0 or more, got {self.dataloader_num_workers}.")
        requested = "fp16" if self.fp16 else "bf16" if self.bf16 else self.precision
        asked_by = f"--{requested}" if self.fp16 or self.bf16 else f"--precision {requested}"
        choice = choose_hardware(
            requested,
            self.dataloader_num_workers,
            self.dataloader_persistent_workers,
            probe_machine(self.use_cpu),
            asked_by,
        )
        for name, value in dataclasses.asdict(choice).items():  # before TrainingArguments checks them
            setattr(self, name, value)
        carry_over_renamed_options(self)
        super().__post_init__()
        check_trackers_installed(self.report_to)
        self.mixed_precision = "fp16" if self.fp16 else "bf16" if self.bf16 else "no"


# Numeric training options and the values they take; any of them NaN or infinite is refused too.
POSITIVE_OPTIONS = (
    "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps", "learning_rate",
    "eval_steps", "save_steps", "logging_steps", "save_total_limit",
)  # fmt: skip
NON_NEGATIVE_OPTIONS = (
    "weight_decay", "max_grad_norm", "save_every_minutes", "adam_epsilon",
)  # fmt: skip
BELOW_ONE_OPTIONS = ("label_smoothing_factor", "adam_beta1", "adam_beta2")  # 0 or more, below 1
FINITE_OPTIONS = (
    *POSITIVE_OPTIONS,
    *NON_NEGATIVE_OPTIONS,
    *BELOW_ONE_OPTIONS,
    "num_train_epochs",
    "warmup_ratio",
    "warmup_steps",
)


def check_number_ranges(args: TrainingArguments) -> None:
    """Stops on numeric options that cannot work, before anything runs: the Trainer would accept most of them and
    fail later or do something else (a negative --max_grad_norm flips every gradient, --gradient_accumulation_steps
    -1 trains nothing and saves the untrained model, --eval_steps 0 becomes --logging_steps)."""
    for name in FINITE_OPTIONS:
        value = getattr(args, name, None)
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"--{name} must be a finite number, got {value}.")
    for name in POSITIVE_OPTIONS:
        value = getattr(args, name, None)
        if value is not None and value <= 0:
            raise UsageError(f"--{name} must be positive, got {value}.")
    for name in NON_NEGATIVE_OPTIONS:
        value = getattr(args, name, None)
        if value is not None and value < 0:
            raise UsageError(f"--{name} must be 0 or more, got {value}.")
    for name in BELOW_ONE_OPTIONS:
        value = getattr(args, name, None)
        if value is not None and not 0 <= value < 1:
            raise UsageError(f"--{name} must be 0 or more and below 1, got {value}.")


def check_given_options(given: Mapping[str, object]) -> None:
    """Stops on options the user gave that contradict each other, before defaults and presets fill the rest in.

    Args:
        given: option name -> value, for the options given on the command line or in the config file.
    """
    if given.get("early_stopping_patience") and given.get("load_best_model_at_end") is False:
        raise UsageError(
            "--early_stopping_patience ends training on the best evaluation's weights (--load_best_model_at_end), "
            "and --load_best_model_at_end False was given: leave that out, or drop --early_stopping_patience."
        )


def check_checkpoint_at_each_evaluation(args: TrainingArguments) -> None:
    """The best evaluation's weights can be kept only if a checkpoint is saved at every evaluation.

    Raises:
        UsageError: saying which option turned --load_best_model_at_end on and the save setting that fits.
    """
    evaluate, save = (getattr(value, "value", value) for value in (args.eval_strategy, args.save_strategy))
    cause = (
        "--early_stopping_patience keeps the best evaluation's weights (--load_best_model_at_end), which"
        if args.early_stopping_patience
        else "--load_best_model_at_end"
    )
    if evaluate == "no":
        raise UsageError(
            "--load_best_model_at_end keeps the best evaluation's weights, and with --eval_strategy no nothing is "
            "evaluated: give --eval_strategy steps (or epoch), or leave --load_best_model_at_end out."
        )
    if save == "best":
        return
    # transformers' rule: the best step must be one the checkpoints could land on. The package keeps the best
    # weights in memory in between, so checkpoints need not come at every evaluation, only on the same schedule.
    if save != evaluate:
        fit = f"--save_strategy {evaluate}" + (f" --save_steps {args.eval_steps:g}" if evaluate == "steps" else "")
        raise UsageError(
            f"{cause} needs checkpoints on the evaluations' schedule (transformers' rule): evaluation is by "
            f"{evaluate}, saving by {save}. Give {fit}, or --save_strategy best."
        )
    if evaluate == "steps" and args.eval_steps >= 1 and args.save_steps >= 1 and args.save_steps % args.eval_steps:
        multiple = args.eval_steps * max(1, round(args.save_steps / args.eval_steps))
        raise UsageError(
            f"{cause} needs --save_steps to be a multiple of --eval_steps (transformers' rule; the best weights are "
            f"kept in memory between checkpoints): --save_steps {args.save_steps:g} is not a multiple of "
            f"--eval_steps {args.eval_steps:g}. Give --save_steps {multiple:g}."
        )


# Options the product page (and this README) name that recent transformers renamed, keeping the old name as an alias.
RENAMED_OPTIONS = {
    "gradient_checkpointing": "activation_checkpointing",
    "gradient_checkpointing_kwargs": "activation_checkpointing_kwargs",
}


def carry_over_renamed_options(args: TrainingArguments) -> None:
    """Sets each renamed option's new name from its old one, where this transformers has the new name and only the
    old one was given: both names work, and transformers' "deprecated, will be removed in v6" warning, at every run
    that uses the documented `--gradient_checkpointing`, does not show."""
    for old, new in RENAMED_OPTIONS.items():
        if hasattr(args, new) and getattr(args, new) is None and getattr(args, old, None) is not None:
            setattr(args, new, getattr(args, old))


def check_trackers_installed(report_to: list[str]) -> None:
    """Stops before any data is loaded when a `--report_to` tracker's package is missing, naming the install."""
    for name in report_to or []:
        modules, extra = TRACKER_PACKAGES.get(name, ((), None))
        if modules and not any(importlib.util.find_spec(module) for module in modules):
            install = f'pip install "hf-resnet101[{extra}]"' if extra else f"pip install {name}"
            raise UsageError(f"--report_to {name} needs the {name} package, which is not installed: {install}.")


def short_help_options() -> tuple[str, ...]:
    """The options `--help` lists: the package's own, then the common training ones (`--help_all` has all)."""
    own = [f.name for dtype in (DataArguments, ModelArguments) for f in dataclasses.fields(dtype)]
    overridden = [name for name in FinetuneTrainingArguments.__annotations__ if name not in COMMON_TRAINING_OPTIONS]
    return ("config", *own, *overridden, *COMMON_TRAINING_OPTIONS, "help", "help_all")
