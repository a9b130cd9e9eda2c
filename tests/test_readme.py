"""The README's commands, run as written, in order, after its set-up (the virtual environment on the PATH).

They run in a folder laid out as the README assumes (`data/train`, `data/validation`, `data/test`, `photos/`, ...,
and the repository's `recipes/`), offline, with a tiny ResNet standing in for `microsoft/resnet-101` in the Hub
cache, so every command is exactly the README's text. The few that cannot run here are listed with the reason; a
command added to the README must either run or be listed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import REPO_ROOT, save_tiny_resnet, write_class_images

SET_UP_COMMANDS = 2  # the Quick start's two commands, which CI itself runs
NOT_RUN_HERE = {
    "hf-resnet101 evaluate outputs/birds --dataset_name USER/birds": "needs a dataset on the Hub",
    "accelerate launch --config_file recipes/accelerate/multi_node.yaml": "needs a second machine and /shared",
    "source .venv/bin/activate": "the test puts .venv/bin first on the PATH instead",
}


def readme_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line][SET_UP_COMMANDS:]


def user_folder(root: Path) -> Path:
    """The folder the README's commands assume: the repository's recipes and a user's data."""
    (root / "recipes").symlink_to(REPO_ROOT / "recipes")
    for name, per_class, seed in [("data/train", 8, 1), ("data/validation", 3, 2), ("data/test", 3, 3),
                                  ("data/birds/train", 8, 4), ("data/defects/train", 8, 5),
                                  ("data/scans/train", 8, 6)]:  # fmt: skip
        write_class_images(root / name, per_class=per_class, seed=seed)
    shutil.copytree(root / "data/test/cat", root / "photos")
    shutil.copy(root / "data/test/cat/img_000.png", root / "more.jpg")
    (root / "list.txt").write_text("photos/img_001.png\n")
    return root


def hub_cache_with_stand_in(cache: Path) -> Path:
    """`microsoft/resnet-101` in a Hub cache, as `hf download` would leave it, holding a tiny ResNet."""
    revision = "0" * 40
    repo = cache / "models--microsoft--resnet-101"
    save_tiny_resnet(repo / "snapshots" / revision)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return cache


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    root = user_folder(tmp_path_factory.mktemp("user"))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HF_HUB_CACHE": str(hub_cache_with_stand_in(tmp_path_factory.mktemp("hub-cache"))),
        "HF_HUB_OFFLINE": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }
    commands = [c for c in readme_commands() if not any(c.startswith(prefix) for prefix in NOT_RUN_HERE)]

    def run_in_order(chain: list[str]) -> list[subprocess.CompletedProcess]:
        return [
            subprocess.run(shlex.split(command), cwd=root, env=env, capture_output=True, text=True, timeout=900)
            for command in chain
        ]

    # Two at a time (most of a command's time is its start-up, on one core); a command runs after the earlier
    # ones it reads from, as a user would run them.
    chains = command_chains(commands)
    done = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for chain, runs in zip(chains, [pool.submit(run_in_order, chain) for chain in chains], strict=True):
            done |= dict(zip(chain, runs.result(), strict=True))
    return root, [(command, done[command]) for command in commands]


# What the README's commands write that later ones read: a command naming one runs after those before it that do.
SHARED_PATHS = {"outputs/birds", "exported/birds", "preds.csv"}


def command_chains(commands: list[str]) -> list[list[str]]:
    """The commands as chains to run one after the other: those naming a `SHARED_PATHS` path in one, in order;
    every other command a chain of its own."""
    shared = [c for c in commands if SHARED_PATHS & set(shlex.split(c))]
    return [shared, *([c] for c in commands if c not in shared)]


def test_every_readme_command_runs_as_written(readme_run):
    root, results = readme_run
    assert len(results) >= 12
    for command, done in results:
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, command
    assert (root / "outputs/birds/model.safetensors").is_file()
    assert (root / "preds.csv").is_file() and (root / "exported/birds/model.onnx").is_file()


def test_commands_that_read_what_others_write_run_after_them():
    commands = ["train --output_dir outputs/birds", "train --output_dir outputs/cpu", "predict outputs/birds x",
                "export outputs/birds exported/birds", "predict exported/birds --output preds.csv"]  # fmt: skip
    assert command_chains(commands) == [
        ["train --output_dir outputs/birds", "predict outputs/birds x", "export outputs/birds exported/birds",
         "predict exported/birds --output preds.csv"],
        ["train --output_dir outputs/cpu"],
    ]  # fmt: skip


def test_every_readme_command_is_run_or_listed_with_a_reason(readme_run):
    _, results = readme_run
    run = {command for command, _ in results}
    for command in readme_commands():
        assert command in run or any(command.startswith(prefix) for prefix in NOT_RUN_HERE), command
