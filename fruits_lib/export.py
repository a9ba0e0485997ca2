"""Export a trained model (``fruits train``) as ONE TFLite file for the app, with ``labels.txt`` beside it.

The Keras model folded into it is: input ``(1, size, size, 3)`` float32 RGB in [0, 255] (the photo
padded to a square on white and resized, as :func:`fruits_lib.support.image.decode_image` does) ->
MobileNetV2's scaling to [-1, 1] -> MobileNetV2 (the model's bundled weights; its ``featureLayers`` average-pooled,
1280 features by default) -> ``Dense(k)`` holding the centring and PCA (``(x - mean) @ components``) -> ``Dense(classes)``
holding the logistic regression (coefficients, intercepts) -> softmax. Output: ``(1, classes)``
probabilities in the order of ``labels.txt``, which is the Spark model's label order. A model with a
studio gate (:mod:`fruits_lib.unknown`) adds two columns computed from the PCA projection: how much the
photo looks like a studio shot, and the similarity of its nearest studio training photo; a studio-like
photo's probabilities are then those of the gate's classifier trained on studio photos.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import statistics
import time

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.classification import LogisticRegressionModel
from pyspark.ml.feature import IndexToString, PCAModel, StandardScalerModel

from fruits_lib.featurize import ImageFeaturizer
from fruits_lib.support import logs
from fruits_lib.support.checks import check_writable
from fruits_lib.support.errors import InputError, OutputError
from fruits_lib.support.store import write_atomically
from fruits_lib.support.tflite import configure_tensorflow, interpreter_class, tflite_predict
from fruits_lib.support.weights import build_model
from fruits_lib.unknown import SCORES, STUDIO_LIKE, AbstainRule, StudioGate

LABELS_FILE = "labels.txt"
METADATA_SUFFIX = ".json"  # fruits.tflite -> fruits.json: labels, input, and when to answer "unknown"


def _stages(model: PipelineModel) -> tuple:
    """The five stages of a ``fruits train`` model, checked, or a one-line error."""
    kinds = (ImageFeaturizer, StandardScalerModel, PCAModel, LogisticRegressionModel, IndexToString)
    stages = model.stages
    if len(stages) != len(kinds) or not all(isinstance(s, k) for s, k in zip(stages, kinds)):
        found = " -> ".join(type(s).__name__ for s in stages)
        raise InputError(f"expected featurizer -> centring -> PCA -> logistic regression -> labels, found {found}")
    return stages


def float_featurizer(featurizer: ImageFeaturizer) -> ImageFeaturizer:
    """The featurizer, refused when int8: the export folds the float32 network, not what the classifier saw."""
    if featurizer.getPrecision() != "float32":
        raise InputError(f"this model was trained on {featurizer.getPrecision()} features; the export folds the "
                         "float32 network, so the app would see other features: train on a --precision float32 run")
    return featurizer


def folded_matrices(model: PipelineModel) -> dict:
    """The linear part after MobileNetV2 as plain arrays: ``pca = x @ pca_kernel + pca_bias``,
    ``probabilities = softmax(pca @ classifier_kernel + classifier_bias)``."""
    _, scaler, pca, classifier, decoder = _stages(model)
    components = pca.pc.toArray()  # (features, k): Spark's PCA projects with pc^T x
    mean = scaler.mean.toArray() if scaler.getWithMean() else np.zeros(components.shape[0])
    scale = 1.0 / np.where(scaler.std.toArray() > 0, scaler.std.toArray(), 1.0) if scaler.getWithStd() \
        else np.ones(components.shape[0])
    pca_kernel = components * scale[:, None]
    return {
        "pca_kernel": pca_kernel, "pca_bias": -(mean * scale) @ components,
        "classifier_kernel": classifier.coefficientMatrix.toArray().T,  # (k, classes)
        "classifier_bias": classifier.interceptVector.toArray(),
        "labels": list(decoder.getLabels()),
    }


def keras_model(model: PipelineModel, gate: StudioGate | None = None):
    """The whole Spark model as one Keras model: image in [0, 255] -> class probabilities (then, with
    ``gate``, the studio likeness and the nearest studio photo's similarity)."""
    import keras

    featurizer = float_featurizer(_stages(model)[0])
    size = featurizer.getImageSize()
    matrices = folded_matrices(model)
    image = keras.Input((size, size, 3), dtype="float32", name="rgb_0_255")
    scaled = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="mobilenetv2_scaling")(image)
    features = build_model(featurizer.resolved_weights().arrays, size, featurizer.getFeatureLayers())(scaled)
    pca_layer = keras.layers.Dense(matrices["pca_kernel"].shape[1], name="centred_pca")
    logit_layer = keras.layers.Dense(len(matrices["labels"]), name="logistic_regression")
    projected = pca_layer(features)
    probabilities = keras.layers.Softmax(name="probabilities")(logit_layer(projected))
    if gate is not None:
        head = keras.layers.Dense(1, activation="sigmoid", name="studio_head")
        likeness = head(projected)
        unit = keras.ops.normalize(keras.ops.multiply(projected, (1.0 / gate.scale).astype(np.float32)), axis=-1)
        bank = keras.layers.Dense(len(gate.bank), use_bias=False, name="studio_bank")
        nearest = keras.ops.max(bank(unit), axis=-1, keepdims=True)
        if gate.coefficients is not None:  # studio-like photos are named by the studio classifier
            studio_layer = keras.layers.Dense(len(matrices["labels"]), name="studio_classifier")
            studio = keras.layers.Softmax(name="studio_probabilities")(studio_layer(projected))
            probabilities = keras.ops.where(keras.ops.greater_equal(likeness, STUDIO_LIKE), studio, probabilities)
        probabilities = keras.ops.concatenate([probabilities, likeness, nearest], axis=-1)
    folded = keras.Model(image, probabilities, name="fruits_classifier")
    if gate is not None:
        head.set_weights([gate.head.astype(np.float32)[:, None], np.array([gate.intercept], np.float32)])
        bank.set_weights([gate.bank.T.astype(np.float32)])
        if gate.coefficients is not None:
            studio_layer.set_weights([gate.coefficients.T.astype(np.float32), gate.intercepts.astype(np.float32)])
    pca_layer.set_weights([matrices["pca_kernel"].astype(np.float32), matrices["pca_bias"].astype(np.float32)])
    logit_layer.set_weights([matrices["classifier_kernel"].astype(np.float32),
                             matrices["classifier_bias"].astype(np.float32)])
    return folded


def export(model: PipelineModel, out: str, overwrite: bool = False, rule: AbstainRule = AbstainRule()) -> dict:
    """Convert ``model`` to TFLite at ``out`` (a local file) and write ``labels.txt`` and the metadata
    (``<out>.json``: labels, input, output columns, when to answer "unknown": ``rule``) beside it."""
    threshold = rule.threshold
    if "://" in out:
        raise OutputError(f"--out must be a local file (the app's asset), not {out}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"the abstention threshold must be in [0, 1), not {threshold}")
    out = os.path.abspath(os.path.expanduser(out))
    labels_path = os.path.join(os.path.dirname(out), LABELS_FILE)
    metadata_path = os.path.splitext(out)[0] + METADATA_SUFFIX
    if not overwrite and any(os.path.exists(p) for p in (out, labels_path, metadata_path)):
        raise OutputError(f"{out}, {labels_path} or {metadata_path} already exists; pass --overwrite to replace them")
    check_writable(os.path.dirname(out))  # a missing folder is made, as `fruits run --output` does
    tf = configure_tensorflow(0)
    folded = keras_model(model, rule.gate)
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), logs.native_noise_silenced():
        flatbuffer = tf.lite.TFLiteConverter.from_keras_model(folded).convert()
    labels = folded_matrices(model)["labels"]
    size = _stages(model)[0].getImageSize()
    sha256 = hashlib.sha256(flatbuffer).hexdigest()
    metadata = {"model": os.path.basename(out), "model_sha256": sha256, "labels": labels,
                "input": {"shape": [1, size, size, 3], "dtype": "float32", "range": [0, 255],
                          "preprocessing": "RGB, padded to a square on white, then resized"},
                "output": {"shape": [1, len(labels)], "meaning": "class probabilities, in the order of labels"},
                "unknown_threshold": threshold,
                "answer": "labels[argmax] when max probability >= unknown_threshold, else unknown"}
    if rule.gate is not None:
        metadata["output"] = {"shape": [1, len(labels) + len(SCORES)], "meaning": "class probabilities, in the order "
                              "of labels, then " + " and ".join(SCORES), "columns": labels + list(SCORES)}
        metadata["studio_gate"] = {"studio_like_from": STUDIO_LIKE, "similarity_threshold": rule.similarity}
        metadata["answer"] = ("if studio_likeness >= studio_like_from: labels[argmax] when nearest_studio >= "
                              "similarity_threshold, else unknown; otherwise labels[argmax] when max probability "
                              ">= unknown_threshold, else unknown (argmax over the probabilities only)")
        if rule.gate.coefficients is not None:
            metadata["output"]["meaning"] += (" (the probabilities are those of the classifier trained on studio "
                                              "photos when studio_likeness >= studio_like_from)")
    for path, data in ((out, flatbuffer), (labels_path, ("\n".join(labels) + "\n").encode()),
                       (metadata_path, json.dumps(metadata, indent=1).encode())):
        write_atomically(path, data)
    return {"path": out, "labels_path": labels_path, "metadata_path": metadata_path, "bytes": len(flatbuffer),
            "labels": labels, "sha256": sha256, "input": [1, size, size, 3], "threshold": threshold,
            "describe": rule.describe(), "studio_gate": rule.gate is not None}


def tflite_classifier(path: str, threads: int = 1):
    """``predict(pixels)``: uint8 or float RGB ``(n, size, size, 3)`` in [0, 255] -> ``(n, classes)`` probabilities."""
    with open(path, "rb") as handle:
        predict = tflite_predict(handle.read(), threads)
    return lambda pixels: predict(np.asarray(pixels, dtype=np.float32))


def single_image_latency(path: str, runs: int = 30, threads: int = 1) -> dict:
    """Median and 90th percentile milliseconds of one image through the exported file (after a warm-up)."""
    predict = tflite_classifier(path, threads)
    with open(path, "rb") as handle:

        size = interpreter_class()(model_content=handle.read()).get_input_details()[0]["shape"][1]
    image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3)).astype(np.float32)
    predict(image)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        predict(image)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"median_ms": round(statistics.median(times), 2), "p90_ms": round(times[int(0.9 * (runs - 1))], 2),
            "runs": runs, "threads": threads}
