"""A run resumes only its own checkpoints, leaves a finished folder alone, locks its folder, and never takes a user's
files for its own (issue 12), all through `recipes/finetune.py`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, write_class_images

from hf_resnet101.outputs import LOCK, RUN_IDENTITY, RUN_MANIFEST
from hf_resnet101.train.output_folder import locked_output_folder

RECIPE = str(REPO_ROOT / "recipes" / "finetune.py")


def snapshot(folder) -> dict[str, bytes]:
    """Every file under the folder with its bytes: what "byte for byte unchanged" is checked against."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def base_args(data, model, out) -> list[str]:
    return ["--train_dir", str(data), "--output_dir", str(out), "--model_name_or_path", str(model),
            "--eval_strategy", "no", "--save_steps", "3", "--seed", "5"]  # fmt: skip


@pytest.fixture
def finished(finetune_main, image_folder, tiny_resnet, tmp_path):
    out = tmp_path / "out"
    args = base_args(image_folder, tiny_resnet, out)
    assert finetune_main(args) == 0
    return args, out


def test_rerunning_a_finished_run_changes_nothing(finetune_main, finished, caplog):
    args, out = finished
    assert (out / RUN_IDENTITY).is_file() and (out / "checkpoint-6" / RUN_IDENTITY).is_file()
    manifest = json.loads((out / RUN_MANIFEST).read_text())
    assert manifest["finished"] and {"model.safetensors", "README.md", "checkpoint-6"} <= set(manifest["files"])
    before = snapshot(out)
    caplog.clear()
    assert finetune_main(args) == 0
    assert "already finished" in caplog.text and f"the model is in {out}" in caplog.text
    assert snapshot(out) == before


@pytest.mark.parametrize(
    "change, named",
    [
        (["--learning_rate", "0.001"], "learning_rate: 5e-05 -> 0.001"),
        (["--model_name_or_path", "OTHER"], "model_name_or_path"),
        (["--seed", "6"], "seed: 5 -> 6"),
    ],
)
def test_other_options_stop_before_anything_changes(finetune_main, finished, tmp_path, capsys, change, named):
    args, out = finished
    if change[0] == "--model_name_or_path":
        other = tmp_path / "other-model"
        shutil.copytree(args[args.index("--model_name_or_path") + 1], other)
        change = ["--model_name_or_path", str(other)]
    before = snapshot(out)
    capsys.readouterr()
    assert finetune_main([*args, *change]) == 2
    err = capsys.readouterr().err
    assert named in err and "--overwrite_output_dir" in err and "new --output_dir" in err
    assert "Traceback" not in err
    assert snapshot(out) == before


@pytest.mark.parametrize("classes", [{"a": (40, 70, 200), "b": (200, 60, 40), "lonely": (50, 190, 60)},
                                     {"a": (40, 70, 200), "b": (200, 60, 40)}])  # fmt: skip
def test_other_data_stops_before_anything_changes(finetune_main, finished, tmp_path, capsys, classes):
    """The issue's probes: other labels with the same class count, and another class count."""
    args, out = finished
    other = write_class_images(tmp_path / "other-data", per_class=8, classes=classes)
    args = [*args]
    args[args.index("--train_dir") + 1] = str(other)
    before = snapshot(out)
    capsys.readouterr()
    assert finetune_main(args) == 2
    err = capsys.readouterr().err
    assert "label_names: ['Blue Jay', 'cat', 'élan vital'] -> ['a', 'b'" in err and "--overwrite_output_dir" in err
    assert "size mismatch" not in err and "Traceback" not in err
    assert snapshot(out) == before


def test_changed_images_are_another_run(finetune_main, finished, tmp_path, capsys):
    """Same labels, one image replaced: the data digest differs, so the run is not taken for the finished one."""
    args, out = finished
    folder = args[args.index("--train_dir") + 1]
    replaced = sorted((Path(folder) / "cat").iterdir())[0]
    fresh = write_class_images(tmp_path / "fresh", per_class=1, seed=99, classes={"cat": (200, 60, 40)})
    shutil.copy(fresh / "cat" / "img_000.png", replaced)
    before = snapshot(out)
    capsys.readouterr()
    assert finetune_main(args) == 2
    assert "the training data (images added, removed, changed" in capsys.readouterr().err
    assert snapshot(out) == before


def test_a_checkpoint_of_other_data_is_refused_without_saying_it_resumes(
    finetune_main, finished, tmp_path, caplog, capsys
):
    args, out = finished
    (out / "model.safetensors").unlink()  # as if stopped after checkpoint-6: resumable
    folder = Path(args[args.index("--train_dir") + 1])
    fresh = write_class_images(tmp_path / "fresh", per_class=1, seed=99, classes={"cat": (200, 60, 40)})
    shutil.copy(fresh / "cat" / "img_000.png", folder / "cat" / "added.png")
    caplog.clear()
    assert finetune_main(args) == 2
    assert "Resuming from" not in caplog.text
    err = capsys.readouterr().err
    assert "To resume it, put its data back as it was and run the same command." in err
    assert f"(--model_name_or_path {out / 'checkpoint-6'} starts it from that run's weights)" in err
    (folder / "cat" / "added.png").unlink()
    assert finetune_main(args) == 0
    assert f"Resuming from {out / 'checkpoint-6'}" in caplog.text


def test_overwrite_output_dir_starts_over(finetune_main, finished, caplog):
    args, out = finished
    caplog.clear()
    assert finetune_main([*args, "--learning_rate", "0.001", "--overwrite_output_dir"]) == 0
    assert "already finished" not in caplog.text
    assert json.loads((out / RUN_IDENTITY).read_text())["learning_rate"] == 0.001


def test_users_own_files_are_refused(finetune_main, image_folder, tiny_resnet, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    own = {"README.md": b"# my notes", "config.json": b'{"mine": true}', "training_curves.png": b"\x89PNG mine"}
    for name, content in own.items():
        (out / name).write_bytes(content)
    args = base_args(image_folder, tiny_resnet, out)
    assert finetune_main(args) == 2
    err = capsys.readouterr().err
    assert "not from a training run" in err and "README.md" in err and "--overwrite_output_dir" in err
    assert snapshot(out) == own  # not even a lock file was added

    # The user's README.md dropped into a finished run's folder is theirs too, even with the card's name.
    args, finished_out = base_args(image_folder, tiny_resnet, tmp_path / "done"), tmp_path / "done"
    assert finetune_main(args) == 0
    (finished_out / "README.md").write_text("# my notes")
    assert finetune_main(args) == 2
    assert "README.md" in capsys.readouterr().err
    assert (finished_out / "README.md").read_text() == "# my notes"

    assert finetune_main([*base_args(image_folder, tiny_resnet, out), "--overwrite_output_dir"]) == 0
    assert (out / "README.md").read_bytes() != own["README.md"]  # overwrite keeps its meaning: replaced


def test_second_run_stops_naming_the_holder(finetune_main, image_folder, tiny_resnet, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    with locked_output_folder(out):  # a first run in progress, as far as the folder can tell
        before = snapshot(out)
        assert finetune_main(base_args(image_folder, tiny_resnet, out)) == 2
        err = capsys.readouterr().err
        assert f"in use by another run (pid {os.getpid()} on " in err and "Traceback" not in err
        assert snapshot(out) == before
    assert not (out / LOCK).exists()  # the holder wrote nothing else: it leaves nothing
    assert finetune_main(base_args(image_folder, tiny_resnet, out)) == 0


HOLD_LOCK = """
import sys, time
from pathlib import Path
from hf_resnet101.train.output_folder import locked_output_folder
with locked_output_folder(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_lock_of_a_killed_run_does_not_block(finetune_main, image_folder, tiny_resnet, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert finetune_main(base_args(image_folder, tiny_resnet, out)) == 2
        assert f"pid {holder.pid} on" in capsys.readouterr().err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert f"pid {holder.pid}" in (out / LOCK).read_text()  # left behind by the kill, holder info and all
    assert finetune_main(base_args(image_folder, tiny_resnet, out)) == 0


def test_ctrl_c_releases_the_lock_and_an_untrained_run_is_replaced(
    finetune_main, image_folder, tiny_resnet, tmp_path, monkeypatch
):
    from transformers import Trainer

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "train", interrupted)
        assert finetune_main(base_args(image_folder, tiny_resnet, out)) == 130
    start = time.monotonic()
    with locked_output_folder(out):
        assert time.monotonic() - start < 5
    assert (out / RUN_IDENTITY).is_file() and not list(out.glob("checkpoint-*"))
    # That run stopped before its first checkpoint: nothing trained to mislabel, so another command may replace it.
    assert finetune_main([*base_args(image_folder, tiny_resnet, out), "--learning_rate", "1e-3"]) == 0
    assert json.loads((out / RUN_IDENTITY).read_text())["learning_rate"] == 1e-3


def test_two_processes_share_the_lock_without_deadlock(image_folder, tiny_resnet, tmp_path):
    out = tmp_path / "out"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [*launch, RECIPE, *base_args(image_folder, tiny_resnet, out), "--per_device_train_batch_size", "4"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "x 2 process(es)" in first.stderr and json.loads((out / RUN_MANIFEST).read_text())["finished"]
    assert (out / LOCK).read_bytes() == b""
    before = snapshot(out)
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already finished" in again.stderr and snapshot(out) == before


def test_card_rendered_again_stays_a_run_output(finetune_main, finished, capsys):
    from conftest import run_cli

    args, out = finished
    (out / "README.md").write_text("stale")
    run_cli(capsys, ["card", str(out)])
    assert (out / "README.md").read_text() != "stale"
    assert finetune_main(args) == 0  # the card is the run's again: the rerun finds a finished run, not a user's file


def test_differences_name_each_changed_option_and_the_data_in_words():
    from hf_resnet101.train.run_identity import differences

    recorded = {"learning_rate": 5e-5, "seed": 42, "data_digest": "aa", "only_in_an_old_version": 1}
    current = {"learning_rate": 1e-3, "seed": 42, "data_digest": "bb", "only_in_a_new_version": 2}
    lines = differences(recorded, current)
    assert lines[0] == "learning_rate: 5e-05 -> 0.001"
    assert "the training data" in lines[1] and len(lines) == 2  # options one side lacks are not compared
    assert differences(recorded, recorded) == []


def test_ways_back_name_what_a_command_option_cannot_change():
    from hf_resnet101.train.run_identity import ways_back

    recorded = {"learning_rate": 5e-5, "data_digest": "aa", "world_size": 2}
    assert ways_back(recorded, {"learning_rate": 1e-3}) == ""  # options alone: the command says them
    both = ways_back(recorded, {"data_digest": "bb", "world_size": 1})
    assert "put its data back as it was" in both
    assert "launch it with 2 process(es) again (accelerate launch --multi_gpu --num_processes 2)" in both
    assert ways_back(recorded, {"data_digest": "aa", "world_size": 2}) == ""
