"""The final evaluation for the card: per-class results from the validation predictions, accuracy on a training
sample predicted with evaluation preprocessing; and the evaluations made during training, kept for it."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
from transformers import AutoImageProcessor, EvalPrediction, TrainerControl, TrainerState
from transformers.trainer_utils import PredictionOutput

from hf_resnet101.data.transforms import resolve_data_config
from hf_resnet101.train.final_evaluation import (
    CardEvaluation,
    EvaluationRecorder,
    evaluate_for_card,
    prediction_logits,
)
from hf_resnet101.train.run_state import ModelToTrain

VALIDATION = PredictionOutput(
    predictions=np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [1.0, 0.0]]),
    label_ids=np.array([0, 1, 1, 0]),
    metrics={},
)


class PredictingTrainer:
    """Stands in for the Trainer: predicts class 0 for every image it is given, and records what it was given."""

    class args:  # noqa: N801 - mimics `trainer.args`
        @staticmethod
        @contextlib.contextmanager
        def main_process_first(desc: str):
            yield

    class callback_handler:  # noqa: N801 - mimics `trainer.callback_handler`: no progress bars
        callbacks = []

    def __init__(self):
        self.given = None

    def predict(self, dataset):
        self.given = dataset
        logits = np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (len(dataset), 1))
        return PredictionOutput(predictions=(logits, None), label_ids=np.array(dataset["label"]), metrics={})


def test_logits_come_out_of_a_tuple_as_float32():
    logits = prediction_logits(
        PredictionOutput(predictions=(np.ones((2, 3)), np.zeros(1)), label_ids=None, metrics={})
    )
    assert logits.shape == (2, 3) and logits.dtype == np.float32


def test_per_class_results_and_confusion_matrix_without_a_training_sample():
    result = evaluate_for_card(PredictingTrainer(), VALIDATION, None, [], None, num_labels=2)
    assert result.confusion_matrix == [[2, 0], [1, 1]]
    assert result.per_class["recall"] == pytest.approx([1.0, 0.5])
    assert result.per_class["support"] == [2, 2]
    assert result.train_accuracy is None and result.train_accuracy_images == 0
    assert CardEvaluation().train_accuracy is None


def test_training_accuracy_is_measured_on_the_chosen_images_with_evaluation_preprocessing(image_folder, tiny_resnet):
    paths = sorted(str(p) for p in image_folder.rglob("*.png"))[:4]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    train = datasets.Dataset.from_dict({"image": paths, "label": [0, 1, 0, 0]}, features=features)
    trainer = PredictingTrainer()
    processor = AutoImageProcessor.from_pretrained(tiny_resnet)
    model = ModelToTrain(None, processor, resolve_data_config(processor), None)
    result = evaluate_for_card(trainer, VALIDATION, train, [1, 2, 3], model, num_labels=2)
    assert result.train_accuracy == pytest.approx(2 / 3) and result.train_accuracy_images == 3
    assert trainer.given["label"] == [1, 0, 0]
    assert np.asarray(trainer.given[0]["pixel_values"]).shape == (3, 32, 32)  # the processor's size, not the file's


LOADING_THE_BEST = SimpleNamespace(load_best_model_at_end=True)


def evaluate_at(recorder: EvaluationRecorder, state: TrainerState, accuracy: float, best: bool, args=LOADING_THE_BEST):
    """What the Trainer does at an evaluation: metrics from the predictions, `on_evaluate`, then the best so far."""
    state.global_step += 1
    logits = np.full((2, 2), accuracy, dtype=np.float32)
    metrics = recorder.recording(lambda p: {"accuracy": float(p.predictions[0, 0])})(
        EvalPrediction(predictions=logits, label_ids=np.array([0, 1]))
    )
    recorder.on_evaluate(args, state, TrainerControl(), metrics={"eval_" + k: v for k, v in metrics.items()})
    if best:
        state.best_global_step = state.global_step
        state.best_model_checkpoint = f"out/checkpoint-{state.global_step}"


def test_the_latest_and_the_best_evaluations_are_kept():
    recorder, state = EvaluationRecorder(), TrainerState(global_step=0)
    for accuracy, best in ((0.5, True), (0.9, True), (0.7, False), (0.6, False)):
        evaluate_at(recorder, state, accuracy, best)
    assert recorder.evaluation_at(4).metrics == {"eval_accuracy": pytest.approx(0.6)}  # the latest
    assert recorder.evaluation_at(2).metrics == {"eval_accuracy": pytest.approx(0.9)}  # the best
    assert recorder.evaluation_at(2).predictions[0, 0] == pytest.approx(0.9)
    assert recorder.evaluation_at(1) is None and recorder.evaluation_at(3) is None  # neither: not kept
    assert recorder.evaluation_at(None) is None


def test_without_load_best_model_at_end_only_the_latest_evaluation_is_kept():
    recorder, state = EvaluationRecorder(), TrainerState(global_step=0)
    for accuracy, best in ((0.9, True), (0.7, False)):
        evaluate_at(recorder, state, accuracy, best, args=SimpleNamespace(load_best_model_at_end=False))
    assert recorder.evaluation_at(2) is not None and recorder.evaluation_at(1) is None


def test_a_prediction_pass_without_on_evaluate_is_not_filed_as_an_evaluation():
    recorder, state = EvaluationRecorder(), TrainerState(global_step=0)
    evaluate_at(recorder, state, 0.5, best=True)
    recorder.recording(lambda p: {})(EvalPrediction(predictions=np.zeros((2, 2)), label_ids=np.array([0, 1])))
    state.global_step += 1  # a step without evaluation
    recorder.on_evaluate(LOADING_THE_BEST, state, TrainerControl(), metrics=None)
    assert recorder.evaluation_at(2) is None and recorder.evaluation_at(1) is not None
