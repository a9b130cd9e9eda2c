"""Builders for image folders with the defects real folders have."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def png_claiming_size(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims `width` x `height` (valid CRC) but holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")))


def ramp16(width: int = 64, height: int = 8) -> Image.Image:
    """A 16-bit horizontal ramp over the whole 0-65535 range."""
    row = np.linspace(0, 65535, width).astype(np.uint16)
    image = Image.fromarray(np.tile(row, (height, 1)))
    assert image.mode == "I;16"
    return image


def left_dark_right_bright(width: int = 40, height: int = 20) -> Image.Image:
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, width // 2 :] = 255
    return Image.fromarray(pixels)


def exif_rotated_jpeg(path: Path) -> None:
    """A 40x20 image stored sideways with EXIF orientation 6 (display rotated 90 degrees clockwise)."""
    image = left_dark_right_bright()
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(path, exif=exif.tobytes(), quality=95)


def coloured(colour, size=(32, 24), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 20, size=(size[1], size[0], 3))
    return Image.fromarray(np.clip(np.asarray(colour) + noise, 0, 255).astype(np.uint8))


def write_messy_folder(root: Path) -> dict[str, str]:
    """Two classes of usable images in every odd format, plus unusable files; returns unusable name -> reason word."""
    red, blue = root / "Red Things", root / "blue"
    red.mkdir(parents=True)
    blue.mkdir(parents=True)
    for i in range(6):
        coloured((200, 40, 40), seed=i).save(red / f"plain_{i}.png")
        coloured((40, 40, 200), seed=100 + i).save(blue / f"plain_{i}.jpg", quality=95)
    coloured((200, 40, 40), seed=50).convert("L").save(red / "grey.png")
    coloured((200, 40, 40), seed=51).convert("P", palette=Image.Palette.ADAPTIVE).save(red / "palette.gif")
    rgba = coloured((200, 40, 40), seed=52).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(red / "alpha.png")
    coloured((200, 40, 40), seed=53).convert("CMYK").save(red / "cmyk.jpg")
    ramp16().save(red / "ramp16.png")
    coloured((200, 40, 40), seed=54).convert("1").save(red / "bilevel.bmp")
    exif_rotated_jpeg(red / "rotated.JPG")
    coloured((40, 40, 200), seed=55).save(blue / "photo.webp")
    coloured((40, 40, 200), seed=56).save(blue / "scan.tif")
    coloured((40, 40, 200), seed=57).save(blue / "shot.JPEG")
    # Not images: ignored without a word.
    (blue / "notes.txt").write_text("collected on Tuesday")
    (blue / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    coloured((40, 40, 200), seed=58).save(blue / ".hidden.png")
    # Unusable: left out and reported.
    (red / "empty.jpg").write_bytes(b"")
    good = red / "plain_0.png"
    (red / "truncated.png").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    (blue / "not_really.jpg").write_text("<html>404 not found</html>")
    png_claiming_size(blue / "huge.png", 200_000, 200_000)
    (root / "empty class").mkdir()
    return {"empty.jpg": "empty", "truncated.png": "truncated", "not_really.jpg": "not an image", "huge.png": "pixels"}
