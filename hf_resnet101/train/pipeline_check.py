"""The saved folder loaded back through `pipeline("image-classification")` and compared with the evaluation."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
from transformers import pipeline
from transformers.utils import logging

from ..data.images import to_rgb
from ..errors import UsageError
from ..inference import channels_last_for_device
from ..outputs import IMAGE_PROCESSOR_CONFIG, MODEL_CONFIG

logger = logging.get_logger(__name__)


PIPELINE_CHECK_IMAGES = 8


def pipeline_check_indices(num_images: int, count: int) -> list[int]:
    """Evenly spaced indices, so the check sees several classes (splits are ordered by class)."""
    return sorted({round(i) for i in np.linspace(0, num_images - 1, min(count, num_images))})


def check_with_pipeline(
    output_dir: Path,
    validation: datasets.Dataset,
    indices: list[int],
    evaluated: list[str],
    label_names: list[str],
    trust_remote_code: bool = False,
    mixed_precision: bool = False,
) -> list[dict]:
    """Reloads the saved folder with `pipeline` and compares its labels with the evaluation's predictions.

    The pipeline is given the images decoded as training's evaluation decoded them (`images.to_rgb`), so the check
    compares the saved model and processor, not two ways of converting 16-bit or transparent files (the data
    report warns about those). `mixed_precision`: the evaluation ran under bf16/fp16 autocast, where near ties
    can flip; in fp32 any disagreement is a real difference, and the warning says so.

    `trust_remote_code` is passed explicitly: left unset, transformers asks on the terminal whether to run custom
    code a folder names, which would hang a batch job.

    Raises:
        UsageError: when the pipeline returns labels that are not the class names (a broken label mapping).
    """
    sample = validation.select(indices)
    images = [to_rgb(image) for image in sample["image"]]
    classifier = pipeline(
        "image-classification", model=str(output_dir), device=-1, trust_remote_code=trust_remote_code
    )
    # One batch: eight single-image passes took 1.2-1.4 s on a 2-core CPU, one pass of eight 1.0 s.
    outputs = channels_last_for_device(classifier)(images, top_k=1, batch_size=len(images))
    predicted = [result[0]["label"] for result in outputs]
    unknown = sorted(set(predicted) - set(label_names))
    if unknown:
        raise UsageError(
            f"The saved model returns labels {unknown} that are not the class names {label_names}: its id2label "
            f"mapping is broken. Check {output_dir / MODEL_CONFIG}."
        )
    results = [
        {"true": label_names[label], "pipeline": result[0]["label"], "score": round(result[0]["score"], 4)}
        | {"evaluation": expected}
        for label, result, expected in zip(sample["label"], outputs, evaluated, strict=True)
    ]
    logger.warning(
        f"Pipeline check on {len(images)} validation images from {output_dir}: "
        + "; ".join(f"{r['true']} -> {r['pipeline']} ({r['score']:.2f})" for r in results)
    )
    agree = sum(r["pipeline"] == r["evaluation"] for r in results)
    if agree < len(results):
        why = (
            "mixed-precision evaluation can flip near ties"
            if mixed_precision
            else "both ran in fp32 on the same pixels, so the saved folder does not reproduce the evaluation: "
            f"compare its {IMAGE_PROCESSOR_CONFIG} with the run's image size and normalisation"
        )
        logger.warning(f"The pipeline agrees with the evaluation on {agree} of {len(results)} images ({why}).")
    return results
