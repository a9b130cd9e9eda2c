"""The model card: rendered from `model_card_template.md` with `huggingface_hub.ModelCard`."""

from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

TEMPLATE_NAME = "model_card_template.md"
CARD_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "top_5_accuracy")
FRAMEWORKS = ("transformers", "torch", "datasets", "accelerate", "evaluate", "timm", "huggingface-hub")


def template_path() -> Path:
    """The template shipped inside the package (the repository's top-level file in a source checkout)."""
    return Path(str(resources.files("hf_resnet101") / TEMPLATE_NAME))


def framework_versions() -> dict[str, str]:
    versions = {}
    for name in FRAMEWORKS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min {secs:02d} s" if hours else f"{minutes} min {secs:02d} s"


def render_model_card(
    *,
    model_name: str,
    repo_id: str,
    base_model: str,
    label_names: list[str],
    eval_metrics: dict[str, float],
    split_sizes: dict[str, int],
    train_class_counts: dict[str, int],
    hyperparameters: dict[str, object],
    precision: str,
    train_runtime_s: float,
    dataset_name: str | None = None,
    license: str = "apache-2.0",
) -> ModelCard:
    """Fills the template: YAML metadata the Hub reads (with a model-index) and the readable body."""
    shown_metrics = {name: eval_metrics[name] for name in CARD_METRICS if name in eval_metrics}
    dataset_label = dataset_name or "an image folder"
    eval_results = [
        EvalResult(
            task_type="image-classification",
            task_name="Image Classification",
            dataset_type=dataset_name or "imagefolder",
            dataset_name=dataset_label,
            dataset_split="validation",
            metric_type=name,
            metric_name=name,
            metric_value=round(value, 4),
        )
        for name, value in shown_metrics.items()
    ]
    card_data = ModelCardData(
        model_name=model_name,
        base_model=base_model,
        library_name="transformers",
        pipeline_tag="image-classification",
        license=license,
        tags=["image-classification", "resnet", "hf-resnet101", "generated_from_trainer"],
        datasets=[dataset_name] if dataset_name else None,
        metrics=list(shown_metrics),
        eval_results=eval_results or None,
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path()),
        model_name=model_name,
        repo_id=repo_id,
        base_model=base_model,
        dataset_description=f"`{dataset_name}`" if dataset_name else "a folder of images",
        label_names=label_names,
        eval_metrics=shown_metrics,
        num_validation_images=split_sizes.get("validation", 0),
        split_sizes=split_sizes,
        train_class_counts=train_class_counts,
        hyperparameters=hyperparameters,
        precision=precision,
        train_runtime=format_duration(train_runtime_s),
        framework_versions=framework_versions(),
    )
