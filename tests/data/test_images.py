"""Image decoding: every mode a folder may hold becomes upright RGB with the right pixels."""

from __future__ import annotations

import numpy as np
from conftest import write_class_images
from messy_data import coloured, exif_rotated_jpeg, ramp16
from PIL import Image

from hf_resnet101.data.images import IMAGE_EXTENSIONS, NEUTRAL_BACKGROUND, TRAINING_IMAGE_EXTENSIONS, to_rgb


def test_sixteen_bit_ramp_keeps_its_gradient():
    rgb = np.asarray(to_rgb(ramp16()))
    row = rgb[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row) >= 0) and len(set(row.tolist())) > 50  # a gradient, not black and white
    assert np.array_equal(rgb[..., 0], rgb[..., 2])


def test_exif_rotated_image_comes_out_upright(tmp_path):
    exif_rotated_jpeg(tmp_path / "r.jpg")
    upright = to_rgb(Image.open(tmp_path / "r.jpg"))
    assert upright.size == (20, 40)  # stored 40x20, displayed rotated by 90 degrees
    pixels = np.asarray(upright).mean(axis=(1, 2))
    assert pixels[:15].mean() < 60 and pixels[-15:].mean() > 190  # dark half on top after rotating clockwise


def test_alpha_is_composited_on_neutral_grey():
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert to_rgb(image).getpixel((0, 0)) == NEUTRAL_BACKGROUND
    half = Image.new("LA", (2, 2), (255, 128))
    assert all(abs(v - 192) <= 1 for v in to_rgb(half).getpixel((0, 0)))  # halfway between white and grey


def test_cmyk_palette_bilevel_and_grey_become_rgb():
    red = coloured((200, 40, 40))
    for image in (red.convert("CMYK"), red.convert("P"), red.convert("L"), red.convert("1")):
        converted = to_rgb(image)
        assert converted.mode == "RGB" and converted.size == red.size
    r, g, b = np.asarray(to_rgb(red.convert("CMYK"))).reshape(-1, 3).mean(axis=0)
    assert r > 150 and g < 90 and b < 90


def test_every_image_extension_is_one_pillow_opens_and_trainings_are_ones_imagefolder_loads():
    from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder

    Image.init()
    opened = {ext for ext, image_format in Image.registered_extensions().items() if image_format in Image.OPEN}
    assert sorted(IMAGE_EXTENSIONS - opened) == []
    assert {".avif", ".qoi", ".jfif", ".jpe", ".dib", ".jp2", ".j2k", ".tga"} <= IMAGE_EXTENSIONS
    assert sorted(TRAINING_IMAGE_EXTENSIONS - set(ImageFolder.EXTENSIONS)) == []


def test_files_left_out_without_an_extension_are_told_to_get_one(finetune_main, tiny_resnet, tmp_path, caplog):
    """A JPEG saved without an extension (as some cameras and exports name files) is not a type to convert."""
    data = write_class_images(tmp_path / "data", per_class=4)
    Image.new("RGB", (16, 16)).save(data / "cat" / "IMG_0001", format="JPEG")
    out = tmp_path / "out"
    args = ["--train_dir", str(data), "--output_dir", str(out), "--model_name_or_path", str(tiny_resnet),
            "--max_steps", "1", "--eval_strategy", "no"]  # fmt: skip
    assert finetune_main(args) == 0
    logged = " ".join(caplog.text.split())
    assert "1 of them has none, so if they are images, name them with their format's (.jpg, .png)" in logged
