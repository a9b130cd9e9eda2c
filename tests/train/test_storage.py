"""Failures a user meets mid-run: a disk that fills up, a damaged checkpoint, a base model that is an unsafe pickle.

Each ends with one message and exit status 2, no traceback, and nothing half-written left behind. The full disk is
real failing writes: `tests/run_with_fault.py` lowers RLIMIT_FSIZE at a chosen moment, so the kernel refuses every
later write past 64 bytes (EFBIG, where a full disk gives ENOSPC) whatever library makes it.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT, save_tiny_resnet, write_class_images

from hf_resnet101.outputs import CHECKPOINT_COMPLETE, LOCK

SCRIPT = str(REPO_ROOT / "tests" / "run_with_fault.py")
RECIPE = str(REPO_ROOT / "recipes" / "finetune.py")


@pytest.fixture(scope="module")
def data_and_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("failures")
    return write_class_images(root / "data", per_class=8), save_tiny_resnet(root / "model")


def run(script: str, folder, model, out, *extra: str, **env) -> subprocess.CompletedProcess:
    args: list[str] = ["--train_dir", str(folder), "--output_dir", str(out), "--model_name_or_path", str(model),
            "--num_train_epochs", "1", "--save_steps", "2", "--eval_strategy", "no", "--seed", "3"]  # fmt: skip
    args += extra
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", **env}
    return subprocess.run([sys.executable, script, *args], env=full_env, capture_output=True, text=True, timeout=600)


def snapshot(folder) -> dict[str, bytes]:
    """Every file's bytes, but the lock file's (who holds the folder: emptied when a run lets go of it)."""
    files = (p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK)
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


def assert_clean_failure(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_disk_full_during_a_checkpoint(data_and_model, tmp_path):
    folder, model = data_and_model
    out = tmp_path / "out"
    failed = run(SCRIPT, folder, model, out, FAULT="disk_full", FAULT_STEP="4")
    assert_clean_failure(failed, f"Could not write a checkpoint to {out}: File too large")
    assert f"The last complete checkpoint, {out / 'checkpoint-2'}, is intact" in failed.stderr
    # The checkpoint that was being written is gone; the one before it is whole.
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    assert (out / "checkpoint-2" / CHECKPOINT_COMPLETE).is_file()
    # Space freed, the same command resumes and finishes.
    again = run(RECIPE, folder, model, out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"Resuming from {out / 'checkpoint-2'}" in again.stderr
    assert (out / "model.safetensors").is_file()


def test_disk_full_during_the_final_save(data_and_model, tmp_path):
    folder, model = data_and_model
    out = tmp_path / "out"
    failed = run(SCRIPT, folder, model, out, FAULT="disk_full", FAULT_STEP="0")
    assert_clean_failure(failed, f"Could not write the final model to {out}: File too large")
    assert not (out / "model.safetensors").exists() and not (out / ".final-tmp").exists()


def test_disk_full_after_the_final_save(data_and_model, tmp_path):
    folder, model = data_and_model
    out = tmp_path / "out"
    failed = run(SCRIPT, folder, model, out, FAULT="disk_full", FAULT_STEP="-1")
    assert_clean_failure(failed, f"Could not write the run's results to {out}: File too large")
    assert "The final model is saved in" in failed.stderr
    assert (out / "model.safetensors").is_file()
    for path in out.glob("*.json"):  # no result file cut short
        json.loads(path.read_text())
    assert not (out / "README.md").exists() and not (out / "train_results.json").exists()
    again = run(RECIPE, folder, model, out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "eval_results.json").read_text())["eval_accuracy"] >= 0
    assert (out / "README.md").is_file()


def test_damaged_checkpoint_is_named_before_resuming(data_and_model, tmp_path):
    folder, model = data_and_model
    out = tmp_path / "out"
    killed = run(SCRIPT, folder, model, out, FAULT="kill", FAULT_STEP="5")
    assert killed.returncode == -9
    newest = out / "checkpoint-4"
    rng_state = newest / "rng_state.pth"
    rng_state.write_bytes(rng_state.read_bytes()[:100])  # cut short, as by a failing disk
    before = snapshot(out)
    failed = run(RECIPE, folder, model, out)
    assert_clean_failure(failed, f"Checkpoint {newest} is damaged and cannot be resumed: rng_state.pth")
    assert f"--resume_from_checkpoint {out / 'checkpoint-2'}" in failed.stderr
    assert snapshot(out) == before
    # The earlier checkpoint it offers does resume.
    again = run(RECIPE, folder, model, out, "--resume_from_checkpoint", str(out / "checkpoint-2"))
    assert again.returncode == 0, again.stderr[-3000:]


def test_base_model_that_is_an_unsafe_pickle(finetune_main, capsys, data_and_model, tmp_path):
    folder, model = data_and_model
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        (pickled / name).write_bytes((model / name).read_bytes())

    class RunsCode:
        def __reduce__(self):
            return (print, ("PICKLE CODE RAN",))

    torch.save({"weight": RunsCode()}, pickled / "pytorch_model.bin")
    args = ["--train_dir", str(folder), "--output_dir", str(tmp_path / "out"), "--model_name_or_path", str(pickled)]
    assert finetune_main(args) == 2
    captured = capsys.readouterr()
    assert "are a pickle (e.g. pytorch_model.bin) that holds more than tensors" in captured.err
    assert "PICKLE CODE RAN" not in captured.out + captured.err


def test_write_failures_are_recognised_through_the_libraries_wrappers():
    import errno

    from hf_resnet101.train.storage import write_failure_reason

    full = OSError(errno.ENOSPC, "No space left on device")
    assert write_failure_reason(full) == "No space left on device"
    try:
        try:
            raise full
        except OSError as error:
            raise RuntimeError("saving failed") from error
    except RuntimeError as wrapped:
        assert write_failure_reason(wrapped) == "No space left on device"
    assert write_failure_reason(RuntimeError("[enforce fail at inline_container.cc] unexpected pos 64 vs 0")) == (
        "the file could not be written in full (a full disk, a quota or a file-size limit)"
    )
    # What safetensors 0.8 and torch 2.14 raised on a full 40-160 kB tmpfs (the checkpoint's weights, its optimizer).
    from safetensors import SafetensorError

    safetensors_full = SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert write_failure_reason(safetensors_full) == "No space left on device"
    assert write_failure_reason(RuntimeError("basic_ios::clear: iostream error")) == (
        "the file could not be written in full (a full disk, a quota or a file-size limit)"
    )
    # A file-size limit (ulimit -f): freeing space would not help, so it is named.
    too_large = write_failure_reason(OSError(errno.EFBIG, "File too large"))
    assert too_large == "File too large (a file-size limit: see `ulimit -f`)"
    assert write_failure_reason(FileNotFoundError(errno.ENOENT, "No such file")) is None
    assert write_failure_reason(ValueError("a bug")) is None


def test_a_failed_write_becomes_one_message_and_other_errors_pass(tmp_path):
    import errno

    from hf_resnet101.errors import UsageError
    from hf_resnet101.train.storage import reporting_write_failures

    cleaned = []
    expected = r"Could not write the final model to .*: Disk quota exceeded\. Kept\."
    with (
        pytest.raises(UsageError, match=expected),
        reporting_write_failures("the final model", tmp_path, after=lambda: cleaned.append(1) or "Kept."),
    ):
        raise OSError(errno.EDQUOT, "Disk quota exceeded")
    assert cleaned == [1]
    with pytest.raises(KeyError), reporting_write_failures("a checkpoint", tmp_path, after=lambda: cleaned.append(2)):
        raise KeyError("not a write")
    assert cleaned == [1]


def test_incomplete_checkpoints_are_removed_and_damaged_files_named(tmp_path):
    import zipfile

    from safetensors.torch import save_file

    from hf_resnet101.train.storage import damaged_checkpoint_files, remove_incomplete_checkpoints

    for name in ("checkpoint-1", "checkpoint-2"):
        (tmp_path / name).mkdir()
    (tmp_path / "checkpoint-2" / CHECKPOINT_COMPLETE).write_text("{}")
    removed = remove_incomplete_checkpoints(tmp_path, lambda folder: (folder / CHECKPOINT_COMPLETE).exists())
    assert removed == [tmp_path / "checkpoint-1"] and [p.name for p in tmp_path.iterdir()] == ["checkpoint-2"]

    checkpoint = tmp_path / "checkpoint-2"
    save_file({"w": torch.zeros(2)}, checkpoint / "model.safetensors")
    with zipfile.ZipFile(checkpoint / "optimizer.pt", "w") as archive:
        archive.writestr("data.pkl", b"x" * 100)
    (checkpoint / "trainer_state.json").write_text("{}")
    assert damaged_checkpoint_files(checkpoint) == {}
    (checkpoint / "trainer_state.json").write_text('{"global_step": ')
    (checkpoint / "model.safetensors").write_bytes((checkpoint / "model.safetensors").read_bytes()[:20])
    damaged = damaged_checkpoint_files(checkpoint)
    assert set(damaged) == {"trainer_state.json", "model.safetensors"}
    assert damaged["trainer_state.json"].startswith("JSONDecodeError")


def test_full_disk_leaves_no_half_written_model(finetune_main, capsys, image_folder, tiny_resnet, tmp_path,
                                                monkeypatch):  # fmt: skip
    from transformers import Trainer

    save_model = Trainer.save_model

    def full_disk(self, output_dir=None, _internal_call=False):
        if output_dir and output_dir.endswith(".final-tmp"):
            save_model(self, output_dir, _internal_call)  # writes part of it, then the disk fills up
            raise OSError(errno.ENOSPC, "No space left on device")
        return save_model(self, output_dir, _internal_call)

    monkeypatch.setattr(Trainer, "save_model", full_disk)
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet),
            "--save_steps", "2", "--eval_strategy", "no"]  # fmt: skip
    assert finetune_main(args) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "is intact" in err
    assert not (out / "model.safetensors").exists() and not (out / ".final-tmp").exists()
    assert (out / "checkpoint-6" / CHECKPOINT_COMPLETE).exists()


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_saved_weights_are_as_readable_as_the_other_files(data_and_model, tmp_path):
    """safetensors writes 0600 whatever the umask; the run's weights, final and in checkpoints, get the mode the
    umask gives its config.json, so another user (or a container's) can load the model the folder looks to hold."""
    folder, model = data_and_model
    out, umask = tmp_path / "out", 0o027  # group may read, others not: neither 0600 nor the usual 0644
    result = subprocess.run(
        ["bash", "-c", f'umask {umask:03o} && exec "$@"', "bash", sys.executable, RECIPE,
         "--train_dir", str(folder), "--output_dir", str(out), "--model_name_or_path", str(model),
         "--max_steps", "2", "--save_steps", "2", "--eval_strategy", "no", "--precision", "fp32"],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    expected = 0o666 & ~umask
    for weights in (out / "model.safetensors", out / "checkpoint-2" / "model.safetensors"):
        assert weights.stat().st_mode & 0o777 == expected, weights
    assert (out / "config.json").stat().st_mode & 0o777 == expected


def test_weights_mode_chosen_by_the_user_is_kept(tmp_path):
    from hf_resnet101.train.storage import open_weights_to_umask

    chosen, written = tmp_path / "chosen.safetensors", tmp_path / "written.safetensors"
    for path in (chosen, written):
        path.write_bytes(b"x")
    os.chmod(chosen, 0o640)
    os.chmod(written, 0o600)
    old = os.umask(0o022)
    try:
        open_weights_to_umask(tmp_path)
    finally:
        os.umask(old)
    assert chosen.stat().st_mode & 0o777 == 0o640
    assert written.stat().st_mode & 0o777 == 0o644
