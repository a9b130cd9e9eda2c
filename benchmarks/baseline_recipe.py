"""The baseline: the transformers image-classification example's recipe, written plainly.

imagefolder via `datasets`, torchvision `RandomResizedCrop`/flip/`ToTensor`/`Normalize` applied with
`set_transform`, evaluation transforms `Resize`/`CenterCrop`/`ToTensor`/`Normalize` applied at every
evaluation, the stock `Trainer` and its default precision (fp32). The benchmarks run it side by side with
this package on the same model, data, batch size and steps.

As a whole command, what the transformers example does from start to exit (build, train, evaluate, save):

    python benchmarks/baseline_recipe.py --train_dir DATA/train --validation_dir DATA/val --model_dir MODEL \
        --output_dir OUT --batch_size 4 --max_steps 28 [--eval_steps 1] [--image_size 224]
"""

from __future__ import annotations

import argparse

import torch
from datasets import load_dataset
from torchvision.transforms import (
    CenterCrop,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToTensor,
)
from transformers import AutoImageProcessor, AutoModelForImageClassification, Trainer, TrainingArguments


def build_baseline_trainer(
    train_dir: str,
    validation_dir: str,
    model_dir: str,
    output_dir: str,
    batch_size: int,
    max_steps: int,
    eval_steps: int | None,
    callbacks=(),
    image_size: int | None = None,
) -> Trainer:
    dataset = load_dataset(
        "imagefolder", data_files={"train": f"{train_dir}/**", "validation": f"{validation_dir}/**"}
    )
    labels = dataset["train"].features["label"].names
    processor = AutoImageProcessor.from_pretrained(model_dir)
    size = image_size or processor.size["shortest_edge"]
    normalize = Normalize(mean=processor.image_mean, std=processor.image_std)
    train_transforms = Compose([RandomResizedCrop(size), RandomHorizontalFlip(), ToTensor(), normalize])
    val_transforms = Compose([Resize(size), CenterCrop(size), ToTensor(), normalize])

    def preprocess_train(batch):
        batch["pixel_values"] = [train_transforms(image.convert("RGB")) for image in batch["image"]]
        return batch

    def preprocess_val(batch):
        batch["pixel_values"] = [val_transforms(image.convert("RGB")) for image in batch["image"]]
        return batch

    dataset["train"].set_transform(preprocess_train)
    dataset["validation"].set_transform(preprocess_val)

    def collate_fn(examples):
        pixel_values = torch.stack([example["pixel_values"] for example in examples])
        return {"pixel_values": pixel_values, "labels": torch.tensor([example["label"] for example in examples])}

    model = AutoModelForImageClassification.from_pretrained(
        model_dir,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        ignore_mismatched_sizes=True,
    )
    args = TrainingArguments(
        output_dir=output_dir,
        remove_unused_columns=False,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        learning_rate=5e-5,
        max_steps=max_steps,
        eval_strategy="steps" if eval_steps else "no",
        eval_steps=eval_steps,
        save_strategy="no",
        logging_steps=max_steps,
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
    )
    return Trainer(
        model=model,
        args=args,
        train_dataset=dataset["train"],
        eval_dataset=dataset["validation"],
        data_collator=collate_fn,
        processing_class=processor,
        callbacks=list(callbacks),
    )


def main(argv: list[str] | None = None) -> None:
    """Train, evaluate and save like the example's script, so a benchmark can time the whole command."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_dir", required=True)
    parser.add_argument("--validation_dir", required=True)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--max_steps", type=int, required=True)
    parser.add_argument("--eval_steps", type=int, help="Evaluate every this many steps (default: never in training).")
    parser.add_argument("--image_size", type=int, help="Crop size (default: the image processor's).")
    args = parser.parse_args(argv)
    # The thread count the run trains with, for the benchmark's table (the example itself does not set it).
    print(f"torch threads: {torch.get_num_threads()}", flush=True)
    trainer = build_baseline_trainer(
        args.train_dir, args.validation_dir, args.model_dir, args.output_dir,
        args.batch_size, args.max_steps, args.eval_steps, image_size=args.image_size,
    )  # fmt: skip
    trainer.train()
    trainer.save_model()
    trainer.save_state()
    metrics = trainer.evaluate()
    trainer.log_metrics("eval", metrics)
    trainer.save_metrics("eval", metrics)


if __name__ == "__main__":
    main()
