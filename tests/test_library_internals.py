"""Each private library part the package uses (hf_resnet101/library_internals.py) still exists and means what it did.

These run the stock transformers `Trainer` (not the package's subclass) and a plain PyTorch DataLoader, so a
library update that renames or changes one of them fails here, naming it.
"""

from __future__ import annotations

import multiprocessing

import evaluate
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from transformers import Trainer, TrainingArguments

from hf_resnet101.evaluation.metrics import metric_module_path
from hf_resnet101.library_internals import (
    compute_in_memory,
    eval_loader_cache,
    forget_data_loaders,
    prepared_data_loaders,
    stop_data_loader_workers,
    stop_loader_workers,
)


class TinyClassifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, x, labels=None):
        logits = self.linear(x)
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


def as_dicts(batch):
    x = torch.stack([b[0] for b in batch])
    return {"x": x, "labels": torch.stack([b[1] for b in batch])}


def stock_trainer(tmp_path, workers: int) -> Trainer:
    data = TensorDataset(torch.randn(8, 3), torch.randint(0, 2, (8,)))
    args = TrainingArguments(
        output_dir=str(tmp_path),
        use_cpu=True,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        dataloader_num_workers=workers,
        dataloader_persistent_workers=workers > 0,
        report_to=[],
    )
    return Trainer(model=TinyClassifier(), args=args, train_dataset=data, eval_dataset=data, data_collator=as_dicts)


def test_the_trainer_caches_persistent_evaluation_loaders_in_eval_dataloaders(tmp_path):
    trainer = stock_trainer(tmp_path, workers=1)
    loader = trainer.get_eval_dataloader()
    assert eval_loader_cache(trainer) == {"eval": loader}  # the stock Trainer's key for its own eval dataset
    assert trainer.get_eval_dataloader() is loader  # and it reads the same dictionary back
    stop_data_loader_workers(trainer)


def test_the_accelerator_keeps_every_prepared_loader(tmp_path):
    trainer = stock_trainer(tmp_path, workers=0)
    train_loader = trainer.get_train_dataloader()
    eval_loader = trainer.get_eval_dataloader()
    assert {id(loader) for loader in prepared_data_loaders(trainer)} == {id(train_loader), id(eval_loader)}
    forget_data_loaders(trainer)
    assert prepared_data_loaders(trainer) == [] and eval_loader_cache(trainer) == {}


def test_a_persistent_loaders_workers_stop_and_restart_when_iterated_again():
    loader = DataLoader(TensorDataset(torch.arange(8.0)), batch_size=4, num_workers=1, persistent_workers=True)
    assert len(list(loader)) == 2
    assert multiprocessing.active_children(), "a persistent loader keeps its worker between passes"
    stop_loader_workers(loader)
    assert not multiprocessing.active_children(), "its worker is stopped"
    assert len(list(loader)) == 2  # iterating again starts a new one
    stop_loader_workers(loader)


def test_a_finished_trainers_workers_are_all_stopped(tmp_path):
    trainer = stock_trainer(tmp_path, workers=1)
    for loader in (trainer.get_train_dataloader(), trainer.get_eval_dataloader()):
        next(iter(loader))
    assert len(multiprocessing.active_children()) >= 2
    stop_data_loader_workers(trainer)
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("name", ["classification_metrics", "top_k_accuracy"])
def test_compute_in_memory_is_what_compute_returns(name):
    """For an evaluate module: numpy inputs as the Trainer's compute_metrics passes them, ties and absent classes."""
    module = evaluate.load(metric_module_path(name))
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(37, 7)).astype(np.float32)
    logits[:5] = 0.0  # ties
    references = rng.integers(0, 6, size=37)  # class 6 never occurs
    if name == "classification_metrics":
        inputs = {"predictions": logits.argmax(-1), "references": references, "num_labels": 7}
    else:
        inputs = {"predictions": logits, "references": references, "k": 5}
    expected = module.compute(**inputs)
    assert compute_in_memory(module, **inputs) == expected and len(expected) >= 1
