"""The fine-tuning run: data, model, Trainer, saving, the model card and the pipeline check."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import datasets
import transformers
from transformers import Trainer, set_seed
from transformers.utils import logging

from ..config.hardware import restore_cpu_threads
from ..config.options import DataArguments, FinetuneTrainingArguments, ModelArguments
from ..config.resolve import apply_settings, check_settings, choose_best_model_metric
from ..data.folders import data_roots, limit_samples, load_hub_dataset, load_image_folders, report_from_dataset
from ..data.report import DataReport
from ..data.transforms import resolve_data_config, set_image_size
from ..errors import UsageError
from ..modeling import (
    apply_gradient_checkpointing,
    freeze_backbone,
    load_image_processor,
    load_model_for_labels,
    local_files_only_for,
    unfreeze_batch_norm,
)
from ..publish.hub import check_push_settings, check_write_access
from .checkpoints import (
    RunRecordCallback,
    check_own_files,
    check_same_run,
    check_writable,
    resolve_resume,
    save_final_model,
)
from .finish import FinetuneResult, finish_run
from .memory import CHECKPOINTING_TRADE
from .output_folder import RunManifest, is_finished, locked_output_folder
from .phase_clock import PhaseClock
from .quiet import (
    checkpoint_num_labels,
    datasets_progress_silenced,
    describe_head,
    model_loading_silenced,
    silence_datasets,
)
from .recovery import after_failed_results, after_failed_save, check_checkpoint_readable, train_fitting_memory
from .run_identity import DATA_KEYS, full_identity, options_identity, write_identity
from .storage import reporting_write_failures
from .summary import log_run_summary
from .trainer import build_trainer

logger = logging.get_logger(__name__)


def setup_logging(training_args: FinetuneTrainingArguments) -> None:
    log_level = training_args.get_process_log_level()
    logging.set_verbosity(log_level)
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
    return limit_samples(dataset, data_args.max_train_samples, data_args.max_eval_samples, seed), report


def load_model_and_processor(model_args: ModelArguments, label_names: list[str]):
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


def finished_result(output_dir: Path, label_names: list[str]) -> FinetuneResult:
    """What a rerun of a finished run reports, having changed nothing."""
    results = output_dir / "eval_results.json"
    metrics = json.loads(results.read_text()) if results.is_file() else {}
    logger.warning(
        f'This run already finished: the model is in {output_dir} (load it with pipeline("image-classification", '
        f'model="{output_dir}")). Nothing was changed. Pass --overwrite_output_dir to train it again.'
    )
    return FinetuneResult(output_dir, label_names, {k.removeprefix("eval_"): v for k, v in metrics.items()})


def run_finetune(
    data_args: DataArguments,
    model_args: ModelArguments,
    training_args: FinetuneTrainingArguments,
    model_and_processor: tuple | None = None,
    explicit: dict[str, str] | None = None,
    random_init: bool = False,
) -> FinetuneResult:
    """Runs the whole job, holding the output folder's lock from before it is inspected to after the last write.

    Args:
        model_and_processor: replaces loading from `--model_name_or_path` (the offline demo).
        random_init: the model starts from random weights; the summary and the card say so, with no base model.
        explicit: options the user gave and where ("command line", "config file"); a preset leaves them alone.
    """
    output_dir = Path(training_args.output_dir)
    main_process = training_args.process_index == 0
    if main_process:  # before the lock file is made in a folder that holds something else
        check_writable(output_dir)
        check_own_files(output_dir, training_args.overwrite_output_dir)
    with locked_output_folder(output_dir, enabled=main_process):
        return finetune_in_locked_folder(
            data_args, model_args, training_args, model_and_processor, explicit, random_init=random_init
        )


def finetune_in_locked_folder(
    data_args: DataArguments,
    model_args: ModelArguments,
    training_args: FinetuneTrainingArguments,
    model_and_processor: tuple | None = None,
    explicit: dict[str, str] | None = None,
    random_init: bool = False,
) -> FinetuneResult:
    """The run itself (see `run_finetune`); nothing in the folder changes before the run's identity is checked."""
    clock = PhaseClock()
    setup_logging(training_args)
    # As given, before presets: with the data they determine the run (`run_identity`).
    options = options_identity(data_args, model_args, training_args)
    # The Trainer's own push would replace the model card with its generic one: this package pushes itself.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    # Kept out of training_args so the Trainer never saves the token (training_args.bin is a pickle of them).
    hub_token, training_args.hub_token = training_args.hub_token, None
    if push_to_hub:  # before any data is loaded: nobody should learn after hours of training that a push can't work
        hub_token = check_push_settings(training_args.hub_model_id, hub_token)
        check_write_access(training_args.hub_model_id, hub_token)
    set_seed(training_args.seed)
    if training_args.device.type == "cpu":
        threads_note = restore_cpu_threads(int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
        if threads_note and training_args.process_index == 0:
            logger.warning(threads_note)
    output_dir = Path(training_args.output_dir)
    with training_args.main_process_first(desc="checking the output folder"):
        # Before anything is loaded: an unwritable folder or one holding something else stops here.
        check_writable(output_dir)
        resume_from = resolve_resume(
            output_dir, training_args.resume_from_checkpoint, training_args.overwrite_output_dir, options
        )
        if resume_from is not None:  # before anything is loaded or written
            check_checkpoint_readable(Path(resume_from))
    clock.mark("checks")

    # The main process scans first; the others then find every verdict in the scan cache.
    with (
        training_args.main_process_first(desc="scanning and loading the dataset"),
        datasets_progress_silenced(training_args.verbose),
    ):
        dataset, report = load_data(
            data_args, model_args, training_args.seed, progress=training_args.process_index == 0
        )
    clock.mark("scan and data loading")
    label_names = dataset["train"].features["label"].names
    if len(label_names) < 2:
        raise UsageError(f"The training data has a single class ({label_names}): at least two are needed.")
    identity = full_identity(options, label_names, report.data_digest)
    finished = not training_args.overwrite_output_dir and is_finished(output_dir)
    if resume_from or finished:
        check_same_run(output_dir, Path(resume_from) if resume_from else None, identity, keys=DATA_KEYS)
    if finished:
        return finished_result(output_dir, label_names)
    settings = apply_settings(data_args, model_args, training_args, explicit or {}, len(dataset["train"]))
    choose_best_model_metric(training_args, explicit or {}, report.imbalance_ratio)
    check_settings(training_args, len(dataset["train"]), len(dataset["validation"]), logger.warning)
    manifest = RunManifest(output_dir) if training_args.process_index == 0 else None
    if manifest is not None:  # the first writes, once the run is known to be this folder's
        write_identity(output_dir, identity)
        manifest.record()
    if training_args.process_index == 0:
        report.save(output_dir, data_roots(data_args.train_dir, data_args.validation_dir))

    with model_loading_silenced(training_args.verbose):
        model, processor = model_and_processor or load_model_and_processor(model_args, label_names)
        checkpoint_labels = None
        if model_and_processor is None:
            checkpoint_labels = checkpoint_num_labels(
                model_args.model_name_or_path,
                local_files_only=local_files_only_for(model_args.model_name_or_path),
                cache_dir=model_args.cache_dir,
                revision=model_args.model_revision,
            )
    clock.mark("model loading")
    if model_args.freeze_backbone:
        frozen, trainable = freeze_backbone(model, model_args.freeze_backbone)
        logger.warning(
            f"--freeze_backbone {model_args.freeze_backbone}: {frozen / 1e6:.2f} M parameters frozen, "
            f"{trainable / 1e6:.2f} M trained (fewer parameters to fit: less overfitting on small data)."
        )
    checkpointing_flags = [
        f for f in ("gradient_checkpointing", "activation_checkpointing") if hasattr(training_args, f)
    ]
    if any(getattr(training_args, flag) for flag in checkpointing_flags):
        # The Trainer would call the model's own method, which transformers' ResNet lacks: do it here instead.
        logger.warning(
            f"--gradient_checkpointing: {apply_gradient_checkpointing(model)} ({CHECKPOINTING_TRADE}, measured on "
            "an H200)."
        )
        for flag in checkpointing_flags:
            setattr(training_args, flag, False)
    if data_args.image_size:
        processor = set_image_size(processor, model.config, data_args.image_size)
    data_config = resolve_data_config(processor)
    log_run_summary(
        training_args,
        model_args,
        data_args,
        dataset,
        report,
        settings,
        model,
        (data_config.height, data_config.width),
        random_init,
        head_note=describe_head(checkpoint_labels, label_names),
    )

    with reporting_write_failures("a checkpoint", output_dir, after=lambda: after_failed_save(training_args)):
        trainer, train_result, train_runtime = train_fitting_memory(
            lambda: with_run_record(
                build_trainer(model, processor, dataset, training_args, data_args, model_args.channels_last),
                identity,
                manifest,
            ),
            resume_from,
            data_args.image_size,
        )
    clock.mark("trainer set-up and validation preparation", inner={"training": train_runtime})
    if model_args.freeze_backbone:
        unfreeze_batch_norm(trainer.model)
    save_final_model(trainer, output_dir)
    clock.mark("final save")
    results_started = time.time()
    with reporting_write_failures(
        "the run's results", output_dir, after=lambda: after_failed_results(training_args, results_started)
    ):
        return finish_run(trainer, train_result, train_runtime, dataset, report, processor, push_to_hub, hub_token,
                          data_args, model_args, training_args, manifest, clock, random_init=random_init)  # fmt: skip
