"""Image bytes to network input: decode (any mode, EXIF-rotated), bomb guards, pad square on white, scale.

Everything a photo goes through before the network, the same on the driver, the workers, the
bench and the app (``export`` documents this exact preprocessing); no Spark, no TensorFlow.
"""

from __future__ import annotations

import io
import time
import warnings

import numpy as np

MAX_DECODED_PIXELS = 40_000_000  # ~120 MB of RGB: larger images are reported, never decoded


class ImageDecodeError(ValueError):
    """An image file that cannot be turned into pixels; the message is the reason shown to users."""


def decode_image(content: bytes, image_size: int) -> np.ndarray:
    """Decode JPEG/PNG bytes to a ``(size, size, 3)`` uint8 RGB array, padded square on white.

    Grayscale, CMYK, palette and transparent images are converted (transparency onto
    white, like the Fruits-360 background); oversized images are downscaled while
    decoding (JPEG draft) or refused, so a decompression bomb never exhausts memory.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not content:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(content))
            if image.format == "JPEG":
                image.draft("RGB", (image_size, image_size))  # decode at 1/2..1/8 scale when large
            width, height = image.size
            if width * height > MAX_DECODED_PIXELS:
                raise ImageDecodeError(
                    f"image too large to decode safely ({width}x{height} pixels, "
                    f"limit {MAX_DECODED_PIXELS:,})"
                )
            image = ImageOps.exif_transpose(image)
            image = _to_rgb(image)
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"image too large (decompression bomb guard): {exc}") from exc
    except UnidentifiedImageError:
        raise ImageDecodeError("not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image data: {exc}") from exc
    if image.size != (image_size, image_size):
        image = ImageOps.pad(image, (image_size, image_size), Image.BILINEAR, color=(255, 255, 255))
    return np.asarray(image, dtype=np.uint8)


def _to_rgb(image):
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit/float grayscale: rescale to 8 bits
        values = np.asarray(image, dtype=np.float64)
        span = max(float(values.max() - values.min()), 1e-9)
        gray = ((values - values.min()) * (255.0 / span)).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    image.load()
    return image.convert("RGB")


def preprocess(pixels: np.ndarray) -> np.ndarray:
    """MobileNetV2's input scaling: uint8 [0, 255] -> float32 [-1, 1]."""
    return pixels.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def featurize_images(predict, contents, image_size: int, batch_size: int, timings: dict | None = None):
    """Features and errors for a sequence of image bytes, in fixed-size batches.

    Returns ``(features, errors)``: one float32 array or None, and one reason or None,
    per input. Decoding happens batch by batch so memory stays bounded; ``timings``
    (if given) accumulates seconds spent decoding and predicting.
    """
    contents = list(contents)
    features, errors = [None] * len(contents), [None] * len(contents)
    timings = {} if timings is None else timings
    for start in range(0, len(contents), batch_size):
        started = time.perf_counter()
        rows, pixels = [], []
        for i in range(start, min(start + batch_size, len(contents))):
            try:
                pixels.append(decode_image(contents[i], image_size))
                rows.append(i)
            except ImageDecodeError as exc:
                errors[i] = str(exc)
        decoded = time.perf_counter()
        timings["decode_s"] = timings.get("decode_s", 0.0) + decoded - started
        if rows:
            batch = predict(preprocess(np.stack(pixels)))
            for row, vector in zip(rows, batch):
                features[row] = vector.astype(np.float32)
        timings["predict_s"] = timings.get("predict_s", 0.0) + time.perf_counter() - decoded
    return features, errors
