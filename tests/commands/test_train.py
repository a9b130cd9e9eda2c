"""Entry points as a user meets them: `hf-resnet101 train` (Accelerate's launcher with the run's own exit status and
no launcher traceback), CPU threads under `accelerate launch`, and what a finished run says last."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO_ROOT

from hf_resnet101.commands.train import split_launch_options

TRAIN = [sys.executable, "-c", "from hf_resnet101.commands.cli import main; main()", "train"]


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([*TRAIN, *argv], env=env, capture_output=True, text=True, timeout=600, **kwargs)


def test_launch_options_come_before_the_separator():
    assert split_launch_options(["--num_processes", "2", "--", "--train_dir", "d"]) == (
        ["--num_processes", "2"],
        ["--train_dir", "d"],
    )
    assert split_launch_options(["--train_dir", "d"]) == ([], ["--train_dir", "d"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--multi_gpu", "--num_processes", "2", "--train_dir", "d"], "--multi_gpu, --num_processes: Accelerate's"),
        (["--num_proceses", "2", "--", "--train_dir", "d"], "--num_proceses (did you mean --num_processes?)"),
        (["--config_file", "missing.yaml", "--", "--train_dir", "d"], "--config_file missing.yaml does not exist"),
        (
            ["--config_file", str(REPO_ROOT / "recipes" / "configs" / "birds.yaml"), "--", "--train_dir", "d"],
            "holds training options, so give it after `--` as --config",
        ),
        (
            ["--multi_gpu", "--num_processes", "1", "--", "--train_dir", "d"],
            "accelerate launch: You need to use at least 2 processes to use `--multi_gpu`",
        ),
    ],
    ids=[
        "launch-options-without-separator",
        "misspelt-launch-option",
        "missing-config",
        "training-config",
        "multi-gpu-one-process",
    ],
)
def test_launch_mistakes_are_one_line_before_anything_starts(argv, message, tmp_path):
    """They were a traceback (a config file), Accelerate's 110-line usage (a typo), or a wrong suggestion
    (--multi_gpu, did you mean --use_cpu?)."""
    result = run(argv, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr[-3000:]
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("launch", [[], ["--multi_gpu", "--num_processes", "2", "--"]], ids=["one", "two"])
def test_bad_input_exits_2_without_a_traceback(launch, image_folder, tmp_path):
    result = run([*launch, "--train_dir", str(tmp_path / "missing"), "--output_dir", str(tmp_path / "out")])
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"error: --train_dir {tmp_path / 'missing'} does not exist" in result.stderr
    assert "CPU threads" not in result.stderr  # bad input: only what was wrong is said
    # An output folder of the user's own: refused before the processes first wait for each other
    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "README.md").write_text("mine")
    own = run([*launch, "--train_dir", str(image_folder), "--output_dir", str(tmp_path / "own")])
    assert own.returncode == 2, own.stderr[-3000:]
    assert "holds files that are not from a training run of this package (README.md)" in own.stderr
    for stderr in (result.stderr, own.stderr):
        assert stderr.count("error:") == 1, stderr[-3000:]  # said once, by the main process
        for noise in ("Traceback", "CalledProcessError", "ChildFailedError", "had defaults used instead"):
            assert noise not in stderr


@pytest.mark.parametrize("quiet", [False, True], ids=["plain", "quiet"])
def test_plain_accelerate_launch_shows_the_message_too(tmp_path, quiet):
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", *(["--quiet"] if quiet else []),
              "-m", "hf_resnet101.commands.finetune"]  # fmt: skip
    result = subprocess.run([*launch, "--train_dir", str(tmp_path / "missing"), "--output_dir", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert f"error: --train_dir {tmp_path / 'missing'} does not exist" in result.stderr
    assert "CPU threads" not in result.stderr  # bad input: only what was wrong is said
    assert result.returncode != 0  # accelerate's own status (1), which `hf-resnet101 train` replaces by 2
    assert not (tmp_path / "o").exists()  # the output folder the run made for its lock is gone again
    # Accelerate's own CalledProcessError traceback follows the message, unless --quiet (as the README says).
    assert ("CalledProcessError" in result.stderr) == (not quiet)


ACCELERATE_LAUNCH = [
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "-q",
    str(REPO_ROOT / "recipes" / "finetune.py"),
]


@pytest.mark.parametrize(
    ("command", "sent_to", "status"),
    [(TRAIN, "group", 130), (ACCELERATE_LAUNCH, "group", 130), (TRAIN, "launcher", 143)],
    ids=["hf-resnet101 train", "accelerate launch", "hf-resnet101 train, SIGINT to its pid only"],
)
def test_a_run_trains_and_ctrl_c_saves_a_checkpoint(command, sent_to, status, image_folder, tiny_resnet, tmp_path):
    """accelerate's launcher, given Ctrl-C, passes a SIGTERM on to the script it runs: the same stop, not a second.
    `hf-resnet101 train` does the same with a SIGINT sent to it alone (`kill -INT PID`), which used to stop nothing."""
    out = tmp_path / "out"
    argv = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet),
            "--num_train_epochs", "300", "--eval_strategy", "no", "--save_strategy", "no"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    # Its own session, so Ctrl-C can be sent as a terminal sends it: to the whole process group. Ctrl-C does what
    # it does in a terminal even where the tests were started in the background, with SIGINT ignored (inherited).
    process = subprocess.Popen(
        [*command, *argv],
        env=env,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = b""
    while b"it/s]" not in seen.partition(b"Run summary")[2]:  # the training bar (on a busy machine, seconds later)
        chunk = os.read(process.stderr.fileno(), 1 << 16)
        assert chunk, seen[-3000:].decode(errors="replace")
        seen += chunk
    if sent_to == "group":
        os.killpg(process.pid, signal.SIGINT)
    else:
        os.kill(process.pid, signal.SIGINT)
    seen, rest = seen.decode(errors="replace"), process.communicate(timeout=300)[1].decode(errors="replace")
    assert process.returncode == status, (seen + rest)[-3000:]
    assert "interrupted: checkpoint saved at step" in rest
    assert "Traceback" not in seen + rest
    assert list(out.glob("checkpoint-*"))


@pytest.mark.parametrize("user_threads", [None, "1"])
def test_accelerate_launch_on_a_cpu_trains_with_every_core(user_threads, image_folder, tiny_resnet, tmp_path):
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "hf_resnet101.commands.finetune"]  # fmt: skip
    argv = ["--train_dir", str(image_folder), "--output_dir", str(tmp_path / "out"), "--model_name_or_path",
            str(tiny_resnet), "--max_steps", "1", "--eval_strategy", "no", "--save_strategy", "no"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env |= {"HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""} | (
        {"OMP_NUM_THREADS": user_threads} if user_threads else {}
    )
    started = time.time()
    result = subprocess.run([*launch, *argv], env=env, capture_output=True, text=True, timeout=600)
    wall_seconds = time.time() - started
    assert result.returncode == 0, result.stderr[-3000:]
    cores = len(os.sched_getaffinity(0))
    restored = f"CPU threads: {cores} per process (the launcher had set OMP_NUM_THREADS=1" in result.stderr
    # accelerate launch sets OMP_NUM_THREADS=1 for a CPU run; only a user's own setting is kept.
    assert restored == (user_threads is None and cores > 1)
    # Where the run's time went, the fixed costs included, is in its log.
    timed = re.search(r"Time by phase \(([\d.]+) s in all\): (.*)", result.stderr)
    assert timed, result.stderr[-2000:]
    phases = timed.group(2)
    assert phases.startswith("launcher ") and ", start-up (Python, imports, options) " in phases
    for phase in ("scan and data loading", "model loading", "training", "final evaluation", "card and plots",
                  "pipeline check"):  # fmt: skip
        assert f"{phase} " in phases
    # The phases account for the command's time from the launcher's start: all of it but the last lines' output.
    assert 0.75 * wall_seconds <= float(timed.group(1)) <= wall_seconds


def test_a_finished_run_ends_with_where_the_model_is_and_how_to_use_it(
    finetune_main, capfd, image_folder, tiny_resnet, tmp_path
):
    out = tmp_path / "out"
    argv = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet),
            "--max_steps", "1", "--eval_strategy", "no", "--save_strategy", "no"]  # fmt: skip
    assert finetune_main(argv) == 0
    last_lines = capfd.readouterr().out.strip().splitlines()[-3:]
    assert last_lines[0].startswith(f"Model saved to {out} (validation accuracy ")
    assert last_lines[1] == f"Model card: {out / 'README.md'}"
    assert last_lines[2] == f'Use it: pipeline("image-classification", model="{out}")'


def test_timm_is_needed_only_for_timm_models(image_folder, tiny_models, tmp_path):
    """timm is an extra: without it, `accelerate launch` trains transformers' ResNet (its frozen BatchNorm layers
    included) and stops a timm model at once, saying how to install timm."""
    blocker = tmp_path / "without-timm"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text('import sys\nsys.modules["timm"] = None  # as if not installed\n')
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(blocker)}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--num_processes", "1",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "-m", "hf_resnet101.commands.finetune", "--train_dir", str(image_folder)]  # fmt: skip

    timm_argv = ["--model_name_or_path", str(tiny_models["timm"]), "--output_dir", str(tmp_path / "timm-out")]
    refused = subprocess.run([*launch, *timm_argv], env=env, capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0
    assert "is a timm model, and timm is not installed: pip install timm" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "timm-out").exists()  # stopped before anything was written

    out = tmp_path / "resnet-out"
    trained = subprocess.run([*launch, "--model_name_or_path", str(tiny_models["resnet"]), "--output_dir", str(out),
                              "--freeze_backbone", "all_but_last", "--max_steps", "2", "--save_strategy", "no"],
                             env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "Pipeline check on" in trained.stderr and (out / "model.safetensors").is_file()


def test_processes_accelerate_launch_did_not_start_are_named(image_folder, tiny_resnet, tmp_path):
    """Without --multi_gpu, accelerate's launcher takes --num_processes 2 and starts one process."""
    launch = [*ACCELERATE_LAUNCH[:4], "--num_processes", "2", "--cpu", ACCELERATE_LAUNCH[4]]
    argv = ["--train_dir", str(image_folder), "--output_dir", str(tmp_path / "out"), "--model_name_or_path",
            str(tiny_resnet), "--max_steps", "1", "--eval_strategy", "no", "--save_strategy", "no"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([*launch, *argv], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "accelerate launch was given several processes but started one" in result.stderr
    assert "x 1 process(es)" in result.stderr
