"""Runs that survive: kill -9 and resume, Ctrl-C, guarded output folders, early stopping, several processes."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from conftest import REPO_ROOT, logged_losses, run_offline, save_tiny_resnet
from safetensors.torch import load_file

from hf_resnet101.outputs import CHECKPOINT_COMPLETE, checkpoint_folder
from hf_resnet101.train.checkpoints import is_complete, last_complete_checkpoint, mark_complete

SCRIPT = str(REPO_ROOT / "tests" / "run_with_fault.py")
RECIPE = str(REPO_ROOT / "recipes" / "finetune.py")


def run_args(folder, model, out) -> list[str]:
    return [
        "--train_dir", str(folder), "--output_dir", str(out), "--model_name_or_path", str(model),
        "--num_train_epochs", "2", "--save_steps", "3", "--eval_strategy", "epoch", "--logging_steps", "1",
        "--seed", "7",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, request):
    from conftest import write_class_images

    root = tmp_path_factory.mktemp("resume")
    folder = write_class_images(root / "data", per_class=8)
    model = save_tiny_resnet(root / "model")
    out = root / "uninterrupted"
    result = run_offline([sys.executable, RECIPE, *run_args(folder, model, out)])
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, model, out


@pytest.mark.parametrize("fault", ["kill", "kill_during_save"])
def test_kill_and_rerun_matches_an_uninterrupted_run(fault, uninterrupted, tmp_path):
    folder, model, reference = uninterrupted
    out = tmp_path / "out"
    step = "7" if fault == "kill" else "9"
    killed = run_offline([sys.executable, SCRIPT, *run_args(folder, model, out)], FAULT=fault, FAULT_STEP=step)
    assert killed.returncode == -9
    assert not (out / "model.safetensors").exists()
    if fault == "kill_during_save":
        assert (out / "checkpoint-9").is_dir() and not (out / "checkpoint-9" / CHECKPOINT_COMPLETE).exists()

    resumed = run_offline([sys.executable, RECIPE, *run_args(folder, model, out)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stderr and "checkpoint-6" in resumed.stderr
    if fault == "kill_during_save":
        assert "Skipping" in resumed.stderr and "checkpoint-9" in resumed.stderr

    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 12
    expected, got = logged_losses(reference), logged_losses(out)
    assert set(got) >= set(range(7, 13))
    for step in range(7, 13):
        assert got[step] == pytest.approx(expected[step], rel=1e-4), step
    reference_metrics = json.loads((reference / "eval_results.json").read_text())
    metrics = json.loads((out / "eval_results.json").read_text())
    assert metrics["eval_accuracy"] == reference_metrics["eval_accuracy"]
    assert metrics["eval_loss"] == pytest.approx(reference_metrics["eval_loss"], rel=1e-4)
    # train_results.json times this process (steps 7-12); the time with checkpoint-6's before it is named apart
    train_results = json.loads((out / "train_results.json").read_text())
    assert train_results["train_runtime_all_processes"] > train_results["train_runtime"]


@pytest.mark.parametrize(("fault", "status"), [("interrupt", 130), ("terminate", 143)])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_and_exits_cleanly(uninterrupted, tmp_path, fault, status):
    # SIGTERM is what `kill`, `docker stop`, Kubernetes and batch schedulers send before they kill a job.
    folder, model, _ = uninterrupted
    out = tmp_path / "out"
    interrupted = run_offline([sys.executable, SCRIPT, *run_args(folder, model, out)], FAULT=fault, FAULT_STEP="4")
    assert interrupted.returncode == status, interrupted.stderr[-3000:]
    assert "checkpoint saved at step" in interrupted.stderr and "Traceback" not in interrupted.stderr
    complete = [p for p in out.glob("checkpoint-*") if (p / CHECKPOINT_COMPLETE).exists()]
    assert complete and max(int(p.name.split("-")[1]) for p in complete) >= 4
    resumed = run_offline([sys.executable, RECIPE, *run_args(folder, model, out)])
    assert resumed.returncode == 0 and json.loads((out / "trainer_state.json").read_text())["global_step"] == 12


@pytest.mark.parametrize("save_strategy", ["steps", "best"])
def test_ctrl_c_during_an_evaluation_saves_that_step(uninterrupted, tmp_path, save_strategy):
    """Evaluating every step, a stop during step 4's evaluation saves checkpoint 4 as it ends (not after step 5 and
    its evaluation); with --save_strategy best, where the Trainer saves only a new best, too."""
    folder, model, _ = uninterrupted
    out = tmp_path / "out"
    # A learning rate too small to change a prediction: step 1's evaluation stays the best, step 4's is not a new one.
    argv = ["--train_dir", str(folder), "--output_dir", str(out), "--model_name_or_path", str(model),
            "--max_steps", "8", "--eval_steps", "1", "--save_strategy", save_strategy, "--save_steps", "100",
            "--metric_for_best_model", "accuracy", "--learning_rate", "1e-12", "--precision", "fp32"]  # fmt: skip
    interrupted = run_offline([sys.executable, SCRIPT, *argv], FAULT="interrupt_during_eval", FAULT_STEP="4")
    assert interrupted.returncode == 130, interrupted.stderr[-3000:]
    assert f"checkpoint saved at step 4 in {out}" in interrupted.stderr
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert is_complete(out / "checkpoint-4") and state["best_global_step"] == 1
    assert [entry["step"] for entry in state["log_history"] if "eval_loss" in entry] == [1, 2, 3, 4]
    resumed = run_offline([sys.executable, RECIPE, *argv])
    assert resumed.returncode == 0 and "checkpoint-4" in resumed.stderr, resumed.stderr[-3000:]
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 8


def test_a_stop_that_reaches_one_process_stops_all_at_the_same_step(uninterrupted, tmp_path):
    """Two processes (gloo on the CPU): a SIGTERM that reaches only rank 1, after rank 0 has ended its step, stops
    both after the next one with a checkpoint; rank 0 used to wait for rank 1 in the next all-reduce until killed.
    Both exit with SIGTERM's status, 143 (rank 0 gave Ctrl-C's, 130, and the launcher named it the cause)."""
    folder, model, _ = uninterrupted
    out = tmp_path / "out"
    argv = ["--train_dir", str(folder), "--output_dir", str(out), "--model_name_or_path", str(model),
            "--max_steps", "8", "--eval_strategy", "no", "--per_device_train_batch_size", "2"]  # fmt: skip
    launch = [sys.executable, "-m", "accelerate.commands.launch", "-q", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip
    stopped = run_offline([*launch, SCRIPT, *argv], FAULT="terminate", FAULT_STEP="3", FAULT_RANK="1", timeout=180)
    assert "checkpoint saved at step 4 in" in stopped.stderr, stopped.stderr[-3000:]
    assert "exitcode  : 143" in stopped.stderr and "exitcode  : 130" not in stopped.stderr
    assert is_complete(out / "checkpoint-4")
    assert {p.name for p in (out / "checkpoint-4").glob("rng_state_*")} == {"rng_state_0.pth", "rng_state_1.pth"}
    resumed = run_offline([*launch, RECIPE, *argv], timeout=180)
    assert resumed.returncode == 0 and "checkpoint-4" in resumed.stderr, resumed.stderr[-3000:]
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 8


def test_a_process_that_dies_leaves_the_others_with_one_line_and_the_checkpoint(uninterrupted, tmp_path):
    """Rank 1 killed (SIGKILL) after step 3: rank 0's next all-reduce fails, and it printed gloo's traceback
    ("Connection reset by peer ... typically caused by a remote worker hanging or bugs in the application")."""
    folder, model, _ = uninterrupted
    out = tmp_path / "out"
    argv = ["--train_dir", str(folder), "--output_dir", str(out), "--model_name_or_path", str(model),
            "--max_steps", "8", "--eval_strategy", "no", "--per_device_train_batch_size", "2",
            "--save_steps", "2"]  # fmt: skip
    launch = [sys.executable, "-m", "accelerate.commands.launch", "-q", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip
    died = run_offline([*launch, SCRIPT, *argv], FAULT="kill", FAULT_STEP="3", FAULT_RANK="1", timeout=180)
    assert died.returncode != 0
    assert "error: Another training process ended during training" in died.stderr, died.stderr[-3000:]
    assert f"the last complete checkpoint, {out / 'checkpoint-2'}, is intact" in died.stderr
    assert "Connection reset by peer" not in died.stderr and "Traceback" not in died.stderr


def test_finished_run_and_foreign_folders_are_not_overwritten(
    finetune_main, capsys, image_folder, tiny_resnet, tmp_path
):
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet),
            "--eval_strategy", "no", "--save_strategy", "no"]  # fmt: skip
    assert finetune_main(args) == 0
    weights = (out / "model.safetensors").read_bytes()
    assert finetune_main(args) == 0  # the same command: finished, nothing to do (tests/train/test_run_identity.py)
    assert (out / "model.safetensors").read_bytes() == weights
    assert finetune_main([*args, "--learning_rate", "1e-3"]) == 2
    assert "of a different run (learning_rate: 5e-05 -> 0.001)" in capsys.readouterr().err
    assert finetune_main([*args, "--overwrite_output_dir"]) == 0

    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.tex").write_text("precious")
    assert finetune_main([*args[:2], "--output_dir", str(foreign), *args[4:]]) == 2
    assert "not from a training run" in capsys.readouterr().err
    assert (foreign / "chapter1.tex").read_text() == "precious"


def test_unwritable_output_folder(finetune_main, capsys, image_folder, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert finetune_main(["--train_dir", str(image_folder), "--output_dir", str(blocker / "out")]) == 2
    assert "Cannot write to --output_dir" in capsys.readouterr().err


def test_early_stopping_stops_and_says_so_in_the_log_and_the_card(
    finetune_main, image_folder, tiny_resnet, tmp_path, caplog
):
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet),
            "--num_train_epochs", "5", "--learning_rate", "1e-9", "--early_stopping_patience", "2"]  # fmt: skip
    assert finetune_main(args) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    step, planned = state["global_step"], state["max_steps"]
    assert step < planned == 30  # stopped long before 5 epochs x 6 steps
    logged = " ".join(caplog.text.split())
    assert f"did not improve eval_accuracy, so training stopped at step {step} of {planned}." in logged
    card = " ".join((out / "README.md").read_text().split())
    assert f"Training stopped early, at step {step} of the {planned} planned" in card
    assert "| early_stopping_patience | 2 |" in (out / "README.md").read_text()


def test_token_never_written(finetune_main, image_folder, tiny_resnet, tmp_path, monkeypatch):
    token = "hf_FAKEtokenDoNotLeak1234567890"
    monkeypatch.setenv("HF_TOKEN", token)
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet),
            "--hub_token", token, "--save_steps", "3"]  # fmt: skip
    assert finetune_main(args) == 0
    for path in out.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path


def test_accelerate_configs_load_and_cpu_config_runs(image_folder, tiny_resnet, tmp_path):
    from accelerate.commands.config.config_args import load_config_from_file

    configs = sorted((REPO_ROOT / "recipes" / "accelerate").glob("*.yaml"))
    assert {p.stem for p in configs} == {"cpu", "multi_gpu", "multi_node", "single_gpu_fp16"}
    for path in configs:
        assert "accelerate launch --config_file" in path.read_text()
        assert load_config_from_file(str(path)).num_processes >= 1
    out = tmp_path / "out"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
              str(REPO_ROOT / "recipes" / "accelerate" / "single_gpu_fp16.yaml")]  # fmt: skip
    result = run_offline([*launch, RECIPE, "--train_dir", str(image_folder), "--output_dir", str(out),
                  "--model_name_or_path", str(tiny_resnet), "--eval_strategy", "no"])  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # The fp16 config on a machine without a GPU: the run says what it used instead, and who asked for fp16.
    asked = "accelerate launch's mixed_precision fp16 (its flag or config file) asked for"
    assert f"precision: bf16 autocast on CPU ({asked}" in result.stderr or f"fp32 on CPU ({asked}" in result.stderr


def test_the_last_complete_checkpoint_skips_a_newer_one_cut_short(tmp_path):
    for step in (3, 6, 9):
        checkpoint_folder(tmp_path, step).mkdir()
    assert last_complete_checkpoint(tmp_path) is None
    for step in (3, 6):
        mark_complete(checkpoint_folder(tmp_path, step), step)
    # checkpoint-9 was being written when the run was killed: no marker, so not resumed from
    assert not is_complete(checkpoint_folder(tmp_path, 9))
    assert last_complete_checkpoint(tmp_path) == checkpoint_folder(tmp_path, 6)
    assert (checkpoint_folder(tmp_path, 6) / CHECKPOINT_COMPLETE).is_file()


def test_another_runs_checkpoint_is_refused_for_its_options_with_the_ways_on(
    finetune_main, capsys, image_folder, tiny_resnet, tmp_path
):
    first = tmp_path / "first"
    args = ["--train_dir", str(image_folder), "--model_name_or_path", str(tiny_resnet), "--max_steps", "4",
            "--save_steps", "2", "--eval_strategy", "no"]  # fmt: skip
    assert finetune_main([*args, "--output_dir", str(first)]) == 0
    checkpoint = first / "checkpoint-2"
    again = [*args, "--output_dir", str(tmp_path / "new"), "--resume_from_checkpoint", str(checkpoint)]
    assert finetune_main([*again, "--learning_rate", "1e-4"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"--resume_from_checkpoint {checkpoint} was saved by a run with other options (learning_rate:" in err
    assert f"start a new run from its weights with --model_name_or_path {checkpoint}" in err
    assert "--overwrite_output_dir" not in err and not (tmp_path / "new").exists()


def test_a_run_stopped_after_training_ends_on_the_best_evaluations_weights_as_an_unstopped_one(
    finetune_main, image_folder, tiny_resnet, tmp_path, monkeypatch
):
    """Stopped while finishing (the card), then run again: it finishes from the last step's checkpoint, and must
    end on the weights an uninterrupted run keeps (the best evaluation's, from its checkpoint), not the last."""
    import hf_resnet101.train.finish as finish

    def run(out, interrupt=False):
        args = ["--train_dir", str(image_folder), "--model_name_or_path", str(tiny_resnet), "--output_dir", str(out),
                "--num_train_epochs", "3", "--eval_strategy", "epoch", "--save_strategy", "epoch",
                "--load_best_model_at_end", "True", "--metric_for_best_model", "loss", "--greater_is_better", "True",
                "--learning_rate", "0.01", "--seed", "5"]  # fmt: skip
        if not interrupt:
            return finetune_main(args)
        with monkeypatch.context() as patch:
            patch.setattr(finish, "write_model_card", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
            return finetune_main(args)

    assert run(tmp_path / "reference") == 0
    state = json.loads((tmp_path / "reference" / "trainer_state.json").read_text())
    assert state["best_global_step"] < state["global_step"]  # the highest loss: not the last epoch's
    stopped = tmp_path / "stopped"
    assert run(stopped, interrupt=True) == 130
    assert run(stopped) == 0
    reference = load_file(tmp_path / "reference" / "model.safetensors")
    resumed = load_file(stopped / "model.safetensors")
    assert all(torch.equal(resumed[name], tensor) for name, tensor in reference.items())
    card = (stopped / "README.md").read_text()
    assert f"(step {state['best_global_step']} of {state['global_step']}" in card


def test_the_last_steps_checkpoint_keeps_the_evaluation_made_after_it_was_saved(
    finetune_main, image_folder, tiny_resnet, tmp_path, monkeypatch
):
    """Saved by step at an epoch's end, the checkpoint precedes that epoch's evaluation: a run finished from it
    kept one evaluation less in its log and curves than an unstopped run."""
    import hf_resnet101.train.finish as finish

    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--model_name_or_path", str(tiny_resnet), "--output_dir", str(out),
            "--num_train_epochs", "2", "--eval_strategy", "epoch", "--save_steps", "1"]  # fmt: skip
    with monkeypatch.context() as patch:
        patch.setattr(finish, "write_model_card", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        assert finetune_main(args) == 130
    assert finetune_main(args) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    evaluated = [entry["step"] for entry in state["log_history"] if "eval_loss" in entry]
    assert evaluated == [state["global_step"] // 2, state["global_step"]]  # each epoch's


def test_a_checkpoint_at_an_epochs_end_holds_that_epochs_evaluation(
    finetune_main, image_folder, tiny_resnet, tmp_path
):
    """Evaluated by epoch, saved by step: the Trainer saves before the epoch's evaluation, so a run resumed from
    that checkpoint never made it (its curves, log and best model differed from an unstopped run's)."""
    out = tmp_path / "out"
    args = ["--train_dir", str(image_folder), "--model_name_or_path", str(tiny_resnet), "--output_dir", str(out),
            "--num_train_epochs", "2", "--eval_strategy", "epoch", "--save_steps", "1",
            "--save_total_limit", "20"]  # fmt: skip
    assert finetune_main(args) == 0
    steps = json.loads((out / "trainer_state.json").read_text())["global_step"]
    for step in (steps // 2, steps):  # each epoch's last step
        saved = json.loads((checkpoint_folder(out, step) / "trainer_state.json").read_text())
        assert step in [entry["step"] for entry in saved["log_history"] if "eval_loss" in entry]
    assert checkpoint_folder(out, 1).is_dir()  # the other steps are still saved as asked
