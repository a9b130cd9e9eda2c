"""The training entry point that `recipes/finetune.py` and `hf-resnet101 train` run: options in, a finished run out.

accelerate launch recipes/finetune.py --train_dir DATA/train --output_dir OUT
hf-resnet101 train --train_dir DATA/train --output_dir OUT
"""

from __future__ import annotations

import sys

from ..config.options import DataArguments, FinetuneTrainingArguments, ModelArguments, short_help_options
from ..config.parser import ConfigParser
from ..train.run import run_finetune
from .cli import exit_on_usage_error

RECIPE_DOC = """Fine-tune ResNet-101 (or any image-classification checkpoint) on a folder of images.

    accelerate launch recipes/finetune.py --train_dir DATA/train --output_dir OUT
    hf-resnet101 train --train_dir DATA/train --output_dir OUT

Options follow `TrainingArguments` and the transformers image-classification example.
"""


@exit_on_usage_error
def main(argv: list[str] | None = None):
    parser = ConfigParser(
        (DataArguments, ModelArguments, FinetuneTrainingArguments),
        short_help_options=short_help_options(),
        description=RECIPE_DOC,
        usage="accelerate launch recipes/finetune.py (--train_dir DIR | --config FILE) --output_dir OUT [options]",
    )
    data_args, model_args, training_args = parser.parse_args_and_config(argv)
    result = run_finetune(data_args, model_args, training_args, explicit=parser.explicit_options)
    if training_args.process_index == 0:
        print("\n" + "\n".join(result.closing_lines()))
    return result


if __name__ == "__main__":
    sys.exit(main())
