"""MobileNetV2 featurizer as a Spark ML Transformer: image bytes -> 1280 floats per image.

The driver resolves the weights once, builds the network and (default ``tflite`` engine)
converts it to a TFLite flatbuffer, cached per machine; it shares that model with
``SparkContext.broadcast``. Each Python worker loads the broadcast model the first time it
needs it (LiteRT: no TensorFlow import) and keeps it for every later batch and task (Spark
reuses Python workers), as ``pyspark.ml.functions.predict_batch_udf`` does; with ``keras`` the
weights are broadcast and each worker rebuilds the network once. Images that cannot be decoded
get a null feature vector and a readable reason in ``errorCol``: nothing is dropped silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import resource
import time
import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd
from py4j.protocol import Py4JJavaError
from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.functions import array_to_vector
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.ml.util import (
    DefaultParamsReadable,
    DefaultParamsReader,
    DefaultParamsWritable,
    DefaultParamsWriter,
)
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

from fruits_lib.errors import WeightsError
from fruits_lib.weights import (
    FEATURE_DIM,
    Weights,
    build_model,
    cache_dir,
    resolve_weights,
    weights_sha256,
    write_atomically,
)

TFLITE_INVOKE_BATCH = 1  # images per TFLite invoke: ~10-25% faster than 32 on one core (docs/performance.md)
MAX_DECODED_PIXELS = 40_000_000  # ~120 MB of RGB: larger images are reported, never decoded
WORKER_STATS_ENV = "FRUITS_WORKER_STATS_DIR"  # workers write their model loads, counts and peak RSS there
FAIL_ONCE_ENV = "FRUITS_FAIL_FIRST_ATTEMPT_PARTITION"  # tests: fail this partition's first attempt
_UDF_SCHEMA = StructType(
    [StructField("features", ArrayType(FloatType())), StructField("error", StringType())]
)


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


# ---------------------------------------------------------------- executor side
MODEL_LOADS_PREFIX = "model-loads-"  # <stats dir>/model-loads-<pid>.jsonl: one line per real model load
_MODELS: dict = {}  # model key -> predict function: the per-Python-worker cache
_BUILDS: dict = {}  # model key -> how many times this worker really loaded it (must stay 1)
_TIMINGS: dict = {}  # seconds this worker spent building, decoding, predicting


def _worker_predict(broadcast, key: str, image_size: int, tf_threads: int, engine: str, stats_dir=None):
    """The predict function of this Python worker: loaded from the broadcast on first use, then cached."""
    if key not in _MODELS:
        _MODELS[key] = _load_model(broadcast, key, image_size, tf_threads, engine, stats_dir)
    return _MODELS[key]


def _load_model(broadcast, key: str, image_size: int, tf_threads: int, engine: str, stats_dir=None):
    """Load the model from the broadcast (the costly step the cache avoids); every call is logged."""
    started = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if engine == "tflite":  # the broadcast is the converted model: no TensorFlow import with LiteRT
        predict = tflite_predict(broadcast.value, tf_threads)
    else:
        _configure_tensorflow(tf_threads)
        predict = build_model(broadcast.value, image_size).predict_on_batch
    seconds = time.perf_counter() - started
    _BUILDS[key] = _BUILDS.get(key, 0) + 1
    _TIMINGS["build_s"] = _TIMINGS.get("build_s", 0.0) + seconds
    _log_model_load(stats_dir, key, engine, seconds)
    return predict


def _log_model_load(folder, key: str, engine: str, seconds: float) -> None:
    """Append ``{pid, time, key, engine}`` to this process's load log (when the stats folder is set).

    Written at each real load, outside the cache's bookkeeping, so a test counting lines per pid
    sees what actually happened: a worker that loads the same model twice shows two lines.
    """
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    record = {"pid": os.getpid(), "time": time.time(), "key": key, "engine": engine,
              "seconds": round(seconds, 3)}
    with open(os.path.join(folder, f"{MODEL_LOADS_PREFIX}{os.getpid()}.jsonl"), "a") as log:
        log.write(json.dumps(record) + "\n")


def read_model_loads(folder) -> list:
    """Every model load logged under ``folder`` (see :func:`_log_model_load`), oldest first."""
    records = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.startswith(MODEL_LOADS_PREFIX) and name.endswith(".jsonl"):
            with open(os.path.join(folder, name)) as log:
                records.extend(json.loads(line) for line in log if line.strip())
    return sorted(records, key=lambda r: r["time"])


def _configure_tensorflow(tf_threads: int):
    """Import TensorFlow with ``tf_threads`` intra-op threads, so workers do not oversubscribe cores."""
    import tensorflow as tf

    try:  # must happen before TensorFlow's first op in this process
        tf.config.threading.set_intra_op_parallelism_threads(tf_threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    return tf


def _tensorflow_version() -> str:
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
    name = f"mobilenetv2-{sha256[:16]}-{image_size}px-tf{_tensorflow_version()}.tflite"
    return os.path.join(str(cache_dir()), "tflite", name)


def tflite_model(weights: Weights, image_size: int) -> bytes:
    """The TFLite flatbuffer of MobileNetV2 with ``weights`` at ``image_size``, made on the driver.

    The Keras network is rebuilt and converted once per machine, then read from the cache
    (keyed by the weights' sha256, image size and TensorFlow version), so a warm driver does
    not import TensorFlow at all. XNNPACK runs it ~1.8x faster than Keras on one CPU thread.
    """
    path = tflite_path(weights.sha256, image_size)
    if os.path.exists(path):
        with open(path, "rb") as handle:
            return handle.read()
    tf = _configure_tensorflow(0)
    model = build_model(weights.arrays, image_size)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    try:
        write_atomically(path, flatbuffer)
    except OSError as exc:  # a read-only cache only costs the next run a conversion
        warnings.warn(f"could not cache the TFLite model at {path}: {exc}", stacklevel=2)
    return flatbuffer


INTERPRETERS = ("litert", "tf.lite")


def _interpreter_class(interpreter: str = "litert"):
    """The TFLite ``Interpreter`` class: ``litert`` (``ai_edge_litert``, no TensorFlow import, ~0.05 s)
    or ``tf.lite`` (TensorFlow's, a ~3 s import). ``litert`` falls back to ``tf.lite`` when LiteRT
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
    ``interpreter``: which TFLite runtime loads the model (see :func:`_interpreter_class`).
    """
    runtime = _interpreter_class(interpreter)
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


def _record_worker_stats(folder, images: int) -> None:
    """Write this worker's build counts and peak RSS where benchmarks and tests can read them."""
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"worker-{os.getpid()}.json")
    previous = {}
    if os.path.exists(path):
        with open(path) as handle:
            previous = json.load(handle)
    stats = {
        "pid": os.getpid(),
        "builds": dict(_BUILDS),
        "images": previous.get("images", 0) + images,
        "tasks": previous.get("tasks", 0) + 1,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "seconds": {name: round(value, 3) for name, value in _TIMINGS.items()},
    }
    with open(path + ".tmp", "w") as handle:
        json.dump(stats, handle)
    os.replace(path + ".tmp", path)


def _maybe_inject_failure(folder) -> None:
    """Fail the first attempt of one partition when the tests ask for it (checks Spark's retries)."""
    target = os.environ.get(FAIL_ONCE_ENV)
    if target is None:
        return
    from pyspark import TaskContext

    context = TaskContext.get()
    if context is not None and context.partitionId() == int(target) and context.attemptNumber() == 0:
        if folder:  # leave a trace, so a test can tell the failure really happened
            os.makedirs(folder, exist_ok=True)
            open(os.path.join(folder, f"injected-failure-partition-{target}"), "w").close()
        raise RuntimeError(f"injected failure ({FAIL_ONCE_ENV}={target})")


def _featurize_partition(batches, broadcast, key, image_size, batch_size, tf_threads, engine, fail_on_invalid,
                         stats_dir=None):
    """Body of the pandas UDF; module-level so that the worker's caches are the module's own.

    ``stats_dir``: where this worker logs its model loads and statistics (None: the worker's own
    ``FRUITS_WORKER_STATS_DIR``, if any).
    """
    stats_dir = stats_dir or os.environ.get(WORKER_STATS_ENV)
    _maybe_inject_failure(stats_dir)
    predict = None
    images = 0
    for contents in batches:
        if predict is None:
            predict = _worker_predict(broadcast, key, image_size, tf_threads, engine, stats_dir)
        features, errors = featurize_images(predict, contents, image_size, batch_size, _TIMINGS)
        if fail_on_invalid and any(errors):
            raise ValueError("undecodable image: " + next(e for e in errors if e))
        images += len(contents)
        yield pd.DataFrame({"features": features, "error": errors})
    _record_worker_stats(stats_dir, images)


def model_key(weights_sha256: str, image_size: int, engine: str, flatbuffer: bytes | None = None) -> str:
    """The worker cache's key: what the model is (weights, input size, engine), not how it travelled.

    Content-addressed, so it needs no broadcast id (a Spark internal); one broadcast per key and
    application is guaranteed by :func:`broadcast_model`.
    """
    key = f"{weights_sha256[:16]}-{image_size}px-{engine}"
    return key if flatbuffer is None else f"{key}-int8-{hashlib.sha256(flatbuffer).hexdigest()[:16]}"


def _make_udf(broadcast, key: str, image_size: int, batch_size: int, tf_threads: int, engine: str,
              fail_on_invalid: bool):
    stats_dir = os.environ.get(WORKER_STATS_ENV)  # the driver's choice travels with the tasks

    def featurize(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        return _featurize_partition(batches, broadcast, key, image_size, batch_size, tf_threads, engine,
                                    fail_on_invalid, stats_dir)

    return pandas_udf(featurize, _UDF_SCHEMA)


# ---------------------------------------------------------------- driver side
_BROADCASTS: dict = {}  # (application id, sha256, engine, size) -> Broadcast: each model is sent once


def broadcast_model(spark: SparkSession, weights: Weights, engine: str, image_size: int,
                    flatbuffer: bytes | None = None, precision: str = "float32"):
    """Broadcast, once per Spark application, what the workers run: the TFLite model or the weights.

    ``tflite``: the flatbuffer converted on the driver (:func:`tflite_model`), or the one a saved
    featurizer bundles (``flatbuffer``), so the workers only load it; ``keras``: the weight arrays,
    from which each worker builds the Keras network.
    """
    sc = spark.sparkContext
    key = (sc.applicationId, weights.sha256, engine, image_size if engine == "tflite" else None)
    if precision != "float32":  # a quantized model depends on its calibration photos too: keyed by its bytes
        key = (*key, precision, hashlib.sha256(flatbuffer).hexdigest())
    if key not in _BROADCASTS:
        if engine == "tflite":
            value = flatbuffer if flatbuffer is not None else tflite_model(weights, image_size)
        else:
            value = weights.arrays
        _BROADCASTS[key] = sc.broadcast(value)
    return _BROADCASTS[key]


class ImageFeaturizer(Transformer, HasInputCol, HasOutputCol, DefaultParamsReadable, DefaultParamsWritable):
    """Spark ML Transformer: image bytes (``inputCol``) -> MobileNetV2 features as a Vector.

    Composes with ``PCA`` in a ``Pipeline`` and saves/loads like any Spark ML stage; the saved
    directory carries the network's weights (sha256-checked at load, see :class:`FeaturizerWriter`).
    Rows whose image cannot be decoded get a null ``outputCol`` and their reason in
    ``errorCol`` (``handleInvalid='keep'``), are dropped (``'skip'``) or fail the job (``'error'``).
    """

    weights = Param(Params._dummy(), "weights", "imagenet, offline, or a path to a weights file",
                    typeConverter=TypeConverters.toString)
    weightsSha256 = Param(Params._dummy(), "weightsSha256",
                          "sha256 of the weights; set on first use, checked afterwards",
                          typeConverter=TypeConverters.toString)
    imageSize = Param(Params._dummy(), "imageSize", "side in pixels of the square network input",
                      typeConverter=TypeConverters.toInt)
    batchSize = Param(Params._dummy(), "batchSize", "images per TensorFlow batch",
                      typeConverter=TypeConverters.toInt)
    errorCol = Param(Params._dummy(), "errorCol", "column for the reason an image failed",
                     typeConverter=TypeConverters.toString)
    handleInvalid = Param(Params._dummy(), "handleInvalid", "undecodable images: keep, skip or error",
                          typeConverter=TypeConverters.toString)
    engine = Param(Params._dummy(), "engine",
                   "tflite (XNNPACK, fastest on CPU) or keras (predict_on_batch)",
                   typeConverter=TypeConverters.toString)
    precision = Param(Params._dummy(), "precision",
                      "tflite engine: float32, or int8 (quantized, calibrated on the first dataset transformed)",
                      typeConverter=TypeConverters.toString)
    tfThreads = Param(Params._dummy(), "tfThreads",
                      "TensorFlow threads per Python worker; 0 means spark.task.cpus",
                      typeConverter=TypeConverters.toInt)

    @keyword_only
    def __init__(self, *, inputCol="content", outputCol="features", errorCol="error", weights="imagenet",
                 imageSize=224, batchSize=32, handleInvalid="keep", engine="tflite", tfThreads=0,
                 weightsSha256=None, precision="float32"):
        super().__init__()
        self._setDefault(inputCol="content", outputCol="features", errorCol="error", weights="imagenet",
                         imageSize=224, batchSize=32, handleInvalid="keep", engine="tflite",
                         tfThreads=0, precision="float32")
        self._set(**self._input_kwargs)
        self._weights_cache, self._weights_for = None, None
        self._bundled_tflite = None  # (image size, flatbuffer) of a loaded featurizer: no conversion needed
        self._int8 = None  # (image size, flatbuffer) of the int8 model: calibrated once, or bundled

    def resolved_weights(self) -> Weights:
        """The weights, resolved once on the driver; a saved featurizer refuses different weights.

        A loaded featurizer uses its bundled network; setting ``weights`` to another source afterwards
        resolves that source, which must have the sha256 it was saved with.
        """
        source = self.getOrDefault(self.weights)
        if self._weights_cache is None or self._weights_for != source:
            weights = resolve_weights(source)
            expected = self.getOrDefault(self.weightsSha256) if self.isDefined(self.weightsSha256) else None
            if expected and expected != weights.sha256:
                raise ValueError(
                    f"weights {weights.source!r} have sha256 {weights.sha256[:12]}..., "
                    f"this featurizer was saved with {expected[:12]}..."
                )
            self._set(weightsSha256=weights.sha256)
            self._weights_cache, self._weights_for = weights, source
        return self._weights_cache

    def _transform(self, dataset: DataFrame) -> DataFrame:
        featurized = self.transform_to_arrays(dataset)
        vectors = F.col(self.getOutputCol())  # array_to_vector fails on null: keep failed rows null
        return featurized.withColumn(self.getOutputCol(), F.when(vectors.isNotNull(), array_to_vector(vectors)))

    def transform_to_arrays(self, dataset: DataFrame) -> DataFrame:
        """Like ``transform``, but ``outputCol`` holds the network's float32 values as ``array<float>``.

        For writers: what is stored is float32, so this skips the Vector (float64) the ML stages
        need and its conversion back, two passes over 1,280 values per image in the JVM.
        """
        handle = self.getOrDefault(self.handleInvalid)
        if handle not in ("keep", "skip", "error"):
            raise ValueError(f"handleInvalid must be keep, skip or error, not {handle!r}")
        image_size = self.getOrDefault(self.imageSize)
        if not 32 <= image_size <= 1024:
            raise ValueError(f"imageSize must be between 32 and 1024 pixels, not {image_size}")
        engine = self.getOrDefault(self.engine)
        if engine not in ("tflite", "keras"):
            raise ValueError(f"engine must be tflite or keras, not {engine!r}")
        if self.getOrDefault(self.precision) not in ("float32", "int8"):
            raise ValueError(f"precision must be float32 or int8, not {self.getOrDefault(self.precision)!r}")
        if self.getOrDefault(self.precision) == "int8" and engine != "tflite":
            raise ValueError("precision int8 needs the tflite engine")
        spark = dataset.sparkSession
        threads = self.getOrDefault(self.tfThreads) or int(spark.conf.get("spark.task.cpus", "1"))
        bundled = self._bundled_tflite  # made from these weights (same sha256, checked) at the saved size
        flatbuffer = bundled[1] if bundled and bundled[0] == image_size else None
        precision = self.getOrDefault(self.precision)
        if precision == "int8":
            flatbuffer = self.int8_model(dataset, image_size)
        broadcast = broadcast_model(spark, self.resolved_weights(), engine, image_size, flatbuffer, precision)
        key = model_key(self.resolved_weights().sha256, image_size, engine, flatbuffer if precision == "int8" else None)
        udf = _make_udf(broadcast, key, image_size, self.getOrDefault(self.batchSize), threads, engine,
                        handle == "error")
        result = "__fruits_featurized"
        out_col, err_col = self.getOutputCol(), self.getOrDefault(self.errorCol)
        # asNondeterministic: Spark must not inline (and so re-run) the UDF into both fields below.
        featurized = dataset.withColumn(result, udf.asNondeterministic()(F.col(self.getInputCol())))
        featurized = featurized.withColumn(out_col, F.col(f"{result}.features"))
        featurized = featurized.withColumn(err_col, F.col(f"{result}.error")).drop(result)
        if handle == "skip":
            featurized = featurized.filter(F.col(err_col).isNull())
        return featurized

    def int8_model(self, dataset: DataFrame | None, image_size: int) -> bytes:
        """The int8 flatbuffer: the bundled or already calibrated one, else calibrated on ``dataset``'s photos."""
        from fruits_lib.quantize import calibration_contents, int8_model

        if self._int8 is None or self._int8[0] != image_size:
            if dataset is None:
                raise ValueError("an int8 featurizer is calibrated on the photos it first transforms: "
                                 "transform a dataset before saving it")
            contents = calibration_contents(dataset, content_col=self.getInputCol())
            self._int8 = (image_size, int8_model(self.resolved_weights(), image_size, contents))
        return self._int8[1]

    def write(self) -> FeaturizerWriter:
        return FeaturizerWriter(self)

    @classmethod
    def read(cls) -> FeaturizerReader:
        return FeaturizerReader(cls)


# ---------------------------------------------------------------- persistence: the network travels inside
NETWORK_FILE = "network/weights.npz"  # the get_weights() arrays, as weights.py caches them
NETWORK_MANIFEST = "network/manifest.json"  # the files' sha256, the weights' sha256, the source's name
NETWORK_TFLITE = "network/mobilenetv2.tflite"  # tflite engine: the converted network at the saved size
NETWORK_INT8 = "network/mobilenetv2-int8.tflite"  # precision int8: the calibrated quantized network


class TamperedModelError(WeightsError):
    """A saved featurizer whose bundled network is missing or does not match its recorded sha256."""


class FeaturizerWriter(DefaultParamsWriter):
    """Saves the params (Spark's metadata) plus the weight arrays and a manifest with their sha256.

    A loaded model then needs neither the original source (``offline``, a download, a local file)
    nor internet: what the featurizer runs is what was trained with. With the ``tflite`` engine the
    converted network travels too, so a fresh machine loads it without TensorFlow or a conversion.
    """

    def saveImpl(self, path: str) -> None:
        from fruits_lib.write import FileSystem, join

        weights = self.instance.resolved_weights()  # also records weightsSha256 in the metadata
        super().saveImpl(path)
        buffer = io.BytesIO()
        np.savez(buffer, *weights.arrays)
        data = buffer.getvalue()
        manifest = {"file": os.path.basename(NETWORK_FILE), "file_sha256": hashlib.sha256(data).hexdigest(),
                    "bytes": len(data), "weights_sha256": weights.sha256, "source": weights.source,
                    "image_size": self.instance.getOrDefault(self.instance.imageSize)}
        fs = FileSystem(self.sparkSession)
        fs.write_bytes(join(path, NETWORK_FILE), data)
        int8 = self.instance.getOrDefault(self.instance.precision) == "int8"
        if int8:
            flatbuffer = self.instance.int8_model(None, manifest["image_size"])
            manifest["tflite_int8"] = {"file": os.path.basename(NETWORK_INT8), "bytes": len(flatbuffer),
                                       "file_sha256": hashlib.sha256(flatbuffer).hexdigest(),
                                       "image_size": manifest["image_size"], "tensorflow": _tensorflow_version()}
            fs.write_bytes(join(path, NETWORK_INT8), flatbuffer)
        elif self.instance.getOrDefault(self.instance.engine) == "tflite":
            flatbuffer = tflite_model(weights, manifest["image_size"])
            manifest["tflite"] = {"file": os.path.basename(NETWORK_TFLITE), "bytes": len(flatbuffer),
                                  "file_sha256": hashlib.sha256(flatbuffer).hexdigest(),
                                  "image_size": manifest["image_size"], "tensorflow": _tensorflow_version()}
            fs.write_bytes(join(path, NETWORK_TFLITE), flatbuffer)
        fs.write_bytes(join(path, NETWORK_MANIFEST), json.dumps(manifest, indent=2).encode())


class FeaturizerReader(DefaultParamsReader):
    """Loads the params, then the bundled weights, refusing them unless both sha256 match."""

    def load(self, path: str) -> ImageFeaturizer:
        from fruits_lib.write import FileSystem, join

        instance = super().load(path)
        fs = FileSystem(self.sparkSession)
        network, manifest_path = join(path, NETWORK_FILE), join(path, NETWORK_MANIFEST)
        if not (fs.exists(network) and fs.exists(manifest_path)):
            raise TamperedModelError(f"saved featurizer {path} has no bundled network ({NETWORK_FILE}); "
                                     "re-save it with this version of fruits_lib")
        manifest = json.loads(_read_bundled(fs, path, manifest_path).decode())
        data = _read_bundled(fs, path, network, manifest)
        with np.load(io.BytesIO(data)) as archive:
            arrays = [archive[f"arr_{i}"] for i in range(len(archive.files))]
        expected = instance.getOrDefault(instance.weightsSha256) if instance.isDefined(instance.weightsSha256) else None
        actual = weights_sha256(arrays)
        if actual != manifest.get("weights_sha256") or (expected and actual != expected):
            raise TamperedModelError(f"refusing model {path}: its bundled weights (sha256 {actual[:12]}...) are "
                                     "not the ones it was saved with (altered file)")
        instance._weights_cache = Weights(arrays, f"{manifest.get('source')} (bundled in {path})", actual)
        instance._weights_for = instance.getOrDefault(instance.weights)
        instance._set(weightsSha256=actual)
        tflite = manifest.get("tflite")  # absent from featurizers saved before it was bundled
        if tflite:
            instance._bundled_tflite = (tflite["image_size"],
                                        _read_bundled(fs, path, join(path, NETWORK_TFLITE), tflite))
        int8 = manifest.get("tflite_int8")
        if instance.getOrDefault(instance.precision) == "int8" and not int8:
            raise TamperedModelError(f"refusing model {path}: an int8 featurizer without its bundled network "
                                     f"({NETWORK_INT8}) (altered file)")
        if int8:
            instance._int8 = (int8["image_size"], _read_bundled(fs, path, join(path, NETWORK_INT8), int8))
        return instance


def _read_bundled(fs, model_path: str, file_path: str, manifest: dict | None = None) -> bytes:
    """One file of a saved featurizer; with ``manifest``, refused unless its sha256 is the recorded one."""
    name = file_path[len(model_path):].lstrip("/")
    try:
        data = fs.read_bytes(file_path)
    except Py4JJavaError as exc:  # e.g. Hadoop's local .crc check fires before our sha256 one
        reason = str(exc.java_exception).splitlines()[0]
        raise TamperedModelError(f"refusing model {model_path}: cannot read {name} ({reason}) "
                                 "(altered file)") from None
    digest = hashlib.sha256(data).hexdigest()
    if manifest is not None and digest != manifest.get("file_sha256"):
        raise TamperedModelError(f"refusing model {model_path}: {name} has sha256 {digest[:12]}..., "
                                 f"the manifest says {str(manifest.get('file_sha256'))[:12]}... (altered file)")
    return data


__all__ = ["FEATURE_DIM", "ImageFeaturizer", "ImageDecodeError", "decode_image", "featurize_images",
           "preprocess", "broadcast_model", "model_key", "read_model_loads", "tflite_model", "tflite_predict",
           "FeaturizerWriter", "FeaturizerReader", "TamperedModelError"]
