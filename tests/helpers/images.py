"""Image files for tests, made on the fly: good ones in every mode, and every kind of bad one."""

import io
import struct
import zlib
from functools import lru_cache

import numpy as np
from PIL import Image


def picture(size=(100, 100), colour=(200, 40, 40), mode="RGB", fmt="JPEG") -> bytes:
    """A small fruit-like picture (a disc on white) encoded as ``fmt`` in ``mode``."""
    width, height = size
    yy, xx = np.mgrid[:height, :width]
    disc = (xx - width / 2) ** 2 + (yy - height / 2) ** 2 < (min(size) * 0.35) ** 2
    pixels = np.full((height, width, 3), 255, np.uint8)
    pixels[disc] = colour
    image = Image.fromarray(pixels, "RGB")
    if mode == "RGBA":
        alpha = np.where(disc, 255, 0).astype(np.uint8)
        image = Image.fromarray(np.dstack([pixels, alpha]), "RGBA")
    elif mode == "P":
        image = image.convert("P", palette=Image.ADAPTIVE)
    elif mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def png_bomb(width=50_000, height=50_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""
    data = picture(size=(8, 8), fmt="PNG")
    start = data.index(b"IHDR")
    header = bytearray(data[start:start + 17])
    header[4:12] = struct.pack(">II", width, height)
    crc = struct.pack(">I", zlib.crc32(bytes(header)) & 0xFFFFFFFF)
    return data[:start] + bytes(header) + crc + data[start + 21:]


def bad_files() -> dict:
    """Name -> bytes of files that must end in errors/ with a reason."""
    return dict(_bad_files())


@lru_cache(maxsize=1)
def _bad_files() -> dict:
    good = picture()
    return {
        "empty.jpg": b"",
        "text.jpg": b"this is not an image, just text named .jpg\n",
        "random.png": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "truncated.jpg": good[: len(good) // 2],
        "bomb.png": png_bomb(),
    }


def odd_but_valid_files() -> dict:
    """Name -> bytes of valid images in unusual modes and sizes: they must be featurized."""
    return dict(_odd_but_valid_files())


@lru_cache(maxsize=1)  # made once per session: the 6000 x 5000 JPEG alone takes ~1.5 s to encode
def _odd_but_valid_files() -> dict:
    return {
        "gray.jpg": picture(mode="L"),
        "cmyk.jpg": picture(mode="CMYK"),
        "rgba.png": picture(mode="RGBA", fmt="PNG"),
        "palette.png": picture(mode="P", fmt="PNG"),
        "tiny.png": picture(size=(8, 8), fmt="PNG"),
        "wide.JPG": picture(size=(300, 120)),
        "UPPER.JPEG": picture(colour=(40, 160, 40)),
        "big.jpg": picture(size=(6000, 5000)),
    }
