"""The training entry point that `recipes/finetune.py` and `hf-resnet101 train` run: options in, a finished run out.

accelerate launch recipes/finetune.py --train_dir DATA/train --output_dir OUT
hf-resnet101 train --train_dir DATA/train --output_dir OUT
"""

from __future__ import annotations

from typing import NoReturn

from ..config.options import (
    DataArguments,
    FinetuneTrainingArguments,
    ModelArguments,
    check_given_options,
    short_help_options,
)
from ..config.parser import ConfigParser
from ..train.phase_clock import time_before_the_run
from ..train.run import run_finetune
from .cli import end_process, exit_on_usage_error

RECIPE_DOC = """Fine-tune ResNet-101 (or any image-classification checkpoint) on a folder of images.

    accelerate launch recipes/finetune.py --train_dir DATA/train --output_dir OUT
    hf-resnet101 train --train_dir DATA/train --output_dir OUT

Options follow `TrainingArguments` and the transformers image-classification example.
"""


@exit_on_usage_error
def main(argv: list[str] | None = None, whole_process: bool = False):
    """Parses the options and runs; `whole_process`: this process exists for the run (its script or module was
    started), so its start-up, and its launcher's, are the run's too and are timed in the log."""
    parser = ConfigParser(
        (DataArguments, ModelArguments, FinetuneTrainingArguments),
        short_help_options=short_help_options(),
        check_given=check_given_options,
        description=RECIPE_DOC,
        usage="accelerate launch recipes/finetune.py (--train_dir DIR | --config FILE) --output_dir OUT [options]",
    )
    data_args, model_args, training_args = parser.parse_args_and_config(argv)
    time_before = time_before_the_run() if whole_process else None
    explicit = parser.explicit_options
    result = run_finetune(data_args, model_args, training_args, explicit=explicit, time_before=time_before)
    if training_args.process_index == 0:
        print("\n" + "\n".join(result.closing_lines()))
    return result


def run_as_script() -> NoReturn:
    """The run as its process's whole job (`recipes/finetune.py`, and each process `hf-resnet101 train` starts)."""
    end_process(main(whole_process=True))


if __name__ == "__main__":
    run_as_script()
