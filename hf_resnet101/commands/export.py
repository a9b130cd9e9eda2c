"""`hf-resnet101 export`: ONNX with a dynamic batch, its preprocessing and labels beside it, checked with ONNX Runtime.

The exporter is PyTorch's TorchScript-based one (`torch.onnx.export(..., dynamo=False)`): it exports the
transformers ResNet, timm-wrapped and ViT models with a dynamic batch axis and needs only `onnx`, while the
dynamo exporter also needs `onnxscript`.
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.transforms import resolve_data_config
from ..errors import UsageError
from ..inference import IMAGE_ERRORS, PYTORCH_MODEL_TO_GIVE, describe_error, load_model_and_processor, read_image
from ..modeling import has_image_processor_file
from ..onnx_runtime import INPUT_NAME, OUTPUT_NAME, import_onnx_runtime, onnx_session, run_logits
from ..outputs import EXPORT_CHECK, IMAGE_PROCESSOR_CONFIG, MODEL_CONFIG, ONNX_LABELS, ONNX_MODEL, SPLITS, split_rows
from .tables import print_note

FORMATS = ("onnx",)
OPSET = 17
# fp32 on both sides; the kernels differ in summation order, so logits agree to about 1e-5 in practice.
DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-3
CHECK_IMAGES = 8
INSTALL_HINT = "ONNX export needs onnx and onnxruntime: pip install 'hf-resnet101[export]'."


class ExportCheckError(UsageError):
    """ONNX Runtime's outputs differ from PyTorch's beyond the tolerance."""


@dataclass
class ExportCheck:
    """How ONNX Runtime's logits compared with PyTorch's on the check images."""

    images: int
    image_source: str
    max_abs_diff: float
    atol: float
    rtol: float
    top1_agreement: float
    passed: bool


class LogitsOnly(torch.nn.Module):
    """`pixel_values -> logits`, the plain signature an ONNX graph needs."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def import_export_libraries():
    """onnx (to write the graph) and onnxruntime (to check it), or a UsageError saying what to install."""
    try:
        import onnx  # noqa: F401
    except ImportError as error:
        raise UsageError(f"{INSTALL_HINT} ({error})") from error
    return import_onnx_runtime()


def export_to_onnx(model: torch.nn.Module, path: str | Path, height: int, width: int, opset: int = OPSET) -> Path:
    """Writes `model` as ONNX with input `pixel_values` (batch, 3, height, width) and output `logits`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = LogitsOnly(model).eval()
    example = torch.zeros(2, 3, height, width)
    with warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation and notes traced shape checks; neither matters here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    # The exporter puts the wrapper back into the mode it found; keep the model in eval mode regardless.
    model.eval()
    return path


def validation_images_of(model_dir: Path, rows: list[str], count: int) -> list[Path]:
    """Up to `count` of the validation images `rows` list that are still there, spread over the list."""
    from ..data.folders import split_image_path  # `datasets` is only needed here

    paths = [split_image_path(model_dir, row, "validation") for row in rows if row]
    return spread_over([p for p in paths if p.is_file()], count)


def spread_over(paths: list[Path], count: int) -> list[Path]:
    """Up to `count` of `paths`, evenly spaced over the list."""
    if len(paths) <= count:
        return paths
    return [paths[round(i)] for i in np.linspace(0, len(paths) - 1, count)]


def synthetic_images(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)) for _ in range(count)]


def read_check_image(path: str | Path) -> Image.Image:
    try:
        return read_image(str(path))
    except IMAGE_ERRORS as error:
        raise UsageError(f"--check_images: cannot read {path} ({describe_error(error)}).") from error


def check_image_paths(given: Sequence[str | Path], count: int) -> list[Path]:
    """The files given to --check_images, folders searched as `predict` searches them; of a folder's images, up to
    `count` spread over it."""
    from .predict import collect_image_paths

    paths = []
    for item in given:
        found = collect_image_paths([item])
        paths += spread_over(found, count) if Path(item).is_dir() else found
    return paths


def check_images_for(model: str, given: Sequence[str | Path] | None, count: int = CHECK_IMAGES):
    """The images the export is checked on: those given, else the run's validation images, else random pixels."""
    if given:
        return [read_check_image(p) for p in check_image_paths(given, count)], "given images"
    model_dir = Path(model)
    rows = split_rows(model_dir, "validation") if model_dir.is_dir() else None
    found = validation_images_of(model_dir, rows, count) if rows else []
    if found:
        return [read_image(str(p)) for p in found], f"validation images from {model_dir / SPLITS}"
    reason = no_validation_files_reason(model_dir, rows)
    return synthetic_images(count), f"random-pixel images ({reason}; give --check_images)"


def no_validation_files_reason(model_dir: Path, rows: list[str] | None) -> str:
    """Why a run's validation images cannot be read back: no splits.csv, images that were never files (a dataset
    of parquet or arrow rows lists no paths), or files no longer where the run read them."""
    if rows is None:
        return f"no {SPLITS} in {model_dir}"
    if not rows:
        return f"{SPLITS} lists no validation images"
    if not any(rows):
        return f"the validation images in {SPLITS} are rows of a dataset, not files"
    return f"the validation images {SPLITS} lists are no longer where the run read them"


def compare_outputs(
    model: torch.nn.Module, session, pixel_values: torch.Tensor, atol: float, rtol: float
) -> tuple[float, float, bool]:
    """Max |ONNX - PyTorch| over the batch and one image alone (checks the dynamic batch), top-1 agreement."""
    with torch.no_grad():
        expected = model(pixel_values=pixel_values).logits.float().numpy()
    batch = run_logits(session, pixel_values.numpy())
    single = run_logits(session, pixel_values[:1].numpy())
    max_diff = float(max(np.abs(batch - expected).max(), np.abs(single - expected[:1]).max()))
    close = np.allclose(batch, expected, atol=atol, rtol=rtol) and np.allclose(
        single, expected[:1], atol=atol, rtol=rtol
    )
    agreement = float((batch.argmax(-1) == expected.argmax(-1)).mean())
    return max_diff, agreement, bool(close)


def write_sidecar_files(model, processor, out_dir: Path) -> None:
    """config.json, the processor's preprocessor_config.json (a timm model's preprocessing is in its config.json)
    and labels.json (names in output order)."""
    model.config.save_pretrained(out_dir)
    if has_image_processor_file(out_dir):
        processor.save_pretrained(out_dir)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    (out_dir / ONNX_LABELS).write_text(json.dumps(labels, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


FAILED_ONNX_MODEL = ONNX_MODEL + ".failed"
# What an export writes: an earlier export's folder holds these and nothing else.
EXPORT_FILES = frozenset(
    {ONNX_MODEL, FAILED_ONNX_MODEL, MODEL_CONFIG, IMAGE_PROCESSOR_CONFIG, ONNX_LABELS, EXPORT_CHECK}
)


def check_export_folder(out_dir: Path) -> None:
    """Raises a UsageError unless `out_dir` is new, empty or an earlier export's folder: an export writes
    config.json and preprocessor_config.json, which in another model's folder (a training run's, for one) would
    replace that model's labels and settings."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise UsageError(f"{out_dir} is a file: give a folder to write model.onnx and its settings to.")
    present = sorted(path.name for path in out_dir.iterdir())
    others = [name for name in present if name not in EXPORT_FILES]
    if others or (present and EXPORT_CHECK not in present):
        listed = others or present
        shown = ", ".join(listed[:5]) + (", ..." if len(listed) > 5 else "")
        raise UsageError(
            f"{out_dir} already holds files ({shown}) and is not an earlier export: export writes "
            f"{MODEL_CONFIG} and {IMAGE_PROCESSOR_CONFIG} there, which would rewrite the labels and settings of "
            "whatever model that folder keeps. Give a new or empty folder (an earlier export's folder is written "
            "over)."
        )


def export_model(
    model_name_or_path: str,
    out_dir: str | Path,
    *,
    export_format: str = "onnx",
    check_images: Sequence[str | Path] | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    opset: int = OPSET,
) -> tuple[Path, ExportCheck]:
    """Exports a trained model to `out_dir/model.onnx` with its config, processor settings and labels, then checks it.

    Raises:
        UsageError: for an unknown format, a missing onnx/onnxruntime, or an `out_dir` holding other files
            (`check_export_folder`).
        ExportCheckError: when ONNX Runtime's logits differ from PyTorch's beyond `atol` + `rtol`·|logit| (the
            file is renamed `model.onnx.failed` so it cannot be shipped by mistake).
    """
    if export_format not in FORMATS:
        raise UsageError(f"--format {export_format}: supported formats are {', '.join(FORMATS)}.")
    import_export_libraries()
    out_dir = Path(out_dir)
    check_export_folder(out_dir)
    model, processor = load_model_and_processor(model_name_or_path, dtype=torch.float32, give=PYTORCH_MODEL_TO_GIVE)
    images, image_source = check_images_for(model_name_or_path, check_images)
    pixel_values = processor(images, return_tensors="pt")["pixel_values"].float()
    data_config = resolve_data_config(processor)
    print_note(f"Exporting {model_name_or_path} to {out_dir / ONNX_MODEL} (ONNX opset {opset}) ...")
    onnx_path = export_to_onnx(model, out_dir / ONNX_MODEL, data_config.height, data_config.width, opset)
    write_sidecar_files(model, processor, out_dir)
    print_note(f"Checking ONNX Runtime against PyTorch on {len(images)} {image_source} ...")
    max_diff, agreement, close = compare_outputs(model, onnx_session(onnx_path), pixel_values, atol, rtol)
    check = ExportCheck(len(images), image_source, max_diff, atol, rtol, agreement, close)
    (out_dir / EXPORT_CHECK).write_text(json.dumps(asdict(check), indent=2) + "\n", encoding="utf-8")
    if not close:
        failed = onnx_path.replace(out_dir / FAILED_ONNX_MODEL)
        raise ExportCheckError(
            f"The ONNX export does not match PyTorch: max |difference| of the logits {max_diff:.3g} on {len(images)} "
            f"{image_source}, beyond atol={atol:g} + rtol={rtol:g}·|logit| (top-1 agreement {agreement:.0%}). "
            f"The file was renamed {failed} so it is not used; try another --opset or report the model."
        )
    (out_dir / FAILED_ONNX_MODEL).unlink(missing_ok=True)  # an earlier export's failure, now written over
    return onnx_path, check


def run_command(args: argparse.Namespace) -> None:
    """`hf-resnet101 export MODEL OUT`: ONNX written and checked, with what the check found."""
    atol = DEFAULT_ATOL if args.atol is None else args.atol
    rtol = DEFAULT_RTOL if args.rtol is None else args.rtol
    path, check = export_model(
        args.model, args.out, export_format=args.format, check_images=args.check_images, atol=atol, rtol=rtol
    )
    print(
        f"{path}: ONNX Runtime matches PyTorch on {check.images} {check.image_source} "
        f"(max |logit difference| {check.max_abs_diff:.2g}, tolerance atol={atol:g} + rtol={rtol:g}·|logit|, "
        f"top-1 agreement {check.top1_agreement:.0%})."
    )
