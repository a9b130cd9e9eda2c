"""Fine-tune ResNet-101 (or any image-classification checkpoint) on a folder of images.

    accelerate launch recipes/finetune.py --train_dir DATA/train --output_dir OUT
    accelerate launch recipes/finetune.py --config recipes/configs/birds.yaml --output_dir OUT

Options follow `TrainingArguments` and the transformers image-classification example; see --help. The run itself
(parsing, then `hf_resnet101.train.run.run_finetune`) lives in `hf_resnet101.commands.finetune`, which
`hf-resnet101 train` launches too.
"""

from hf_resnet101.commands.finetune import main, run_as_script

__all__ = ["main"]  # the run in-process, options as a list: what the tests and a notebook call

if __name__ == "__main__":
    run_as_script()
