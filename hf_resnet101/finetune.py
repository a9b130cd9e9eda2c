"""The training entry point that `recipes/finetune.py` and `hf-resnet101 train` run: options in, a finished run out.

accelerate launch recipes/finetune.py --train_dir DATA/train --output_dir OUT
hf-resnet101 train --train_dir DATA/train --output_dir OUT
"""

from __future__ import annotations

import sys

from .arguments import DataArguments, FinetuneTrainingArguments, ModelArguments
from .cli import exit_on_usage_error
from .parser import ConfigParser
from .training import run_finetune


@exit_on_usage_error
def main(argv: list[str] | None = None):
    parser = ConfigParser((DataArguments, ModelArguments, FinetuneTrainingArguments))
    data_args, model_args, training_args = parser.parse_args_and_config(argv)
    result = run_finetune(data_args, model_args, training_args, explicit=parser.explicit_options)
    if training_args.process_index == 0:
        print("\n" + "\n".join(result.closing_lines()))
    return result


if __name__ == "__main__":
    sys.exit(main())
