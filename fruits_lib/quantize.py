"""int8 MobileNetV2: post-training quantization of the TFLite model, calibrated on the input's own photos.

``full`` quantization (weights and activations int8, float32 input/output kept, so the featurizer's
pre- and post-processing are unchanged) runs on XNNPACK's int8 kernels; ``dynamic`` (weights int8,
activations float) needs no calibration. The calibration set is a deterministic sample of the input:
the photos whose ``label/file name`` hash lowest, so the same photos are drawn wherever the data sits.
The quantized flatbuffer is cached per machine, keyed by the weights, size and calibration photos.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings

import numpy as np

PRECISIONS = ("float32", "int8")
QUANTIZATIONS = ("full", "dynamic")
CALIBRATION_IMAGES = 64  # photos fed to the converter's representative dataset


def calibration_contents(frame, count: int = CALIBRATION_IMAGES, content_col: str = "content",
                         path_col: str = "path") -> list:
    """The bytes of ``count`` photos of ``frame``: those whose ``label/file name`` hashes lowest.

    Deterministic and independent of where the data sits (only the last two path parts are hashed);
    one small Spark job on the driver.
    """
    from pyspark.sql import functions as F

    name = F.regexp_extract(F.col(path_col), r"([^/]+/[^/]+)$", 1)
    rows = (frame.select(F.xxhash64(name).alias("_order"), name.alias("_name"), F.col(content_col))
            .orderBy("_order", "_name").limit(count).collect())
    return [bytes(row[content_col]) for row in rows]


def calibration_arrays(contents, image_size: int) -> list:
    """Network inputs (float32 ``(1, size, size, 3)``) for the readable photos among ``contents``."""
    from fruits_lib.image import ImageDecodeError, decode_image, preprocess

    arrays = []
    for content in contents:
        try:
            arrays.append(preprocess(decode_image(content, image_size))[None])
        except ImageDecodeError:
            continue  # an unreadable photo is reported by the featurizer itself, not used to calibrate
    return arrays


def quantize(keras_model, calibration: list | None, mode: str = "full") -> bytes:
    """The TFLite flatbuffer of ``keras_model`` quantized to int8 (``full`` needs ``calibration``)."""
    import tensorflow as tf

    if mode not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, not {mode!r}")
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "full":
        if not calibration:
            raise ValueError("full int8 quantization needs at least one readable calibration photo")
        converter.representative_dataset = lambda: ([array] for array in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return converter.convert()


def int8_path(weights_sha256: str, image_size: int, contents, mode: str = "full") -> str:
    """Where this machine caches the int8 model of these weights, size and calibration photos."""
    from fruits_lib.store import cache_dir
    from fruits_lib.tflite import tensorflow_version

    digest = hashlib.sha256()
    for content in contents if mode == "full" else ():
        digest.update(hashlib.sha256(content).digest())
    name = (f"mobilenetv2-{weights_sha256[:16]}-{image_size}px-tf{tensorflow_version()}-int8-{mode}"
            f"-{digest.hexdigest()[:16]}.tflite")
    return os.path.join(str(cache_dir()), "tflite", name)


def int8_model(weights, image_size: int, contents, mode: str = "full") -> bytes:
    """The int8 flatbuffer of ``weights`` at ``image_size``, calibrated on the photos ``contents``; cached."""
    from fruits_lib.store import write_atomically
    from fruits_lib.tflite import configure_tensorflow
    from fruits_lib.weights import build_model

    contents = list(contents)
    path = int8_path(weights.sha256, image_size, contents, mode)
    if os.path.exists(path):
        with open(path, "rb") as handle:
            return handle.read()
    configure_tensorflow(0)
    calibration = calibration_arrays(contents, image_size) if mode == "full" else None
    flatbuffer = quantize(build_model(weights.arrays, image_size), calibration, mode)
    try:
        write_atomically(path, flatbuffer)
    except OSError as exc:  # a read-only cache only costs the next run a conversion
        warnings.warn(f"could not cache the int8 model at {path}: {exc}", stacklevel=2)
    return flatbuffer


def calibrated_int8(weights, image_size: int, dataset, content_col: str = "content") -> bytes:
    """The int8 flatbuffer of ``weights``, calibrated on ``dataset``'s photos (the featurizer's first dataset)."""
    if dataset is None:
        raise ValueError("an int8 featurizer is calibrated on the photos it first transforms: "
                         "transform a dataset before saving it")
    return int8_model(weights, image_size, calibration_contents(dataset, content_col=content_col))


def is_int8(flatbuffer: bytes) -> bool:
    """Whether the model's convolutions hold int8 weights (LiteRT's view of its tensors)."""
    from fruits_lib.tflite import interpreter_class

    interpreter = interpreter_class()(model_content=flatbuffer)
    kinds = {detail["dtype"] for detail in interpreter.get_tensor_details() if len(detail["shape"]) == 4}
    return np.dtype(np.int8) in {np.dtype(kind) for kind in kinds}


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``(n, d)`` feature matrices."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
