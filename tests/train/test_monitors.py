"""Watching a run: a diverged loss stops it with remedies, overfitting is warned once, Ctrl-C stops it cleanly."""

from __future__ import annotations

import json
import math
import os
import signal
from types import SimpleNamespace

import pytest
import torch
from conftest import save_tiny_resnet, write_class_images
from safetensors.torch import load_file, save_file
from transformers import TrainerControl, TrainerState

from hf_resnet101.errors import UsageError
from hf_resnet101.train.monitors import (
    DivergenceCallback,
    EpochCallback,
    GracefulInterrupt,
    OverfittingMonitor,
    TrainingDiverged,
)


def state(step: int = 7, log_history: list[dict] | None = None, epoch: float | None = None) -> TrainerState:
    result = TrainerState(global_step=step, epoch=epoch)
    result.log_history = log_history or []
    return result


@pytest.mark.parametrize(("key", "which"), [("loss", "training"), ("eval_loss", "validation")])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_non_finite_loss_stops_the_run_with_remedies(key, which, value):
    with pytest.raises(TrainingDiverged, match=f"The {which} loss became {value} at step 7") as raised:
        DivergenceCallback().on_log(None, state(), TrainerControl(), logs={key: value})
    assert isinstance(raised.value, UsageError) and "--learning_rate" in str(raised.value)


def test_finite_losses_and_other_logs_pass():
    DivergenceCallback().on_log(None, state(), TrainerControl(), logs={"loss": 0.5, "learning_rate": math.nan})
    DivergenceCallback().on_log(None, state(), TrainerControl(), logs=None)


def model_for(num_labels: int):
    return SimpleNamespace(config=SimpleNamespace(num_labels=num_labels))


def test_an_exploded_training_loss_stops_the_run_though_finite():
    """100x a chance guess's loss (ln 3 = 1.1 for 3 classes) is divergence; a high validation loss is not."""
    callback = DivergenceCallback()
    callback.on_log(None, state(), TrainerControl(), logs={"loss": 100.0, "eval_loss": 500.0}, model=model_for(3))
    with pytest.raises(TrainingDiverged, match=r"reached 153.6 at step 7, over 100x a chance guess's \(1.1 for 3"):
        callback.on_log(None, state(), TrainerControl(), logs={"loss": 153.6}, model=model_for(3))
    # more classes, a higher chance loss: 200 classes allow up to 530
    callback.on_log(None, state(), TrainerControl(), logs={"loss": 500.0}, model=model_for(200))


def test_the_fp16_remedy_only_where_fp16_ran():
    for fp16 in (False, True):
        with pytest.raises(TrainingDiverged) as raised:
            DivergenceCallback().on_log(SimpleNamespace(fp16=fp16), state(), TrainerControl(), logs={"loss": math.nan})
        assert ("--bf16 instead of --fp16" in str(raised.value)) == fp16


def evaluate(monitor: OverfittingMonitor, train_loss: float, eval_loss: float, step: int) -> None:
    history = [{"loss": 9.0}, {"loss": train_loss}]
    metrics = {"eval_loss": eval_loss, "eval_accuracy": 0.5}
    monitor.on_evaluate(None, state(step, history), TrainerControl(), metrics=metrics)


def test_overfitting_is_recorded_once_after_patience_evaluations(tmp_path):
    monitor = OverfittingMonitor(ratio=1.5, margin=0.1, patience=3)
    evaluate(monitor, 0.2, 0.8, step=1)
    evaluate(monitor, 0.2, 0.8, step=2)
    assert monitor.events == []
    for step in (3, 4, 5):
        evaluate(monitor, 0.2, 0.8, step=step)
    assert monitor.events == [{"step": 3, "train_loss": 0.2, "eval_loss": 0.8, "eval_accuracy": 0.5}]
    monitor.save(tmp_path)
    assert json.loads((tmp_path / "monitors.json").read_text()) == {"overfitting": monitor.events}


def test_a_gap_must_last_and_be_large_enough():
    monitor = OverfittingMonitor(patience=2)
    evaluate(monitor, 0.2, 0.8, step=1)
    evaluate(monitor, 0.2, 0.25, step=2)  # caught up: the streak restarts
    evaluate(monitor, 0.2, 0.8, step=3)
    evaluate(monitor, 0.01, 0.05, step=4)  # 5x the training loss, but within the margin
    assert monitor.events == []
    monitor.on_evaluate(None, state(5), TrainerControl(), metrics={"eval_loss": 3.0})  # no training loss yet
    assert monitor.events == []


def test_a_data_loading_worker_leaves_the_stop_to_the_training_process(caplog):
    """A worker forked after the handler was installed inherits it; Ctrl-C reaches the whole process group, and each
    worker used to print the stop's note too."""
    interrupt = GracefulInterrupt()
    interrupt.install()
    try:
        interrupt.owner_pid = os.getpid() + 1  # as seen from a worker: the handler was installed by another process
        interrupt._handle(signal.SIGINT, None)
        assert not interrupt.requested and "Interrupted" not in caplog.text
        interrupt.owner_pid = os.getpid()
        interrupt._handle(signal.SIGINT, None)
        assert interrupt.requested and interrupt.exit_signal_number == signal.SIGINT
    finally:
        interrupt.uninstall()


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_first_ctrl_c_or_sigterm_saves_and_stops_after_the_step_the_second_aborts(number):
    # Python's default handler, or SIG_IGN where a shell started the tests in the background: restored either way.
    before = {sent: signal.getsignal(sent) for sent in (signal.SIGINT, signal.SIGTERM)}
    interrupt = GracefulInterrupt()
    interrupt.install()
    try:
        control = interrupt.on_step_end(None, state(), TrainerControl())
        assert not control.should_save and not control.should_training_stop
        os.kill(os.getpid(), number)
        control = interrupt.on_step_end(None, state(), TrainerControl())
        assert control.should_save and control.should_training_stop and interrupt.signal_number == number
        passed_on = signal.SIGTERM if number == signal.SIGINT else signal.SIGINT
        os.kill(os.getpid(), passed_on)  # a launcher passing the same stop on: the checkpoint is still saved
        assert interrupt.requested and interrupt.signal_number == number
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), number)
    finally:
        interrupt.uninstall()
    assert {sent: signal.getsignal(sent) for sent in (signal.SIGINT, signal.SIGTERM)} == before


def test_the_seeded_transform_learns_the_epoch_including_after_a_resume():
    class Transform:
        epoch = 0

    transform = Transform()
    callback = EpochCallback(transform)
    callback.on_epoch_begin(None, state(epoch=2.0), TrainerControl())
    assert transform.epoch == 2
    callback.on_epoch_begin(None, state(epoch=3.4), TrainerControl())  # resumed mid-epoch
    assert transform.epoch == 3
    callback.on_epoch_begin(None, state(epoch=None), TrainerControl())
    assert transform.epoch == 0


def test_nan_loss_stops_with_remedies(finetune_main, capsys, image_folder, tmp_path):
    model = save_tiny_resnet(tmp_path / "corrupt")
    weights = load_file(model / "model.safetensors")
    key = "resnet.embedder.embedder.convolution.weight"
    weights[key] = torch.full_like(weights[key], float("nan"))
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    args = ["--train_dir", str(image_folder), "--output_dir", str(tmp_path / "out"), "--model_name_or_path",
            str(model), "--logging_steps", "1"]  # fmt: skip
    assert finetune_main(args) == 2
    err = capsys.readouterr().err
    assert "diverged" in err and "--learning_rate" in err and "step 1" in err


def test_a_learning_rate_far_too_high_stops_before_a_model_is_saved(finetune_main, capsys, tmp_path):
    """--learning_rate 1e4 sent the tiny model's loss to 1e9 and back to 0 with no NaN: the run used to save a model
    no better than chance and call the gap between the losses overfitting."""
    data = write_class_images(tmp_path / "data", per_class=6)
    out = tmp_path / "out"
    args = ["--train_dir", str(data), "--output_dir", str(out), "--model_name_or_path",
            str(save_tiny_resnet(tmp_path / "model")), "--learning_rate", "1e4", "--max_steps", "10",
            "--logging_steps", "1", "--eval_strategy", "no", "--seed", "3"]  # fmt: skip
    assert finetune_main(args) == 2
    err = capsys.readouterr().err
    assert "training diverged. Try: lower --learning_rate" in err and "Traceback" not in err
    assert "--bf16 instead of --fp16" not in err  # the tests train in fp32
    assert not (out / "model.safetensors").exists()


def test_the_passes_after_training_have_named_progress_bars(
    finetune_main, image_folder, tiny_resnet, tmp_path, capsys
):
    """The final evaluation and the card's training-sample pass showed bare bars under the metrics."""
    argv = ["--train_dir", str(image_folder), "--model_name_or_path", str(tiny_resnet), "--max_steps", "1"]
    assert finetune_main([*argv, "--eval_strategy", "no", "--output_dir", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    splits = (tmp_path / "out" / "splits.csv").read_text().splitlines()
    validation = sum(line.startswith("validation,") for line in splits)
    assert f"Final evaluation ({validation} validation images): 100%" in err
    assert f"Card: accuracy on {validation} training images: 100%" in err
