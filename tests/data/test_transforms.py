"""Decoding and transforms: augmentation strengths, JPEGs at reduced size, seeded crops, data-loading workers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import write_class_images

from hf_resnet101.data.transforms import DataConfig, build_train_transform


@pytest.mark.parametrize("strength", ["none", "light", "standard", "heavy"])
def test_augmentation_strengths_produce_normalised_batches(strength):
    from messy_data import coloured
    from torchvision.transforms.v2.functional import pil_to_tensor

    from hf_resnet101.data.transforms import collate

    config = DataConfig(48, 40, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    crop = build_train_transform(config, strength)(pil_to_tensor(coloured((200, 40, 40), size=(100, 70))))
    assert crop.shape == (3, 48, 40) and crop.dtype == torch.uint8
    batch = collate([{"pixel_values": crop, "label": 1}] * 2, mean=config.mean, std=config.std)["pixel_values"]
    assert batch.shape == (2, 3, 48, 40) and batch.dtype == torch.float32
    assert torch.allclose(batch[0], (crop / 255 - 0.5) / 0.25, atol=1e-6)
    assert batch.min() < 0 < batch.max()


def test_jpegs_decode_upright_and_alike_by_either_decoder(tmp_path):
    """torchvision's decoder (full-size JPEGs) and Pillow's (the rest) give the same upright RGB pixels."""
    from messy_data import coloured, exif_rotated_jpeg
    from PIL import Image
    from torchvision.transforms.v2.functional import pil_to_tensor

    from hf_resnet101.data.images import decode_rgb, to_rgb

    exif_rotated_jpeg(tmp_path / "rotated.jpg")
    coloured((90, 120, 200), size=(64, 48)).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    coloured((90, 120, 200), size=(64, 48)).convert("L").save(tmp_path / "grey.jpg", quality=95)
    for name in ("rotated.jpg", "cmyk.jpg", "grey.jpg"):
        path = tmp_path / name
        by_pillow = pil_to_tensor(to_rgb(Image.open(path))).int()
        from_path = decode_rgb({"path": str(path), "bytes": None}, min_short_side=448)
        from_bytes = decode_rgb({"path": None, "bytes": path.read_bytes()}, min_short_side=448)
        assert torch.equal(from_path, from_bytes)
        assert from_path.dtype == torch.uint8 and from_path.shape == by_pillow.shape, name
        assert (from_path.int() - by_pillow).abs().float().mean() < 3, name  # IDCT rounding differs by a level or two


def test_large_jpegs_decode_at_reduced_size_small_ones_in_full(tmp_path):
    from messy_data import coloured

    from hf_resnet101.data.images import open_image

    coloured((90, 120, 200), size=(3000, 2000)).save(tmp_path / "big.jpg", quality=90)
    coloured((90, 120, 200), size=(500, 375)).save(tmp_path / "small.jpg", quality=90)
    big, _ = open_image({"path": str(tmp_path / "big.jpg"), "bytes": None}, min_short_side=448)
    big.load()
    assert big.size == (750, 500)  # 1/4: the smallest scale that keeps the short side at least 448
    small, _ = open_image({"path": str(tmp_path / "small.jpg"), "bytes": None}, min_short_side=448)
    small.load()
    assert small.size == (500, 375)


def test_seeded_transform_repeats_per_image_and_epoch(image_folder):
    from hf_resnet101.data.transforms import INDEX_COLUMN, SeededTrainTransform

    transform = SeededTrainTransform(build_train_transform(DataConfig(16, 16, (0.5,) * 3, (0.5,) * 3), "heavy"), 3)
    image = next(image_folder.rglob("*.png"))
    batch = {"image": [{"path": str(image), "bytes": None}] * 2, INDEX_COLUMN: [5, 6], "label": [0, 0]}
    first = transform(batch)["pixel_values"]
    assert torch.equal(transform(batch)["pixel_values"][0], first[0])
    assert not torch.equal(first[0], first[1])  # another image index, other random crops
    transform.epoch = 1
    assert not torch.equal(transform(batch)["pixel_values"][0], first[0])


def test_no_augmentation_keeps_the_aspect_ratio():
    """A 100x50 image with a red left quarter: a centre crop of the resized image shows no red; a squash would."""
    image = torch.zeros(3, 50, 100, dtype=torch.uint8)
    image[2] = 200  # blue
    image[:, :, :25] = torch.tensor([200, 0, 0], dtype=torch.uint8).view(3, 1, 1)
    crop = build_train_transform(DataConfig(16, 16, (0.5,) * 3, (0.5,) * 3), "none")(image)
    assert crop.shape == (3, 16, 16)
    assert crop[0].max() < 50  # no red left


def test_worker_processes_augment_exactly_as_the_training_process(finetune_main, image_folder, tiny_resnet, tmp_path):
    """Persistent workers over two epochs see each epoch's augmentation: the run equals one without workers."""
    import json

    def losses(workers: str) -> list[float]:
        out = tmp_path / f"workers-{workers}"
        args = [
            "--train_dir", str(image_folder), "--model_name_or_path", str(tiny_resnet), "--output_dir", str(out),
            "--num_train_epochs", "2", "--eval_strategy", "no", "--logging_steps", "1", "--seed", "3",
            "--augmentation", "heavy", "--dataloader_num_workers", workers,
        ]  # fmt: skip
        assert finetune_main(args) == 0
        history = json.loads((out / "trainer_state.json").read_text())["log_history"]
        return [entry["loss"] for entry in history if "loss" in entry]

    assert losses("2") == losses("0")


def test_validation_images_prepared_in_threads_are_the_processors_in_order(tmp_path, monkeypatch):
    import datasets
    from PIL import Image

    from hf_resnet101.config import hardware
    from hf_resnet101.data.images import to_rgb
    from hf_resnet101.data.transforms import preprocess_for_evaluation, resolve_data_config
    from hf_resnet101.modeling import resnet_image_processor

    monkeypatch.setattr(hardware, "preparing_threads", lambda: 4)
    files = []
    for i in range(37):  # more than one batch of 32, of several sizes and modes
        path = tmp_path / f"{i}.{'png' if i % 3 else 'jpg'}"
        grey = i % 5 == 0
        Image.new("L" if grey else "RGB", (40 + 13 * i, 90 - i), 7 * i if grey else (7 * i, 90, 200 - 5 * i)).save(
            path
        )
        files.append(str(path))
    split = datasets.Dataset.from_dict({"image": files, "label": [i % 3 for i in range(37)]})
    split = split.cast_column("image", datasets.Image()).cast_column("label", datasets.ClassLabel(names=list("abc")))
    processor = resnet_image_processor()
    prepared = preprocess_for_evaluation(split, processor, resolve_data_config(processor))
    assert [int(label) for label in prepared["label"]] == [i % 3 for i in range(37)]
    for i in (0, 5, 17, 36):
        expected = processor(to_rgb(Image.open(files[i])), return_tensors="pt")["pixel_values"][0]
        assert torch.equal(prepared[i]["pixel_values"], expected), i


def test_evaluation_images_held_in_memory_give_the_same_batches_as_the_arrow_cache(tmp_path):
    from functools import partial

    import datasets
    from PIL import Image
    from torch.utils.data import DataLoader

    from hf_resnet101.data.transforms import (
        HeldTensors,
        collate,
        held_in_memory,
        preprocess_for_evaluation,
        resolve_data_config,
    )
    from hf_resnet101.modeling import resnet_image_processor

    files = []
    for i in range(11):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (50 + 9 * i, 60), (20 * i, 90, 200 - 9 * i)).save(path)
        files.append(str(path))
    split = datasets.Dataset.from_dict({"image": files, "label": [i % 3 for i in range(11)]})
    split = split.cast_column("image", datasets.Image()).cast_column("label", datasets.ClassLabel(names=list("abc")))
    processor = resnet_image_processor()
    prepared = preprocess_for_evaluation(split, processor, resolve_data_config(processor))
    one_image = 3 * 224 * 224 * 4

    assert held_in_memory(prepared, 11 * one_image - 1) is prepared  # over the budget: read from the cache
    held = held_in_memory(prepared, 11 * one_image)
    assert isinstance(held, HeldTensors) and len(held) == 11
    for channels_last in (False, True):
        batches = [
            list(DataLoader(data, batch_size=4, collate_fn=partial(collate, channels_last=channels_last)))
            for data in (prepared, held)
        ]
        for from_cache, from_memory in zip(*batches, strict=True):
            assert torch.equal(from_cache["pixel_values"], from_memory["pixel_values"])
            assert torch.equal(from_cache["labels"], from_memory["labels"])
            assert from_memory["pixel_values"].is_contiguous(
                memory_format=torch.channels_last if channels_last else torch.contiguous_format
            )


@pytest.mark.parametrize("workers", ["0", "2"])
def test_an_image_gone_during_training_is_named_in_one_line(finetune_main, train_and_validation_folders, tiny_resnet,
                                                            tmp_path, capsys, monkeypatch, workers):  # fmt: skip
    """Deleted after the scan (or overwritten with a damaged file): the run stopped with ~75 lines of traceback
    (from a data-loading worker, wrapped in its own), with no word on what to do."""
    from hf_resnet101.train import trainer

    image_folder, validation = train_and_validation_folders
    gone = sorted(image_folder.rglob("*.png"))[3]
    prepare = trainer.prepare_train_split

    def prepare_then_delete(split):
        prepared = prepare(split)
        gone.unlink()  # after the scan and the run's checks, before training reads it
        return prepared

    monkeypatch.setattr(trainer, "prepare_train_split", prepare_then_delete)
    args = ["--train_dir", str(image_folder), "--output_dir", str(tmp_path / "out"), "--model_name_or_path",
            str(tiny_resnet), "--validation_dir", str(validation), "--num_train_epochs", "1", "--eval_strategy", "no",
            "--dataloader_num_workers", workers]  # fmt: skip
    assert finetune_main(args) == 2
    err = capsys.readouterr().err
    assert f"error: Training image {gone} could not be read (No such file or directory)" in err
    assert "Put it back as it was and run the same command to resume" in err
    assert "Traceback" not in err and "Caught" not in err


def test_a_damaged_training_image_is_named(tmp_path):
    from hf_resnet101.data.transforms import decode_training_image
    from hf_resnet101.errors import TrainingImageUnreadable

    damaged = tmp_path / "cut.png"
    damaged.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(TrainingImageUnreadable, match=f"Training image {damaged} could not be read"):
        decode_training_image({"path": str(damaged), "bytes": None}, None)


def test_a_validation_image_gone_before_its_preparation_is_named(tmp_path):
    import datasets

    from hf_resnet101.data.transforms import preprocess_for_evaluation
    from hf_resnet101.errors import TrainingImageUnreadable

    write_class_images(tmp_path / "val", per_class=1)
    paths = sorted(str(p) for p in (tmp_path / "val").rglob("*.png"))
    split = datasets.Dataset.from_dict(
        {"image": paths, "label": [0] * len(paths)},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a"])}),
    )
    Path(paths[0]).unlink()
    with pytest.raises(TrainingImageUnreadable, match=f"Image {re.escape(paths[0])} could not be read"):
        preprocess_for_evaluation(split, None, DataConfig(height=8, width=8, mean=(0.5,) * 3, std=(0.5,) * 3))


def test_a_dataset_image_that_does_not_decode_is_one_line():
    """Stored as bytes in a dataset, no file to name: the run crashed after training with PIL's traceback."""
    from hf_resnet101.data.transforms import decode_training_image
    from hf_resnet101.errors import TrainingImageUnreadable

    with pytest.raises(TrainingImageUnreadable, match="Training image stored in the dataset .bytes, no file. could"):
        decode_training_image({"path": None, "bytes": b"not an image at all"}, None)
