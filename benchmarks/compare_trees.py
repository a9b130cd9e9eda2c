"""The package's whole training command from two source trees, alternating: did a change make it slower?

    git worktree add /tmp/before <commit>
    python benchmarks/compare_trees.py /tmp/before . [--rounds 2]

Each tree runs its own `accelerate launch recipes/finetune.py` (as `train_speed.py --whole_commands` builds it:
full ResNet-101, random weights, 224x224, batch 4, 64 photo-like JPEGs, no evaluation or checkpoints) at 4 and 28
steps, with fresh caches every time; rounds alternate the trees so a slow spell of a shared machine hits both.
Prints each time, then per tree the best times and the steady state, (28 - 4) * 4 images / (T_28 - T_4).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

SHORT, LONG, BATCH = 4, 28, 4


def benchmark_module(tree: Path, name: str):
    """`name` from `tree`/benchmarks, imported afresh so each tree's own command line is used."""
    sys.path.insert(0, str(tree / "benchmarks"))
    try:
        for module in ("whole_commands", "common", "train_speed"):
            sys.modules.pop(module, None)
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trees", nargs=2, type=Path, help="The two source trees (the first is the reference).")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/compare-trees"))
    args = parser.parse_args()
    trees = [tree.resolve() for tree in args.trees]
    commands = {tree: benchmark_module(tree, "whole_commands") for tree in trees}
    if not (args.work / "model").exists():
        args.work.mkdir(parents=True, exist_ok=True)
        reference = commands[trees[0]]
        reference.write_jpeg_folder(args.work / "train", per_class=8, classes=8, size=(600, 420))
        reference.write_jpeg_folder(args.work / "val", per_class=2, classes=8, size=(600, 420), seed=1)
        benchmark_module(trees[0], "train_speed").save_resnet101(args.work / "model")
    print(commands[trees[0]].cpu_description())
    times: dict[tuple[int, int], list[float]] = {}
    for round_number in range(args.rounds):
        for index, tree in enumerate(trees):
            for steps in (SHORT, LONG):
                cold = args.work / f"cold-{index}-{steps}-{round_number}"
                command = commands[tree].command_line("package", args.work, cold / "out", steps, BATCH, 224, False)
                seconds, threads = commands[tree].run_command("package", command, cold, 900)
                times.setdefault((index, steps), []).append(seconds)
                print(f"round {round_number + 1}: {tree} {steps} steps {seconds:.1f} s ({threads})", flush=True)
    for index, tree in enumerate(trees):
        short, long = min(times[(index, SHORT)]), min(times[(index, LONG)])
        steady = (LONG - SHORT) * BATCH / (long - short)
        print(f"{tree}: best {short:.1f} s at {SHORT} steps, {long:.1f} s at {LONG}; steady {steady:.2f} images/s")


if __name__ == "__main__":
    main()
