"""MobileNetV2 as TFLite: converted once per machine on the driver (cached), run with LiteRT/XNNPACK.

The driver converts the Keras network with the resolved weights to a TFLite flatbuffer, cached
by the weights' sha256, image size and TensorFlow version; workers load it with LiteRT's
interpreter (no TensorFlow import) and run it one image per invoke.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import numpy as np

from fruits_lib.store import cache_dir, write_atomically
from fruits_lib.weights import Weights, build_model

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


def tflite_path(sha256: str, image_size: int) -> str:
    """Where this machine caches the TFLite form of the weights ``sha256`` at ``image_size``."""
    name = f"mobilenetv2-{sha256[:16]}-{image_size}px-tf{tensorflow_version()}.tflite"
    return os.path.join(str(cache_dir()), "tflite", name)


def tflite_model(weights: Weights, image_size: int) -> bytes:
    """The TFLite flatbuffer of MobileNetV2 with ``weights`` at ``image_size``, made on the driver.

    The Keras network is rebuilt and converted once per machine, then read from the cache
    (keyed by the weights' sha256, image size and TensorFlow version), so a warm driver does
    not import TensorFlow at all.
    """
    path = tflite_path(weights.sha256, image_size)
    if os.path.exists(path):
        with open(path, "rb") as handle:
            return handle.read()
    tf = configure_tensorflow(0)
    model = build_model(weights.arrays, image_size)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
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
    with warnings.catch_warnings():
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
