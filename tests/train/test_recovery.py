"""Recovery that says what is intact: a damaged checkpoint named before training, results cut short removed."""

from __future__ import annotations

import json
import os
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from hf_resnet101.config.options import FinetuneTrainingArguments
from hf_resnet101.errors import UsageError
from hf_resnet101.outputs import CHECKPOINT_COMPLETE, checkpoint_folder
from hf_resnet101.train.checkpoints import mark_complete
from hf_resnet101.train.recovery import after_failed_results, check_checkpoint_readable, first_sentences


def test_first_sentences_of_a_long_error():
    message = "CUDA out of memory. Tried to allocate 98.00 MiB. GPU 0 has 1 GiB free.\nOf the allocated memory..."
    assert first_sentences(message) == "CUDA out of memory. Tried to allocate 98.00 MiB"


def test_a_damaged_checkpoint_is_named_with_the_one_to_resume_instead(tmp_path):
    earlier, damaged = checkpoint_folder(tmp_path, 2), checkpoint_folder(tmp_path, 4)
    for step, folder in ((2, earlier), (4, damaged)):
        folder.mkdir()
        (folder / "trainer_state.json").write_text("{}")
        save_file({"w": torch.zeros(2)}, folder / "model.safetensors")
        for name in ("optimizer.pt", "scheduler.pt"):
            torch.save({}, folder / name)
        mark_complete(folder, step)
    check_checkpoint_readable(damaged)  # sound: nothing to say
    (damaged / "model.safetensors").write_bytes(b"\x00" * 10)  # truncated
    with pytest.raises(UsageError, match=r"model.safetensors .*--resume_from_checkpoint .*checkpoint-2"):
        check_checkpoint_readable(damaged)


@pytest.mark.parametrize("deleted", ["optimizer.pt", "scheduler.pt", "model.safetensors", "trainer_state.json"])
def test_a_checkpoint_missing_a_file_is_not_resumed(
    finetune_main, image_folder, tiny_resnet, tmp_path, monkeypatch, capsys, deleted
):
    """Without its optimizer or schedule the Trainer resumed with fresh ones and no word (other weights than an
    uninterrupted run); without its weights or state it failed with a traceback."""
    import hf_resnet101.train.finish as finish

    out = tmp_path / "out"
    argv = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet),
            "--max_steps", "4", "--save_steps", "2", "--eval_strategy", "no"]  # fmt: skip

    def interrupted_card(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(finish, "write_model_card", interrupted_card)
        assert finetune_main(argv) == 130
    (out / "checkpoint-4" / deleted).unlink()
    assert finetune_main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"checkpoint-4 is damaged and cannot be resumed: {deleted} (missing)" in err and "Traceback" not in err
    assert f"--resume_from_checkpoint {out / 'checkpoint-2'}" in err


def test_a_finished_output_folder_given_as_the_checkpoint_is_named_for_what_it_is(
    finetune_main, trained_run, tmp_path, capsys
):
    finished = trained_run["output"]
    argv = ["--train_dir", str(trained_run["train"]), "--validation_dir", str(trained_run["validation"]),
            "--output_dir", str(tmp_path / "more"), "--resume_from_checkpoint", str(finished)]  # fmt: skip
    assert finetune_main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"--resume_from_checkpoint {finished} is not a checkpoint (it has no optimizer.pt, scheduler.pt" in err
    assert f"--model_name_or_path {finished} to fine-tune that model further" in err


def test_results_written_after_the_failure_began_are_removed(tmp_path):
    (tmp_path / "model.safetensors").write_text("the final model, saved before")
    os.utime(tmp_path / "model.safetensors", (time.time() - 60, time.time() - 60))
    started = time.time() - 1
    (tmp_path / "README.md").write_text("a card cut short")
    args = FinetuneTrainingArguments(output_dir=str(tmp_path), report_to="none")
    message = after_failed_results(args, started)
    assert not (tmp_path / "README.md").exists() and (tmp_path / "model.safetensors").exists()
    assert "run the same command again" in message


def test_a_run_stopped_after_its_last_step_finishes_from_it_without_training_further(
    finetune_main, image_folder, tiny_resnet, tmp_path, monkeypatch, caplog
):
    # Ctrl-C while the card is written: training has ended, checkpoint-4 is the last step (mid-epoch: 6 steps make
    # one). Run again, the Trainer would resume it and train a step past --max_steps, changing the model.
    import hf_resnet101.train.finish as finish

    out = tmp_path / "out"
    argv = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet),
            "--max_steps", "4", "--save_steps", "2", "--eval_strategy", "no", "--seed", "1"]  # fmt: skip

    def interrupted_card(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(finish, "write_model_card", interrupted_card)
        assert finetune_main(argv) == 130
    assert (out / "checkpoint-4").is_dir() and not (out / "README.md").exists()
    trained_seconds = json.loads((out / "checkpoint-4" / CHECKPOINT_COMPLETE).read_text())["training_seconds"]
    assert trained_seconds > 0
    last_step_weights = load_file(out / "checkpoint-4" / "model.safetensors")

    assert finetune_main(argv) == 0
    assert "is the last step of training (4 of 4): the run finishes from it without training further" in caplog.text
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and not (out / "checkpoint-5").exists()
    final = load_file(out / "model.safetensors")
    assert all(torch.equal(final[name], tensor) for name, tensor in last_step_weights.items())
    assert (out / "README.md").is_file()
    card_inputs = json.loads((out / "card_inputs.json").read_text())
    assert card_inputs["train_runtime_s"] == pytest.approx(trained_seconds, abs=0.01)  # the first process's time
    train_results = json.loads((out / "train_results.json").read_text())
    assert train_results["train_runtime_all_processes"] == pytest.approx(trained_seconds, abs=0.01)
