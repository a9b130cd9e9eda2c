"""Out-of-memory recovery on a real GPU: a run asks for a batch that does not fit and finishes anyway.

    python benchmarks/oom_recovery.py [--gib 12] [--batch_size 256] [--steps 3]

Caps this process's share of the GPU's memory at --gib (a 12 GiB card, the product page's example, by default) with
`torch.cuda.set_per_process_memory_fraction`, then runs the package's fine-tuning of the full ResNet-101 (random
weights, generated 500x375 JPEGs, precision auto) at --batch_size. Prints the batch the run ended with, the
effective batch, the steps done and the peak memory, summary last. Needs CUDA: on a CPU the recovery is tested
with a simulated out-of-memory error (tests/train/test_memory.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_name, write_jpeg_folder  # noqa: E402
from train_speed import save_resnet101  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=12.0)
    parser.add_argument("--batch_size", type=int, default=256 if torch.cuda.is_available() else 4)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    if not cuda:
        print("No CUDA device: the run goes uncapped (tests/train/test_memory.py covers the recovery on a CPU).")
    from hf_resnet101.config.options import DataArguments, FinetuneTrainingArguments, ModelArguments
    from hf_resnet101.train.run import run_finetune

    if cuda:
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.gib * 2**30 / total))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        per_class = args.batch_size * args.steps // 10 + 1
        write_jpeg_folder(work / "train", per_class=per_class, classes=10, size=(500, 375))
        write_jpeg_folder(work / "val", per_class=4, classes=10, size=(500, 375), seed=1)
        save_resnet101(work / "model")
        started = time.perf_counter()
        result = run_finetune(
            DataArguments(train_dir=str(work / "train"), validation_dir=str(work / "val")),
            ModelArguments(model_name_or_path=str(work / "model")),
            FinetuneTrainingArguments(
                output_dir=str(work / "out"), per_device_train_batch_size=args.batch_size, max_steps=args.steps,
                eval_strategy="no", save_strategy="no", overwrite_output_dir=True, disable_tqdm=True,
            ),
        )  # fmt: skip
        seconds = time.perf_counter() - started
        state = json.loads((result.output_dir / "trainer_state.json").read_text())
        card = (result.output_dir / "README.md").read_text()
    accumulation = next(
        int(line.split("|")[2]) for line in card.splitlines() if line.startswith("| gradient_accumulation_steps |")
    )
    per_device = state["train_batch_size"]
    cap = f"GPU memory capped at {args.gib:g} GiB" if cuda else "no cap (CPU)"
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    print(f"\nOut-of-memory recovery, ResNet-101 224x224, {cap}; {machine_name()}")
    print("| asked batch | ran batch | accumulation | effective batch | steps | peak GiB | wall s |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.batch_size} | {per_device} | {accumulation} | {per_device * accumulation} | {state['global_step']} "
        f"| {peak:.1f} | {seconds:.0f} |"
    )


if __name__ == "__main__":
    main()
