"""What the run's phases hand to each other: the data, the model to train, and the trained result."""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import torch
from transformers import Trainer
from transformers.trainer_utils import TrainOutput

from ..data.report import DataReport
from ..data.transforms import DataConfig


@dataclass(frozen=True)
class RunData:
    """The run's data: the splits, the report on what was found, and the run's identity that they complete."""

    dataset: datasets.DatasetDict
    report: DataReport
    identity: dict

    @property
    def label_names(self) -> list[str]:
        return self.dataset["train"].features["label"].names

    @property
    def num_train(self) -> int:
        return len(self.dataset["train"])

    @property
    def num_validation(self) -> int:
        return len(self.dataset["validation"])


@dataclass(frozen=True)
class ModelToTrain:
    """The model as training starts: its weights, its image processor and the inputs both expect."""

    model: torch.nn.Module
    processor: object
    data_config: DataConfig  # input size and normalisation, read once from the processor
    head_note: str | None  # what happened to the checkpoint's classification head, for the summary


@dataclass(frozen=True)
class TrainedRun:
    """The Trainer after training, what `Trainer.train` returned, and the training's own wall-clock seconds."""

    trainer: Trainer
    result: TrainOutput
    runtime: float
