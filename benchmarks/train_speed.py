"""Training and evaluation speed of this package against the baseline recipe, side by side in one run.

    python benchmarks/train_speed.py [--batch_size 4] [--steps 8] [--image_size 224] [--rounds 1]
    python benchmarks/train_speed.py --whole_commands [--rounds 2] [--short_steps 4] [--long_steps 28]
        [--doc_long_steps 12] [--cpu_isa native|avx512_core|avx2]

The second form times whole commands (start to exit) at two step counts and reads the steady state from the
marginal steps; see `whole_commands.py`. The first, described below, times steps inside each process.

Every variant runs in its own process (so peak memory and start-up are its own) on the same generated
photo-like JPEGs and the same full-size ResNet-101 (random weights; speed does not depend on them):
- baseline: the transformers example's recipe (`baseline_recipe.py`), stock Trainer, fp32;
- package: `hf_resnet101`'s run (precision auto: fp16 on CUDA, bf16 on an x86 CPU with AVX-512 BF16 or AMX, else
  fp32; channels_last);
- plain PyTorch and timm loops under the same autocast and channels_last: the ceiling to approach;
- a package or plain-loop variant with tricks, as `package+bf16+compile` or `plain_torch+compile`: bf16 or fp32
  instead of the auto precision, torch.compile with CUDA graphs (mode reduce-overhead); the summary then adds a
  table of them against the baseline and against the plain loop with the same tricks.
"Doc-default" runs evaluate every step (the product page's default) on 16 validation images. Prints one summary
table last. The same script runs unchanged on CUDA.

`--model tiny` replaces ResNet-101 with a two-stage bottleneck ResNet of 0.02 M parameters (the tests' tiny model):
the convolutions then cost next to nothing and each step's and each evaluation's fixed work (data, the Trainer,
metrics, logging) bounds the speed, as it does for ResNet-101 at batch 4 on a fast GPU (a 30 ms step on an H200).
It measures those per-step costs on a CPU; it is not a measure of ResNet-101's speed.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CPU_ISA_CAPS,
    StepTimer,
    apply_cpu_isa_cap,
    bare_training_step,
    cpu_description,
    machine_name,
    peak_rss_mib,
    write_jpeg_folder,
)

VARIANTS = ("baseline", "package", "baseline_doc_default", "package_doc_default", "plain_torch", "timm_loop")
# Tricks a package or plain-loop variant can add, as `package+bf16+compile`: bf16 (no GradScaler) or fp32 instead of
# the auto precision, and torch.compile with CUDA graphs (mode reduce-overhead) for fixed-shape steps.
TRICKS = ("bf16", "fp32", "compile")
COMPILE_MODE = "reduce-overhead"


def split_variant(variant: str) -> tuple[str, tuple[str, ...]]:
    """`package_doc_default+bf16` -> ("package_doc_default", ("bf16",)); refuses unknown names."""
    base, *tricks = variant.split("+")
    if base not in VARIANTS or any(trick not in TRICKS for trick in tricks):
        raise SystemExit(f"unknown variant {variant!r}: one of {', '.join(VARIANTS)}, optionally +{'+'.join(TRICKS)}")
    if tricks and base.startswith("baseline"):
        raise SystemExit(f"{variant}: the baseline runs as the transformers example does, without tricks")
    return base, tuple(tricks)


def build_model(kind: str, labels: list[str]):
    """ResNet-101 (random weights), or with `tiny` the tests' two-stage ResNet (see the module's docstring)."""
    from transformers import ResNetConfig, ResNetForImageClassification

    from hf_resnet101.modeling import build_random_resnet101

    if kind == "resnet101":
        return build_random_resnet101(labels)
    config = ResNetConfig(depths=[1, 1], hidden_sizes=[16, 32], embedding_size=8, layer_type="bottleneck",
                          num_labels=len(labels), id2label=dict(enumerate(labels)))  # fmt: skip
    return ResNetForImageClassification(config)


def save_resnet101(path: Path, kind: str = "resnet101") -> None:
    from hf_resnet101.modeling import resnet_image_processor

    build_model(kind, [f"class_{i}" for i in range(10)]).save_pretrained(path)
    resnet_image_processor().save_pretrained(path)


def autocast_dtype(tricks: tuple[str, ...] = ()) -> torch.dtype | None:
    """What the package's `--precision auto` runs on this machine (`hardware.resolve_precision`), or bf16 or fp32
    when asked."""
    from hf_resnet101.config.hardware import cpu_bf16_is_auto, cpu_supports_bf16, resolve_precision

    if "fp32" in tricks:
        return None
    if "bf16" in tricks:
        return torch.bfloat16
    fp16, bf16, _ = resolve_precision("auto", torch.cuda.is_available(), cpu_supports_bf16(), cpu_bf16_is_auto())
    return torch.float16 if fp16 else torch.bfloat16 if bf16 else None


def package_trick_options(tricks: tuple[str, ...]) -> dict:
    options = {}
    for precision in ("bf16", "fp32"):
        if precision in tricks:
            options["precision"] = precision
    if "compile" in tricks:
        options |= {"torch_compile": True, "torch_compile_mode": COMPILE_MODE}
    return options


def run_baseline(work: Path, args, eval_steps: int | None) -> dict:
    from baseline_recipe import build_baseline_trainer

    timer = StepTimer()
    trainer = build_baseline_trainer(
        str(work / "train"), str(work / "val"), str(work / "model"), str(work / "out-baseline"),
        args.batch_size, args.steps, eval_steps, callbacks=[timer], image_size=args.image_size,
    )  # fmt: skip
    trainer.train()
    started = time.perf_counter()
    metrics = trainer.evaluate()
    eval_seconds = time.perf_counter() - started
    return {"timer": timer, "eval_images_per_s": len(trainer.eval_dataset) / eval_seconds, "eval_metrics": metrics}


def run_package(work: Path, args, eval_steps: int | None, tricks: tuple[str, ...] = ()) -> dict:
    import hf_resnet101.train.run as training
    from hf_resnet101.config.options import DataArguments, FinetuneTrainingArguments, ModelArguments
    from hf_resnet101.library_internals import stop_data_loader_workers

    timer = StepTimer()
    holder = {}
    build = training.build_trainer

    def build_with_timer(*a, **k):
        trainer = build(*a, **k)
        trainer.add_callback(timer)
        holder["trainer"] = trainer
        return trainer

    training.build_trainer = build_with_timer
    training.run_finetune(
        DataArguments(train_dir=str(work / "train"), validation_dir=str(work / "val"), image_size=args.image_size),
        ModelArguments(model_name_or_path=str(work / "model")),
        FinetuneTrainingArguments(
            output_dir=str(work / f"out-package-{eval_steps}"), per_device_train_batch_size=args.batch_size,
            max_steps=args.steps, eval_strategy="steps" if eval_steps else "no", eval_steps=eval_steps or 1,
            save_strategy="no", overwrite_output_dir=True, disable_tqdm=True, **package_trick_options(tricks),
        ),
    )  # fmt: skip
    trainer = holder["trainer"]
    started = time.perf_counter()
    trainer.evaluate()
    eval_images_per_s = len(trainer.eval_dataset) / (time.perf_counter() - started)
    stop_data_loader_workers(trainer)
    return {"timer": timer, "eval_images_per_s": eval_images_per_s}


def run_loop(args, model_kind: str, tricks: tuple[str, ...] = ()) -> dict:
    """A bare training loop on random tensors: no data pipeline, no Trainer; with the variant's tricks."""
    if model_kind == "timm":
        import timm

        model, forward = timm.create_model("resnet101", num_classes=10), lambda m, x: m(x)
    else:
        model = build_model(args.model, [str(i) for i in range(10)])
        forward = lambda m, x: m(pixel_values=x).logits  # noqa: E731
    if "compile" in tricks:
        model = torch.compile(model, mode=COMPILE_MODE)
    dtype = autocast_dtype(tricks)
    step = bare_training_step(model, forward, args.batch_size, args.image_size, dtype, scale_loss=False)
    timer = StepTimer()
    timer.times = [time.perf_counter()]
    for _ in range(args.steps):
        step()
        timer.step_done()
    return {"timer": timer}


def run_variant(variant: str, work: Path, args) -> dict:
    process_started = float(os.environ["BENCH_LAUNCHED_AT"])
    base, tricks = split_variant(variant)
    if base == "baseline":
        result = run_baseline(work, args, None)
    elif base == "baseline_doc_default":
        result = run_baseline(work, args, 1)
    elif base == "package":
        result = run_package(work, args, None, tricks)
    elif base == "package_doc_default":
        result = run_package(work, args, 1, tricks)
    else:
        result = run_loop(args, "timm" if base == "timm_loop" else "hf", tricks)
    timer = result.pop("timer")
    seconds = timer.steady_seconds_per_step()
    return {
        "seconds_per_step": seconds,
        "images_per_s": args.batch_size / seconds,
        # Launch to the start of the first step: the first step's own time is left out.
        "startup_s": timer.first_step_wall - process_started - (timer.times[1] - timer.times[0]),
        "peak_rss_mib": peak_rss_mib(),
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--model", choices=("resnet101", "tiny"), default="resnet101",
                        help="tiny: a model too small to matter, so the per-step costs show (see above).")  # fmt: skip
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--rounds", type=int, help="Run every variant this many times, alternating (default 1; 2 "
                        "with --whole_commands).")  # fmt: skip
    parser.add_argument("--whole_commands", action="store_true", help="Time whole commands, marginal steps.")
    parser.add_argument("--short_steps", type=int, default=4, help="--whole_commands: the short runs' steps.")
    parser.add_argument("--long_steps", type=int, default=28, help="--whole_commands: the long training runs' steps.")
    parser.add_argument("--doc_long_steps", type=int, default=12,
                        help="--whole_commands: the long runs' steps when evaluating every step.")  # fmt: skip
    parser.add_argument("--whole_pick", choices=("best", "median"), default="best",
                        help="--whole_commands: each time's best (minimum) or median over the rounds.")  # fmt: skip
    parser.add_argument("--cpu_isa", choices=tuple(CPU_ISA_CAPS), default="native",
                        help="Cap every variant's (or command's) instruction set (see common.CPU_ISA_CAPS), to "
                        "measure as a processor without BF16 or without AVX-512 would.")  # fmt: skip
    parser.add_argument("--variant_timeout", type=float, default=900, help="Seconds before a variant is stopped.")
    parser.add_argument("--log", help="Append every variant's output to this file (default: shown on failure).")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        # A variant that hangs prints where it is before it is stopped.
        faulthandler.dump_traceback_later(max(1.0, args.variant_timeout - 5), exit=True)
        print("RESULT " + json.dumps(run_variant(args.variant, Path(args.work), args)))
        return
    for variant in args.variants.split(","):
        split_variant(variant)  # an unknown name stops here, before minutes of other variants
    args.isa_note = apply_cpu_isa_cap(args.cpu_isa)  # before any variant starts: each inherits the environment
    if args.whole_commands:
        import whole_commands

        args.rounds = args.rounds or 2
        with tempfile.TemporaryDirectory() as tmp:
            args.work_dir = tmp
            whole_commands.measure(args)
        return
    args.rounds = args.rounds or 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_jpeg_folder(work / "train", per_class=max(2, args.batch_size * args.steps // 10 + 1), classes=10,
                          size=(500, 375))  # fmt: skip
        write_jpeg_folder(work / "val", per_class=2, classes=8, size=(500, 375), seed=1)
        save_resnet101(work / "model", args.model)
        rounds: dict[str, list[dict]] = {}
        for round_number in range(args.rounds):  # variants alternate, so a slow spell of the machine hits them all
            for variant in args.variants.split(","):
                result = run_variant_process(variant, work, args)
                if result is not None:
                    rounds.setdefault(variant, []).append(result)
                    print(f"round {round_number + 1}, {variant}: {result}", flush=True)
    results = {variant: best_of(runs) for variant, runs in rounds.items()}
    print_summary(results, args)


def run_variant_process(variant: str, work: Path, args) -> dict | None:
    env = {
        **os.environ,
        "BENCH_LAUNCHED_AT": repr(time.time()),
        "HF_HUB_OFFLINE": "1",
        "HF_RESNET101_CACHE": str(work / "cache"),
        "HF_DATASETS_CACHE": str(work / "hf-datasets"),
    }
    command = [sys.executable, __file__, "--variant", variant, "--work", str(work),
               "--batch_size", str(args.batch_size), "--steps", str(args.steps), "--image_size", str(args.image_size),
               "--model", args.model, "--variant_timeout", str(args.variant_timeout)]  # fmt: skip
    done = run_logged(command, env, args.variant_timeout, args.log, variant)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        print(f"{variant} failed (exit {done.returncode}):\n{done.stderr[-3000:]}", flush=True)
        return None
    if done.returncode:  # measured, then failed to exit: keep the numbers, say so
        print(f"{variant} exited with {done.returncode} after printing its result: {done.stderr[-300:]}")
    return json.loads(lines[-1][7:])


def best_of(runs: list[dict]) -> dict:
    """Each measure's best over the rounds: on a shared machine, the best run is the one least disturbed."""
    best = {}
    for key in runs[0]:
        values = [run[key] for run in runs if isinstance(run.get(key), int | float)]
        if not values:
            continue
        lower_is_better = key in ("seconds_per_step", "startup_s", "peak_rss_mib")
        best[key] = min(values) if lower_is_better else max(values)
    return best


def run_logged(command: list[str], env: dict, timeout: float, log: str | None, name: str):
    """Runs one variant; its stderr goes to `log` as it is written (so a stopped variant leaves its trace)."""
    if not log:
        try:
            return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout + 10)
        except subprocess.TimeoutExpired as stopped:
            return subprocess.CompletedProcess(command, -9, stopped.stdout or "", str(stopped.stderr or ""))
    with open(log, "a") as stream:
        stream.write(f"\n===== {name}: {' '.join(command)}\n")
        stream.flush()
        try:
            done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=stream, text=True,
                                  timeout=timeout + 10)  # fmt: skip
        except subprocess.TimeoutExpired as stopped:
            return subprocess.CompletedProcess(command, -9, stopped.stdout or "", f"stopped after {timeout} s")
    return subprocess.CompletedProcess(command, done.returncode, done.stdout, f"see {log}")


def print_summary(results: dict, args) -> None:
    def get(variant, key):
        return results.get(variant, {}).get(key, float("nan"))

    rounds = f", best of {args.rounds} alternating rounds" if args.rounds > 1 else ""
    model = "ResNet-101" if args.model == "resnet101" else "tiny ResNet (per-step costs, not ResNet-101's speed)"
    print(f"\n{model}, {args.image_size}x{args.image_size}, batch {args.batch_size}{rounds}; {machine_name()}")
    print(f"Processor: {cpu_description()}; {args.isa_note}")
    print("| measure | baseline | package | ratio |")
    print("|---|---|---|---|")
    rows = [
        ("training images/s", "baseline", "package", "images_per_s", False),
        ("doc-default (eval every step) s/step", "baseline_doc_default", "package_doc_default", "seconds_per_step",
         True),
        ("evaluation images/s", "baseline", "package", "eval_images_per_s", False),
        ("start-up s (launch to first step)", "baseline", "package", "startup_s", True),
        ("peak RSS MiB", "baseline", "package", "peak_rss_mib", True),
    ]  # fmt: skip
    for label, base, ours, key, lower_is_better in rows:
        if base not in results and ours not in results:
            continue  # neither measured in this run: no row of NaNs
        a, b = get(base, key), get(ours, key)
        ratio = a / b if lower_is_better else b / a
        print(f"| {label} | {a:.2f} | {b:.2f} | {ratio:.2f}x |")
    for loop in ("plain_torch", "timm_loop"):
        if loop not in results:
            continue
        ips = get(loop, "images_per_s")
        print(f"| {loop} images/s (ceiling) | | {ips:.2f} | package at {get('package', 'images_per_s') / ips:.0%} |")
    with_tricks = [variant for variant in results if split_variant(variant)[1]]
    if with_tricks:
        print_tricks_summary(results, with_tricks)


def print_tricks_summary(results: dict, variants: list[str]) -> None:
    """Each variant with tricks against the baseline, and a package variant against the plain loop with the same
    tricks (the issue's ceiling: within 15% of a bare loop that uses them)."""
    print("\n| variant with tricks | s/step | images/s | vs the baseline | vs plain_torch, same tricks |")
    print("|---|---|---|---|---|")
    for variant in variants:
        base, tricks = split_variant(variant)
        mine = results[variant]
        reference = results.get("baseline_doc_default" if base.endswith("doc_default") else "baseline")
        versus_baseline = versus_loop = ""
        if reference:
            versus_baseline = f"{reference['seconds_per_step'] / mine['seconds_per_step']:.2f}x"
        loop = results.get("+".join(("plain_torch", *tricks)))
        if loop and base == "package":
            versus_loop = f"{mine['images_per_s'] / loop['images_per_s']:.0%}"
        row = [variant, f"{mine['seconds_per_step']:.4f}", f"{mine['images_per_s']:.1f}", versus_baseline, versus_loop]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
