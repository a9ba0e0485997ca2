"""The bench's probes, each a program of its own that the runner starts (``python -m bench --plain-loop``,
``--pure-inference``, ``--build-time``, ``--pca-compare``): each prints or writes one JSON document.

The plain loops are the references: one Python process, no Spark, the same files, weights and image size.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from bench.runner import _interleaved, _list_images


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def _decode_files(paths: list, image_size: int) -> tuple:
    """Bytes -> pixels with the pipeline's own decode_image; returns kept paths and a uint8 stack."""
    from fruits_lib.support.image import ImageDecodeError, decode_image

    kept, pixels = [], []
    for path in paths:
        try:
            pixels.append(decode_image(Path(path).read_bytes(), image_size))
            kept.append(path)
        except ImageDecodeError:
            pass
    return kept, pixels


def plain_loop(args) -> None:
    """A plain single-process loop: list, read, decode+resize, predict, write parquet.

    ``--plain-engine keras``: the Keras network, TensorFlow's defaults (all cores).
    ``--plain-engine litert``: the pipeline's engine without Spark: the same TFLite model in
    LiteRT's interpreter with every core as XNNPACK threads, one image per invoke (no TensorFlow
    import when the model is cached). Both decode with the pipeline's ``decode_image`` and
    ``preprocess``, so every method does the same work on the same pixels.
    """
    seconds = {}
    started = time.perf_counter()
    litert = args.plain_engine == "litert"
    tf = None if litert else _quiet_tensorflow()
    from fruits_lib.support.image import preprocess
    from fruits_lib.support.tflite import TFLITE_INVOKE_BATCH, tflite_model, tflite_predict
    from fruits_lib.support.weights import build_model, resolve_weights

    seconds["import"] = time.perf_counter() - started
    mark = time.perf_counter()
    weights = resolve_weights(args.weights)
    threads = os.cpu_count() or 1
    if litert:
        model = Path(args.plain_model).read_bytes() if args.plain_model else tflite_model(weights, args.image_size)
        predict = tflite_predict(model, threads)
    else:
        predict = build_model(weights.arrays, args.image_size).predict_on_batch
    seconds["build"] = time.perf_counter() - mark
    mark = time.perf_counter()
    files = [str(p) for p in _list_images(Path(args.input))]
    seconds["list"] = time.perf_counter() - mark
    decode_s = predict_s = 0.0
    paths, features = [], []
    for start in range(0, len(files), args.batch_size):
        mark = time.perf_counter()
        kept, pixels = _decode_files(files[start:start + args.batch_size], args.image_size)
        decode_s += time.perf_counter() - mark
        mark = time.perf_counter()
        if kept:
            features.extend(np.asarray(predict(preprocess(np.stack(pixels))), dtype=np.float32))
            paths.extend(kept)
        predict_s += time.perf_counter() - mark
    seconds["read_decode"], seconds["predict"] = decode_s, predict_s
    mark = time.perf_counter()
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"path": paths, "label": [Path(p).parent.name for p in paths],
                      "features": pa.array([f.tolist() for f in features], pa.list_(pa.float32()))})
    pq.write_table(table, args.plain_output)
    seconds["write"] = time.perf_counter() - mark
    seconds["total"] = time.perf_counter() - started
    # the loop's own rate: list + decode + predict + write, without interpreter start and model load
    working = seconds["list"] + decode_s + predict_s + seconds["write"]
    report = {"images": len(paths), "engine": args.plain_engine, "seconds": {k: round(v, 3) for k, v in seconds.items()},
              "images_per_s_loop": round(len(paths) / working, 2) if working else None,
              "tensorflow_imported": "tensorflow" in sys.modules}
    if litert:
        report["threads"] = {"xnnpack": threads, "tflite_invoke_batch": TFLITE_INVOKE_BATCH}
    else:
        report["tf_threads"] = {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                                "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
                                "note": "0 means TensorFlow's default: all cores"}
    Path(args.json_out).write_text(json.dumps(report))


def pure_inference(args) -> None:
    """Images/s of MobileNetV2 alone, on arrays decoded beforehand (no I/O, no decoding).

    ``args.pure_inference`` lists configs ``engine:threads[:invoke]`` (threads 0 = all cores;
    invoke = images per TFLite invoke, default the library's); each is built, warmed up with one
    batch, then run on repeated batches for ``--pure-seconds``.
    """
    _quiet_tensorflow()
    from fruits_lib.support.image import preprocess
    from fruits_lib.support.tflite import TFLITE_INVOKE_BATCH, tflite_model, tflite_predict
    from fruits_lib.support.weights import build_model, resolve_weights

    weights = resolve_weights(args.weights)
    files = [str(p) for p in _interleaved(_list_images(Path(args.input)))][: args.batch_size * 8]
    _, pixels = _decode_files(files, args.image_size)
    batches = [preprocess(np.stack(pixels[i:i + args.batch_size]))
               for i in range(0, len(pixels) - args.batch_size + 1, args.batch_size)]
    if not batches:
        raise SystemExit(f"need at least {args.batch_size} images under {args.input}")
    report = {}
    for config in args.pure_inference.split(","):
        engine, threads, *invoke = config.split(":")
        invoke_batch = int(invoke[0]) if invoke else TFLITE_INVOKE_BATCH
        mark = time.perf_counter()
        if engine == "keras":
            predict = build_model(weights.arrays, args.image_size).predict_on_batch
        else:
            predict = tflite_predict(tflite_model(weights, args.image_size), int(threads) or os.cpu_count(),
                                     invoke_batch)
        build_s = time.perf_counter() - mark
        predict(batches[0])  # warm-up: graph tracing, tensor allocation
        at_barrier = False
        if args.start_at:
            at_barrier = time.time() < args.start_at
            time.sleep(max(0.0, args.start_at - time.time()))
        images, mark = 0, time.perf_counter()
        while True:
            for batch in batches:
                predict(batch)
                images += len(batch)
            elapsed = time.perf_counter() - mark
            if elapsed >= args.pure_seconds:
                break
        report[config] = {"engine": engine, "threads": int(threads) or os.cpu_count(),
                          "tflite_invoke_batch": invoke_batch if engine == "tflite" else None,
                          "image_size": args.image_size, "batch_size": args.batch_size, "images": images,
                          "seconds": round(elapsed, 3), "images_per_s": round(images / elapsed, 2),
                          "build_s": round(build_s, 3), "started_at_barrier": at_barrier}
    Path(args.json_out).write_text(json.dumps(report))


def build_time(args) -> None:
    """Seconds from a fresh interpreter to a ready TFLite predict function, as a Python worker pays.

    The worker gets the converted model from the broadcast; here it comes from the driver's
    cache. With ``--tf-lite`` it is loaded by ``tf.lite.Interpreter`` (a TensorFlow import)
    instead of LiteRT's interpreter.
    """
    import resource

    started = time.perf_counter()
    from fruits_lib.support import tflite
    from fruits_lib.support.weights import resolve_weights

    model = tflite.tflite_model(resolve_weights(args.weights), args.image_size)
    tflite.tflite_predict(model, 1, interpreter="tf.lite" if args.tf_lite else "litert")
    report = {"seconds": round(time.perf_counter() - started, 3), "tensorflow_imported": "tensorflow" in sys.modules,
              "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    Path(args.json_out).write_text(json.dumps(report))


def pca_compare(args) -> None:
    """Spark ML PCA (``fruits_lib.reduce.fit_pca``) against scikit-learn on the same feature matrix."""
    import pyarrow.parquet as pq
    from sklearn.decomposition import PCA as SkPCA

    from fruits_lib.reduce import choose_k, fit_pca
    from fruits_lib.support.session import get_spark

    table = pq.read_table(args.features, columns=["path", "features"]).to_pandas().sort_values("path")
    matrix = np.stack(table["features"].to_numpy()).astype(np.float64)
    mark = time.perf_counter()
    reference = SkPCA(svd_solver="full").fit(matrix)
    sk_k = choose_k(reference.explained_variance_ratio_, 0.95)
    reference.transform(matrix)
    sklearn_s = time.perf_counter() - mark

    from pyspark.ml.functions import array_to_vector

    spark = get_spark(args.master, app_name="fruits-bench-pca")
    frame = spark.read.parquet(args.features).select("path", array_to_vector("features").alias("features"))
    frame = frame.cache()
    mark = time.perf_counter()
    rows = frame.count()
    cache_s = time.perf_counter() - mark
    report = {"rows": rows, "dimension": int(matrix.shape[1]), "spark_cache_s": round(cache_s, 3),
              "sklearn": {"fit_and_project_s": round(sklearn_s, 3), "k_95": int(sk_k), "svd_solver": "full"}}
    for solver in args.pca_solvers.split(","):
        mark = time.perf_counter()
        result = fit_pca(frame, "features", "pca", k=None, variance=0.95, solver=solver)
        fit_s = time.perf_counter() - mark
        mark = time.perf_counter()
        result.model.transform(frame).select("pca").write.format("noop").mode("overwrite").save()
        project_s = time.perf_counter() - mark
        top = min(len(result.explained_variance_ratio), len(reference.explained_variance_ratio_), 50)
        report[f"spark_{solver}"] = {
            "fit_s": round(fit_s, 3), "project_s": round(project_s, 3), "total_s": round(fit_s + project_s, 3),
            "k_95": result.k, "same_k_as_sklearn": int(sk_k) == result.k,
            "max_abs_diff_explained_variance_ratio_top50": float(np.max(np.abs(
                np.asarray(result.explained_variance_ratio[:top]) - reference.explained_variance_ratio_[:top]))),
        }
    spark.stop()
    main = report[f"spark_{args.pca_solvers.split(',')[0]}"]  # the pipeline's solver comes first
    report["spark"] = dict(main, solver=args.pca_solvers.split(",")[0])
    report["same_k"] = main["same_k_as_sklearn"]
    report["max_abs_diff_explained_variance_ratio_top50"] = main["max_abs_diff_explained_variance_ratio_top50"]
    report["spark_over_sklearn"] = round(main["total_s"] / max(sklearn_s, 1e-9), 2)
    Path(args.json_out).write_text(json.dumps(report))
