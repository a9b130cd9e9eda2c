"""Running a trained classifier: loading it for inference, reading images safely, batched pipeline calls."""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from transformers import (
    AutoModelForImageClassification,
    ImageClassificationPipeline,
    Pipeline,
    PreTrainedModel,
    pipeline,
)
from transformers.utils import logging

from .config import hardware
from .config.hardware import PRECISIONS, cpu_bf16_is_auto, cpu_supports_bf16
from .data.images import to_rgb
from .errors import UsageError
from .folding import fold_batch_norms
from .modeling import (
    check_model_source,
    is_hub_id,
    is_onnx_export,
    load_image_processor,
    local_files_only_for,
    missing_timm_hint,
    not_cached_message,
)
from .onnx_runtime import OnnxRuntimeModel, load_onnx_model_and_processor

# Images are decoded a chunk at a time, so memory stays bounded however many files are given.
CHUNK_BATCHES = 8
# What PIL raises for missing, truncated, corrupt or oversized files.
IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)

ImageSource = str | Path | Image.Image
# `benchmarks/predict_speed.py --onnx` (benchmarks/RESULTS.md): ResNet-101, 500x375 JPEGs, batch 8, best of 3 rounds.
ONNX_AGAINST_BF16 = "1.5x as fast as its export on an AMD EPYC with AVX-512 BF16 (20.2 against 13.2 images/s)"
INFERENCE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


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


PYTORCH_MODEL_TO_GIVE = (
    "the output folder of a training run (with config.json and model.safetensors) or a Hub model id (like USER/NAME)"
)
MODEL_TO_GIVE = (
    "the output folder of a training run (with config.json and model.safetensors), a folder written by "
    "`hf-resnet101 export` or a Hub model id (like USER/NAME)"
)


WEIGHT_LOADING_BAR = "Loading weights"  # transformers' bar over the checkpoint's tensors as they are loaded
WEIGHT_WRITING_BAR = "Writing model shards"  # and its bar over the shards `save_pretrained` writes (often one)
WEIGHT_FILE_BARS = (WEIGHT_LOADING_BAR, WEIGHT_WRITING_BAR)


def hide_weight_file_bars(factory, args: tuple, kwargs: dict):
    """A `transformers.utils.logging.set_tqdm_hook` hook: transformers' bars over a model's weights as they are
    loaded or saved disabled (a second or less each: noise on stderr before a prediction table or between a run's
    progress and its metrics), every other bar (a Hub download's, a training run's) as it was."""
    if kwargs.get("desc") in WEIGHT_FILE_BARS:
        kwargs = {**kwargs, "disable": True}
    return factory(*args, **kwargs)


@contextlib.contextmanager
def weight_file_bars_hidden(hidden: bool = True):
    """Within it, `hide_weight_file_bars` (unless not `hidden`: `--verbose` keeps the libraries' output)."""
    # set_tqdm_hook is recent (transformers 5.24 has it; the pinned floor is 5.0): without it the bars stay.
    set_tqdm_hook = getattr(logging, "set_tqdm_hook", None)
    if set_tqdm_hook is None or not hidden:
        yield
        return
    previous = set_tqdm_hook(hide_weight_file_bars)
    try:
        yield
    finally:
        set_tqdm_hook(previous)


def load_trained_model(name_or_path: str, *, local_files_only: bool, dtype: str | torch.dtype = "auto"):
    """Loads an image-classification model from safetensors weights, in its saved precision by default."""
    try:
        with weight_file_bars_hidden():
            return AutoModelForImageClassification.from_pretrained(
                name_or_path, use_safetensors=True, local_files_only=local_files_only, dtype=dtype
            )
    except (OSError, ValueError, ImportError) as error:
        if local_files_only and is_hub_id(name_or_path) and missing_timm_hint(name_or_path, error) is None:
            raise UsageError(f"Could not load the model: {not_cached_message(name_or_path)}") from error
        hint = missing_timm_hint(name_or_path, error) or (
            "Give a folder written by a training run (config.json and model.safetensors) or a Hub id reachable "
            "from this machine (offline: one in the Hub cache)."
        )
        raise UsageError(f"Could not load the model {name_or_path!r}: {error}\n{hint}") from error


def load_model_and_processor(
    name_or_path: str, dtype: str | torch.dtype = "auto", give: str = MODEL_TO_GIVE
) -> tuple[PreTrainedModel, object]:
    """The model (in eval mode) and its image processor, from a local folder or the Hub; `give` says what the
    command takes, in the error for a source it cannot load."""
    check_model_source(name_or_path, give=give)
    local_only = local_files_only_for(name_or_path)
    model = load_trained_model(name_or_path, local_files_only=local_only, dtype=dtype).eval()
    processor = load_image_processor(name_or_path, local_files_only=local_only)
    return model, processor


def inference_precision(requested: str, device_type: str, cpu_bf16: bool = False, cpu_bf16_auto: bool = False) -> str:
    """The precision to run a model in. `auto` is what training's `auto` runs on the same hardware
    (`hardware.resolve_precision`): fp16 on a CUDA GPU (its tensor cores), bf16 on a CPU where `cpu_bf16_auto`
    (x86 with AVX-512 BF16 or AMX: 1.75x fp32 there), fp32 elsewhere (MPS is untested). fp16 on a CPU, 5.5x slower
    than fp32 there, becomes bf16 where the CPU has bf16 instructions (`cpu_bf16`), else fp32, as in training."""
    if requested not in PRECISIONS:
        raise UsageError(f"--precision {requested}: choose one of {', '.join(PRECISIONS)}.")
    if requested in ("auto", "fp16") and device_type in ("cuda", "cpu"):
        fp16, bf16, _ = hardware.resolve_precision(requested, device_type == "cuda", cpu_bf16, cpu_bf16_auto)
        return "fp16" if fp16 else "bf16" if bf16 else "fp32"
    return "fp32" if requested == "auto" else requested  # explicit bf16 is honoured, unlike training's fallback


def precision_hint(requested: str, device_type: str, cpu_bf16: bool, cpu_bf16_auto: bool = False) -> str | None:
    """A note on a CPU where the precision depends on its instructions: `auto` running bf16 (and how to get fp32),
    `auto` staying fp32 on a CPU that runs bf16 when asked for, and fp16, which `inference_precision` replaces."""
    if device_type != "cpu":
        return None
    if requested == "fp16":
        instead = "bf16, which this CPU runs natively" if cpu_bf16 else "fp32"
        return (
            "note: fp16 is slow on a CPU (ResNet-101 ran 5.5x slower than in fp32 on an AMD EPYC), so the model runs "
            f"in {instead}."
        )
    if requested == "auto" and cpu_bf16_auto:
        return (
            "note: running in bf16, which this CPU has instructions for (ResNet-101 ran 1.75x as fast as in fp32 on "
            "an AMD EPYC with AVX-512 BF16); scores are rounded to bf16, so a near tie can change a label: "
            "--precision fp32 for full precision."
        )
    if requested == "auto" and cpu_bf16:
        return (
            "note: this CPU has bf16 instructions: --precision bf16 ran ResNet-101 1.75x as fast as fp32 on an AMD "
            "EPYC with AVX-512 BF16 (unmeasured on this kind of CPU); scores are then rounded to bf16, so a near tie "
            "can change a label."
        )
    return None


def onnx_runtime_hint(gpu: bool, cpu_bf16_auto: bool) -> str | None:
    """A note where an export runs slower than the training run's own folder would on this machine: beside a GPU,
    and on a CPU where PyTorch's `auto` is bf16."""
    if gpu:
        return (
            "note: ONNX Runtime runs the export on the CPU here; the training run's output folder runs on this "
            "machine's GPU."
        )
    if cpu_bf16_auto:
        return (
            "note: ONNX Runtime runs the export in fp32. This CPU has bf16 instructions, which PyTorch uses: for "
            f"ResNet-101 (the one model measured), the training run's output folder ran {ONNX_AGAINST_BF16}."
        )
    return None


def precision_hint_for(classifier: Pipeline, requested: str) -> str | None:
    """`precision_hint` for a loaded classifier on this machine (`onnx_runtime_hint` for an export)."""
    if runs_onnx(classifier):
        return onnx_runtime_hint(torch.cuda.is_available(), cpu_bf16_is_auto())
    return precision_hint(requested, classifier.device.type, cpu_supports_bf16(), cpu_bf16_is_auto())


def channels_last_for_device(classifier: Pipeline) -> Pipeline:
    """Lays a CPU or CUDA pipeline's model out channels-last, as training does; other devices are left as they are.

    oneDNN's convolutions run channels-last faster: ResNet-101 through `pipeline`, batch 8, 500x375 JPEGs, 2-core
    AMD EPYC, 8.2-8.3 against 9.1-9.3 images/s, and 6.9-7.7 against 7.4-7.8 with the instruction set capped at
    AVX2 (benchmarks/RESULTS.md). cuDNN's fp16 and bf16 convolutions use the tensor cores in this layout (training
    on the GPU runs in it too). The predictions are the same up to float rounding.
    """
    if classifier.device.type in ("cpu", "cuda"):
        classifier.model.to(memory_format=torch.channels_last)
    return classifier


class PreparedImage:
    """An image already through the pipeline's own `preprocess` (its model inputs), as `classify`'s threads make."""

    __slots__ = ("inputs",)

    def __init__(self, inputs):
        self.inputs = inputs


class PreparingImageClassificationPipeline(ImageClassificationPipeline):
    """transformers' image-classification pipeline, which also takes `PreparedImage`s: images its own `preprocess`
    has already run on, in `classify`'s threads. Called with images, paths or URLs it is the stock pipeline."""

    def preprocess(self, image, *args, **kwargs):
        if isinstance(image, PreparedImage):
            return image.inputs
        return super().preprocess(image, *args, **kwargs)


class OnnxRuntimeClassificationPipeline(PreparingImageClassificationPipeline):
    """`PreparingImageClassificationPipeline` over an `OnnxRuntimeModel`: transformers' preprocessing and
    postprocessing (labels, softmax, top-k) around ONNX Runtime's forward pass."""

    def check_model_type(self, supported_models) -> None:
        """An `OnnxRuntimeModel` stands for the exported classifier, which transformers' list cannot name."""


def check_export_precision(precision: str) -> None:
    """An export runs in fp32: `auto` and fp32 are taken, bf16 and fp16 refused with what to do instead."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision}: choose one of {', '.join(PRECISIONS)}.")
    if precision not in ("auto", "fp32"):
        raise UsageError(
            f"--precision {precision}: an ONNX export runs in fp32 with ONNX Runtime on the CPU. Leave --precision "
            "at auto, or give the training run's output folder to run the PyTorch model in fp16 or bf16."
        )


def load_onnx_classifier(folder: str | Path, precision: str = "auto") -> Pipeline:
    """An `image-classification` pipeline over an export folder's model.onnx, run by ONNX Runtime on the CPU."""
    check_export_precision(precision)
    model, processor = load_onnx_model_and_processor(folder)
    return OnnxRuntimeClassificationPipeline(model=model, image_processor=processor, device=torch.device("cpu"))


def runs_onnx(classifier: Pipeline) -> bool:
    return isinstance(classifier.model, OnnxRuntimeModel)


def load_classifier(name_or_path: str, device: torch.device | str | None = None, precision: str = "auto") -> Pipeline:
    """An `image-classification` pipeline on the best device, in `precision` (see `inference_precision`), a ResNet's
    batch norms folded into its convolutions (`folding.py`); for an `export` folder, its model.onnx run by ONNX
    Runtime on the CPU (`load_onnx_classifier`)."""
    if is_onnx_export(name_or_path):
        return load_onnx_classifier(name_or_path, precision)
    device = torch.device(device or best_device())
    on_cpu = device.type == "cpu"
    chosen = inference_precision(precision, device.type, on_cpu and cpu_supports_bf16(), on_cpu and cpu_bf16_is_auto())
    # Loaded in fp32 so that the batch norms are folded before the weights are rounded to a 16-bit precision.
    model, processor = load_model_and_processor(name_or_path, dtype=torch.float32)
    fold_batch_norms(model)
    model.to(INFERENCE_DTYPES[chosen])
    classifier = pipeline(
        "image-classification",
        model=model,
        image_processor=processor,
        device=device,
        pipeline_class=PreparingImageClassificationPipeline,
    )
    return channels_last_for_device(classifier)


def describe_inference(classifier: Pipeline) -> str:
    """Where and in what precision a pipeline runs, as the results record it (`cuda, float16`; `cpu, float32, ONNX
    Runtime` for an export)."""
    where = f"{classifier.device.type}, {str(classifier.model.dtype).removeprefix('torch.')}"
    return f"{where}, ONNX Runtime" if runs_onnx(classifier) else where


def read_image(source: ImageSource) -> Image.Image:
    """Decodes an image as training and its evaluation do (`images.to_rgb`: EXIF orientation applied, 16-bit
    rescaled, transparency composited on grey), so predict and evaluate see what the model was trained and scored
    on. For 8-bit images without transparency that is what the pipeline's own loading gives; for 16-bit and
    transparent ones the pipeline's differs (16-bit clipped to nearly white, transparency dropped).

    Raises:
        OSError, ValueError, ...: when the file is missing or is not a readable image (see `IMAGE_ERRORS`).
    """
    if isinstance(source, Image.Image):
        return to_rgb(source)
    if not os.path.isfile(source):
        raise FileNotFoundError(f"no such file: {source}")
    if os.path.getsize(source) == 0:  # Pillow would say "cannot identify image file", as for any non-image
        raise ValueError(f"empty file (0 bytes): {source}")
    image = Image.open(source)
    image.load()  # decodes now, so a truncated file fails here; a single-frame image's file is then closed
    return to_rgb(image)


def describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def read_or_describe(source: ImageSource, prepare: Callable | None = None) -> Image.Image | PreparedImage | str:
    """The decoded image (through `prepare` when given: a pipeline's `preprocess`), or why it could not be read."""
    try:
        image = read_image(source)
    except IMAGE_ERRORS as error:
        return describe_error(error)
    return image if prepare is None else PreparedImage(prepare(image))


def sort_results(
    results: Iterable[Image.Image | PreparedImage | str],
) -> tuple[list[Image.Image | PreparedImage], list[int], dict[int, str]]:
    """The readable images in order, their positions, and an error message per unreadable one."""
    images, positions, errors = [], [], {}
    for position, result in enumerate(results):
        if isinstance(result, str):
            errors[position] = result
        else:
            images.append(result)
            positions.append(position)
    return images, positions, errors


def prepared_chunks(
    sources: Sequence[ImageSource], chunk_size: int, pool: Executor, prepare: Callable | None, ahead: bool
) -> Iterator[tuple[int, list[ImageSource], tuple]]:
    """Yields each chunk's start, sources and `sort_results`, in order, read in `pool`'s threads.

    With `ahead`, the next chunk is read while the caller classifies this one (on a GPU, the CPU's work then
    overlaps the device's); without, the threads wait, leaving the cores to a CPU model's forward passes.
    """
    starts = iter(range(0, len(sources), chunk_size))
    queue: deque = deque()

    def submit() -> None:
        start = next(starts, None)
        if start is not None:
            chunk = [sources[i] for i in range(start, min(start + chunk_size, len(sources)))]
            queue.append((start, chunk, [pool.submit(read_or_describe, source, prepare) for source in chunk]))

    try:
        submit()
        while queue:
            start, chunk, futures = queue.popleft()
            results = sort_results(future.result() for future in futures)
            if ahead:
                submit()
            yield start, chunk, results
            if not ahead:
                submit()
    finally:  # stopped early (an error, Ctrl-C): what was not started is not read
        for _, _, futures in queue:
            for future in futures:
                future.cancel()


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
    prepare_ahead: bool | None = None,
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
        prepare_ahead: read the next chunk while this one is classified (see `prepared_chunks`); by default on
            a GPU (or other accelerator), not on a CPU.
    """
    if batch_size < 1:
        raise UsageError(f"--batch_size must be at least 1, got {batch_size}.")
    chunk_size = batch_size * CHUNK_BATCHES
    options = {"top_k": top_k, "batch_size": batch_size}
    if function_to_apply is not None:
        options["function_to_apply"] = function_to_apply
    # A pipeline of ours takes images its `preprocess` has run on: each thread then decodes, resizes and normalises
    # its image while the image is in the processor's cache. Decoding alone in threads, then preprocessing in the
    # pipeline's loop, was slower for 3000x2000 photos (the decoded images had left the cache).
    prepare = classifier.preprocess if isinstance(classifier, PreparingImageClassificationPipeline) else None
    if prepare_ahead is None:
        prepare_ahead = isinstance(classifier, Pipeline) and classifier.device.type != "cpu"
    with ThreadPoolExecutor(hardware.preparing_threads(), thread_name_prefix="prepare") as pool:
        for start, chunk, (images, positions, errors) in prepared_chunks(
            sources, chunk_size, pool, prepare, prepare_ahead
        ):
            outputs = dict(zip(positions, classifier(images, **options), strict=True)) if images else {}
            for offset, source in enumerate(chunk):
                name = names[start + offset] if names is not None else source_name(source, start + offset)
                yield Classified(name, scores=outputs.get(offset), error=errors.get(offset))
            if on_progress is not None:
                on_progress(len(chunk))
