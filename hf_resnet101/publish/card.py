"""The model card: rendered from `model_card_template.md` with `huggingface_hub.ModelCard`.

A finished run saves what the card needs in `card_inputs.json` (the training log stays in `trainer_state.json`),
so `hf-resnet101 card OUT` can render it again, for instance after the template was edited.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata, resources
from pathlib import Path

import numpy as np
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..config.presets import OVERFITTING_ADVICE, tier_for
from ..data.report import FEW_GREY_LEVELS
from ..errors import UsageError
from ..evaluation.confusion import plot_confusion_matrix
from ..evaluation.plots import save_training_curves
from ..modeling import is_hub_id
from ..outputs import CARD_INPUTS, CONFUSION_MATRIX, MODEL_CARD, TRAINER_STATE, TRAINING_CURVES

TEMPLATE_NAME = "model_card_template.md"
CARD_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "top_5_accuracy")
FRAMEWORKS = ("transformers", "torch", "datasets", "accelerate", "evaluate", "timm", "huggingface-hub")
TRAINING_HYPERPARAMETERS = (
    "learning_rate",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "optim",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "max_grad_norm",
    "label_smoothing_factor",
    "seed",
    "eval_strategy",
    "eval_steps",
    "metric_for_best_model",
    "load_best_model_at_end",
    "early_stopping_patience",
)
DATA_HYPERPARAMETERS = ("image_size", "augmentation", "preset", "class_weighting", "train_val_split", "dedupe")
MODEL_HYPERPARAMETERS = ("model_name_or_path", "freeze_backbone", "channels_last")
# Training accuracy this far above validation accuracy (in accuracy points) earns the card an overfitting note.
OVERFITTING_GAP = 0.10


def template_path() -> Path:
    """The template shipped inside the package (the repository's top-level file in a source checkout)."""
    return Path(str(resources.files("hf_resnet101.publish") / TEMPLATE_NAME))


def framework_versions() -> dict[str, str]:
    versions = {}
    for name in FRAMEWORKS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def few_grey_levels(values: dict | None) -> dict | None:
    """The 16-bit grey images' values, where rescaling them from 0-65535 left fewer grey levels than
    `FEW_GREY_LEVELS` (the card says so); else None."""
    return values if values and values["grey_levels"] < FEW_GREY_LEVELS else None


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min {secs:02d} s" if hours else f"{minutes} min {secs:02d} s"


@dataclass
class CardInputs:
    """Everything the card shows that is not in the template; saved as `card_inputs.json` by a run."""

    model_name: str
    base_model: str | None  # a Hub id, or None when unknown or when training started from random weights
    label_names: list[str]
    images_per_class: dict[str, dict[str, int]]
    eval_metrics: dict[str, float]
    hyperparameters: dict[str, object]
    precision: str
    devices: str
    train_runtime_s: float
    per_class: dict[str, list[float]] = field(default_factory=dict)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    train_accuracy: float | None = None
    train_accuracy_images: int = 0
    repo_id: str | None = None
    data_source: str = "a folder of images"
    dataset_name: str | None = None
    unusable_files: int = 0
    left_out_files: int = 0  # files of a type training does not read (.heic, .avif, videos) in the class folders
    nested_images: int = 0  # images in sub-folders of class folders, left out
    loose_images: int = 0  # images beside the class folders, left out
    # Validation images identical to training images, kept (no --dedupe): the figures overstate new-image accuracy.
    validation_copies_of_training: int = 0
    # usable images found, when options (`left_out_by`: --dedupe, --max_train_samples) left some of them out
    images_found: int | None = None
    left_out_by: list[str] = field(default_factory=list)
    empty_classes: list[str] = field(default_factory=list)
    overfitting_events: list[dict] = field(default_factory=list)
    framework_versions: dict[str, str] = field(default_factory=framework_versions)
    license: str = "apache-2.0"
    random_init: bool = False  # trained from random initial weights: not fine-tuned from any model
    architecture: str | None = None  # e.g. "ResNetForImageClassification", named when there is no base model
    # whether the model is a ResNet-101 (`modeling.is_resnet101`), which the card's ResNet-101 notes then describe;
    # None in card_inputs.json of runs before this field: the card then says nothing about the model's family
    resnet101: bool | None = None
    parameters: int | None = None
    # images per mode that a pipeline given their files converts unlike training (`DataReport` has them)
    converted_modes: dict[str, int] = field(default_factory=dict)
    # The values the 16-bit grey images used and the grey levels they kept in 8 bits (`report.high_bit_values`).
    high_bit_values: dict | None = None
    # the weights were chosen among the run's evaluations on the validation split: step, steps, metric, evaluations
    selection: dict | None = None

    @property
    def num_images(self) -> int:
        return sum(sum(counts.values()) for counts in self.images_per_class.values())

    @property
    def num_train_images(self) -> int:
        return sum(self.images_per_class.get("train", {}).values())

    def save(self, output_dir: str | Path) -> Path:
        path = Path(output_dir) / CARD_INPUTS
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, output_dir: str | Path) -> CardInputs:
        """Reads `card_inputs.json`.

        Raises:
            UsageError: when the folder holds no `card_inputs.json` (not the output of a finished run).
        """
        path = Path(output_dir) / CARD_INPUTS
        if not path.is_file():
            raise UsageError(
                f"{path} does not exist: give the output folder of a run that finished training "
                "(it writes card_inputs.json next to the model)."
            )
        return cls(**json.loads(path.read_text()))


RANDOM_INIT_NOTE = "none (random initialisation)"
LOCAL_MODEL_NOTE = "a local folder"


def public_inputs(inputs: CardInputs) -> CardInputs:
    """`inputs` with nothing local in what gets published: a base model that is not a Hub id (a path, as runs
    before this check recorded) is left out, a local model path among the hyperparameters is replaced, and a local
    --dataset_name is named by its folder's name alone (and not linked as a Hub dataset)."""
    base = None if inputs.random_init or not is_hub_id(inputs.base_model) else inputs.base_model
    hyperparameters = dict(inputs.hyperparameters)
    name = hyperparameters.get("model_name_or_path")
    if inputs.random_init:
        hyperparameters["model_name_or_path"] = RANDOM_INIT_NOTE
    elif isinstance(name, str) and not is_hub_id(name) and not name.startswith(LOCAL_MODEL_NOTE):
        hyperparameters["model_name_or_path"] = f"{LOCAL_MODEL_NOTE} ({base or 'origin not recorded'})"
    dataset_name, data_source = inputs.dataset_name, inputs.data_source
    if dataset_name and not is_hub_id(dataset_name):  # a local dataset: its folder's name only, and no Hub link
        data_source = data_source.replace(dataset_name, Path(dataset_name).name)
        dataset_name = None
    return replace(
        inputs, base_model=base, hyperparameters=hyperparameters, dataset_name=dataset_name, data_source=data_source
    )


def collect_hyperparameters(data_args, model_args, training_args) -> dict[str, object]:
    """Every setting that shaped the model, as it was in effect (after presets), plus the global batch size."""
    values = {name: getattr(training_args, name) for name in TRAINING_HYPERPARAMETERS if hasattr(training_args, name)}
    values = {name: getattr(value, "value", value) for name, value in values.items()}  # enums -> their names
    accumulated = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
    values["total_train_batch_size"] = accumulated * training_args.world_size
    for holder, names in ((data_args, DATA_HYPERPARAMETERS), (model_args, MODEL_HYPERPARAMETERS)):
        values |= {name: getattr(holder, name) for name in names if hasattr(holder, name)}
    # Only what shaped this run: no split fraction beside a validation folder, no evaluation step count beside
    # evaluation by epoch, and the length as given: --max_steps, or else --num_train_epochs
    if getattr(data_args, "validation_dir", None):
        values.pop("train_val_split", None)
    if values.get("eval_strategy") != "steps":
        values.pop("eval_steps", None)
    if not values.get("early_stopping_patience"):
        values.pop("early_stopping_patience", None)
    # --warmup_ratio is passed on as a fraction in warmup_steps (transformers 5): shown under its own name
    ratio = getattr(training_args, "warmup_ratio", None)
    if ratio and values.get("warmup_steps") == ratio:
        values["warmup_ratio"] = values.pop("warmup_steps")
    if (values.get("max_steps") or -1) > 0:  # the run's length, which --num_train_epochs then does not set
        values.pop("num_train_epochs", None)
    else:
        values.pop("max_steps", None)
    return values


def describe_devices(training_args) -> str:
    """E.g. `1 x cuda:0 (NVIDIA H100 80GB HBM3)` or `2 processes on cpu`."""
    import torch

    device = training_args.device
    processes = training_args.world_size
    if device.type == "cuda":
        return f"{processes} x {device} ({torch.cuda.get_device_name(device)})"
    return f"{processes} process{'es' if processes > 1 else ''} on {device.type}"


def training_gap(inputs: CardInputs) -> float | None:
    """Training minus validation accuracy, when both were measured."""
    validation = inputs.eval_metrics.get("accuracy")
    if inputs.train_accuracy is None or validation is None:
        return None
    return inputs.train_accuracy - validation


def overfitting_note(inputs: CardInputs) -> str | None:
    """The product page's overfitting advice (docs/product-page.md#overfitting), when training accuracy is well
    above validation accuracy or the overfitting monitor saw the validation loss stay well above the training loss."""
    signs = []
    gap = training_gap(inputs)
    if gap is not None and gap >= OVERFITTING_GAP:
        signs.append(
            f"training accuracy ({inputs.train_accuracy:.1%} on {inputs.train_accuracy_images} training images) is "
            f"{gap * 100:.1f} percentage points above validation accuracy ({inputs.eval_metrics['accuracy']:.1%})"
        )
    for event in inputs.overfitting_events[:1]:
        signs.append(
            f"from step {event['step']} the validation loss ({event['eval_loss']}) stayed well above the training "
            f"loss ({event['train_loss']})"
        )
    if not signs:
        return None
    return (
        f"Signs of overfitting: {'; '.join(signs)}. The model has memorised part of its training set and will do "
        f"worse on new images than training suggests; {'ResNet-101' if inputs.resnet101 is not False else 'the model'}"
        f" has a lot of capacity for {inputs.num_images:,} images. To close the gap, {OVERFITTING_ADVICE}."
    )


def table_cell(text: str) -> str:
    """A class name as a Markdown table cell: a `|` in it would start a new column."""
    return text.replace("|", "\\|")


def code_span(text: str) -> str:
    """A class name as inline code: fenced with more backticks than any run of them inside it (`a`, ``a`b``)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    padding = " " if longest else ""  # a name that starts or ends with a backtick needs the space
    return f"{fence}{padding}{text}{padding}{fence}"


def card_per_class_rows(inputs: CardInputs) -> list[dict[str, object]]:
    """The card's per-class table: one row per class (its name escaped for Markdown), precision, recall, F1 and
    support (a whole number of images) on the validation split, and how many images it was predicted for. The
    template shows n/a for a class with no validation image that was never predicted (the macro averages leave it
    out), and the zeros the macro averages count for one without validation images that was predicted."""
    if not inputs.per_class:
        return []
    columns = ("precision", "recall", "f1")
    predicted = inputs.per_class.get("predicted") or [0] * len(inputs.label_names)  # older runs did not record it
    return [
        {"label": table_cell(name), "support": int(inputs.per_class["support"][i]), "predicted": int(predicted[i])}
        | {column: inputs.per_class[column][i] for column in columns}
        for i, name in enumerate(inputs.label_names)
    ]


def load_log_history(output_dir: str | Path) -> list[dict]:
    """The Trainer's log (losses and evaluations per step) from `trainer_state.json`; empty when absent."""
    path = Path(output_dir) / TRAINER_STATE
    return json.loads(path.read_text()).get("log_history", []) if path.is_file() else []


def save_card_figures(inputs: CardInputs, output_dir: str | Path) -> dict[str, str]:
    """Writes the confusion matrix and the curves next to the card; returns their file names by kind."""
    output_dir = Path(output_dir)
    figures = {}
    if inputs.confusion_matrix:
        plot_confusion_matrix(
            np.asarray(inputs.confusion_matrix),
            inputs.label_names,
            output_dir / CONFUSION_MATRIX,
            title="Confusion matrix (validation)",
        )
        figures["confusion_matrix"] = CONFUSION_MATRIX
    curves = save_training_curves(load_log_history(output_dir), output_dir / TRAINING_CURVES, inputs.train_accuracy)
    if curves is not None:
        figures["training_curves"] = TRAINING_CURVES
    return figures


def build_card_data(inputs: CardInputs, shown_metrics: dict[str, float]) -> ModelCardData:
    """The YAML metadata the Hub reads, with a model-index of the validation results."""
    dataset_label = inputs.dataset_name or "imagefolder"
    eval_results = [
        EvalResult(
            task_type="image-classification",
            task_name="Image Classification",
            dataset_type=dataset_label,
            dataset_name=inputs.dataset_name or "an image folder",
            dataset_split="validation",
            metric_type=name,
            metric_name=name,
            metric_value=round(value, 4),
        )
        for name, value in shown_metrics.items()
    ]
    return ModelCardData(
        model_name=inputs.model_name,
        base_model=None if inputs.random_init else inputs.base_model,  # None: left out of the metadata
        library_name="transformers",
        pipeline_tag="image-classification",
        license=inputs.license,
        # "resnet" for a ResNet-101, and for runs before the model's family was recorded (resnet101 None)
        tags=[
            "image-classification",
            *(["resnet"] if inputs.resnet101 is not False else []),
            "hf-resnet101",
            "generated_from_trainer",
        ],  # fmt: skip
        datasets=[inputs.dataset_name] if inputs.dataset_name else None,
        metrics=list(shown_metrics),
        eval_results=eval_results or None,
    )


def format_parameters(count: int) -> str:
    """23512130 -> "23.5 M"; a small model's count in full: 21380 -> "21,380"."""
    return f"{count / 1e6:.1f} M" if count >= 1_000_000 else f"{count:,}"


def render_model_card(
    inputs: CardInputs, figures: dict[str, str] | None = None, repo_id: str | None = None
) -> ModelCard:
    """Fills the template: metadata the Hub reads and the readable body.

    Args:
        figures: file names of the figures to show, by kind (`confusion_matrix`, `training_curves`).
        repo_id: where the model is published, for the usage snippet; defaults to the one the run was given.
    """
    inputs = public_inputs(inputs)
    repo_id = repo_id or inputs.repo_id
    if repo_id:  # the card's title and model-index name are the repository's, not the local folder's
        inputs = replace(inputs, model_name=repo_id.split("/")[-1])
    shown_metrics = {name: inputs.eval_metrics[name] for name in CARD_METRICS if name in inputs.eval_metrics}
    tier = tier_for(inputs.num_train_images)  # as the run's preset chose it: by the training images
    splits = list(inputs.images_per_class)
    return ModelCard.from_template(
        build_card_data(inputs, shown_metrics),
        template_path=str(template_path()),
        model_name=inputs.model_name,
        repo_id=repo_id or inputs.model_name,
        local_only=not repo_id,  # not pushed: the snippet names the folder, not a repo id that does not exist
        base_model=inputs.base_model,
        random_init=inputs.random_init,
        license=inputs.license,
        architecture=inputs.architecture or "image-classification model",
        resnet101=inputs.resnet101,
        converted_modes=inputs.converted_modes,
        few_grey_levels=few_grey_levels(inputs.high_bit_values),
        parameters=None if inputs.parameters is None else format_parameters(inputs.parameters),
        dataset_description=f"`{inputs.dataset_name}`" if inputs.dataset_name else "a folder of images",
        data_source=inputs.data_source,
        label_names=inputs.label_names,
        label_codes=[code_span(name) for name in inputs.label_names],
        eval_metrics=shown_metrics,
        num_validation_images=sum(inputs.images_per_class.get("validation", {}).values()),
        splits=splits,
        split_sizes={split: sum(counts.values()) for split, counts in inputs.images_per_class.items()},
        class_rows=[
            {"label": table_cell(name), "counts": [inputs.images_per_class[split].get(name, 0) for split in splits]}
            for name in inputs.label_names
        ],
        num_images=inputs.num_images,
        num_train_images=inputs.num_train_images,
        tier=tier,
        unusable_files=inputs.unusable_files,
        left_out_files=inputs.left_out_files,
        nested_images=inputs.nested_images,
        loose_images=inputs.loose_images,
        validation_copies_of_training=inputs.validation_copies_of_training,
        images_found=inputs.images_found if inputs.images_found != inputs.num_images else None,
        left_out_by=inputs.left_out_by,
        empty_classes=inputs.empty_classes,
        empty_class_codes=[code_span(name) for name in inputs.empty_classes],
        per_class_rows=card_per_class_rows(inputs),
        figures=figures or {},
        train_accuracy=inputs.train_accuracy,
        train_accuracy_images=inputs.train_accuracy_images,
        overfitting_note=overfitting_note(inputs),
        selection=inputs.selection,
        hyperparameters=inputs.hyperparameters,
        precision=inputs.precision,
        devices=inputs.devices,
        train_runtime=format_duration(inputs.train_runtime_s),
        framework_versions=inputs.framework_versions,
    )


def write_model_card(output_dir: str | Path, inputs: CardInputs | None = None, repo_id: str | None = None) -> Path:
    """Draws the figures and writes `README.md` in a finished output folder; returns the card's path.

    Raises:
        UsageError: when `inputs` is not given and the folder holds no `card_inputs.json`.
    """
    output_dir = Path(output_dir)
    inputs = inputs or CardInputs.load(output_dir)
    card = render_model_card(inputs, save_card_figures(inputs, output_dir), repo_id=repo_id)
    path = output_dir / MODEL_CARD
    card.save(path)
    return path


def card_text_for_repo(output_dir: str | Path, repo_id: str, always: bool = False) -> str | None:
    """The card rendered for `repo_id` when the folder's card names another repo, or `always` (the folder's
    README.md is not pushed: changed since the run wrote it); None when the folder's card fits.

    The figures already in the folder are shown; nothing in the folder is written.
    """
    output_dir = Path(output_dir)
    if not (output_dir / CARD_INPUTS).is_file():
        return None
    inputs = CardInputs.load(output_dir)
    if inputs.repo_id == repo_id and not always:
        return None
    kinds = {"confusion_matrix": CONFUSION_MATRIX, "training_curves": TRAINING_CURVES}
    figures = {kind: name for kind, name in kinds.items() if (output_dir / name).is_file()}
    return str(render_model_card(inputs, figures, repo_id=repo_id))
