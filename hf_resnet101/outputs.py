"""The name of every file the package writes, in a run's output folder and in the commands' outputs.

One place, so a reader sees what a folder holds, and what is published, without reading five modules. The names
the libraries choose are theirs (transformers' constants), the rest are this package's.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import CONFIG_NAME, IMAGE_PROCESSOR_NAME, SAFE_WEIGHTS_NAME

# The model, as `save_pretrained` writes it.
MODEL_CONFIG = CONFIG_NAME  # config.json: architecture and id2label
MODEL_WEIGHTS = SAFE_WEIGHTS_NAME  # model.safetensors
IMAGE_PROCESSOR_CONFIG = IMAGE_PROCESSOR_NAME  # preprocessor_config.json: input size and normalisation

# What the Trainer writes: its state (the log history the card's curves come from), its arguments (a pickle), and
# the metrics `Trainer.save_metrics` saves (train, eval, and both together).
TRAINER_STATE = "trainer_state.json"
TRAINING_ARGS = "training_args.bin"
TRAIN_RESULTS = "train_results.json"
EVAL_RESULTS = "eval_results.json"  # the final validation metrics
ALL_RESULTS = "all_results.json"

# What the run writes beside the model; all of it is published with the model.
MODEL_CARD = "README.md"
CARD_INPUTS = "card_inputs.json"  # what the card is rendered from; `hf-resnet101 card` renders it again
TRAINING_CURVES = "training_curves.png"
CONFUSION_MATRIX = "confusion_matrix.png"  # the card's, and `hf-resnet101 evaluate`'s
DATA_REPORT = "data_report.json"
SPLITS = "splits.csv"  # which image went to which split, relative to its data folder
MONITORS = "monitors.json"  # the overfitting monitor's events
PIPELINE_CHECK = "pipeline_check.json"  # the saved folder's predictions through `pipeline`

# The run's bookkeeping: which run the folder holds, the files it wrote, the lock. Local only, never pushed: they
# name local paths, or (the Trainer's arguments) are a pickle that a Hub user should not have to load.
RUN_IDENTITY = "run_identity.json"  # also in every checkpoint
RUN_MANIFEST = "run_manifest.json"
LOCK = ".hf_resnet101.lock"
DATA_ROOTS = ".data_root"  # the absolute data folders SPLITS is relative to, for local tools (`export`)
# Never pushed. The split list and the data report name every image file, and file names often carry personal data
# (a patient's id, a person's name): a model needs none of them.
LOCAL_ONLY = frozenset({TRAINING_ARGS, RUN_MANIFEST, RUN_IDENTITY, LOCK, DATA_ROOTS, SPLITS, DATA_REPORT})

# The files a finished training run leaves at the top of its output folder (checkpoint folders aside); the
# confusion matrix and the curves are there when the run has the classes and the log history they plot.
RUN_FILES = frozenset(
    {
        MODEL_CONFIG, MODEL_WEIGHTS, IMAGE_PROCESSOR_CONFIG, TRAINER_STATE, TRAINING_ARGS, TRAIN_RESULTS,
        EVAL_RESULTS, ALL_RESULTS, MODEL_CARD, CARD_INPUTS, TRAINING_CURVES, CONFUSION_MATRIX, DATA_REPORT, SPLITS,
        MONITORS, PIPELINE_CHECK, RUN_IDENTITY, RUN_MANIFEST, LOCK, DATA_ROOTS,
    }
)  # fmt: skip

# Checkpoints: the Trainer's `checkpoint-STEP` folders, each marked complete once every file of it is written.
CHECKPOINT_PREFIX = PREFIX_CHECKPOINT_DIR  # "checkpoint"
CHECKPOINT_COMPLETE = "checkpoint_complete.json"
# in a checkpoint: the best evaluation's weights, when that evaluation has no checkpoint of its own
BEST_WEIGHTS = "best_weights.safetensors"
CHECKPOINT_NAME = re.compile(rf"^{CHECKPOINT_PREFIX}-(\d+)$")

# `hf-resnet101 evaluate`'s output folder (with CONFUSION_MATRIX).
EVALUATION_METRICS = "metrics.json"
EVALUATION_PER_CLASS = "per_class.csv"
EVALUATION_MISTAKES = "mistakes.csv"

# `hf-resnet101 export`'s output folder (with the image processor's and the model's configuration).
ONNX_MODEL = "model.onnx"
ONNX_LABELS = "labels.json"
EXPORT_CHECK = "export_check.json"


def checkpoint_folder(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / f"{CHECKPOINT_PREFIX}-{step}"


def checkpoint_step(folder: str | Path | None) -> int | None:
    """The step of a `checkpoint-STEP` folder; None for any other name."""
    match = CHECKPOINT_NAME.match(Path(folder).name) if folder else None
    return int(match.group(1)) if match else None


def checkpoint_folders(output_dir: str | Path) -> list[Path]:
    """The `checkpoint-STEP` folders in an output folder, by step, oldest first (checkpoint-2 before checkpoint-10)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(step, p) for p in output_dir.iterdir() if p.is_dir() and (step := checkpoint_step(p)) is not None]
    return [path for _, path in sorted(found)]


def split_rows(output_dir: str | Path, split: str) -> list[str] | None:
    """The paths a training run's `splits.csv` lists for `split`, relative to their data folder (empty for images
    that were never files: a dataset of parquet or arrow rows); None when there is no splits.csv."""
    path = Path(output_dir) / SPLITS
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as f:
        return [row["path"] for row in csv.DictReader(f) if row["split"] == split]
