"""Running a trained classifier: loading it for inference, reading images safely, batched pipeline calls."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoModelForImageClassification, Pipeline, PreTrainedModel, pipeline
from transformers.image_utils import load_image

from .errors import UsageError
from .modeling import load_image_processor, local_files_only_for
from .outputs import MODEL_CONFIG

# Images are decoded a chunk at a time, so memory stays bounded however many files are given.
CHUNK_BATCHES = 8
# What PIL raises for missing, truncated, corrupt or oversized files.
IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)

ImageSource = str | Path | Image.Image


@dataclass
class Classified:
    """The pipeline's output for one image, or why the image could not be read."""

    source: str
    scores: list[dict] | None = None
    error: str | None = None


def best_device() -> torch.device:
    """CUDA when there is a GPU, then Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def looks_like_local_path(name: str) -> bool:
    """True for names that can only be a folder (a Hub id is `name` or `owner/name`)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name


def check_model_source(name_or_path: str) -> None:
    """Raises a clear error for a model folder that does not exist or is not a trained model."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / MODEL_CONFIG).is_file():
            raise UsageError(
                f"{name_or_path} has no config.json: give the output folder of a training run "
                "(with config.json and model.safetensors) or a Hub model id."
            )
        return
    if path.exists():
        raise UsageError(f"{name_or_path} is a file: give a model folder (with config.json) or a Hub model id.")
    if looks_like_local_path(name_or_path):
        raise UsageError(
            f"Model folder {name_or_path} does not exist. Give the --output_dir of a training run or a Hub model id "
            "(like USER/NAME)."
        )


def load_trained_model(name_or_path: str, *, local_files_only: bool, dtype: str | torch.dtype = "auto"):
    """Loads an image-classification model from safetensors weights, in its saved precision by default."""
    try:
        return AutoModelForImageClassification.from_pretrained(
            name_or_path, use_safetensors=True, local_files_only=local_files_only, dtype=dtype
        )
    except (OSError, ValueError) as error:
        raise UsageError(
            f"Could not load the model {name_or_path!r}: {error}\nGive a folder written by a training run "
            "(config.json, model.safetensors, preprocessor_config.json) or a Hub id reachable from this machine "
            "(offline: one in the Hub cache, with HF_HUB_OFFLINE=1)."
        ) from error


def load_model_and_processor(name_or_path: str, dtype: str | torch.dtype = "auto") -> tuple[PreTrainedModel, object]:
    """The model (in eval mode) and its image processor, from a local folder or the Hub."""
    check_model_source(name_or_path)
    local_only = local_files_only_for(name_or_path)
    model = load_trained_model(name_or_path, local_files_only=local_only, dtype=dtype).eval()
    processor = load_image_processor(name_or_path, local_files_only=local_only)
    return model, processor


def channels_last_on_cpu(classifier: Pipeline) -> Pipeline:
    """Lays a CPU pipeline's model out channels-last, as training does; a GPU pipeline is left as it is.

    oneDNN's convolutions run channels-last faster: ResNet-101 through `pipeline`, batch 8, 500x375 JPEGs, 2-core
    AMD EPYC, 8.2-8.3 against 9.1-9.3 images/s, and 6.9-7.7 against 7.4-7.8 with the instruction set capped at
    AVX2 (benchmarks/RESULTS.md). The predictions are the same up to float rounding.
    """
    if classifier.device.type == "cpu":
        classifier.model.to(memory_format=torch.channels_last)
    return classifier


def load_classifier(name_or_path: str, device: torch.device | str | None = None) -> Pipeline:
    """An `image-classification` pipeline on the best device, in the model's saved precision."""
    model, processor = load_model_and_processor(name_or_path)
    device = device or best_device()
    classifier = pipeline("image-classification", model=model, image_processor=processor, device=device)
    return channels_last_on_cpu(classifier)


def read_image(source: ImageSource) -> Image.Image:
    """Decodes an image as the pipeline does (EXIF orientation applied, RGB).

    Raises:
        OSError, ValueError, ...: when the file is missing or is not a readable image (see `IMAGE_ERRORS`).
    """
    if isinstance(source, Image.Image):
        return load_image(source)
    if not os.path.isfile(source):
        raise FileNotFoundError(f"no such file: {source}")
    return load_image(str(source))


def describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def read_chunk(sources: Sequence[ImageSource]) -> tuple[list[Image.Image], list[int], dict[int, str]]:
    """Reads images; returns the readable ones, their positions, and an error message per unreadable one."""
    images, positions, errors = [], [], {}
    for position, source in enumerate(sources):
        try:
            images.append(read_image(source))
        except IMAGE_ERRORS as error:
            errors[position] = describe_error(error)
        else:
            positions.append(position)
    return images, positions, errors


def source_name(source: ImageSource, index: int) -> str:
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or f"image {index}"
    return str(source)


def classify(
    classifier: Pipeline,
    sources: Sequence[ImageSource],
    *,
    top_k: int,
    batch_size: int = 8,
    function_to_apply: str | None = None,
    names: Sequence[str] | None = None,
    on_progress: Callable[[int], object] | None = None,
) -> Iterator[Classified]:
    """Runs the pipeline over images in order, a chunk at a time; unreadable images yield an error instead.

    Args:
        classifier: an `image-classification` pipeline.
        sources: image paths or PIL images (a lazy sequence works: it is read a chunk at a time).
        top_k: how many labels per image (capped at the number of classes by the pipeline).
        batch_size: images per forward pass.
        function_to_apply: the pipeline's option (`"none"` returns logits); its default gives probabilities.
        names: what to call each image in the results (default: its path).
        on_progress: called with the number of images done after each chunk (e.g. a tqdm bar's `update`).
    """
    chunk_size = batch_size * CHUNK_BATCHES
    options = {"top_k": top_k, "batch_size": batch_size}
    if function_to_apply is not None:
        options["function_to_apply"] = function_to_apply
    for start in range(0, len(sources), chunk_size):
        chunk = [sources[i] for i in range(start, min(start + chunk_size, len(sources)))]
        images, positions, errors = read_chunk(chunk)
        outputs = dict(zip(positions, classifier(images, **options), strict=True)) if images else {}
        for offset, source in enumerate(chunk):
            name = names[start + offset] if names is not None else source_name(source, start + offset)
            yield Classified(name, scores=outputs.get(offset), error=errors.get(offset))
        if on_progress is not None:
            on_progress(len(chunk))
