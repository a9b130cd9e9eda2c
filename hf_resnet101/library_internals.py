"""The private parts of transformers, accelerate, evaluate and PyTorch this package relies on, fenced in one place.

Each is used for one reason the public API does not serve, and each is pinned by a test
(tests/test_library_internals.py) that fails when a library update renames or changes it, so an upgrade
breaks there, with the reason beside it, rather than somewhere in a run:

- `Trainer._eval_dataloaders`: the stock Trainer's cache of evaluation loaders (it keeps one only with
  persistent workers). The package's Trainer reuses it for its in-process evaluation loader, so the stock
  Trainer's own code (which clears or reads it) keeps working on the same dictionary.
- `Accelerator._dataloaders`: every DataLoader the Accelerator prepared. With persistent workers their worker
  processes live as long as the Trainer; a finished or failed run stops them (see `stop_data_loader_workers`).
- `DataLoader._iterator` and its `_shutdown_workers()`: the only way to stop a persistent loader's workers
  without dropping the loader (PyTorch stops them otherwise only when the iterator is garbage collected).
- `EvaluationModule._compute`: the computation an `evaluate` module defines, without the Arrow cache that
  `compute()` writes the inputs to and reads back (for several processes and for batches added over time, neither
  of which an in-process evaluation of arrays needs). That round trip cost 18 of the 21 ms the metrics of one
  evaluation took in a training run on a 2-core AMD EPYC (9 of 11 ms timed alone); with evaluation at every step
  it is paid every step.
"""

from __future__ import annotations


def eval_loader_cache(trainer) -> dict:
    """The Trainer's own cache of evaluation DataLoaders, keyed by the evaluation dataset's name ("eval")."""
    return trainer.__dict__.setdefault("_eval_dataloaders", {})


def prepared_data_loaders(trainer) -> list:
    """Every DataLoader the Trainer's Accelerator prepared (training, evaluation and prediction passes)."""
    return list(getattr(trainer.accelerator, "_dataloaders", []))


def stop_loader_workers(loader) -> None:
    """Stops a DataLoader's worker processes now; the loader starts new ones if it is iterated again."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
    if hasattr(loader, "_iterator"):
        loader._iterator = None


def forget_data_loaders(trainer) -> None:
    """Drops the Trainer's and its Accelerator's references to the loaders made so far."""
    if hasattr(trainer.accelerator, "_dataloaders"):
        trainer.accelerator._dataloaders.clear()
    trainer._eval_dataloaders = {}


def stop_data_loader_workers(trainer) -> None:
    """Stops the worker processes of every DataLoader the Trainer made, and forgets the loaders.

    With persistent workers, the Accelerator keeps each prepared DataLoader (training, evaluation and every
    prediction pass) and its workers alive for as long as the Trainer lives; they were then joined one at a time
    at interpreter exit, with a 5 s timeout each (seen on a 16-core GPU machine: a finished run sat there for more
    than 50 s until it was stopped).
    """
    for loader in [*prepared_data_loaders(trainer), *eval_loader_cache(trainer).values()]:
        stop_loader_workers(loader)
    forget_data_loaders(trainer)


def compute_in_memory(module, **inputs) -> dict:
    """What `module.compute(**inputs)` returns, for inputs given whole in this process, computed without its cache."""
    return module._compute(**inputs)
