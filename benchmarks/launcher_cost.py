"""What starting a run costs before it begins and after it ends, by the way it is started.

    python benchmarks/launcher_cost.py [--rounds 3]

Accelerate's command-line tool imports all of its subcommands before it launches anything, and its `estimate`
subcommand imports timm (with torchvision's models and torch._dynamo) wherever timm is installed. timm is the
package's optional extra (`.[timm]`, for timm checkpoints only), so a default install does not pay it. The same
one-step run of a tiny model, rounds alternating between the ways of starting it:
- `accelerate launch recipes/finetune.py`, with timm installed and without it;
- `hf-resnet101 train` (Accelerate's launcher run in-process, importing only what launching needs);
- `python recipes/finetune.py` (no launcher: the baseline recipe's way).
Each is timed as a whole command; as the "launcher" phase of the run's own "Time by phase" line (the launcher's
start to the script's); and after the run, from its last line of output to the command's exit (the training
process ending, then the launcher's own exit). `accelerate launch --help` times the launcher's start alone, and a
process that imports Accelerate's command-line tool, as the launcher does, then exits times its exit, with and
without `gc.freeze()` before it.
"Without timm" runs the same environment with timm made unimportable (a `sitecustomize` that sets
`sys.modules["timm"] = None`, so `importlib.util.find_spec("timm")` is None, as when it is not installed).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import cpu_description, write_jpeg_folder
from train_speed import save_resnet101
from whole_commands import LAUNCHER_FLAGS, accelerate_executable

ROOT = Path(__file__).resolve().parent.parent
CASES = ("accelerate launch, with timm", "accelerate launch", "hf-resnet101 train", "python")


def environment(case: str, blocker: Path) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    if case != "accelerate launch, with timm":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(blocker), env.get("PYTHONPATH")]))
    return env


def command_for(case: str, recipe_options: list[str]) -> list[str]:
    """The whole command that starts the run `case`'s way, with the launcher flags the benchmarks use."""
    recipe = str(ROOT / "recipes" / "finetune.py")
    if case.startswith("accelerate launch"):
        return [accelerate_executable(), "launch", *LAUNCHER_FLAGS, recipe, *recipe_options]
    if case == "hf-resnet101 train":
        return [str(Path(sys.executable).with_name("hf-resnet101")), "train", *LAUNCHER_FLAGS, "--", *recipe_options]
    return [sys.executable, recipe, *recipe_options]


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Runs `command`; returns its wall time, the time from its last line of output to its exit, and its output."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, last_line_at = [], started
    for line in process.stdout:
        lines.append(line)
        if line.strip():
            last_line_at = time.perf_counter()
    process.wait(timeout=900)
    ended = time.perf_counter()
    output = "".join(lines)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{output[-3000:]}")
    return ended - started, ended - last_line_at, output


def launcher_phase(log: str) -> float | None:
    """The run's own figure for its launcher (none when it was started without one)."""
    found = re.search(r"Time by phase \([\d.]+ s in all\): launcher ([\d.]+) s", log)
    return float(found.group(1)) if found else None


EXIT_PROBE = "from accelerate.commands.accelerate_cli import main\n{freeze}print('imported', flush=True)\n"


def exit_after_cli_import(freeze: bool, env: dict[str, str]) -> float:
    """The exit of a process that has imported what `accelerate launch` imports (its last line to its end)."""
    code = EXIT_PROBE.format(freeze="import gc\ngc.freeze()\n" if freeze else "")
    return timed([sys.executable, "-c", code], env)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        blocker = work / "without-timm"
        blocker.mkdir()
        (blocker / "sitecustomize.py").write_text('import sys\nsys.modules["timm"] = None\n')
        write_jpeg_folder(work / "train", per_class=4, classes=2, size=(96, 72))
        model = work / "model"
        save_resnet101(model, "tiny")
        recipe_options = ["--train_dir", str(work / "train"), "--model_name_or_path", str(model),
                          "--max_steps", "1", "--eval_strategy", "no", "--save_strategy", "no"]  # fmt: skip
        results = {case: {"help": [], "launcher": [], "after": [], "run": []} for case in CASES}
        exits: dict[bool, list[float]] = {False: [], True: []}
        for round_index in range(args.rounds):
            for case in CASES:
                env = environment(case, blocker)
                if case.startswith("accelerate launch"):
                    results[case]["help"].append(timed([accelerate_executable(), "launch", "--help"], env)[0])
                if case == "accelerate launch":
                    for freeze in exits:
                        exits[freeze].append(exit_after_cli_import(freeze, env))
                out = work / f"out-{round_index}-{CASES.index(case)}"
                seconds, after, log = timed(command_for(case, [*recipe_options, "--output_dir", str(out)]), env)
                results[case]["run"].append(seconds)
                results[case]["after"].append(after)
                if (launcher := launcher_phase(log)) is not None:
                    results[case]["launcher"].append(launcher)
                print(f"round {round_index + 1} {case}: one-step run {seconds:.2f} s, launcher phase {launcher} s, "
                      f"after the run {after:.2f} s", flush=True)  # fmt: skip
    print(f"\n{cpu_description()}; best (median) of {args.rounds} alternating rounds")
    print("| measure | " + " | ".join(CASES) + " |")
    print("|---" * (len(CASES) + 1) + "|")
    measures = {"help": "`accelerate launch --help`", "launcher": "launcher phase of the run (its log)",
                "after": "after the run (last line to exit)", "run": "one-step run, whole command"}  # fmt: skip
    for key, label in measures.items():
        cells = [
            f"{min(times):.2f} s ({statistics.median(times):.2f})" if (times := results[case][key]) else "-"
            for case in CASES
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(
        f"\nExit of a process that imported Accelerate's command-line tool (timm not installed): "
        f"{min(exits[False]):.2f} s ({statistics.median(exits[False]):.2f}); with gc.freeze() first "
        f"{min(exits[True]):.2f} s ({statistics.median(exits[True]):.2f})"
    )


if __name__ == "__main__":
    main()
