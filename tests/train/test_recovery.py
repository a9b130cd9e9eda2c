"""Recovery that says what is intact: a damaged checkpoint named before training, results cut short removed."""

from __future__ import annotations

import os
import time

import pytest

from hf_resnet101.config.options import FinetuneTrainingArguments
from hf_resnet101.errors import UsageError
from hf_resnet101.outputs import checkpoint_folder
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
        mark_complete(folder, step)
    check_checkpoint_readable(damaged)  # sound: nothing to say
    (damaged / "model.safetensors").write_bytes(b"\x00" * 10)  # truncated
    with pytest.raises(UsageError, match=r"model.safetensors .*--resume_from_checkpoint .*checkpoint-2"):
        check_checkpoint_readable(damaged)


def test_results_written_after_the_failure_began_are_removed(tmp_path):
    (tmp_path / "model.safetensors").write_text("the final model, saved before")
    os.utime(tmp_path / "model.safetensors", (time.time() - 60, time.time() - 60))
    started = time.time() - 1
    (tmp_path / "README.md").write_text("a card cut short")
    args = FinetuneTrainingArguments(output_dir=str(tmp_path), report_to="none")
    message = after_failed_results(args, started)
    assert not (tmp_path / "README.md").exists() and (tmp_path / "model.safetensors").exists()
    assert "run the same command again" in message
