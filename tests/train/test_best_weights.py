"""`--load_best_model_at_end` ends with the best evaluation's weights, kept in memory when no checkpoint was saved
at that evaluation."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from conftest import run_cli, save_tiny_resnet
from transformers import TrainerControl, TrainerState, TrainingArguments

from hf_resnet101.outputs import BEST_WEIGHTS, checkpoint_folder, checkpoint_folders
from hf_resnet101.train.best_weights import (
    BestWeightsKeeper,
    checkpoint_step,
    greater_is_better,
    improves,
    model_selection,
)


def arguments(tmp_path, **kwargs) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(tmp_path), eval_strategy="steps", save_strategy="steps", load_best_model_at_end=True, **kwargs
    )


def evaluate(keeper: BestWeightsKeeper, args, state: TrainerState, model: torch.nn.Module, accuracy: float) -> None:
    """A training step that sets the weights to `accuracy`, then an evaluation as the Trainer makes it: the callback
    first, then the best so far updated."""
    state.global_step += 1
    with torch.no_grad():
        model.weight.fill_(accuracy)
    metrics = {"eval_accuracy": accuracy}
    keeper.on_evaluate(args, state, TrainerControl(), metrics=metrics, model=model)
    if improves(accuracy, state.best_metric, True):
        state.best_metric, state.best_global_step = accuracy, state.global_step


def test_the_comparison_is_the_trainers():
    assert improves(0.5, None, True) and improves(0.6, 0.5, True) and not improves(0.5, 0.5, True)
    assert improves(0.4, 0.5, False) and not improves(0.6, 0.5, False)
    assert checkpoint_step("out/checkpoint-12") == 12
    assert checkpoint_step("out/best") is None and checkpoint_step(None) is None


def test_the_metrics_direction_follows_its_name(tmp_path):
    assert greater_is_better(arguments(tmp_path, metric_for_best_model="accuracy"))
    assert not greater_is_better(arguments(tmp_path))  # the Trainer's default metric: the loss
    assert not greater_is_better(arguments(tmp_path, metric_for_best_model="accuracy", greater_is_better=False))


def test_the_best_evaluations_weights_are_put_back_at_the_end(tmp_path):
    args = arguments(tmp_path, metric_for_best_model="accuracy")
    keeper, state, model = BestWeightsKeeper(), TrainerState(), torch.nn.Linear(2, 2, bias=False)
    for accuracy in (0.5, 0.9, 0.7, 0.9, 0.6):  # the tie at step 4 keeps step 2
        evaluate(keeper, args, state, model, accuracy)
    keeper.on_train_end(args, state, TrainerControl(), model=model)
    assert keeper.final_step == 2 and torch.all(model.weight == 0.9)
    assert (
        keeper.note
        == "The model is the best evaluation's: step 2 of 5, eval_accuracy 0.9 (kept since that evaluation)."
    )
    keeper.on_evaluate(args, state, TrainerControl(), metrics={"eval_accuracy": 1.0}, model=model)  # after training
    assert keeper.kept_step == 2


def test_the_card_is_told_the_model_was_chosen_on_the_validation_split(tmp_path):
    state = TrainerState(global_step=9, log_history=[{"eval_accuracy": 0.5}, {"loss": 1.0}, {"eval_accuracy": 0.7}])
    chosen = model_selection(arguments(tmp_path, metric_for_best_model="accuracy"), state, final_step=3)
    assert chosen == {"step": 3, "steps": 9, "metric": "accuracy", "evaluations": 2}
    assert model_selection(arguments(tmp_path), state, final_step=None) is None
    not_chosen = TrainingArguments(output_dir=str(tmp_path), eval_strategy="steps", metric_for_best_model="accuracy")
    assert model_selection(not_chosen, state, final_step=9) is None


def test_a_checkpoint_carries_the_best_weights_that_have_none_of_their_own(tmp_path):
    args = arguments(tmp_path, metric_for_best_model="accuracy")
    keeper, state, model = BestWeightsKeeper(), TrainerState(), torch.nn.Linear(2, 2, bias=False)
    for accuracy in (0.9, 0.5, 0.6):
        evaluate(keeper, args, state, model, accuracy)
    checkpoint = checkpoint_folder(tmp_path, 3)
    checkpoint.mkdir()  # as the Trainer has just written it, before `on_save`
    keeper.on_save(args, state, TrainerControl())
    assert (checkpoint / BEST_WEIGHTS).is_file()

    resumed, model = BestWeightsKeeper(), torch.nn.Linear(2, 2, bias=False)  # a new process, from checkpoint-3
    resumed.resume_from(checkpoint)
    assert resumed.kept_step == 1
    evaluate(resumed, args, state, model, 0.7)  # not better than step 1
    resumed.on_train_end(args, state, TrainerControl(), model=model)
    assert resumed.final_step == 1 and torch.all(model.weight == 0.9)

    checkpoint_folder(tmp_path, 4).mkdir()
    checkpoint_folder(tmp_path, 1).mkdir()  # the best's own checkpoint: the Trainer loads it from there
    keeper.on_save(args, TrainerState(global_step=4), TrainerControl())
    assert not (checkpoint_folder(tmp_path, 4) / BEST_WEIGHTS).exists()
    BestWeightsKeeper().resume_from(checkpoint_folder(tmp_path, 4))  # nothing to take back: no error


def test_without_load_best_model_at_end_nothing_is_copied(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), eval_strategy="steps", metric_for_best_model="accuracy")
    keeper, state, model = BestWeightsKeeper(), TrainerState(), torch.nn.Linear(2, 2, bias=False)
    for accuracy in (0.9, 0.5):
        evaluate(keeper, args, state, model, accuracy)
    keeper.on_train_end(args, state, TrainerControl(), model=model)
    assert keeper.kept_step is None and keeper.final_step == 2 and torch.all(model.weight == 0.5)


def test_a_best_from_before_a_resume_without_its_checkpoint_is_said(tmp_path):
    args = arguments(tmp_path, metric_for_best_model="accuracy")
    state = TrainerState(global_step=10, best_metric=0.9, best_global_step=3)  # as restored from a checkpoint
    keeper, model = BestWeightsKeeper(), torch.nn.Linear(2, 2, bias=False)
    evaluate(keeper, args, state, model, 0.5)  # not better
    keeper.on_train_end(args, state, TrainerControl(), model=model)
    assert keeper.final_step == 11 and torch.all(model.weight == 0.5)
    assert "best evaluation (step 3, eval_accuracy 0.9) was made before the run resumed" in keeper.note
    assert "the model is step 11's" in keeper.note
    state.best_model_checkpoint = str(tmp_path / "checkpoint-3")  # the Trainer found and loaded it
    keeper.on_train_end(args, state, TrainerControl(), model=model)
    assert keeper.final_step == 3


def test_early_stopping_ends_with_the_best_evaluations_weights(
    finetune_main, train_and_validation_folders, tmp_path, capsys
):
    """Evaluating at every step with a checkpoint every 500 steps (the defaults), the best evaluation has no
    checkpoint: early stopping (which sets --load_best_model_at_end) still saves the best evaluation's model, as
    `hf-resnet101 evaluate` measures it, not the last one."""
    torch.manual_seed(0)
    tiny_resnet = save_tiny_resnet(tmp_path / "tiny-resnet")
    train, validation = train_and_validation_folders
    out = tmp_path / "out"
    argv = ["--train_dir", str(train), "--validation_dir", str(validation), "--output_dir", str(out),
            "--model_name_or_path", str(tiny_resnet), "--seed", "3", "--learning_rate", "5e-3",
            "--early_stopping_patience", "1"]  # fmt: skip
    assert finetune_main(argv) == 0
    state = json.loads((out / "trainer_state.json").read_text())
    evaluations = {entry["step"]: entry for entry in state["log_history"] if "eval_accuracy" in entry}
    best = evaluations[state["best_global_step"]]
    assert best["eval_accuracy"] == state["best_metric"] == max(e["eval_accuracy"] for e in evaluations.values())
    assert state["best_global_step"] < state["global_step"]  # stopped after an evaluation that did not improve
    reported = json.loads((out / "eval_results.json").read_text())
    # The loss tells the weights apart where the accuracy ties.
    assert reported["eval_loss"] == pytest.approx(best["eval_loss"], rel=1e-6)
    assert reported["eval_loss"] != pytest.approx(evaluations[state["global_step"]]["eval_loss"], rel=1e-6)
    assert reported["eval_accuracy"] == pytest.approx(best["eval_accuracy"])
    card = " ".join((out / "README.md").read_text().split())
    step, steps = state["best_global_step"], state["global_step"]
    assert (
        f"best evaluation on this split by accuracy (step {step} of {steps}, the best of {steps} evaluations" in card
    )

    run_cli(
        capsys, ["evaluate", str(out), str(validation), "--output_dir", str(tmp_path / "ev"), "--precision", "fp32"]
    )
    measured = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert measured["accuracy"] == pytest.approx(state["best_metric"], abs=1e-6)


def test_a_run_resumed_after_its_best_evaluation_still_ends_with_it(tmp_path):
    """Ctrl-C after the best evaluation, which has no checkpoint of its own, then the same command again: the
    resumed run takes the best weights back from the checkpoint it resumes from. (The backbone frozen and a
    vanishing learning rate make every evaluation equal, so the first one stays the best.)"""
    from conftest import REPO_ROOT, run_offline, write_class_images

    data = write_class_images(tmp_path / "data", per_class=8)
    model = save_tiny_resnet(tmp_path / "model")
    out = tmp_path / "out"
    argv = ["--train_dir", str(data), "--output_dir", str(out), "--model_name_or_path", str(model),
            "--save_steps", "3", "--load_best_model_at_end", "true", "--freeze_backbone", "all_but_last",
            "--learning_rate", "1e-12", "--precision", "fp32"]  # fmt: skip
    script, recipe = REPO_ROOT / "tests" / "run_with_fault.py", REPO_ROOT / "recipes" / "finetune.py"
    interrupted = run_offline([sys.executable, str(script), *argv], FAULT="interrupt", FAULT_STEP="4")
    assert interrupted.returncode == 130, interrupted.stderr[-3000:]
    assert (checkpoint_folders(out)[-1] / BEST_WEIGHTS).is_file()  # the checkpoint Ctrl-C saved
    resumed = run_offline([sys.executable, str(recipe), *argv])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from" in resumed.stderr
    assert "The model is the best evaluation's: step 1 of 6" in resumed.stderr
    assert "made before the run resumed" not in resumed.stderr
    # The card counts the evaluations of training (6), not the final pass the resumed run made again
    selection = json.loads((out / "card_inputs.json").read_text())["selection"]
    assert (selection["step"], selection["evaluations"]) == (1, 6)
