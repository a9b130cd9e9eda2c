"""Image decoding: any image Pillow reads turned into the 8-bit RGB the models expect without losing its content,
by the fastest decoder that keeps it (torchvision for JPEGs, Pillow's draft mode for large ones)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.io import ImageReadMode, decode_jpeg, read_file
from torchvision.transforms import v2

# What counts as an image file (by name): the formats people keep photos and pictures in that the installed Pillow
# opens without plugins (HEIC/HEIF needs pillow-heif, so it is not here), hidden files (macOS's ._ resource forks)
# left out. predict and evaluate read every one of them.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".bmp", ".dib", ".gif", ".tif", ".tiff", ".webp"}
    | {".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".jp2", ".j2k", ".jpf", ".jpx", ".j2c", ".jpc", ".pcx"}
    | {".sgi", ".psd", ".icns", ".avif", ".avifs", ".qoi"}
)
# Read by Pillow, but skipped by `datasets`' imagefolder, which loads training's folders: training leaves them out
# (a scanned file imagefolder then skipped would be counted in the data report but never trained on).
NOT_LOADED_BY_IMAGEFOLDER = frozenset({".avif", ".avifs", ".qoi"})
TRAINING_IMAGE_EXTENSIONS = IMAGE_EXTENSIONS - NOT_LOADED_BY_IMAGEFOLDER

# Files kept beside images that nobody means as images: notes, lists, metadata, and what operating systems leave
# (Thumbs.db, desktop.ini). A folder scan leaves them out without a word; any other file it leaves out is counted.
NOTE_SUFFIXES = frozenset({".txt", ".md", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".xml", ".lst"})
NOTE_NAMES = frozenset({"readme", "license", "notes", "thumbs.db", "desktop.ini", "ehthumbs.db"})


def is_image_file(path: Path, extensions: frozenset[str] = IMAGE_EXTENSIONS) -> bool:
    return path.suffix.lower() in extensions and not path.name.startswith(".")


def is_note_file(path: Path) -> bool:
    """A hidden file (.DS_Store, ._photo.jpg), a note (README, .txt, .csv, .json, ...) or an OS file (Thumbs.db)."""
    name = path.name.lower()
    return (
        name.startswith(".")
        or path.suffix.lower() in NOTE_SUFFIXES
        or name in NOTE_NAMES
        or path.stem.lower() in NOTE_NAMES
    )


def is_left_out_file(path: Path, extensions: frozenset[str] = IMAGE_EXTENSIONS) -> bool:
    """A file that a folder scan leaves out by its extension and that may have been meant as an image (a .heic
    photo, a .raw, a video): the user is told about these, not about notes or hidden files."""
    return not is_image_file(path, extensions) and not is_note_file(path)


def left_out_files_note(files: list[Path], where: str, shown: int = 3) -> str | None:
    """One line counting the files of `where` left out by their type, with the first few names; None for none."""
    if not files:
        return None
    names = ", ".join(path.name for path in files[:shown]) + (", ..." if len(files) > shown else "")
    unnamed = sum(1 for path in files if not path.suffix)
    rename = (
        f" Files are read by their extension: {unnamed} of them {'has' if unnamed == 1 else 'have'} none, so if "
        "they are images, name them with their format's (.jpg, .png)."
        if unnamed
        else ""
    )
    return (
        f"{len(files)} file(s) in {where} are not of an image type read here ({names}): convert them to JPEG or PNG "
        f"to include them.{rename}"
    )


# Transparent areas are composited on mid-grey: neither black nor white, so no class gets a background cue.
NEUTRAL_BACKGROUND = (128, 128, 128)
HIGH_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def rescale_high_bit_depth(image: Image.Image) -> Image.Image:
    """16-bit (and 32-bit integer/float) grey images to 8-bit by scaling the 16-bit range, not by clipping.

    Pillow's own conversion clips values above 255, which turns a 16-bit image almost entirely white.
    """
    pixels = np.asarray(image, dtype=np.float64)
    if image.mode == "F" and pixels.size and pixels.max() <= 1.0:
        scaled = pixels * 255.0  # float images in [0, 1]
    else:
        scaled = np.clip(pixels, 0, 65535) / 257.0
    return Image.fromarray(np.clip(scaled.round(), 0, 255).astype(np.uint8), mode="L")


def composite_on_background(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, NEUTRAL_BACKGROUND + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")


# Modes with an alpha channel (a palette or RGB image may also name a transparent colour in its `info`).
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})


def has_transparency(image: Image.Image) -> bool:
    return image.mode in ALPHA_MODES or "transparency" in image.info


def to_rgb(image: Image.Image) -> Image.Image:
    """Upright 8-bit RGB: EXIF rotation applied, alpha composited, 16-bit rescaled, CMYK/palette/bilevel converted."""
    image = ImageOps.exif_transpose(image) or image
    if image.mode == "RGB":
        return image
    if image.mode in HIGH_BIT_MODES:
        return rescale_high_bit_depth(image).convert("RGB")
    if has_transparency(image):
        return composite_on_background(image)
    return image.convert("RGB")


def draft_size(width: int, height: int, min_short_side: int | None) -> tuple[int, int] | None:
    """The reduced size to ask a JPEG decoder for, or None when the image is not large enough to reduce."""
    if not min_short_side:
        return None
    scale = min_short_side / min(width, height)
    return (math.ceil(width * scale), math.ceil(height * scale)) if scale < 0.5 else None


def open_image(item: dict, min_short_side: int | None = None) -> tuple[Image.Image, bool]:
    """Opens an undecoded `datasets` image (its header only); a large JPEG is set to decode at reduced size.

    Pillow's draft mode lets the JPEG decoder scale by 1/2, 1/4 or 1/8 while decoding, never below
    `min_short_side` on the shorter side: a 3000x2000 photo for 224x224 training crops decodes at 750x500, several
    times faster, and every crop still has about as many source pixels as it needs.

    Returns:
        (image, reduced): the image, and whether draft mode was set on it.
    """
    image = Image.open(item["path"] if item.get("path") else io.BytesIO(item["bytes"]))
    reduced = draft_size(*image.size, min_short_side) if image.format == "JPEG" else None
    if reduced:
        image.draft("RGB", reduced)
    return image, reduced is not None


def decode_rgb(item: dict | Image.Image, min_short_side: int | None = None) -> torch.Tensor:
    """An image as an upright uint8 RGB tensor (3, H, W), by the fastest decoder that keeps its content.

    JPEGs that need no reduction go through torchvision's `decode_jpeg` straight into a tensor, EXIF orientation
    applied (about 1.4x Pillow's decode and conversion); large JPEGs through Pillow's draft mode (`open_image`);
    every other image, and any JPEG `decode_jpeg` refuses, through Pillow and `to_rgb`.
    """
    if isinstance(item, Image.Image):
        return v2.functional.pil_to_tensor(to_rgb(item))
    image, reduced = open_image(item, min_short_side)
    if image.format == "JPEG" and not reduced:
        path = item.get("path")
        data = read_file(path) if path else torch.frombuffer(bytearray(item["bytes"]), dtype=torch.uint8)
        try:
            decoded = decode_jpeg(data, mode=ImageReadMode.RGB, apply_exif_orientation=True)
        except RuntimeError:
            pass  # e.g. an arithmetic-coded or truncated JPEG: Pillow reads what it can
        else:
            image.close()
            return decoded
    return v2.functional.pil_to_tensor(to_rgb(image))
