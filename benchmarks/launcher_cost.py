"""What `accelerate launch` costs before the run starts, with timm installed and without it.

    python benchmarks/launcher_cost.py [--rounds 3]

Accelerate's command-line tool imports all of its subcommands before it launches anything, and its `estimate`
subcommand imports timm (with torchvision's models and torch._dynamo) wherever timm is installed. timm is the
package's optional extra (`.[timm]`, for timm checkpoints only), so a default install does not pay it. Timed here,
rounds alternating between the two cases:
- `accelerate launch --help`: the launcher's own start, nothing launched;
- a one-step run of a tiny model through `accelerate launch recipes/finetune.py`: the whole command's wall time,
  and the "launcher" phase of the run's own "Time by phase" line (the launcher's start to the script's).
"Without timm" runs the same environment with timm made unimportable (a `sitecustomize` that sets
`sys.modules["timm"] = None`, so `importlib.util.find_spec("timm")` is None, as when it is not installed).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import cpu_description, write_jpeg_folder
from train_speed import save_resnet101
from whole_commands import LAUNCHER_FLAGS, accelerate_executable

ROOT = Path(__file__).resolve().parent.parent
CASES = ("with timm", "without timm")


def environment(case: str, blocker: Path) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    if case == "without timm":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(blocker), env.get("PYTHONPATH")]))
    return env


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return elapsed, done.stderr


def launcher_phase(log: str) -> float:
    found = re.search(r"Time by phase \([\d.]+ s in all\): launcher ([\d.]+) s", log)
    if not found:
        raise SystemExit(f"no launcher phase in the run's log:\n{log[-2000:]}")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    accelerate = accelerate_executable()
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir)
        blocker = work / "without-timm"
        blocker.mkdir()
        (blocker / "sitecustomize.py").write_text('import sys\nsys.modules["timm"] = None\n')
        write_jpeg_folder(work / "train", per_class=4, classes=2, size=(96, 72))
        model = work / "model"
        save_resnet101(model, "tiny")
        results = {case: {"help": [], "run": [], "launcher": []} for case in CASES}
        for round_index in range(args.rounds):
            for case in CASES:
                env = environment(case, blocker)
                seconds, _ = timed([accelerate, "launch", "--help"], env)
                results[case]["help"].append(seconds)
                out = work / f"out-{round_index}-{case.replace(' ', '-')}"
                run = [accelerate, "launch", *LAUNCHER_FLAGS, str(ROOT / "recipes" / "finetune.py"),
                       "--train_dir", str(work / "train"), "--model_name_or_path", str(model),
                       "--output_dir", str(out), "--max_steps", "1", "--eval_strategy", "no",
                       "--save_strategy", "no"]  # fmt: skip
                seconds, log = timed(run, env)
                results[case]["run"].append(seconds)
                results[case]["launcher"].append(launcher_phase(log))
                print(
                    f"round {round_index + 1} {case}: --help {results[case]['help'][-1]:.2f} s, one-step run "
                    f"{seconds:.2f} s (launcher phase {results[case]['launcher'][-1]:.2f} s)",
                    flush=True,
                )
    print(f"\n{cpu_description()}; best (median) of {args.rounds} alternating rounds")
    print("| measure | with timm | without timm | saved |")
    print("|---|---|---|---|")
    for key, label in (("help", "`accelerate launch --help`"), ("launcher", "launcher phase of a run"),
                       ("run", "one-step run, whole command")):  # fmt: skip
        with_timm, without = results["with timm"][key], results["without timm"][key]
        print(
            f"| {label} | {min(with_timm):.2f} s ({statistics.median(with_timm):.2f}) | {min(without):.2f} s "
            f"({statistics.median(without):.2f}) | {min(with_timm) - min(without):.2f} s |"
        )


if __name__ == "__main__":
    main()
