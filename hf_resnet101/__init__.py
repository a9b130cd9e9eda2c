"""Fine-tune ResNet-101 for image classification on a folder of images and share it on the Hugging Face Hub.

`run_finetune` (the whole training run, from options to a finished output folder) is importable from here; it is
loaded on first use, so the commands that do not train start without importing the training stack.
"""

from . import import_clock  # noqa: F401 (first: it records when the package was imported, for the run's log)

__version__ = "0.1.0"

__all__ = ["__version__", "run_finetune"]


def __getattr__(name: str):
    if name == "run_finetune":
        from .train.run import run_finetune

        return run_finetune
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
