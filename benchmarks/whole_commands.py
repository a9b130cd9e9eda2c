"""`train_speed.py --whole_commands`: whole commands timed from start to exit, steady state from marginal steps.

    python benchmarks/train_speed.py --whole_commands [--rounds 2] [--short_steps 4] [--long_steps 28]
        [--doc_long_steps 12] [--batch_size 4] [--image_size 224] [--cpu_isa native|avx512_core|avx2]

What a user waits for is the whole command, so each one runs as a subprocess and is timed by the wall clock from
start to exit, at a short and a longer step count. The difference between the two is pure training (the start-up,
scan, validation preparation, final evaluation, card, plots and pipeline check are paid once by both), so
- steady state = (long - short) * batch / (T_long - T_short) images/s;
- evaluation every step (the product page's default) = (T_long - T_short) / (long - short) s/step;
- fixed cost = T_short - short * (steady s/step): everything a command does besides its training steps.
Commands:
- baseline: `python benchmarks/baseline_recipe.py` (the transformers example's recipe: train, evaluate, save);
- package: `accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no
  recipes/finetune.py ... --eval_strategy no --save_strategy no`;
- package_python: the same `recipes/finetune.py` flags under plain `python`, so the launcher's effect shows.
Every command starts honestly cold: its output directory, the HF datasets cache (HF_DATASETS_CACHE) and the
package's scan cache (HF_RESNET101_CACHE) are fresh, empty folders in the work directory for each command, so
nothing one command prepared is reused by the next. Rounds alternate the commands (a slow spell of the shared
machine hits them all); the table keeps each time's best (minimum) over the rounds, as the default mode does.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import cpu_description, write_jpeg_folder

ROOT = Path(__file__).resolve().parent.parent
TRAINING_COMMANDS = ("baseline", "package", "package_python")
DOC_DEFAULT_COMMANDS = ("baseline", "package")
LAUNCHER_FLAGS = ["--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]


def accelerate_executable() -> str:
    """The `accelerate` of the running Python's environment (next to sys.executable), not whichever is on PATH."""
    return str(Path(sys.executable).with_name("accelerate"))


def command_line(name: str, work: Path, output_dir: Path, steps: int, batch_size: int, image_size: int,
                 eval_every_step: bool) -> list[str]:  # fmt: skip
    """The whole command a user would type for `name`, training `steps` steps, evaluating every step if asked."""
    if name == "baseline":
        command = [sys.executable, str(ROOT / "benchmarks" / "baseline_recipe.py"),
                   "--train_dir", str(work / "train"), "--validation_dir", str(work / "val"),
                   "--model_dir", str(work / "model"), "--output_dir", str(output_dir),
                   "--batch_size", str(batch_size), "--max_steps", str(steps),
                   "--image_size", str(image_size)]  # fmt: skip
        return command + (["--eval_steps", "1"] if eval_every_step else [])
    recipe = [str(ROOT / "recipes" / "finetune.py"),
              "--train_dir", str(work / "train"), "--validation_dir", str(work / "val"),
              "--model_name_or_path", str(work / "model"), "--output_dir", str(output_dir),
              "--per_device_train_batch_size", str(batch_size), "--max_steps", str(steps),
              "--image_size", str(image_size), "--save_strategy", "no"]  # fmt: skip
    recipe += ["--eval_strategy", "steps", "--eval_steps", "1"] if eval_every_step else ["--eval_strategy", "no"]
    if name == "package":
        return [accelerate_executable(), "launch", *LAUNCHER_FLAGS, *recipe]
    if name == "package_python":
        return [sys.executable, *recipe]
    raise ValueError(f"unknown command {name!r}")


def threads_used(name: str, output: str) -> str:
    """The torch thread count a command trained with, as far as its own output tells it cheaply."""
    if name == "baseline":
        found = re.search(r"torch threads: (\d+)", output)
    else:  # the package logs this only when it restores the cores the launcher took away
        found = re.search(r"CPU threads: (\d+) per process", output)
        if found is None:
            return "not logged (torch's default)"
    return found.group(1) if found else "?"


def run_command(name: str, command: list[str], cold: Path, timeout: float) -> tuple[float, str]:
    """Runs one whole command with fresh caches under `cold`; returns its wall time and its threads."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(cold / "hf-datasets"),
        "HF_RESNET101_CACHE": str(cold / "scan-cache"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{name} failed (exit {done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
    return seconds, threads_used(name, done.stdout + done.stderr)


def marginal(short: int, long: int, t_short: float, t_long: float, batch_size: int) -> dict:
    """Steady state from two whole runs: the extra steps over the extra wall time, and what is left as fixed cost."""
    seconds_per_step = (t_long - t_short) / (long - short)
    return {
        "images_per_s": batch_size / seconds_per_step,
        "seconds_per_step": seconds_per_step,
        "fixed_s": t_short - short * seconds_per_step,
        "t_short": t_short,
        "t_long": t_long,
    }


def pick(times: list[float], how: str) -> float:
    """Best (minimum: the least disturbed run on a shared machine) or median over the rounds."""
    return min(times) if how == "best" else statistics.median(times)


def measure(args) -> None:
    """Runs every round, prints each command's time as it ends, then the summary table."""
    work = Path(args.work_dir)
    write_jpeg_folder(work / "train", per_class=8, classes=8, size=(600, 420))  # 64 training images
    write_jpeg_folder(work / "val", per_class=2, classes=8, size=(600, 420), seed=1)  # 16 validation images
    from train_speed import save_resnet101

    save_resnet101(work / "model")
    plan = [("training", name, steps) for steps in (args.short_steps, args.long_steps) for name in TRAINING_COMMANDS]
    plan += [("doc_default", name, steps) for steps in (args.short_steps, args.doc_long_steps)
             for name in DOC_DEFAULT_COMMANDS]  # fmt: skip
    times: dict[tuple[str, str, int], list[float]] = {}
    threads: dict[str, str] = {}
    for round_number in range(1, args.rounds + 1):
        for index, (measure_name, name, steps) in enumerate(plan):
            cold = work / "runs" / f"r{round_number}-{index}"
            command = command_line(name, work, cold / "out", steps, args.batch_size, args.image_size,
                                   measure_name == "doc_default")  # fmt: skip
            seconds, threads[name] = run_command(name, command, cold, args.variant_timeout)
            times.setdefault((measure_name, name, steps), []).append(seconds)
            print(f"round {round_number}: {measure_name} {name} {steps} steps: {seconds:.1f} s "
                  f"(threads {threads[name]})", flush=True)  # fmt: skip
    print_table(times, threads, args)


def print_table(times: dict, threads: dict, args) -> None:
    how = args.whole_pick
    rows = {}
    for measure_name, names, long in (("training", TRAINING_COMMANDS, args.long_steps),
                                      ("doc_default", DOC_DEFAULT_COMMANDS, args.doc_long_steps)):  # fmt: skip
        for name in names:
            t_short = pick(times[(measure_name, name, args.short_steps)], how)
            t_long = pick(times[(measure_name, name, long)], how)
            rows[(measure_name, name)] = marginal(args.short_steps, long, t_short, t_long, args.batch_size)
    label = "best (minimum)" if how == "best" else "median"
    print(f"\nWhole commands: ResNet-101 (random weights), {args.image_size}x{args.image_size}, batch "
          f"{args.batch_size}, 64 train / 16 validation JPEGs of 600x420; each time the {label} of "
          f"{args.rounds} alternating rounds")  # fmt: skip
    print(f"Processor: {cpu_description()}; {args.isa_note}")
    print("Threads: " + ", ".join(f"{name} {count}" for name, count in threads.items()))
    print("| measure | baseline | package | ratio | package_python | ratio |")
    print("|---|---|---|---|---|---|")
    s, ln, d = args.short_steps, args.long_steps, args.doc_long_steps

    def line(label, key, measure_name="training", lower_is_better=False, with_python=True):
        base = rows[(measure_name, "baseline")][key]
        cells = []
        for name in ("package", "package_python") if with_python else ("package",):
            value = rows[(measure_name, name)][key]
            ratio = base / value if lower_is_better else value / base
            cells += [f"{value:.2f}", f"{ratio:.2f}x"]
        cells += ["", ""] if not with_python else []
        print(f"| {label} | {base:.2f} | " + " | ".join(cells) + " |")

    line(f"training images/s, steady ({s} -> {ln} steps)", "images_per_s")
    line(f"whole command s, {s} steps", "t_short", lower_is_better=True)
    line(f"whole command s, {ln} steps", "t_long", lower_is_better=True)
    line("fixed cost s (besides the training steps)", "fixed_s", lower_is_better=True)
    line(f"doc-default (eval every step) s/step ({s} -> {d} steps)", "seconds_per_step", "doc_default", True, False)
    line("doc-default fixed cost s", "fixed_s", "doc_default", True, False)
    print("Ratios are package/baseline speed (above 1x: the package is faster).")
    if any(row["seconds_per_step"] <= 0 for row in rows.values()):
        print("WARNING: a longer run finished no later than its shorter one: the machine was too busy for marginal "
              "steps to mean anything here; rerun on a quiet machine or with more rounds.")  # fmt: skip
