"""Turning any image Pillow reads into the 8-bit RGB the models expect, without losing its content."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

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


def has_transparency(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info


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
