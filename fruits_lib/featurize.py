"""The featurizer, a Spark ML Transformer: image bytes -> MobileNetV2 features (1280 by default) per image.

The driver resolves the weights once and broadcasts what the workers run (the TFLite model, or
for ``keras`` the weight arrays). Each Python worker loads it on first use and keeps it for every
later batch and task, in the shape of ``pyspark.ml.functions.predict_batch_udf``: a
``make_predict_fn`` called once per worker and model, its result held in a small per-worker cache.
Images that cannot be decoded get a null vector and their reason in ``errorCol``. A saved
featurizer carries its network (Writer/Reader below), sha256-checked when loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections import Counter, OrderedDict
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

from fruits_lib.support.errors import TamperedModelError
from fruits_lib.support.image import featurize_images
from fruits_lib.support.params import distinct_names, int_between, one_of
from fruits_lib.support.tflite import (
    configure_tensorflow,
    layers_tag,
    tensorflow_version,
    tflite_model,
    tflite_predict,
)
from fruits_lib.support.weights import TOP_LAYER, Weights, check_layers, resolve_weights, weights_sha256
from fruits_lib.write import FileSystem, join

ENGINES = ("tflite", "keras")
PRECISIONS = ("float32", "int8")
HANDLE_INVALID = ("keep", "skip", "error")
_UDF_SCHEMA = StructType([StructField("features", ArrayType(FloatType())), StructField("error", StringType())])


# ---------------------------------------------------------------- executor side
class ModelCache:
    """A Python worker's models, key -> predict function (the ``maxsize`` last used), like the cache behind
    ``predict_batch_udf``; ``loads``: real loads per key, ``seconds``: time spent loading, decoding, predicting."""

    def __init__(self, maxsize: int = 3):
        self.maxsize, self.models, self.loads, self.seconds = maxsize, OrderedDict(), Counter(), Counter()

    def get(self, key: str, make_predict_fn):
        """``(predict, seconds)``: ``key``'s cached predict function (``seconds`` None), or a new one
        from ``make_predict_fn()`` and the seconds it took to load."""
        if key in self.models:
            self.models.move_to_end(key)
            return self.models[key], None
        started = time.perf_counter()
        predict = make_predict_fn()
        seconds = time.perf_counter() - started
        self.models[key] = predict
        self.loads[key] += 1
        self.seconds["build_s"] += seconds
        while len(self.models) > self.maxsize:
            self.models.popitem(last=False)
        return predict, seconds


WORKER_CACHE = ModelCache()  # this Python worker's (Spark reuses workers: it lives across tasks)
_WORKER_HOOKS: list = []  # driver side: observers shipped with every featurizer UDF made afterwards


def add_worker_hook(hook) -> None:
    """Observe the Python workers: ``hook(event, details)`` runs in each worker of later transforms, for
    ``start`` (a partition begins), ``load`` (a model really loaded: ``key``, ``seconds``) and ``done`` (the
    partition's ``images``, the worker's ``loads`` per key and ``seconds``). It travels with the tasks
    (cloudpickle); an exception it raises fails the task."""
    _WORKER_HOOKS.append(hook)


def remove_worker_hook(hook) -> None:
    """Stop shipping ``hook`` with the featurizer's tasks."""
    _WORKER_HOOKS.remove(hook)


def make_predict_fn(broadcast, engine: str, image_size: int, threads: int, layers=(TOP_LAYER,)):
    """``predict_batch_udf``'s ``make_predict_fn``: loads the broadcast model, returns ``predict(batch)``."""

    def make():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if engine == "tflite":  # the broadcast is the converted model: no TensorFlow import with LiteRT
            return tflite_predict(broadcast.value, threads)
        from fruits_lib.support.weights import build_model  # the keras engine only: TensorFlow on the worker
        configure_tensorflow(threads)
        return build_model(broadcast.value, image_size, layers).predict_on_batch

    return make


def _featurize_partition(batches, key: str, make_predict, image_size: int, batch_size: int,
                         fail_on_invalid: bool, hooks: tuple) -> Iterator[pd.DataFrame]:
    """Body of the pandas UDF: each Arrow batch of image bytes -> features and errors."""
    for hook in hooks:
        hook("start", {"key": key})
    predict, images = None, 0
    for contents in batches:
        if predict is None:
            predict, seconds = WORKER_CACHE.get(key, make_predict)
            for hook in hooks if seconds is not None else ():
                hook("load", {"key": key, "seconds": seconds})
        features, errors = featurize_images(predict, contents, image_size, batch_size, WORKER_CACHE.seconds)
        if fail_on_invalid and any(errors):
            raise ValueError("undecodable image: " + next(e for e in errors if e))
        images += len(contents)
        yield pd.DataFrame({"features": features, "error": errors})
    for hook in hooks:
        hook("done", {"key": key, "images": images, "loads": dict(WORKER_CACHE.loads),
                      "seconds": dict(WORKER_CACHE.seconds)})


def model_key(weights_sha256: str, image_size: int, engine: str, flatbuffer: bytes | None = None,
              layers=(TOP_LAYER,)) -> str:
    """The worker cache's key: what the model is (weights, size, layers, engine, int8 bytes), not how it travelled."""
    key = f"{weights_sha256[:16]}-{image_size}px{layers_tag(layers)}-{engine}"
    return key if flatbuffer is None else f"{key}-int8-{hashlib.sha256(flatbuffer).hexdigest()[:16]}"


# ---------------------------------------------------------------- driver side
_BROADCASTS: dict = {}  # (application id, sha256, engine, size, layers) -> Broadcast: each model is sent once


def broadcast_model(spark: SparkSession, weights: Weights, engine: str, image_size: int,
                    flatbuffer: bytes | None = None, precision: str = "float32", layers=(TOP_LAYER,)):
    """Broadcast, once per Spark application, what the workers run: for ``tflite`` the flatbuffer converted
    on the driver (or ``flatbuffer``: bundled, or int8), for ``keras`` the weight arrays."""
    sc = spark.sparkContext
    key = (sc.applicationId, weights.sha256, engine, *((image_size, *layers) if engine == "tflite" else ()))
    if precision != "float32":  # a quantized model depends on its calibration photos too: keyed by its bytes
        key = (*key, precision, hashlib.sha256(flatbuffer).hexdigest())
    if key not in _BROADCASTS:
        value = weights.arrays if engine == "keras" else flatbuffer
        if value is None:  # tflite, nothing bundled or quantized: converted here (cached on this machine)
            value = tflite_model(weights, image_size, layers)
        _BROADCASTS[key] = sc.broadcast(value)
    return _BROADCASTS[key]


class _FeaturizerParams(HasInputCol, HasOutputCol):
    """The featurizer's params, validated when set (typeConverter) and read through typed getters."""

    weights = Param(Params._dummy(), "weights", "imagenet, offline, or a path to a weights file",
                    typeConverter=TypeConverters.toString)
    weightsSha256 = Param(Params._dummy(), "weightsSha256",
                          "sha256 of the weights; set on first use, checked afterwards",
                          typeConverter=TypeConverters.toString)
    imageSize = Param(Params._dummy(), "imageSize", "side in pixels of the square network input",
                      typeConverter=int_between("imageSize", 32, 1024, " pixels"))
    batchSize = Param(Params._dummy(), "batchSize", "images per inference batch",
                      typeConverter=int_between("batchSize", 1, 100_000))
    errorCol = Param(Params._dummy(), "errorCol", "column for the reason an image failed",
                     typeConverter=TypeConverters.toString)
    handleInvalid = Param(Params._dummy(), "handleInvalid", "undecodable images: keep, skip or error",
                          typeConverter=one_of("handleInvalid", HANDLE_INVALID))
    engine = Param(Params._dummy(), "engine", "tflite (XNNPACK, fastest on CPU) or keras (predict_on_batch)",
                   typeConverter=one_of("engine", ENGINES))
    precision = Param(Params._dummy(), "precision",
                      "tflite engine: float32, or int8 (quantized, calibrated on the first dataset transformed)",
                      typeConverter=one_of("precision", PRECISIONS))
    tfThreads = Param(Params._dummy(), "tfThreads", "inference threads per Python worker; 0 means spark.task.cpus",
                      typeConverter=int_between("tfThreads", 0, 1024))
    featureLayers = Param(Params._dummy(), "featureLayers", "MobileNetV2 layers whose outputs are average-pooled "
                          f"(<layer>:map: flattened) and concatenated into the features (default {TOP_LAYER}: 1280)",
                          typeConverter=distinct_names("featureLayers"))

    def getWeights(self) -> str:
        return self.getOrDefault(self.weights)

    def getWeightsSha256(self) -> str | None:
        return self.getOrDefault(self.weightsSha256) if self.isDefined(self.weightsSha256) else None

    def getImageSize(self) -> int:
        return self.getOrDefault(self.imageSize)

    def getBatchSize(self) -> int:
        return self.getOrDefault(self.batchSize)

    def getErrorCol(self) -> str:
        return self.getOrDefault(self.errorCol)

    def getHandleInvalid(self) -> str:
        return self.getOrDefault(self.handleInvalid)

    def getEngine(self) -> str:
        return self.getOrDefault(self.engine)

    def getPrecision(self) -> str:
        return self.getOrDefault(self.precision)

    def getTfThreads(self) -> int:
        return self.getOrDefault(self.tfThreads)

    def getFeatureLayers(self) -> tuple:
        return tuple(self.getOrDefault(self.featureLayers))


class ImageFeaturizer(Transformer, _FeaturizerParams, DefaultParamsReadable, DefaultParamsWritable):
    """Spark ML Transformer: image bytes (``inputCol``) -> MobileNetV2 features as a Vector.

    Composes with ``PCA`` in a ``Pipeline``; saved with its network (:class:`FeaturizerWriter`). Undecodable
    images get a null ``outputCol`` and their reason in ``errorCol`` (``handleInvalid='keep'``), are
    dropped (``'skip'``) or fail the job (``'error'``)."""

    @keyword_only
    def __init__(self, *, inputCol="content", outputCol="features", errorCol="error", weights="imagenet",
                 imageSize=224, batchSize=32, handleInvalid="keep", engine="tflite", tfThreads=0,
                 weightsSha256=None, precision="float32", featureLayers=(TOP_LAYER,)):
        super().__init__()
        self._setDefault(inputCol="content", outputCol="features", errorCol="error", weights="imagenet",
                         imageSize=224, batchSize=32, handleInvalid="keep", engine="tflite", tfThreads=0,
                         precision="float32", featureLayers=[TOP_LAYER])
        self._set(**self._input_kwargs)
        self._weights_cache, self._weights_for = None, None
        self._bundled_tflite = None  # (image size, layers, flatbuffer) of a loaded featurizer: no conversion
        self._int8 = None  # (image size, flatbuffer) of the int8 model: calibrated once, or bundled

    def resolved_weights(self) -> Weights:
        """The weights, resolved once on the driver; a loaded featurizer uses its bundled network, and
        another ``weights`` source set afterwards must have the sha256 it was saved with."""
        source = self.getWeights()
        if self._weights_cache is None or self._weights_for != source:
            weights = resolve_weights(source)
            expected = self.getWeightsSha256()
            if expected and expected != weights.sha256:
                raise ValueError(f"weights {weights.source!r} have sha256 {weights.sha256[:12]}..., "
                                 f"this featurizer was saved with {expected[:12]}...")
            self._set(weightsSha256=weights.sha256)
            self._weights_cache, self._weights_for = weights, source
        return self._weights_cache

    def _transform(self, dataset: DataFrame) -> DataFrame:
        featurized = self.transform_to_arrays(dataset)
        vectors = F.col(self.getOutputCol())  # array_to_vector fails on null: keep failed rows null
        return featurized.withColumn(self.getOutputCol(), F.when(vectors.isNotNull(), array_to_vector(vectors)))

    def transform_to_arrays(self, dataset: DataFrame) -> DataFrame:
        """Like ``transform``, but ``outputCol`` holds the float32 values as ``array<float>``, as stored:
        no Vector (float64) for the ML stages and conversion back, two JVM passes over 1,280 values."""
        spark, size, engine, precision = dataset.sparkSession, self.getImageSize(), self.getEngine(), self.getPrecision()
        layers = self.getFeatureLayers()
        if precision == "int8" and (engine != "tflite" or layers != (TOP_LAYER,)):
            raise ValueError(f"precision int8 needs the tflite engine (and featureLayers [{TOP_LAYER}])")
        if engine == "keras" and layers != (TOP_LAYER,):  # unknown names fail here, not on the executors
            check_layers(layers)
        threads = self.getTfThreads() or int(spark.conf.get("spark.task.cpus", "1"))
        bundled = self._bundled_tflite  # made from these weights (same sha256, checked) at the saved size
        flatbuffer = bundled[2] if bundled and bundled[:2] == (size, layers) else None
        if precision == "int8":
            flatbuffer = self.int8_model(dataset, size)
        weights = self.resolved_weights()
        broadcast = broadcast_model(spark, weights, engine, size, flatbuffer, precision, layers)
        make_predict = make_predict_fn(broadcast, engine, size, threads, layers)
        key = model_key(weights.sha256, size, engine, flatbuffer if precision == "int8" else None, layers)
        batch_size = self.getBatchSize()
        fail_on_invalid, hooks = self.getHandleInvalid() == "error", tuple(_WORKER_HOOKS)

        def featurize(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
            return _featurize_partition(batches, key, make_predict, size, batch_size, fail_on_invalid, hooks)

        udf = pandas_udf(featurize, _UDF_SCHEMA)
        result, out_col, err_col = "__fruits_featurized", self.getOutputCol(), self.getErrorCol()
        # asNondeterministic: Spark must not inline (and so re-run) the UDF into both fields below.
        featurized = dataset.withColumn(result, udf.asNondeterministic()(F.col(self.getInputCol())))
        featurized = featurized.withColumn(out_col, F.col(f"{result}.features"))
        featurized = featurized.withColumn(err_col, F.col(f"{result}.error")).drop(result)
        if self.getHandleInvalid() == "skip":
            featurized = featurized.filter(F.col(err_col).isNull())
        return featurized

    def int8_model(self, dataset: DataFrame | None, image_size: int) -> bytes:
        """The int8 flatbuffer: the bundled or already calibrated one, else calibrated on ``dataset``'s photos."""
        from fruits_lib.support.tflite import calibrated_int8

        if self._int8 is None or self._int8[0] != image_size:
            self._int8 = (image_size, calibrated_int8(self.resolved_weights(), image_size, dataset, self.getInputCol()))
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


class FeaturizerWriter(DefaultParamsWriter):
    """Saves the params (Spark's metadata), the weight arrays, the TFLite network and a manifest of sha256.

    A loaded model needs neither the original source nor internet, nor (``tflite``) TensorFlow or a conversion.
    """

    def saveImpl(self, path: str) -> None:
        weights = self.instance.resolved_weights()  # also records weightsSha256 in the metadata
        super().saveImpl(path)
        buffer = io.BytesIO()
        np.savez(buffer, *weights.arrays)
        data = buffer.getvalue()
        manifest = {"file": os.path.basename(NETWORK_FILE), "file_sha256": hashlib.sha256(data).hexdigest(),
                    "bytes": len(data), "weights_sha256": weights.sha256, "source": weights.source,
                    "image_size": self.instance.getImageSize()}
        fs = FileSystem(self.sparkSession)
        fs.write_bytes(join(path, NETWORK_FILE), data)
        if self.instance.getPrecision() == "int8":
            flatbuffer = self.instance.int8_model(None, manifest["image_size"])
            manifest["tflite_int8"] = {"file": os.path.basename(NETWORK_INT8), "bytes": len(flatbuffer),
                                       "file_sha256": hashlib.sha256(flatbuffer).hexdigest(),
                                       "image_size": manifest["image_size"], "tensorflow": tensorflow_version()}
            fs.write_bytes(join(path, NETWORK_INT8), flatbuffer)
        elif self.instance.getEngine() == "tflite":
            layers = list(self.instance.getFeatureLayers())
            flatbuffer = tflite_model(weights, manifest["image_size"], layers)
            manifest["tflite"] = {"file": os.path.basename(NETWORK_TFLITE), "bytes": len(flatbuffer),
                                  "file_sha256": hashlib.sha256(flatbuffer).hexdigest(), "layers": layers,
                                  "image_size": manifest["image_size"], "tensorflow": tensorflow_version()}
            fs.write_bytes(join(path, NETWORK_TFLITE), flatbuffer)
        fs.write_bytes(join(path, NETWORK_MANIFEST), json.dumps(manifest, indent=2).encode())


class FeaturizerReader(DefaultParamsReader):
    """Loads the params, then the bundled weights, refusing them unless both sha256 match."""

    def load(self, path: str) -> ImageFeaturizer:
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
        expected = instance.getWeightsSha256()
        actual = weights_sha256(arrays)
        if actual != manifest.get("weights_sha256") or (expected and actual != expected):
            raise TamperedModelError(f"refusing model {path}: its bundled weights (sha256 {actual[:12]}...) are "
                                     "not the ones it was saved with (altered file)")
        instance._weights_cache = Weights(arrays, f"{manifest.get('source')} (bundled in {path})", actual)
        instance._weights_for = instance.getWeights()
        instance._set(weightsSha256=actual)
        tflite = manifest.get("tflite")  # absent from featurizers saved before it was bundled
        if tflite:
            layers = tuple(tflite.get("layers", [TOP_LAYER]))  # saved before featureLayers: the default
            instance._bundled_tflite = (tflite["image_size"], layers,
                                        _read_bundled(fs, path, join(path, NETWORK_TFLITE), tflite))
        int8 = manifest.get("tflite_int8")
        if instance.getPrecision() == "int8" and not int8:
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

