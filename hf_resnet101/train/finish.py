"""The end of a run, after the final model is saved: metrics, the validation pass, the card, the pipeline check
and the push."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import constants
from transformers import Trainer
from transformers.trainer_utils import PredictionOutput
from transformers.utils import logging

from ..config.resolve import PushTarget, RunOptions
from ..data.folders import data_roots, write_split_files
from ..library_internals import stop_data_loader_workers
from ..outputs import PIPELINE_CHECK
from ..publish.card import write_model_card
from ..publish.hub import push_output_dir
from .best_weights import BestWeightsKeeper, early_stop_note, model_selection
from .card_inputs import build_card_inputs
from .final_evaluation import (
    MAX_TRAIN_ACCURACY_IMAGES,
    EvaluationRecorder,
    evaluate_for_card,
    prediction_logits,
)
from .monitors import OverfittingMonitor, callback_of, described_passes
from .output_folder import RunManifest
from .phase_clock import PhaseClock
from .pipeline_check import PIPELINE_CHECK_IMAGES, check_with_pipeline, pipeline_check_indices
from .run_state import ModelToTrain, RunData, TrainedRun
from .summary import architecture_of

logger = logging.get_logger(__name__)


@dataclass
class FinetuneResult:
    """What a finished run produced."""

    output_dir: Path
    label_names: list[str]
    eval_metrics: dict[str, float]
    pipeline_predictions: list[dict] = field(default_factory=list)
    hub_model_id: str | None = None  # where it was pushed
    already_finished: bool = False  # a rerun of a finished run: nothing was saved this time

    def closing_lines(self) -> list[str]:
        """What a finished run says last: where the model is and how to use it."""
        model = self.hub_model_id or str(self.output_dir)
        shown = {k: v for k, v in self.eval_metrics.items() if k in ("accuracy", "f1_macro", "top5_accuracy")}
        return [
            f"Model {'already in' if self.already_finished else 'saved to'} {self.output_dir}"
            + (f" and pushed to {constants.ENDPOINT}/{self.hub_model_id}" if self.hub_model_id else "")
            + (" (validation " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()) + ")" if shown else ""),
            f"Model card: {self.output_dir / 'README.md'}",
            f'Use it: pipeline("image-classification", model="{model}")',
        ]


def final_validation_prediction(trainer: Trainer, weights_changed: bool) -> tuple[PredictionOutput, int | None]:
    """The final model's predictions and metrics on the validation split, and the step of the evaluation they come
    from when the run had evaluated these weights already (None: computed now).

    Computed, it is one prediction pass (a collective call), logged and reported to the callbacks as
    `trainer.evaluate()` would, which would otherwise be a second pass over the same images. `weights_changed`:
    the model was altered after training (frozen BatchNorm turned back into ordinary layers), so an evaluation made
    during training is not one of these weights.
    """
    step = None if weights_changed else callback_of(trainer, BestWeightsKeeper).final_step
    reused = callback_of(trainer, EvaluationRecorder).evaluation_at(step)
    if reused is not None:
        logger.info(f"Final evaluation: the final weights are those evaluated at step {step}; their results are used.")
        return reused, step
    with described_passes(trainer, f"Final evaluation ({len(trainer.eval_dataset)} validation images)"):
        prediction = trainer.predict(trainer.eval_dataset, metric_key_prefix="eval")
    trainer.log(prediction.metrics)
    trainer.control = trainer.callback_handler.on_evaluate(
        trainer.args, trainer.state, trainer.control, prediction.metrics
    )
    return prediction, None


def finish_run(
    trained: TrainedRun,
    options: RunOptions,
    data: RunData,
    model: ModelToTrain,
    manifest: RunManifest | None,
    clock: PhaseClock,
    random_init: bool = False,
) -> FinetuneResult:
    """After the final model is saved: metrics, the validation pass, the card, the pipeline check and the push."""
    trainer, dataset = trained.trainer, data.dataset
    keeper = callback_of(trainer, BestWeightsKeeper)
    output_dir = Path(options.training.output_dir)
    label_names = data.label_names
    if trainer.is_world_process_zero():
        callback_of(trainer, OverfittingMonitor).save(output_dir)
        if (note := early_stop_note(trainer.args, trainer.state)) is not None:
            logger.warning(note)
        if (note := keeper.note) is not None:
            logger.warning(note)
    trainer.log_metrics("train", trained.result.metrics)
    trainer.save_metrics("train", trained.result.metrics)
    trainer.save_state()

    weights_changed = options.model.freeze_backbone  # `unfreeze_batch_norm` ran after training
    validation_prediction, evaluated_at = final_validation_prediction(trainer, weights_changed)
    eval_metrics = dict(validation_prediction.metrics)
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)
    metrics = {k.removeprefix("eval_"): v for k, v in eval_metrics.items() if isinstance(v, float)}
    clock.mark("final evaluation" if evaluated_at is None else f"final evaluation (step {evaluated_at}'s, reused)")
    train_sample = min(len(dataset["validation"]), MAX_TRAIN_ACCURACY_IMAGES)
    train_indices = pipeline_check_indices(len(dataset["train"]), train_sample)
    card_evaluation = evaluate_for_card(
        trainer, validation_prediction, dataset["train"], train_indices, model, len(label_names)
    )
    clock.mark("training-sample accuracy for the card")
    check_indices = pipeline_check_indices(len(dataset["validation"]), PIPELINE_CHECK_IMAGES)
    check_logits = prediction_logits(validation_prediction)[check_indices]
    stop_data_loader_workers(trainer)  # the last pass over the data: its workers are done
    evaluated = [label_names[i] for i in check_logits.argmax(-1)]
    pipeline_predictions = []
    if trainer.is_world_process_zero():
        write_split_files(dataset, output_dir, data_roots(options.data.train_dir, options.data.validation_dir))
        card_inputs = build_card_inputs(
            options.data,
            options.model,
            trainer.args,  # what ran: after running out of memory, the smaller batch and its accumulation
            dataset,
            data.report,
            metrics,
            card_evaluation,
            trained.runtime,
            callback_of(trainer, OverfittingMonitor).events,
            architecture_of(trainer.model),
            random_init,
            model_selection(trainer.args, trainer.state, keeper.final_step, keeper.evaluations),
            trainer.model,
            (model.data_config.height, model.data_config.width),
        )
        card_inputs.save(output_dir)
        write_model_card(output_dir, card_inputs)
        clock.mark("card and plots")
        pipeline_predictions = check_with_pipeline(
            output_dir,
            dataset["validation"],
            check_indices,
            evaluated,
            label_names,
            options.model.trust_remote_code,
            mixed_precision=trainer.args.mixed_precision != "no",
        )
        (output_dir / PIPELINE_CHECK).write_text(json.dumps(pipeline_predictions, indent=2, ensure_ascii=False))
        manifest.record(finished=True)
        clock.mark("pipeline check")
    push = options.push
    if push is not None and trainer.is_world_process_zero():
        push_finished_run(output_dir, push)
        clock.mark("push")
    if trainer.is_world_process_zero():
        logger.warning(clock.describe())
    pushed_to = push.repo_id if push is not None else None
    return FinetuneResult(output_dir, label_names, metrics, pipeline_predictions, pushed_to)


def push_finished_run(output_dir: Path, push: PushTarget) -> str:
    """Pushes a finished run's folder where `--push_to_hub` asked; returns the commit URL."""
    return push_output_dir(
        output_dir, push.repo_id, private=push.private, token=push.token, hub_strategy=push.strategy
    )
