"""What identifies a run: the data, the labels, the model and every option that changes the training trajectory.

A checkpoint may only be resumed, and a finished folder only be recognised as done, by a run of the same identity;
otherwise the run would train someone else's weights under new labels (issue 12). The identity is written as
`run_identity.json` in the output folder and in every checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import UsageError
from ..outputs import RUN_IDENTITY

# Options that change the weights a run produces (or which ones it keeps); logging, saving and the output folder
# do not. Values are taken as given, before presets: the presets follow from the options and the data.
TRAINING_OPTIONS = (
    "seed",
    "data_seed",
    "learning_rate",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "max_grad_norm",
    "lr_scheduler_type",
    "warmup_ratio",
    "warmup_steps",
    "optim",
    "label_smoothing_factor",
    "precision",
    "fp16",
    "bf16",
    "world_size",
    "load_best_model_at_end",
    "metric_for_best_model",
    "early_stopping_patience",
)
DATA_OPTIONS = (
    "dataset_name",
    "dataset_config_name",
    "image_column_name",
    "label_column_name",
    "train_val_split",
    "max_train_samples",
    "max_eval_samples",
    "image_size",
    "augmentation",
    "preset",
    "strict",
    "dedupe",
    "class_weighting",
)
MODEL_OPTIONS = ("model_name_or_path", "model_revision", "freeze_backbone")
# Known only once the data is scanned.
DATA_KEYS = ("label_names", "data_digest")


def plain(value):
    """Enums by their names, so the identity is plain JSON that compares equal after a round trip."""
    value = getattr(value, "value", value)
    return list(value) if isinstance(value, tuple) else value


def options_identity(data_args, model_args, training_args) -> dict:
    """The trajectory-changing options, read before any data is loaded (the cheap part of the identity)."""
    identity = {}
    for holder, names in ((model_args, MODEL_OPTIONS), (data_args, DATA_OPTIONS), (training_args, TRAINING_OPTIONS)):
        identity |= {name: plain(getattr(holder, name)) for name in names if hasattr(holder, name)}
    if getattr(data_args, "validation_dir", None):
        del identity["train_val_split"]  # unused: changing it later must not keep the run from resuming
    return identity


def full_identity(options: dict, label_names: list[str], data_digest: str) -> dict:
    return {**options, "label_names": list(label_names), "data_digest": data_digest}


def differences(recorded: dict, current: dict, keys=None) -> list[str]:
    """What differs between two identities, one readable line each (e.g. `learning_rate: 5e-05 -> 0.001`).

    Only keys both hold are compared when `keys` is None, so an option added in a later version of the package
    does not make every older checkpoint foreign.
    """
    names = keys if keys is not None else [k for k in current if k in recorded]
    lines = []
    for name in names:
        before, now = recorded.get(name), current.get(name)
        if before == now:
            continue
        if name == "data_digest":
            lines.append("the training data (images added, removed, changed, or moved between classes or splits)")
        else:
            lines.append(f"{name}: {before!r} -> {now!r}")
    return lines


def read_identity(folder: str | os.PathLike) -> dict | None:
    path = Path(folder) / RUN_IDENTITY
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError) as error:
        raise UsageError(f"{path} cannot be read ({error}): it was damaged. Pass --overwrite_output_dir.") from error


def write_identity(folder: str | os.PathLike, identity: dict) -> Path:
    """Written whole or not at all (a kill mid-write leaves the old file)."""
    path = Path(folder) / RUN_IDENTITY
    tmp = path.with_name(f".{RUN_IDENTITY}.tmp")
    tmp.write_text(json.dumps(identity, indent=2, ensure_ascii=False))
    os.replace(tmp, path)
    return path


def ways_back(recorded: dict, current: dict) -> str:
    """How to resume the recorded run after all, where what differs is not an option of the command: the data it
    trained on, or the number of processes it was launched with."""
    ways = []
    if "data_digest" in current and recorded.get("data_digest") not in (None, current["data_digest"]):
        ways.append("put its data back as it was and run the same command")
    before = recorded.get("world_size")
    if "world_size" in current and before is not None and before != current["world_size"]:
        launch = "accelerate launch --multi_gpu --num_processes" if before > 1 else "accelerate launch --num_processes"
        ways.append(f"launch it with {before} process(es) again ({launch} {before})")
    return f"To resume it, {' and '.join(ways)}. " if ways else ""


def mismatch_error(
    output_dir: str | os.PathLike,
    where: str,
    lines: list[str],
    ways: str = "",
    checkpoint: str | os.PathLike | None = None,
) -> UsageError:
    """The message for a run whose identity differs from the one recorded in the folder: what differs and what to
    do (nothing in the folder has been touched). `ways`: how to resume it after all (`ways_back`); `checkpoint`:
    its newest checkpoint, whose weights a new run can start from."""
    listed = "; ".join(lines)
    weights = f" (--model_name_or_path {checkpoint} starts it from that run's weights)" if checkpoint else ""
    return UsageError(
        f"--output_dir {output_dir} holds {where} of a different run ({listed}). Nothing was changed. {ways}Choose "
        f"a new --output_dir for this run{weights}, or pass --overwrite_output_dir to discard that run and start over."
    )
