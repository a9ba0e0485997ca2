"""MobileNetV2 as TFLite: converted once per machine on the driver (cached), run with LiteRT/XNNPACK.

The driver converts the Keras network with the resolved weights to a TFLite flatbuffer, cached
by the weights' sha256, image size, pooled layers and TensorFlow version; workers load it with LiteRT's
interpreter (no TensorFlow import) and run it one image per invoke.

int8 (``--precision int8``): post-training quantization. ``full`` (weights and activations int8,
float32 input/output kept, so pre- and post-processing are unchanged) runs on XNNPACK's int8
kernels; ``dynamic`` (weights only) needs no calibration. The calibration set is a deterministic
sample of the input (the photos whose ``label/file name`` hash lowest, wherever the data sits);
the quantized flatbuffer is cached per machine, keyed by weights, size and calibration photos.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import warnings

import numpy as np

from fruits_lib.support import logs
from fruits_lib.support.store import cache_dir, write_atomically
from fruits_lib.support.weights import TOP_LAYER, Weights, build_model

TFLITE_INVOKE_BATCH = 1  # images per TFLite invoke (docs/performance.md: faster than 32 on one core)


def configure_tensorflow(tf_threads: int):
    """Import TensorFlow with ``tf_threads`` intra-op threads, so workers do not oversubscribe cores."""
    import tensorflow as tf

    try:  # must happen before TensorFlow's first op in this process
        tf.config.threading.set_intra_op_parallelism_threads(tf_threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    return tf


def tensorflow_version() -> str:
    """TensorFlow's version, from the installed distribution's metadata (no TensorFlow import)."""
    from importlib import metadata

    for name in ("tensorflow-cpu", "tensorflow"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    import tensorflow as tf

    return tf.__version__


def layers_tag(layers) -> str:
    """A short name for the pooled ``layers``: empty for the default (the last layer alone)."""
    layers = tuple(layers)
    return "" if layers == (TOP_LAYER,) else "-layers" + hashlib.sha256(",".join(layers).encode()).hexdigest()[:8]


def tflite_path(sha256: str, image_size: int, layers=(TOP_LAYER,)) -> str:
    """Where this machine caches the TFLite form of the weights ``sha256`` at ``image_size`` pooling ``layers``."""
    name = f"mobilenetv2-{sha256[:16]}-{image_size}px{layers_tag(layers)}-tf{tensorflow_version()}.tflite"
    return os.path.join(str(cache_dir()), "tflite", name)


def tflite_model(weights: Weights, image_size: int, layers=(TOP_LAYER,)) -> bytes:
    """The TFLite flatbuffer of MobileNetV2 with ``weights`` at ``image_size`` pooling ``layers``, made on the driver.

    The Keras network is rebuilt and converted once per machine, then read from the cache
    (keyed by the weights' sha256, image size, layers and TensorFlow version), so a warm driver does
    not import TensorFlow at all.
    """
    path = tflite_path(weights.sha256, image_size, layers)
    if os.path.exists(path):
        with open(path, "rb") as handle:
            return handle.read()
    tf = configure_tensorflow(0)
    model = build_model(weights.arrays, image_size, layers)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), logs.native_noise_silenced():
        flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    try:
        write_atomically(path, flatbuffer)
    except OSError as exc:  # a read-only cache only costs the next run a conversion
        warnings.warn(f"could not cache the TFLite model at {path}: {exc}", stacklevel=2)
    return flatbuffer


INTERPRETERS = ("litert", "tf.lite")


def interpreter_class(interpreter: str = "litert"):
    """The TFLite ``Interpreter`` class: ``litert`` (``ai_edge_litert``, no TensorFlow import)
    or ``tf.lite`` (TensorFlow's, which imports TensorFlow). ``litert`` falls back to ``tf.lite`` when LiteRT
    is not installed.

    Both run the same C++ TFLite interpreter with the XNNPACK delegate; ``tf.lite.Interpreter``
    is deprecated in TensorFlow 2.19 in favour of LiteRT.
    """
    if interpreter not in INTERPRETERS:
        raise ValueError(f"interpreter must be one of {', '.join(INTERPRETERS)}, not {interpreter!r}")
    if interpreter == "litert":
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            pass
        else:
            return Interpreter
    import tensorflow as tf

    return tf.lite.Interpreter


def tflite_predict(model_content: bytes, threads: int, invoke_batch: int = TFLITE_INVOKE_BATCH,
                   interpreter: str = "litert"):
    """A predict function: float32 batch ``(n, size, size, 3)`` -> ``(n, 1280)`` features.

    Images are invoked ``invoke_batch`` at a time (default one): activations stay in the CPU
    caches and tensors are allocated once; the decode batch still sets how many travel together.
    ``interpreter``: which TFLite runtime loads the model (see :func:`interpreter_class`).
    """
    runtime = interpreter_class(interpreter)
    # the XNNPACK delegate, applied at the first allocation, says so at INFO level: silenced, warnings kept
    with warnings.catch_warnings(), logs.native_noise_silenced():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interpreter = runtime(model_content=model_content, num_threads=threads)
        source = interpreter.get_input_details()[0]
        target = interpreter.get_output_details()[0]["index"]
        step = invoke_batch
        interpreter.resize_tensor_input(source["index"], [step, *source["shape"][1:]])
        interpreter.allocate_tensors()

    def predict(batch: np.ndarray) -> np.ndarray:
        outputs = []
        for start in range(0, len(batch), step):
            chunk = batch[start:start + step]
            if len(chunk) < step:  # pad the last chunk rather than re-allocate
                chunk = np.concatenate([chunk, np.zeros((step - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            interpreter.set_tensor(source["index"], np.ascontiguousarray(chunk))
            interpreter.invoke()
            outputs.append(interpreter.get_tensor(target)[: len(batch) - start].copy())
        return np.concatenate(outputs).astype(np.float32, copy=False)

    return predict


# ---------------------------------------------------------------- int8 (post-training quantization)
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
    from fruits_lib.support.image import ImageDecodeError, decode_image, preprocess

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
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), warnings.catch_warnings(), \
            logs.native_noise_silenced():
        warnings.simplefilter("ignore")
        return converter.convert()


def int8_path(weights_sha256: str, image_size: int, contents, mode: str = "full") -> str:
    """Where this machine caches the int8 model of these weights, size and calibration photos."""

    digest = hashlib.sha256()
    for content in contents if mode == "full" else ():
        digest.update(hashlib.sha256(content).digest())
    name = (f"mobilenetv2-{weights_sha256[:16]}-{image_size}px-tf{tensorflow_version()}-int8-{mode}"
            f"-{digest.hexdigest()[:16]}.tflite")
    return os.path.join(str(cache_dir()), "tflite", name)


def int8_model(weights, image_size: int, contents, mode: str = "full") -> bytes:
    """The int8 flatbuffer of ``weights`` at ``image_size``, calibrated on the photos ``contents``; cached."""

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
    interpreter = interpreter_class()(model_content=flatbuffer)
    kinds = {detail["dtype"] for detail in interpreter.get_tensor_details() if len(detail["shape"]) == 4}
    return np.dtype(np.int8) in {np.dtype(kind) for kind in kinds}


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two ``(n, d)`` feature matrices."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
