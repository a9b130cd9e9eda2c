"""Fine-tune ResNet-101 for image classification on a folder of images and share it on the Hugging Face Hub.

`run_finetune` (the whole training run, from options to a finished output folder) is importable from here; it is
loaded on first use, so the commands that do not train start without importing the training stack.
"""

import time

__version__ = "0.1.0"

# When this package was first imported, on the clock of /proc's process start times (Linux; None elsewhere): the
# run's log times its start-up from the process's start, or from here when the process ran other work before
# Python (see `train.phase_clock.start_up_phases`).
IMPORTED_AT = time.clock_gettime(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else None

__all__ = ["__version__", "run_finetune"]


def __getattr__(name: str):
    if name == "run_finetune":
        from .train.run import run_finetune

        return run_finetune
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
