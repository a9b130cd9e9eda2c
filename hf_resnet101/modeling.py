"""Loading the checkpoint to fine-tune (any image-classification family) with a head sized to the classes."""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import pickle
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

import huggingface_hub.constants as hub_constants
import torch
from huggingface_hub import ModelCard, try_to_load_from_cache
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    ConvNextImageProcessor,
    PreTrainedModel,
    ResNetConfig,
)
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME, logging

from .errors import UsageError, did_you_mean_path
from .outputs import IMAGE_PROCESSOR_CONFIG, MODEL_CARD, MODEL_CONFIG, ONNX_LABELS, ONNX_MODEL

logger = logging.get_logger(__name__)


def hub_is_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check of the Hub endpoint, so an offline machine does not wait through HTTP retries."""
    if hub_constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(hub_constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def label_mappings(label_names: list[str]) -> tuple[dict[int, str], dict[str, int]]:
    id2label = dict(enumerate(label_names))
    return id2label, {name: i for i, name in id2label.items()}


TIMM_INSTALL = "pip install timm (the package's optional `timm` extra)"


def looks_like_local_path(name: str) -> bool:
    """True for names that can only be a folder (a Hub id is `name` or `owner/name`)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name


def timm_installed() -> bool:
    return importlib.util.find_spec("timm") is not None


def is_timm_checkpoint(name_or_path: str) -> bool:
    """A timm model behind transformers' TimmWrapper: a folder whose config.json says so, or a Hub id under timm/."""
    config_file = Path(name_or_path).expanduser() / MODEL_CONFIG
    if config_file.is_file():
        try:
            return json.loads(config_file.read_text(encoding="utf-8")).get("model_type") == "timm_wrapper"
        except (OSError, ValueError, AttributeError):
            return False  # an unreadable config.json is reported by the loading itself
    return name_or_path.startswith("timm/")


def has_image_processor_file(folder: str | Path) -> bool:
    """Whether the model in `folder` keeps its preprocessing in preprocessor_config.json: a timm model keeps it in
    config.json (its `pretrained_cfg`), and its processor writes no file of its own."""
    return not is_timm_checkpoint(str(folder))


# The PyTorch weights transformers loads from a folder: safetensors or pickled, one file or the index of shards.
PYTORCH_WEIGHT_FILES = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)


def is_onnx_export(name_or_path: str | Path) -> bool:
    """An `export` folder: model.onnx and no PyTorch weights (a Hub id is not one)."""
    folder = Path(name_or_path).expanduser()
    return (folder / ONNX_MODEL).is_file() and not any((folder / name).is_file() for name in PYTORCH_WEIGHT_FILES)


def check_model_source(name_or_path: str, give: str) -> None:
    """Raises a clear error, before anything is loaded, for a model folder that does not exist, has no config.json
    or is an ONNX export, and for a timm model where timm is not installed. `give` says what the command takes
    instead."""
    path = Path(name_or_path).expanduser()
    if is_onnx_export(path):
        raise UsageError(
            f"{name_or_path} is an ONNX export ({ONNX_MODEL}, no PyTorch weights; the training run's output folder "
            f"it was exported from has them): give {give}. `hf-resnet101 predict` and `evaluate` run the export "
            f"itself with ONNX Runtime; elsewhere, its input is pixel_values, preprocessed as "
            f"{IMAGE_PROCESSOR_CONFIG} says, and {ONNX_LABELS} names the logits in order."
        )
    if path.is_dir() and not (path / MODEL_CONFIG).is_file():
        raise UsageError(f"{name_or_path} has no config.json: give {give}.")
    if path.is_file():
        raise UsageError(f"{name_or_path} is a file: give {give}.")
    if not path.exists() and looks_like_local_path(name_or_path):
        raise UsageError(f"Model folder {name_or_path} does not exist: give {give}.{did_you_mean_path(name_or_path)}")
    if is_timm_checkpoint(name_or_path) and not timm_installed():
        raise UsageError(f"{name_or_path} is a timm model, and timm is not installed: {TIMM_INSTALL}.")


def missing_timm_hint(name: str, error: BaseException) -> str | None:
    """What to do when a load failed for want of timm (a timm model named by a Hub id outside timm/)."""
    if "timm" in str(error).lower() and not timm_installed():
        return f"{name} needs timm, which is not installed: {TIMM_INSTALL}."
    return None


def _loading_hint(name: str, error: BaseException) -> str:
    """What to do after a failed load: install timm where its absence is the cause, else how to work offline."""
    return missing_timm_hint(name, error) or _offline_hint(name)


def _offline_hint(name: str) -> str:
    offline = "" if hub_constants.HF_HUB_OFFLINE else " and set HF_HUB_OFFLINE=1"
    return (
        f"If this machine is offline, point --model_name_or_path at a local copy of {name} (a folder with its "
        f"config.json and weights, made with `hf download {name} --local-dir DIR` on a connected machine), or copy "
        f"it into the Hub cache ({hub_constants.HF_HUB_CACHE}){offline}."
    )


def local_files_only_for(name_or_path: str) -> bool:
    """Use only local files for local folders and, without a network, for cached Hub ids."""
    if os.path.isdir(name_or_path):
        return True
    if hub_is_reachable():
        return False
    why = hub_unavailable_reason()
    logger.warning(f"{why[0].upper()}{why[1:]}: looking for {name_or_path} in the Hub cache.")
    return True


def hub_unavailable_reason() -> str:
    return (
        "HF_HUB_OFFLINE is set"
        if hub_constants.HF_HUB_OFFLINE
        else f"the Hub ({hub_constants.ENDPOINT}) is not reachable"
    )


def not_cached_message(name: str, give_dir: str = "give DIR here", cache_dir: str | None = None) -> str:
    """Why a Hub id could not be loaded on a machine without the Hub, and how to bring the model to it."""
    cache = cache_dir or hub_constants.HF_HUB_CACHE
    return (
        f"{name} is not in the Hub cache ({cache}), and {hub_unavailable_reason()}. On a connected machine, "
        f"`hf download {name} --local-dir DIR`, then {give_dir} (or copy that machine's Hub cache to this one)."
    )


def check_model_cached_when_offline(name_or_path: str, give_dir: str, cache_dir: str | None = None) -> None:
    """Stops before anything is written when HF_HUB_OFFLINE is set and a Hub id is not in the Hub cache: its
    loading would fail only once the run had begun, with transformers' long message.

    Raises:
        UsageError: saying how to bring the model to this machine (`give_dir`: where to give the copy).
    """
    if not hub_constants.HF_HUB_OFFLINE or os.path.isdir(name_or_path) or not is_hub_id(name_or_path):
        return
    if not isinstance(try_to_load_from_cache(name_or_path, MODEL_CONFIG, cache_dir=cache_dir), str):
        raise UsageError(f"Could not load the model: {not_cached_message(name_or_path, give_dir, cache_dir)}")


def is_hub_id(name: object) -> bool:
    """True for a string shaped like a Hub repo id (`microsoft/resnet-101`, `resnet-50`), not a local path."""
    if not isinstance(name, str) or not name or name.startswith((".", "~")) or os.path.isabs(name) or "\\" in name:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return not os.path.exists(name)


def recorded_base_model(folder: str | Path) -> str | None:
    """The Hub id a local checkpoint came from, as it records it: `_name_or_path` in config.json (transformers 4
    wrote it) or `base_model` in its model card. None when neither names a Hub id."""
    folder = Path(folder)
    config = folder / MODEL_CONFIG
    if config.is_file():
        try:
            name = json.loads(config.read_text()).get("_name_or_path")
        except (ValueError, AttributeError):
            name = None
        if is_hub_id(name):
            return name
    card = folder / MODEL_CARD
    if card.is_file():
        try:
            base = ModelCard.load(card).data.to_dict().get("base_model")
        except Exception:  # an unreadable card records nothing
            base = None
        base = base[0] if isinstance(base, list) and len(base) == 1 else base
        if is_hub_id(base):
            return base
    return None


# Licenses of the base models the package names in its docs, as their Hub cards give them (all apache-2.0).
KNOWN_LICENSES = {"microsoft/resnet-": "apache-2.0", "google/vit-": "apache-2.0"}


# License ids the Hub lists for repositories (huggingface.co/docs/hub/repositories-licenses), the common ones: an
# id close to one of these but not it is most likely a typo of it.
HUB_LICENSE_IDS = (
    "apache-2.0", "mit", "openrail", "openrail++", "creativeml-openrail-m", "bigscience-openrail-m",
    "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause",
    "bsd-3-clause-clear", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0",
    "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cdla-sharing-1.0",
    "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0", "eupl-1.1", "eupl-1.2",
    "agpl-3.0", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc", "lppl-1.3c", "ms-pl",
    "mpl-2.0", "odc-by", "odbl", "osl-3.0", "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl",
    "unknown", "other",
)  # fmt: skip


def license_id_problem(license_id: str) -> str | None:
    """Why `license_id` is not a license id the Hub takes in a card's metadata, with the likely one; None when it
    looks right (lower case, no spaces; ids outside `HUB_LICENSE_IDS` cannot be checked offline)."""
    if license_id in HUB_LICENSE_IDS:
        return None
    lowered = license_id.strip().lower().replace(" ", "-").replace("_", "-")
    close = difflib.get_close_matches(lowered, HUB_LICENSE_IDS, n=1, cutoff=0.8)
    if lowered in HUB_LICENSE_IDS or close or not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", license_id):
        suggestion = lowered if lowered in HUB_LICENSE_IDS else (close[0] if close else None)
        hint = f"did you mean {suggestion}? " if suggestion else ""
        return (
            f"--license {license_id!r} is not a Hub license id ({hint}they are lower case, as apache-2.0, mit, "
            "cc-by-nc-4.0 or other; see huggingface.co/docs/hub/repositories-licenses)."
        )
    return None


def base_model_license(model_name_or_path: str, base_model: str | None) -> str:
    """The license a fine-tuned model inherits: the one the base model's card records (in its local folder, or in
    the Hub cache, with no request made), else that of a known base model family, else "other" (unknown here)."""
    cards = [Path(model_name_or_path) / MODEL_CARD] if os.path.isdir(model_name_or_path) else []
    if base_model:
        cached = try_to_load_from_cache(base_model, MODEL_CARD)
        cards += [Path(cached)] if isinstance(cached, str) else []
    for card in cards:
        if card.is_file():
            try:
                license_id = ModelCard.load(card).data.to_dict().get("license")
            except Exception:  # an unreadable card records nothing
                license_id = None
            if isinstance(license_id, str) and license_id:
                return license_id
    family = next((prefix for prefix in KNOWN_LICENSES if (base_model or "").startswith(prefix)), None)
    return KNOWN_LICENSES[family] if family else "other"


def resolve_base_model(model_name_or_path: str, base_model_id: str | None = None) -> str | None:
    """The Hub id to publish as the card's `base_model`: the one given, a Hub id trained from, or the one a local
    checkpoint records; None when unknown (a local path would leak directory names and fail the Hub's check)."""
    if base_model_id:
        return base_model_id
    if os.path.isdir(model_name_or_path):
        return recorded_base_model(model_name_or_path)
    return model_name_or_path if is_hub_id(model_name_or_path) else None


def drop_remote_code_reference(obj, trust_remote_code: bool) -> bool:
    """Removes `auto_map` from a loaded config or image processor unless remote code is trusted; True if removed.

    Without it the saved output would point `pipeline` and `from_pretrained` at custom code that was never run
    here, and they would stop to ask whether to run it (a hang in a batch job).
    """
    if trust_remote_code or not getattr(obj, "auto_map", None):
        return False
    delattr(obj, "auto_map")
    return True


def load_image_processor(name_or_path: str, *, local_files_only: bool, **kwargs):
    try:
        processor = AutoImageProcessor.from_pretrained(name_or_path, local_files_only=local_files_only, **kwargs)
    except (OSError, ValueError, ImportError) as error:
        raise UsageError(
            f"Could not load the image processor of {name_or_path!r}: {error}\n{_loading_hint(name_or_path, error)}"
        ) from error
    drop_remote_code_reference(processor, kwargs.get("trust_remote_code", False))
    return processor


def load_model_for_labels(
    name_or_path: str, label_names: list[str], *, local_files_only: bool, **kwargs
) -> PreTrainedModel:
    """Loads a checkpoint with a classification head for `label_names` (a new head when the classes differ)."""
    id2label, label2id = label_mappings(label_names)
    try:
        config = AutoConfig.from_pretrained(name_or_path, local_files_only=local_files_only, **kwargs)
    except (OSError, ValueError, ImportError) as error:
        hint = _loading_hint(name_or_path, error)
        raise UsageError(f"Could not load model {name_or_path!r}: {error}\n{hint}") from error
    extra = {}
    if config.model_type == "timm_wrapper":
        # The timm wrapper saves `label_names`; without them the reloaded model would show LABEL_i.
        extra["label_names"] = list(label_names)
    old_names = [config.id2label[i] for i in sorted(config.id2label)] if getattr(config, "id2label", None) else []
    if len(old_names) == len(label_names) and old_names != list(label_names):
        logger.warning(
            f"{name_or_path} already has a {len(label_names)}-class head with other label names; "
            "its weights are kept and fine-tuned for the new labels."
        )
    try:
        model = AutoModelForImageClassification.from_pretrained(
            name_or_path,
            num_labels=len(label_names),
            id2label=id2label,
            label2id=label2id,
            ignore_mismatched_sizes=True,
            local_files_only=local_files_only,
            **extra,
            **kwargs,
        )
    except (OSError, ValueError, ImportError) as error:
        hint = _loading_hint(name_or_path, error)
        raise UsageError(f"Could not load model {name_or_path!r}: {error}\n{hint}") from error
    except pickle.UnpicklingError as error:
        # torch.load(weights_only=True) refused a pickle that holds more than tensors: loading it could run code.
        reason = str(error).split("WeightsUnpickler error: ")[-1].split("\n")[0].split(". Please")[0]
        raise UsageError(
            f"The weights of {name_or_path!r} are a pickle (e.g. pytorch_model.bin) that holds more than tensors "
            f"({reason}), and are not loaded: unpickling them could run any code. Use a checkpoint saved as "
            "safetensors (model.safetensors); only if you trust where the file came from, convert it once "
            "(torch.load with weights_only=False, then save_pretrained, which writes safetensors) and train from "
            "the converted folder."
        ) from error
    if drop_remote_code_reference(model.config, kwargs.get("trust_remote_code", False)):
        logger.warning(
            f"{name_or_path}'s config.json names custom code (auto_map); it was not run (no --trust_remote_code) "
            "and the output does not refer to it: it loads with the built-in model class."
        )
    return model


def resnet101_config(label_names: list[str]) -> ResNetConfig:
    """The architecture of microsoft/resnet-101: bottleneck stages [3, 4, 23, 3]."""
    id2label, label2id = label_mappings(label_names)
    return ResNetConfig(
        depths=[3, 4, 23, 3],
        hidden_sizes=[256, 512, 1024, 2048],
        embedding_size=64,
        layer_type="bottleneck",
        num_labels=len(label_names),
        id2label=id2label,
        label2id=label2id,
    )


def resnet_image_processor() -> ConvNextImageProcessor:
    """The preprocessing of microsoft/resnet-101 (resize to 256, centre crop 224, ImageNet normalisation)."""
    return ConvNextImageProcessor(
        size={"shortest_edge": 224},
        crop_pct=0.875,
        resample=3,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )


def build_random_resnet101(label_names: list[str]) -> PreTrainedModel:
    """ResNet-101 with random weights: the offline stand-in for microsoft/resnet-101."""
    return AutoModelForImageClassification.from_config(resnet101_config(label_names))


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


RESNET101_BLOCKS = [3, 4, 23, 3]  # bottleneck blocks per stage (He et al., 2016, table 1)


def is_resnet101(model: torch.nn.Module) -> bool:
    """Whether `model` is a ResNet-101 (transformers' or timm's: bottleneck blocks 3, 4, 23, 3), the network the
    product page's advice and the package's speed figures are about; any other model, a ResNet-50 for one, is not."""
    if hasattr(model, "resnet"):  # transformers ResNet
        config = model.config
        return config.layer_type == "bottleneck" and list(config.depths) == RESNET101_BLOCKS
    timm_model = getattr(model, "timm_model", None)
    if timm_model is None or not hasattr(timm_model, "layer4"):
        return False
    stages = [getattr(timm_model, f"layer{i}") for i in range(1, 5)]
    bottlenecks = all(hasattr(block, "conv3") for stage in stages for block in stage)
    return bottlenecks and [len(stage) for stage in stages] == RESNET101_BLOCKS


def backbone_stages(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The backbone as an ordered list: the stem first, then each stage (ResNet) or block (ViT)."""
    if hasattr(model, "resnet"):  # transformers ResNet
        return [model.resnet.embedder, *model.resnet.encoder.stages]
    timm_model = getattr(model, "timm_model", None)
    if timm_model is not None and hasattr(timm_model, "layer4"):  # timm ResNet family
        stem = [m for name, m in timm_model.named_children() if name in ("conv1", "bn1", "act1", "maxpool")]
        layers = [getattr(timm_model, f"layer{i}") for i in range(1, 5) if hasattr(timm_model, f"layer{i}")]
        return [torch.nn.ModuleList(stem), *layers]
    if hasattr(model, "vit"):
        vit = model.vit  # transformers ViT: its blocks are `layers` from transformers 5.24, `encoder.layer` before
        return [vit.embeddings, *(vit.layers if hasattr(vit, "layers") else vit.encoder.layer)]
    raise UsageError(
        f"--freeze_backbone supports ResNet (transformers or timm) and ViT models, not {type(model).__name__}."
    )


def freeze_backbone(model: torch.nn.Module, spec: str) -> tuple[int, int]:
    """Freezes the stem and the first stages; `spec` is "all_but_last" or a number of stages.

    BatchNorm layers of frozen stages become torchvision's `FrozenBatchNorm2d` (timm's conversion for timm models,
    whose BatchNorm layers may carry their activation), so they keep their pretrained statistics while the rest
    trains.

    Returns:
        (frozen parameters, trainable parameters).
    """
    freeze, _ = batch_norm_conversions(model)
    stages = backbone_stages(model)
    count = len(stages) - 2 if spec == "all_but_last" else int(spec)  # stages[0] is the stem
    if not 0 < count < len(stages):
        raise UsageError(f"--freeze_backbone {spec}: the model has {len(stages) - 1} stages; freeze fewer.")
    for module in stages[: count + 1]:
        for parameter in module.parameters():
            parameter.requires_grad_(False)
        freeze(module)  # converts BatchNorm children in place
    timm_model = getattr(model, "timm_model", None)
    if timm_model is not None and isinstance(getattr(timm_model, "bn1", None), torch.nn.BatchNorm2d):
        timm_model.bn1 = freeze(timm_model.bn1)  # the stem's BatchNorm is a direct child
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return count_parameters(model) - trainable, trainable


def unfreeze_batch_norm(model: torch.nn.Module) -> None:
    """Turns frozen BatchNorm layers back into ordinary ones (same statistics) so the saved model loads cleanly."""
    _, unfreeze = batch_norm_conversions(model)
    unfreeze(model)


def batch_norm_conversions(model: torch.nn.Module):
    """(freeze, unfreeze) for `model`'s BatchNorm layers: timm's for timm models, else `freeze_batch_norm` and
    `unfreeze_batch_norm_layers`, so models without timm layers need no timm."""
    if getattr(model, "timm_model", None) is not None:
        from timm.layers import freeze_batch_norm_2d, unfreeze_batch_norm_2d

        return freeze_batch_norm_2d, unfreeze_batch_norm_2d
    return freeze_batch_norm, unfreeze_batch_norm_layers


def freeze_batch_norm(module: torch.nn.Module) -> torch.nn.Module:
    """`module`'s BatchNorm2d layers (or `module` itself, returned) as `FrozenBatchNorm2d`s with their statistics."""
    from torchvision.ops import FrozenBatchNorm2d

    def frozen(layer: torch.nn.Module) -> torch.nn.Module | None:
        if type(layer) not in (torch.nn.BatchNorm2d, torch.nn.SyncBatchNorm):  # exactly: a subclass may hold more
            return None
        return batch_norm_values_copied(layer, FrozenBatchNorm2d(layer.num_features, eps=layer.eps))

    return replace_layers(module, frozen)


def unfreeze_batch_norm_layers(module: torch.nn.Module) -> torch.nn.Module:
    """The inverse of `freeze_batch_norm`: `FrozenBatchNorm2d`s as trainable BatchNorm2d with the same values."""
    from torchvision.ops import FrozenBatchNorm2d

    def trainable(layer: torch.nn.Module) -> torch.nn.Module | None:
        if not isinstance(layer, FrozenBatchNorm2d):
            return None
        return batch_norm_values_copied(layer, torch.nn.BatchNorm2d(layer.weight.numel(), eps=layer.eps))

    return replace_layers(module, trainable)


def batch_norm_values_copied(source: torch.nn.Module, target: torch.nn.Module) -> torch.nn.Module:
    """`target` with `source`'s affine values and running statistics, on `source`'s device."""
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            value = getattr(source, name)
            if value is not None:  # a BatchNorm without affine values: the frozen layer's are the identity
                getattr(target, name).copy_(value)
    return target.to(source.running_mean.device)


def replace_layers(module: torch.nn.Module, replacement) -> torch.nn.Module:
    """`module` with every layer for which `replacement(layer)` is not None replaced by it, `module` itself too."""
    replaced = replacement(module)
    if replaced is not None:
        return replaced
    for name, child in module.named_children():
        converted = replace_layers(child, replacement)
        if converted is not child:
            module.add_module(name, converted)
    return module


def enable_resnet_checkpointing(model: torch.nn.Module) -> int:
    """Activation checkpointing for transformers' ResNet, which has none built in.

    Each residual block recomputes its activations during the backward pass instead of keeping them: 0.39-0.46x
    the peak memory for 1.4x (large batches) to 4x (small ones) the step time, measured on an H200. Block
    `forward`s are wrapped in place, so the weights' names (and saved checkpoints) are unchanged. Returns the
    number of blocks wrapped.
    """
    from torch.utils.checkpoint import checkpoint

    count = 0
    for stage in model.resnet.encoder.stages:
        for block in stage.layers:
            forward = block.forward

            def checkpointed(hidden_state, _forward=forward, _block=block):
                if _block.training and torch.is_grad_enabled():
                    return checkpoint(_forward, hidden_state, use_reentrant=False)
                return _forward(hidden_state)

            block.forward = checkpointed
            count += 1
    return count


def apply_gradient_checkpointing(model: torch.nn.Module) -> str:
    """Turns on gradient checkpointing the way the model family supports it; says how."""
    if getattr(model, "supports_gradient_checkpointing", False):
        # transformers 5.2x calls it activation checkpointing; earlier 5.x releases gradient checkpointing.
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable()
        return "built-in gradient checkpointing"
    if hasattr(model, "resnet"):
        return f"gradient checkpointing of {enable_resnet_checkpointing(model)} residual blocks"
    raise UsageError(f"--gradient_checkpointing is not supported for {type(model).__name__}.")
