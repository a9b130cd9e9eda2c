"""The fine-tuning run as its phases: checks, data, options, model, training, the final save, and the finish."""

from __future__ import annotations

import json
import logging as std_logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import datasets
import torch
import transformers
from transformers import Trainer, set_seed
from transformers.utils import logging

from ..config.hardware import local_process_count, processes_not_started_note, restore_cpu_threads
from ..config.options import DataArguments, FinetuneTrainingArguments, ModelArguments
from ..config.resolve import RunOptions, push_target, resolve_run_options
from ..data.folders import (
    check_folders_apart,
    data_roots,
    limit_samples,
    load_hub_dataset,
    load_image_folders,
    report_from_dataset,
)
from ..data.report import DataReport, images_per_class_of
from ..data.transforms import resolve_data_config, set_image_size
from ..errors import UsageError
from ..evaluation.metrics import check_best_model_metric
from ..inference import weight_file_bars_hidden
from ..modeling import (
    apply_gradient_checkpointing,
    check_model_cached_when_offline,
    check_model_source,
    freeze_backbone,
    load_image_processor,
    load_model_for_labels,
    local_files_only_for,
    unfreeze_batch_norm,
)
from ..outputs import EVAL_RESULTS
from ..publish.hub import check_push_settings, check_write_access, with_namespace
from .checkpoints import (
    RunRecordCallback,
    check_own_files,
    check_same_run,
    check_writable,
    resolve_resume,
    save_final_model,
)
from .finish import FinetuneResult, finish_run, push_finished_run
from .memory import CHECKPOINTING_TRADE
from .output_folder import RunManifest, is_finished, locked_output_folder
from .phase_clock import PhaseClock
from .quiet import (
    checkpoint_num_labels,
    datasets_progress_silenced,
    describe_head,
    model_loading_silenced,
    show_notes_above_progress_bars,
    silence_datasets,
)
from .recovery import after_failed_results, after_failed_save, check_checkpoint_readable, train_fitting_memory
from .run_identity import DATA_KEYS, full_identity, options_identity, write_identity
from .run_state import ModelToTrain, RunData
from .storage import reporting_write_failures
from .summary import log_run_summary
from .trainer import build_trainer

logger = logging.get_logger(__name__)
PACKAGE = __name__.split(".")[0]


def setup_logging(training_args: FinetuneTrainingArguments) -> None:
    log_level = training_args.get_process_log_level()
    logging.set_verbosity(log_level)
    # The package's notes once, from the main process: the other processes would repeat each of them.
    package_level = std_logging.WARNING if training_args.process_index == 0 else std_logging.ERROR
    std_logging.getLogger(PACKAGE).setLevel(package_level)
    show_notes_above_progress_bars(PACKAGE)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    silence_datasets(training_args.verbose)


def load_data(
    data_args: DataArguments, model_args: ModelArguments, seed: int, progress: bool = True
) -> tuple[datasets.DatasetDict, DataReport]:
    """The train/validation splits, limited as asked, and the report on the data as found."""
    if data_args.dataset_name:
        dataset = load_hub_dataset(
            data_args.dataset_name,
            data_args.dataset_config_name,
            data_args.image_column_name,
            data_args.label_column_name,
            data_args.train_val_split,
            seed,
            cache_dir=model_args.cache_dir,
        )
        report = report_from_dataset(dataset)
    else:
        dataset, report = load_image_folders(
            data_args.train_dir,
            data_args.validation_dir,
            data_args.train_val_split,
            seed,
            model_args.cache_dir,
            strict=data_args.strict,
            dedupe=data_args.dedupe,
            progress=progress,
        )
    limits = {
        "train": ("--max_train_samples", data_args.max_train_samples),
        "validation": ("--max_eval_samples", data_args.max_eval_samples),
    }
    # The limits below a split's size, the only ones that leave images out (and that the summary and card name).
    cutting = [f"{flag} {limit}" for split, (flag, limit) in limits.items() if limit and limit < len(dataset[split])]
    if cutting:
        dataset = limit_samples(dataset, data_args.max_train_samples, data_args.max_eval_samples, seed)
        report.record_used(images_per_class_of(dataset), cutting)
    return dataset, report


def load_checkpoint_to_finetune(model_args: ModelArguments, label_names: list[str]):
    """The checkpoint to fine-tune, with a classification head for `label_names`, and its image processor."""
    local_only = local_files_only_for(model_args.model_name_or_path)
    kwargs = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision}
    if model_args.trust_remote_code:
        kwargs["trust_remote_code"] = True
    processor = load_image_processor(model_args.model_name_or_path, local_files_only=local_only, **kwargs)
    model = load_model_for_labels(model_args.model_name_or_path, label_names, local_files_only=local_only, **kwargs)
    return model, processor


def with_run_record(trainer: Trainer, identity: dict, manifest: RunManifest | None) -> Trainer:
    # First among the callbacks: the identity is in a checkpoint before its completion marker.
    trainer.callback_handler.callbacks.insert(0, RunRecordCallback(identity, manifest))
    return trainer


def finished_result(
    output_dir: Path, label_names: list[str], training_args: FinetuneTrainingArguments, start: RunStart
) -> FinetuneResult:
    """What a rerun of a finished run reports, having trained nothing; pushed, when the rerun asks for a push (the
    first run may have had none, or been stopped during it)."""
    results = output_dir / EVAL_RESULTS
    metrics = json.loads(results.read_text()) if results.is_file() else {}
    push = (
        push_target(training_args, start.push_token, start.push_repo_id) if training_args.process_index == 0 else None
    )
    logger.warning(
        f'This run already finished: the model is in {output_dir} (load it with pipeline("image-classification", '
        f'model="{output_dir}")). Nothing was trained or changed'
        + (f"; it is pushed to {push.repo_id} as asked" if push else "")
        + ". Pass --overwrite_output_dir to train it again."
    )
    if push:
        push_finished_run(output_dir, push)
    metrics = {k.removeprefix("eval_"): v for k, v in metrics.items()}
    return FinetuneResult(
        output_dir, label_names, metrics, hub_model_id=push.repo_id if push else None, already_finished=True
    )


def run_finetune(
    data_args: DataArguments,
    model_args: ModelArguments,
    training_args: FinetuneTrainingArguments,
    model_and_processor: tuple | None = None,
    explicit: Mapping[str, str] | None = None,
    random_init: bool = False,
    time_before: Mapping[str, float] | None = None,
) -> FinetuneResult:
    """Runs the whole job, holding the output folder's lock from before it is inspected to after the last write.

    Args:
        model_and_processor: replaces loading from `--model_name_or_path` (the offline demo).
        random_init: the model starts from random weights; the summary and the card say so, with no base model.
        explicit: options the user gave and where ("command line", "config file"); a preset leaves them alone.
        time_before: the command's start-up, timed by its entry point (`phase_clock.time_before_the_run`), which
            the log's time by phase shows first.
    """
    output_dir = Path(training_args.output_dir)
    main_process = training_args.process_index == 0
    made_here = main_process and not output_dir.exists()
    # Before the lock file is made in a folder that holds something else; by every process, so that all stop alike
    # (one left waiting for the main process at its first barrier would end in a traceback).
    check_writable(output_dir)
    check_own_files(output_dir, training_args.overwrite_output_dir)
    with (
        locked_output_folder(output_dir, enabled=main_process, remove_if_left_empty=made_here),
        weight_file_bars_hidden(hidden=not training_args.verbose),
    ):
        return run_in_locked_folder(
            data_args, model_args, training_args, model_and_processor, explicit or {}, random_init, time_before
        )


def run_in_locked_folder(
    data_args: DataArguments,
    model_args: ModelArguments,
    training_args: FinetuneTrainingArguments,
    model_and_processor: tuple | None,
    explicit: Mapping[str, str],
    random_init: bool = False,
    time_before: Mapping[str, float] | None = None,
) -> FinetuneResult:
    """The run, phase by phase (see `run_finetune`). Nothing in the folder changes before the run's identity is
    checked; the arguments given are only read, and from `resolve_run_options` on, the run reads `RunOptions`."""
    clock = PhaseClock(before=time_before)
    setup_logging(training_args)
    start = check_before_loading(data_args, model_args, training_args)
    clock.mark("checks")
    data = load_run_data(data_args, model_args, training_args, start)
    clock.mark("scan and data loading")
    output_dir = Path(training_args.output_dir)
    if start.finished:
        return finished_result(output_dir, data.label_names, training_args, start)
    options = resolve_run_options(
        data_args, model_args, training_args, explicit, data.num_train, data.num_validation,
        data.report.imbalance_ratio, push_token=start.push_token, push_repo_id=start.push_repo_id,
    )  # fmt: skip
    check_best_model_metric(options.training.metric_for_best_model, len(data.label_names))
    if model_and_processor is None:  # before the run's first files are written
        check_model_cached_when_offline(
            model_args.model_name_or_path, give_dir="--model_name_or_path DIR", cache_dir=model_args.cache_dir
        )
    for note in start.notes:  # the run will start: bad input above has said only what was wrong
        logger.warning(note)
    manifest = record_run_start(options, data)
    model = load_model_to_train(options, data.label_names, model_and_processor)
    clock.mark("model loading")
    log_run_summary(options, data.dataset, data.report, model, random_init)
    with reporting_write_failures("a checkpoint", output_dir, after=lambda: after_failed_save(options.training)):
        trained = train_fitting_memory(
            lambda args: with_run_record(build_trainer(model, data.dataset, args, options), data.identity, manifest),
            options.training,
            start.resume_from,
            options.data.image_size,
        )
    clock.mark("trainer set-up and validation preparation", inner={"training": trained.runtime})
    if options.model.freeze_backbone:
        unfreeze_batch_norm(trained.trainer.model)
    save_final_model(trained.trainer, output_dir)
    clock.mark("final save")
    results_started = time.time()
    with reporting_write_failures(
        "the run's results", output_dir, after=lambda: after_failed_results(options.training, results_started)
    ):
        return finish_run(trained, options, data, model, manifest, clock, random_init=random_init)


@dataclass(frozen=True)
class RunStart:
    """What the checks before any data is loaded found."""

    identity_options: dict  # the trajectory-changing options as given, before presets (`run_identity`)
    resume_from: str | None
    push_token: str | None
    push_repo_id: str | None  # --hub_model_id, as USER/NAME where the Hub named the token's user
    finished: bool  # the folder holds a finished run (and --overwrite_output_dir was not given)
    # What the run says of its processes and threads, once its data has been checked: a run stopped by bad input
    # says only what was wrong.
    notes: tuple[str, ...] = ()


CHECKPOINT_TO_GIVE = (
    "a Hub model id (like microsoft/resnet-101) or a folder with its config.json and weights "
    "(`hf download ID --local-dir DIR` makes one)"
)


def check_before_loading(
    data_args: DataArguments, model_args: ModelArguments, training_args: FinetuneTrainingArguments
) -> RunStart:
    """The checks that need no data, so a run that cannot finish stops at once: the push's access (nobody should
    learn after hours of training that a push can't work), the output folder, the checkpoint to resume from."""
    identity_options = options_identity(data_args, model_args, training_args)
    check_model_source(model_args.model_name_or_path, give=CHECKPOINT_TO_GIVE)
    push_token = push_repo_id = None
    if training_args.push_to_hub:
        push_token = check_push_settings(training_args.hub_model_id, training_args.hub_token)
        whoami = check_write_access(training_args.hub_model_id, push_token)
        push_repo_id = with_namespace(training_args.hub_model_id, whoami)
    set_seed(training_args.seed)
    notes = [processes_not_started_note(dict(os.environ))]
    if training_args.device.type == "cpu":
        notes.append(restore_cpu_threads(local_process_count()))
    check_folders_apart(data_args.train_dir, data_args.validation_dir, training_args.output_dir)
    output_dir = Path(training_args.output_dir)
    with training_args.main_process_first(desc="checking the output folder"):
        check_writable(output_dir)
        resume_from = resolve_resume(
            output_dir, training_args.resume_from_checkpoint, training_args.overwrite_output_dir, identity_options
        )
        if resume_from is not None:
            check_checkpoint_readable(Path(resume_from), training_args.save_only_model)
    finished = not training_args.overwrite_output_dir and is_finished(output_dir)
    notes = tuple(note for note in notes if note and training_args.process_index == 0)
    return RunStart(identity_options, resume_from, push_token, push_repo_id, finished, notes)


def load_run_data(
    data_args: DataArguments, model_args: ModelArguments, training_args: FinetuneTrainingArguments, start: RunStart
) -> RunData:
    """Scans and loads the data, then checks that a run being resumed or repeated had the same data and labels.

    Raises:
        UsageError: a single class, or data that differs from the run the folder holds.
    """
    # The main process scans first; the others then find every verdict in the scan cache.
    with (
        training_args.main_process_first(desc="scanning and loading the dataset"),
        datasets_progress_silenced(training_args.verbose),
    ):
        dataset, report = load_data(data_args, model_args, training_args.seed, training_args.process_index == 0)
    label_names = dataset["train"].features["label"].names
    if len(label_names) < 2:
        raise UsageError(f"The training data has a single class ({label_names}): at least two are needed.")
    identity = full_identity(start.identity_options, label_names, report.data_digest)
    output_dir = Path(training_args.output_dir)
    if start.resume_from or start.finished:
        resumed = Path(start.resume_from) if start.resume_from else None
        check_same_run(output_dir, resumed, identity, keys=DATA_KEYS)
    if start.resume_from and not start.finished and training_args.process_index == 0:  # the data is the run's
        logger.warning(f"Resuming from {start.resume_from} (pass --overwrite_output_dir to start over).")
    return RunData(dataset, report, identity)


def record_run_start(options: RunOptions, data: RunData) -> RunManifest | None:
    """The run's first writes, once the run is known to be this folder's: its identity, the manifest of the
    files it writes, and the data report (main process only)."""
    if options.training.process_index != 0:
        return None
    output_dir = Path(options.training.output_dir)
    manifest = RunManifest(output_dir)  # made before the first write, to tell the files this run writes
    write_identity(output_dir, data.identity)
    manifest.record()
    data.report.save(output_dir, data_roots(options.data.train_dir, options.data.validation_dir))
    return manifest


def load_model_to_train(
    options: RunOptions, label_names: list[str], model_and_processor: tuple | None = None
) -> ModelToTrain:
    """Loads the checkpoint with a head for the labels and prepares it as the options ask (frozen stages,
    gradient checkpointing, input size)."""
    model_args = options.model
    with model_loading_silenced(options.training.verbose):
        model, processor = model_and_processor or load_checkpoint_to_finetune(model_args, label_names)
        checkpoint_labels = None
        if model_and_processor is None:
            checkpoint_labels = checkpoint_num_labels(
                model_args.model_name_or_path,
                local_files_only=local_files_only_for(model_args.model_name_or_path),
                cache_dir=model_args.cache_dir,
                revision=model_args.model_revision,
            )
    if model_args.freeze_backbone:
        frozen, trainable = freeze_backbone(model, model_args.freeze_backbone)
        logger.warning(
            f"--freeze_backbone {model_args.freeze_backbone}: {frozen / 1e6:.2f} M parameters frozen, "
            f"{trainable / 1e6:.2f} M trained (fewer parameters to fit: less overfitting on small data)."
        )
    if options.gradient_checkpointing:
        logger.warning(
            f"Activation checkpointing: {apply_gradient_checkpointing(model)} ({CHECKPOINTING_TRADE}, measured on "
            "an H200)."
        )
    if options.data.image_size:
        processor = set_image_size(processor, model.config, options.data.image_size)
    if options.model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    head_note = describe_head(checkpoint_labels, label_names)
    return ModelToTrain(model, processor, resolve_data_config(processor), head_note)
