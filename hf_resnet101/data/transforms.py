"""Image preprocessing: training augmentation and evaluation transforms that match the model's processor."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import datasets
import numpy as np
import torch
from torchvision.transforms import v2

from ..config import hardware
from ..errors import TrainingImageUnreadable, UsageError
from .images import decode_rgb, to_rgb


@dataclass(frozen=True)
class DataConfig:
    """What the pretrained weights expect: input height/width and normalisation."""

    height: int
    width: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def resolve_data_config(processor) -> DataConfig:
    """Reads input size and normalisation from an image processor (ConvNext/ResNet, ViT, timm wrapper, ...)."""
    if hasattr(processor, "data_config"):  # transformers' timm wrapper
        cfg = processor.data_config
        _, height, width = cfg["input_size"]
        return DataConfig(height, width, tuple(cfg["mean"]), tuple(cfg["std"]))
    size = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
    size = size or processor.size
    if "shortest_edge" in size:
        height = width = size["shortest_edge"]
    elif "height" in size:
        height, width = size["height"], size["width"]
    else:
        raise UsageError(f"Cannot tell the input size from the image processor's size {size}.")
    return DataConfig(height, width, tuple(processor.image_mean), tuple(processor.image_std))


def set_image_size(processor, model_config, image_size: int):
    """The processor (and, for timm, the model config it lives in) made to produce square `image_size` inputs."""
    fixed = getattr(model_config, "image_size", None)
    if isinstance(fixed, int) and fixed != image_size:
        raise UsageError(
            f"--image_size {image_size}: this {model_config.model_type} model takes {fixed}x{fixed} inputs only "
            f"(its position embeddings are sized for it). Leave --image_size out or pass {fixed}."
        )
    if hasattr(processor, "data_config"):
        # timm's processor builds its transforms from the config it is made with: make a new one.
        model_config.pretrained_cfg = {**model_config.pretrained_cfg, "input_size": [3, image_size, image_size]}
        return type(processor)(pretrained_cfg=model_config.pretrained_cfg)
    if "shortest_edge" in processor.size:
        processor.size = {"shortest_edge": image_size}
    else:
        processor.size = {"height": image_size, "width": image_size}
    if getattr(processor, "crop_size", None):
        processor.crop_size = {"height": image_size, "width": image_size}
    return processor


def build_train_transform(data_config: DataConfig, augmentation: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Training augmentation for one upright uint8 RGB tensor (3, H, W); returns a uint8 (3, height, width) tensor.

    - none: the shorter side resized to the input size, then a centre crop (the aspect ratio kept);
    - light: random resized crop and horizontal flip (the transformers example's recipe);
    - standard: light plus colour jitter;
    - heavy: standard with RandAugment and random erasing (to the mean colour, which normalises to 0).

    The images stay uint8 (a quarter of the bytes between processes); `collate` normalises a whole batch at once.
    """
    size = (data_config.height, data_config.width)
    if augmentation == "none":
        bicubic = v2.InterpolationMode.BICUBIC
        steps = [v2.Resize(max(size), interpolation=bicubic, antialias=True), v2.CenterCrop(size)]
    else:
        steps = [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip()]
    if augmentation == "heavy":
        steps.append(v2.RandAugment(num_ops=2, magnitude=9))
    if augmentation in ("standard", "heavy"):
        steps.append(v2.ColorJitter(0.3, 0.3, 0.3))
    if augmentation == "heavy":
        steps.append(v2.RandomErasing(p=0.25, value=[round(255 * m) for m in data_config.mean]))
    return v2.Compose(steps)


def normalize_batch(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 images (N, 3, H, W) to float32 normalised as the model expects: (x / 255 - mean) / std, in place."""
    scale = torch.tensor([1 / (255 * s) for s in std]).view(1, -1, 1, 1)
    offset = torch.tensor([m / s for m, s in zip(mean, std, strict=True)]).view(1, -1, 1, 1)
    return images.to(torch.float32).mul_(scale).sub_(offset)


INDEX_COLUMN = "__index__"


class SeededTrainTransform:
    """The training transform for `Dataset.with_transform`, with randomness seeded per image and epoch.

    Each image's augmentation draws from a generator seeded by (seed, epoch, image index), not from whatever
    state the global RNG is in. So a run resumed from a checkpoint augments exactly as an uninterrupted one, and
    the result does not depend on the number of data-loading workers. The training split needs an
    `INDEX_COLUMN` (see `add_index_column`); `epoch` is advanced by `EpochCallback` and lives in shared memory,
    so persistent data-loading worker processes see it change.

    Images may come undecoded (`datasets.Image(decode=False)`): they are then decoded by `decode_rgb`, which
    decodes large JPEGs at reduced size, no smaller than `min_short_side`. The output is uint8 (see `collate`).
    """

    def __init__(self, transform: Callable, seed: int, min_short_side: int | None = None):
        self.transform = transform
        self.seed = seed
        self.min_short_side = min_short_side
        self._epoch = multiprocessing.Value("q", 0, lock=False)

    @property
    def epoch(self) -> int:
        return self._epoch.value

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch.value = value

    def image_seed(self, index: int) -> int:
        return ((self.seed * 1_000_003 + self.epoch) * 10_000_019 + index) % 2**63

    def __call__(self, batch: dict) -> dict:
        pixel_values = []
        with torch.random.fork_rng(devices=[]):  # the global RNG is left as it was, once per batch
            for item, index in zip(batch["image"], batch[INDEX_COLUMN], strict=True):
                image = decode_training_image(item, self.min_short_side)
                torch.default_generator.manual_seed(self.image_seed(index))  # the CPU generator alone: 100x cheaper
                pixel_values.append(self.transform(image))
        return {"pixel_values": pixel_values, "label": batch["label"]}


def unreadable_image(path: str | None, error: Exception, what: str = "Training image") -> TrainingImageUnreadable:
    """The one-line error for an image that does not read: a file the run scanned as readable that no longer is
    (deleted, moved, or overwritten with a damaged file), or a dataset's image stored as bytes (`path` None; a
    dataset's rows are not scanned before training). A traceback of about 75 lines before, from a data-loading
    worker twice over."""
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    if path is None:
        return TrainingImageUnreadable(
            f"{what} stored in the dataset (bytes, no file) could not be read ({reason}): remove the rows whose "
            "images do not decode from the dataset, or convert it to a folder of images (--train_dir), whose "
            "unreadable files are left out and listed before training."
        )
    return TrainingImageUnreadable(
        f"{what} {path} could not be read ({reason}): it was readable when this run scanned its data. Put it "
        "back as it was and run the same command to resume from the last checkpoint; a run on the changed data "
        "needs a new --output_dir."
    )


# What Pillow (and the file system) raise for a file that is gone or damaged.
UNREADABLE_IMAGE_ERRORS = (OSError, SyntaxError, ValueError)


def decode_training_image(item: dict, min_short_side: int | None) -> torch.Tensor:
    """`decode_rgb`, with a file that changed since the scan named (`unreadable_image`)."""
    try:
        return decode_rgb(item, min_short_side)
    except UNREADABLE_IMAGE_ERRORS as error:
        if not isinstance(item, dict):
            raise
        raise unreadable_image(item.get("path"), error) from None


def prepare_train_split(split):
    """Adds the image index the seeded transform needs, and leaves decoding to it (for draft-mode JPEGs)."""
    split = split.add_column(INDEX_COLUMN, list(range(len(split))))
    return split.cast_column("image", datasets.Image(decode=False))


def preprocess_for_evaluation(split, processor, data_config: DataConfig, images: str = "validation images"):
    """Runs the image processor over the validation images (or others, `images` in the progress bar) once, into
    float32 arrays cached by `datasets`.

    Evaluation preprocessing is deterministic, so with evaluation every step (the product page's default) decoding and
    resizing every validation image at every evaluation would be wasted: evaluations read the ready tensors.
    The values are exactly the processor's, one image at a time as `pipeline` calls it, so evaluation still equals
    what `pipeline` computes (bitwise the values of one serial batched call). Each image is decoded and processed in
    a thread (`hardware.preparing_threads`): on a 2-core AMD EPYC, 1.15x the serial speed for 500x375 JPEGs and
    about 2x for 3000x2000 ones (benchmarks/RESULTS.md).
    """
    features = datasets.Features(
        {
            "pixel_values": datasets.Array3D((3, data_config.height, data_config.width), "float32"),
            "label": split.features["label"],
        }
    )
    image_feature = datasets.Image()

    def prepare(value: dict) -> np.ndarray:
        try:
            image = to_rgb(image_feature.decode_example(value))
        except UNREADABLE_IMAGE_ERRORS as error:
            raise unreadable_image(value.get("path"), error, "Image") from None
        return processor(image, return_tensors="pt")["pixel_values"][0].numpy()

    def apply(batch: dict) -> dict:
        with ThreadPoolExecutor(hardware.preparing_threads(), thread_name_prefix="prepare") as pool:
            return {"pixel_values": np.stack(list(pool.map(prepare, batch["image"])))}

    prepared = split.cast_column("image", datasets.Image(decode=False)).map(
        apply,
        batched=True,
        batch_size=32,
        remove_columns=[c for c in split.column_names if c != "label"],
        features=features,
        desc=f"Preparing {images} (once)",
    )
    return prepared.with_format("torch")


class HeldTensors(torch.utils.data.Dataset):
    """Prepared evaluation images and their labels held in memory as two tensors; items as the prepared split's.

    Read from the Arrow cache, 16 images of 224x224 took 17 ms at every evaluation on a 2-core AMD EPYC (600 MB/s);
    from memory, a batch is one copy (`collate`'s stack). With evaluation at every step (the product page's default) on
    a fast GPU, that read is a large share of the step.
    """

    def __init__(self, pixel_values: torch.Tensor, labels: torch.Tensor):
        self.pixel_values, self.labels = pixel_values, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        # views, not copies: `collate` stacks a batch with the one copy it needs
        return {"pixel_values": self.pixel_values[index], "label": self.labels[index]}


def held_in_memory(prepared: datasets.Dataset, budget_bytes: int) -> datasets.Dataset | HeldTensors:
    """`prepared` (from `preprocess_for_evaluation`) read once into memory when its tensors fit `budget_bytes`
    (`hardware.held_evaluation_budget`), else as it is: every evaluation then reads the Arrow cache."""
    shape = prepared.features["pixel_values"].shape
    if len(prepared) * int(np.prod(shape)) * 4 > budget_bytes:  # float32
        return prepared
    columns = prepared.with_format("torch")[:]
    return HeldTensors(columns["pixel_values"], columns["label"])


def collate(
    examples: list[dict],
    channels_last: bool = False,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
) -> dict[str, torch.Tensor]:
    """Stacks a batch; uint8 training images are normalised here with `mean` and `std`, in one operation per batch
    (in the data-loading worker when there are workers). Evaluation images arrive normalised already."""
    pixel_values = torch.stack([example["pixel_values"] for example in examples])
    if pixel_values.dtype == torch.uint8:
        if mean is None or std is None:
            raise ValueError("uint8 images need the mean and std to normalise with.")
        pixel_values = normalize_batch(pixel_values, mean, std)
    if channels_last:
        pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
    labels = torch.tensor([int(example["label"]) for example in examples], dtype=torch.long)
    return {"pixel_values": pixel_values, "labels": labels}
