"""The Trainer the run uses: evaluation read in process, the loss normalised for every process count, and
its callbacks."""

from __future__ import annotations

import contextlib
import copy
from functools import partial

import datasets
import torch
import torch.distributed as dist
from transformers import EarlyStoppingCallback, Trainer
from transformers.utils import logging

from ..config.hardware import available_memory_bytes, held_evaluation_budget, local_process_count
from ..config.options import FinetuneTrainingArguments
from ..config.resolve import RunOptions
from ..data.report import class_counts
from ..data.transforms import (
    SeededTrainTransform,
    build_train_transform,
    collate,
    held_in_memory,
    prepare_train_split,
    preprocess_for_evaluation,
)
from ..evaluation.metrics import build_compute_metrics
from ..library_internals import eval_loader_cache
from .best_weights import BestWeightsKeeper
from .checkpoints import CheckpointCompletionCallback, SaveAfterEpochEvaluation, TimedCheckpointCallback
from .final_evaluation import EvaluationRecorder
from .losses import balanced_class_weights, make_weighted_loss
from .monitors import (
    DivergenceCallback,
    EpochCallback,
    GracefulInterrupt,
    OverfittingMonitor,
    with_described_progress,
)
from .run_state import ModelToTrain

logger = logging.get_logger(__name__)


@contextlib.contextmanager
def loading_in_process(trainer: Trainer):
    """The DataLoaders the Trainer makes inside read their data in the calling process, every image of it.

    The Trainer reads its arguments for them: it gets a copy with no workers for the while, so the run's own
    arguments (`RunOptions.training`) are never written. `--dataloader_drop_last` is for training's batches: an
    evaluation that dropped its last batch would score part of the validation split.
    """
    args = trainer.args
    trainer.args = copy.copy(args)
    trainer.args.dataloader_num_workers, trainer.args.dataloader_persistent_workers = 0, False
    trainer.args.dataloader_prefetch_factor = None
    trainer.args.dataloader_drop_last = False
    try:
        yield
    finally:
        trainer.args = args


class PreparedEvaluationTrainer(Trainer):
    """A Trainer whose evaluation and prediction batches are read in the training process.

    Their datasets hold tensors prepared once (`preprocess_for_evaluation`): one core reads them at about 3,500
    images/s, while passing each 600 KB tensor through worker processes is slower (1,100 images/s with two on a
    2-core CPU), and a pool started for each prediction pass costs more still. On an H200 with the 15 training
    workers, evaluation ran at 0.3-0.5x the stock Trainer's speed; read in process, 2.3-3.0x
    (benchmarks/RESULTS.md). The evaluation loader is made once and reused at every evaluation.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The Trainer takes a model whose forward has **kwargs to normalise its loss by `num_items_in_batch`, and
        # then neither divides it by the gradient-accumulation steps nor averages it over processes (it multiplies
        # by their number instead). transformers' ResNet accepts **kwargs but ignores `num_items_in_batch`: its loss
        # would be the process count (and the accumulation steps) too large. Every label counts in image
        # classification, so the per-batch mean the models return is the right loss; a `compute_loss_func` (the
        # class-weighted loss) does its own normalisation and keeps the Trainer's handling.
        if self.compute_loss_func is None:
            self.model_accepts_loss_kwargs = False

    def evaluate(self, *args, **kwargs):
        self.share_main_process_buffers()
        return super().evaluate(*args, **kwargs)

    def predict(self, *args, **kwargs):
        self.share_main_process_buffers()
        return super().predict(*args, **kwargs)

    def share_main_process_buffers(self) -> None:
        """Gives every process the main process's buffers (BatchNorm's running statistics) before an evaluation.

        Each process updates its own running statistics with its own batches, and DDP sends the main process's
        to the others only at the next training step's forward pass; the model saved is the main process's. With
        several processes, each scored its share of the validation images with its own statistics, so the
        metrics (and the best model they chose, and the card's) were not the saved model's: 0.71 accuracy logged
        for a model that scores 0.86. Training is unchanged: its next forward pass sends the same values again.
        """
        if self.args.world_size < 2 or not dist.is_available() or not dist.is_initialized():
            return
        with torch.no_grad():
            for buffer in self.model.buffers():
                dist.broadcast(buffer, src=0)

    def get_eval_dataloader(self, eval_dataset=None):
        # The stock Trainer's cache of evaluation loaders (kept only with persistent workers), keyed as it keys it.
        key = eval_dataset if isinstance(eval_dataset, str) else "eval" if eval_dataset is None else None
        loaders = eval_loader_cache(self)
        if key in loaders:
            return loaders[key]
        with loading_in_process(self):
            loader = super().get_eval_dataloader(eval_dataset)
        if key is not None:  # a dataset object passed in is not cached
            loaders[key] = loader
        return loader

    def get_test_dataloader(self, test_dataset):
        with loading_in_process(self):
            return super().get_test_dataloader(test_dataset)


def build_trainer(
    model: ModelToTrain, dataset: datasets.DatasetDict, training_args: FinetuneTrainingArguments, options: RunOptions
) -> PreparedEvaluationTrainer:
    """The Trainer for one training attempt: `training_args` are the run's, or a copy with a smaller batch after
    running out of memory (`recovery.train_fitting_memory`)."""
    data_config = model.data_config
    train_transform = build_train_transform(data_config, options.data.augmentation)
    # Decode large JPEGs at no less than twice the training resolution (see `data.images.open_image`).
    min_short_side = 2 * max(data_config.height, data_config.width)
    seeded_transform = SeededTrainTransform(train_transform, training_args.seed, min_short_side)
    train = prepare_train_split(dataset["train"]).with_transform(seeded_transform)
    with training_args.main_process_first(desc="preparing validation images"):
        validation = preprocess_for_evaluation(dataset["validation"], model.processor, data_config)
    budget = held_evaluation_budget(local_process_count(), available_memory_bytes())
    validation = held_in_memory(validation, budget)
    names = dataset["train"].features["label"].names
    loss = None
    if options.data.class_weighting == "balanced":
        loss = make_weighted_loss(
            balanced_class_weights(list(class_counts(dataset["train"]["label"], names).values()))
        )
    recorder = EvaluationRecorder()
    callbacks = [
        recorder,
        BestWeightsKeeper(),
        CheckpointCompletionCallback(),
        TimedCheckpointCallback(training_args.save_every_minutes),
        DivergenceCallback(),
        OverfittingMonitor(),
        GracefulInterrupt(),
        EpochCallback(seeded_transform),
    ]
    if training_args.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(training_args.early_stopping_patience))
    callbacks.append(SaveAfterEpochEvaluation())  # last: after every callback that asks for a save
    channels_last = options.model.channels_last
    trainer = PreparedEvaluationTrainer(
        model=model.model,
        args=training_args,
        train_dataset=train,
        eval_dataset=validation,
        processing_class=model.processor,
        data_collator=partial(collate, channels_last=channels_last, mean=data_config.mean, std=data_config.std),
        compute_metrics=recorder.recording(build_compute_metrics(len(names))),
        compute_loss_func=loss,
        callbacks=callbacks,
    )
    return with_described_progress(trainer)
