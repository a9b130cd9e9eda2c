"""Fine-tune ResNet-101 (or any image-classification checkpoint) on a folder of images.

    accelerate launch recipes/finetune.py --train_dir DATA/train --output_dir OUT
    accelerate launch recipes/finetune.py --config recipes/configs/birds.yaml --output_dir OUT

Options follow `TrainingArguments` and the transformers image-classification example; see --help.
"""

import sys

from hf_resnet101.arguments import DataArguments, FinetuneTrainingArguments, ModelArguments, short_help_options
from hf_resnet101.cli import exit_on_usage_error
from hf_resnet101.parser import ConfigParser
from hf_resnet101.training import run_finetune


@exit_on_usage_error
def main(argv: list[str] | None = None):
    parser = ConfigParser(
        (DataArguments, ModelArguments, FinetuneTrainingArguments),
        short_help_options=short_help_options(),
        description=__doc__,
        usage="accelerate launch recipes/finetune.py (--train_dir DIR | --config FILE) --output_dir OUT [options]",
    )
    data_args, model_args, training_args = parser.parse_args_and_config(argv)
    return run_finetune(data_args, model_args, training_args, explicit=parser.explicit_options)


if __name__ == "__main__":
    sys.exit(main())
