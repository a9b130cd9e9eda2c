"""An `export` folder (model.onnx beside its config and preprocessing) run with ONNX Runtime on the CPU, as a model
the image-classification pipeline takes: `predict` and `evaluate` run an export as they run a training run's folder.

Through predict, ONNX Runtime ran ResNet-101 1.3x as fast as the package's own fp32 path (batch norms folded) on a
2-core AMD EPYC (benchmarks/RESULTS.md, "predict and evaluate on an export folder"): the faster path on a CPU without
bf16 instructions, where PyTorch stays fp32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, PretrainedConfig
from transformers.modeling_outputs import ImageClassifierOutputWithNoAttention

from .errors import UsageError
from .modeling import has_image_processor_file, load_image_processor
from .outputs import IMAGE_PROCESSOR_CONFIG, MODEL_CONFIG, ONNX_MODEL

RUNTIME_INSTALL_HINT = "Running an ONNX export needs onnxruntime: pip install 'hf-resnet101[export]'."
INPUT_NAME = "pixel_values"  # the names `hf-resnet101 export` gives the graph's input and output
OUTPUT_NAME = "logits"


def import_onnx_runtime():
    """The onnxruntime module, or a UsageError saying what to install."""
    try:
        import onnxruntime
    except ImportError as error:
        raise UsageError(f"{RUNTIME_INSTALL_HINT} ({error})") from error
    return onnxruntime


def onnx_session(path: str | Path, threads: int | None = None):
    """An ONNX Runtime session on the CPU (`threads` for its operators; by default ONNX Runtime's own choice, one per
    physical core, as PyTorch's)."""
    onnxruntime = import_onnx_runtime()
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_graph_signature(session, path: Path) -> None:
    """Raises a UsageError unless the graph takes `pixel_values` and gives `logits`, as `export` writes it."""
    inputs = [node.name for node in session.get_inputs()]
    outputs = [node.name for node in session.get_outputs()]
    if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
        raise UsageError(
            f"{path} takes {inputs} and gives {outputs}; predict and evaluate run graphs written by `hf-resnet101 "
            f"export` (input {INPUT_NAME}, output {OUTPUT_NAME}): export the training run's folder again."
        )


def run_logits(session, pixel_values: np.ndarray) -> np.ndarray:
    """The graph's logits for a batch of preprocessed images (float32, batch x 3 x height x width)."""
    return session.run([OUTPUT_NAME], {INPUT_NAME: pixel_values})[0]


class OnnxRuntimeModel(torch.nn.Module):
    """model.onnx in an ONNX Runtime session, with what the image-classification pipeline uses of a model: `config`
    (labels, problem type), `device` and `dtype`, and a forward pass from `pixel_values` to logits.

    It has no parameters: the weights live in the session, which runs on the CPU in fp32.
    """

    def __init__(self, session, config: PretrainedConfig):
        super().__init__()
        self.session = session
        self.config = config

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def forward(self, pixel_values: torch.Tensor, **_) -> ImageClassifierOutputWithNoAttention:
        inputs = pixel_values.detach().to("cpu", torch.float32).contiguous().numpy()
        return ImageClassifierOutputWithNoAttention(logits=torch.from_numpy(run_logits(self.session, inputs)))


def read_export_config(folder: Path) -> PretrainedConfig:
    """The model's config.json beside model.onnx (labels and problem type), or a UsageError naming what is missing."""
    needed_files = (MODEL_CONFIG, IMAGE_PROCESSOR_CONFIG) if has_image_processor_file(folder) else (MODEL_CONFIG,)
    for needed in needed_files:
        if not (folder / needed).is_file():
            raise UsageError(
                f"{folder} has {ONNX_MODEL} but no {needed}: predict and evaluate need the files `export` "
                f"writes beside the graph (its labels and preprocessing). Export the training run's folder again."
            )
    try:
        return AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as error:
        raise UsageError(f"Could not read {folder / MODEL_CONFIG}: {error}") from error


def load_onnx_model_and_processor(folder: str | Path, threads: int | None = None) -> tuple[OnnxRuntimeModel, object]:
    """An export folder's graph as an `OnnxRuntimeModel`, and its image processor."""
    folder = Path(folder).expanduser()
    config = read_export_config(folder)
    import_onnx_runtime()  # a missing onnxruntime is said as such, not as a damaged file
    try:
        session = onnx_session(folder / ONNX_MODEL, threads)
    except Exception as error:  # onnxruntime's errors (InvalidProtobuf, Fail, ...) derive from Exception only
        raise UsageError(
            f"ONNX Runtime could not load {folder / ONNX_MODEL} ({type(error).__name__}: {error}). The file is "
            "damaged or was not written by `hf-resnet101 export`: export the training run's folder again."
        ) from error
    check_graph_signature(session, folder / ONNX_MODEL)
    processor = load_image_processor(str(folder), local_files_only=True)
    return OnnxRuntimeModel(session, config), processor
