"""The whole chain: list -> featurize (once) -> PCA -> write, published atomically with a summary.

Every image file ends either in ``features/`` or in ``errors/`` with its reason
(``images_in == images_ok + images_failed``). In ``incremental`` mode only images not
already in ``features/`` or ``errors/`` (same path, size and modification time) are
featurized; results of each run are a ``run=<id>`` partition. One truth per image: a row whose
file changed (new size or modification time) or disappeared is dropped from ``features/``,
``errors/`` and ``pca/`` (the partitions holding it are rewritten without it), and the changed
file is featurized again. Adding to an output made with other weights, image size or engine
is refused (``--overwrite`` replaces it instead).
"""

from __future__ import annotations

import hashlib
import math
import platform
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timezone

from pyspark import StorageLevel, inheritable_thread_target
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from fruits_lib import __version__, load, reduce
from fruits_lib.featurize import ImageFeaturizer
from fruits_lib.support import plot
from fruits_lib.support.checks import check_run
from fruits_lib.support.errors import FruitsError, InputError, OutputError
from fruits_lib.support.progress import live, spark_images
from fruits_lib.support.session import cluster_info, get_spark
from fruits_lib.support.store import STALE_LOCK_SECONDS, SUMMARY, RunOutput
from fruits_lib.support.tflite import tensorflow_version
from fruits_lib.write import FileSystem, write_parquet

IDENTITY = ["path", "length", "modificationTime"]  # what makes an input file "already done"
IMAGES_PER_PARTITION = 32  # fewer, larger tasks: the model is cached per worker anyway
# Featurize tasks when a person watches the progress bar: its count moves as tasks end. 1,962 photos, 2 cores:
# 4 tasks (the rule above) -> 16 costs +10 % CPU, 31 tasks +22 % (0.17 CPU s per task): paid only on a terminal.
IMAGES_PER_LIVE_TASK = 128


class NoImageProcessed(FruitsError):
    """Every image failed: the run is published (errors/ says why) but exits non-zero."""


class _Timer:
    def __init__(self):
        self.seconds = {}

    @contextmanager
    def __call__(self, stage: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = round(self.seconds.get(stage, 0.0) + time.perf_counter() - started, 3)


def partitions_for(images: int, parallelism: int, live: bool = False) -> int:
    """Tasks to featurize ``images``: a few per core for balance, never tiny ones; ``live`` (a progress bar
    on a terminal): also at most :data:`IMAGES_PER_LIVE_TASK` each, so that its count moves every second or two."""
    tasks = max(1, min(parallelism * 2, math.ceil(images / IMAGES_PER_PARTITION)))
    return max(tasks, math.ceil(images / IMAGES_PER_LIVE_TASK)) if live else tasks


def featurized_to_columns(featurizer: ImageFeaturizer, frame: DataFrame) -> DataFrame:
    """Featurizer output as stored: features as array<float> (null when the image failed)."""
    return featurizer.transform_to_arrays(frame).select(*IDENTITY, "label", "features", "error")


def run(input_path: str, output_path: str, *, weights: str = "imagenet", pca_variance: float = 0.95,
        pca_k: int | None = None, image_size: int = 224, batch_size: int = 32, master: str | None = None,
        mode: str = "full", overwrite: bool = False, pca_reuse: bool = False, engine: str = "tflite",
        precision: str = "float32",
        stale_lock_seconds: float = STALE_LOCK_SECONDS, spark=None, log=print) -> dict:
    """Run the chain on ``input_path`` and publish everything under ``output_path``; returns the summary.

    ``spark``: the session to run on (default: :func:`session.get_spark` on ``master``).
    """
    source, target = check_run(input_path, output_path, weights=weights, mode=mode, pca_k=pca_k,
                               pca_variance=pca_variance, batch_size=batch_size, image_size=image_size)
    if precision not in ("float32", "int8") or (precision == "int8" and engine != "tflite"):
        raise FruitsError(f"--precision {precision} is not available with --engine {engine}: "
                          "int8 needs the tflite engine")
    timer = _Timer()
    started_at = datetime.now(timezone.utc)
    run_id = started_at.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]

    featurizer = ImageFeaturizer(weights=weights, imageSize=image_size, batchSize=batch_size, engine=engine,
                                 precision=precision)
    with timer("weights"):
        resolved = featurizer.resolved_weights()  # before Spark: a bad source fails in seconds
    log(f"[1/5] weights {resolved.source} (sha256 {resolved.sha256[:12]}..., "
        f"{resolved.nbytes / 1e6:.1f} MB; the {engine} model is broadcast once to the executors)")
    with timer("spark"):
        spark = spark or get_spark(master)
    fs = FileSystem(spark)
    if not fs.is_dir(source):
        raise InputError(f"input folder not found: {source}")
    out = RunOutput(spark, target, run_id)
    for note in out.prepare(mode, overwrite, stale_lock_seconds):
        log(f"note: {note}")
    try:
        incremental = mode == "incremental" and out.state() != "empty"
        if incremental and not _same_model(out, resolved.sha256, image_size, engine, overwrite, precision):
            log(f"note: --overwrite: {target} was made with another model, it is replaced whole")
            incremental = False
        if incremental and precision == "int8":  # the same calibrated model, never a second one
            featurizer._int8 = PipelineModel.load(out.path("model")).stages[0]._int8
        about = {"run_id": run_id, "mode": mode, "input": source, "output": target,
                 "started_at": started_at.isoformat(timespec="seconds")}
        summary = _run_stages(spark, out, source, timer, incremental, featurizer, about, pca_variance=pca_variance,
                              pca_k=pca_k, pca_reuse=pca_reuse, log=log)
    except BaseException:
        out.discard()
        raise
    if summary["images_in"] and not summary["images_ok"]:
        raise NoImageProcessed(
            f"none of the {summary['images_in']} images could be processed; reasons in {out.path('errors')}"
        )
    return summary


def _same_model(out: RunOutput, sha256: str, image_size: int, engine: str, overwrite: bool,
                precision: str = "float32") -> bool:
    """Whether the output's features come from this model; a mismatch is refused unless ``overwrite``."""
    if not out.fs.exists(out.path(SUMMARY)):
        differences = [f"no {SUMMARY} says which model made them"]
    else:
        previous = out.fs.read_json(out.path(SUMMARY))
        before = ((previous.get("weights") or {}).get("sha256"), previous.get("image_size"), previous.get("engine"),
                  previous.get("precision", "float32"))
        differences = [f"{name} {old} (this run: {new})" for name, old, new in
                       zip(("weights sha256", "image size", "engine", "precision"), before,
                           (sha256, image_size, engine, precision))
                       if old != new]
    if differences and not overwrite:
        raise OutputError(f"{out.root} holds results of another model: {'; '.join(differences)}; "
                          "use --overwrite to replace them")
    return not differences


def _run_stages(*args, **kwargs) -> dict:
    """:func:`_stages`, then every frame it persisted released, whether it ended or failed."""
    held = []
    try:
        return _stages(*args, held=held, **kwargs)
    finally:
        for frame in held:
            frame.unpersist()


def _stages(spark, out: RunOutput, source: str, timer: _Timer, incremental: bool, featurizer: ImageFeaturizer,
            about: dict, *, pca_variance, pca_k, pca_reuse, log, held: list) -> dict:
    image_size = featurizer.getImageSize()
    batch_size = featurizer.getBatchSize()
    engine = featurizer.getEngine()
    resolved = featurizer.resolved_weights()
    with timer("list"):
        log(f"[2/5] listing files under {source}")
        if incremental:
            files = load.list_files(spark, source).cache()
            held.append(files)
            found, others = load.count_listed(files)
        else:  # counted from the file listing alone: no Spark job before featurizing
            found, others = load.count_files(spark, source)
        if not found:
            raise InputError(f"no .jpg/.jpeg/.png image under {source} ({others} other files)")
        if pca_k and pca_k > found and not incremental:  # known now: before the featurizing, not after it
            raise InputError(f"--pca-k {pca_k} needs at least {pca_k} images; {source} has {found}")
        todo, skipped, stale, dropped = None, 0, None, 0
        if incremental:
            current, existing = files.filter("is_image").select(*IDENTITY), _already_processed(spark, out)
            todo = [row["path"] for row in current.join(existing, IDENTITY, "left_anti").select("path").collect()]
            skipped = found - len(todo)
            # rows whose file changed or is gone: dropped, so each image has one row (its latest)
            stale = existing.join(current, IDENTITY, "left_anti").cache()
            held.append(stale)
            dropped = stale.count()
        log(f"      {found} images ({others} other files ignored)"
            + (f", {skipped} already processed, {len(todo)} new or changed, {dropped} outdated rows dropped"
               if incremental else ""))

    images_in = found - skipped
    ok_rows = None
    if images_in:
        with timer("featurize"):
            frame = load.read_images(spark, paths=todo) if incremental else load.read_images(spark, source)
            frame = frame.coalesce(partitions_for(images_in, spark.sparkContext.defaultParallelism, live()))
            log(f"[3/5] featurizing {images_in} images at {image_size} px ({engine}, batches of {batch_size})")
            with spark_images(spark, "featurize", images_in):  # its image count hooks transforms made inside
                # Persisted: the features/ write computes it (the one featurize pass), then the errors, the counts
                # and the PCA read it back, instead of staging every row as parquet and writing the features a
                # second time (docs/performance.md, issue 22). Spilled to disk beyond the storage memory.
                featurized = featurized_to_columns(featurizer, frame).persist(StorageLevel.MEMORY_AND_DISK)
                held.append(featurized)
                ok_rows = featurized.filter("error IS NULL").drop("error")
                write_parquet(ok_rows, out.stage("features"))
        with timer("write"):
            expected = (lambda: todo) if incremental else (lambda: load.image_uris(spark, source))
            staged = _with_unread_files(spark, featurized, expected, images_in)
            staged.filter("error IS NOT NULL").drop("features").write.parquet(out.stage("errors"))
            status, labels = {}, {}
            for row in staged.groupBy(F.col("error").isNull().alias("ok"), "label").count().collect():
                status[row["ok"]] = status.get(row["ok"], 0) + row["count"]
                if row["ok"]:
                    labels[row["label"]] = row["count"]
            labels = dict(sorted(labels.items()))
    else:
        status, labels = {}, {}
        log("[3/5] nothing new to featurize")
    images_ok, images_failed = status.get(True, 0), status.get(False, 0)
    if images_in != images_ok + images_failed:  # the invariant every run must keep
        raise RuntimeError(f"lost images: {images_in} in, {images_ok} ok, {images_failed} failed")
    if images_failed:
        log(f"      {images_failed} of {images_in} images could not be read: see {out.path('errors')}")

    remove, moves = [], []
    if dropped:
        with timer("write"):
            for name in ("features", "errors"):
                _prune(spark, out, name, stale, IDENTITY, remove, moves)
    with timer("pca"):
        pca_summary, replace, append = _reduce(spark, out, featurizer, ok_rows if images_ok else None, images_ok,
                                               incremental,
                                               pca_variance, pca_k, pca_reuse, log, stale=stale if dropped else None,
                                               remove=remove, moves=moves)
    append = (["features", "errors"] if images_in else []) + append
    summary = {
        **about,
        "images_in": images_in, "images_ok": images_ok, "images_failed": images_failed,
        "images_skipped_already_done": skipped, "rows_dropped_outdated": dropped,
        "other_files_ignored": others, "labels": labels,
        **pca_summary,
        "weights": {"source": resolved.source, "sha256": resolved.sha256, "bytes": resolved.nbytes},
        "image_size": image_size, "batch_size": batch_size, "engine": engine,
        "precision": featurizer.getPrecision(), **_int8_fields(featurizer),
        "versions": {"fruits_lib": __version__, "spark": spark.version, "tensorflow": tensorflow_version(),
                     "python": platform.python_version()},
        "cluster": cluster_info(spark),
    }
    with timer("publish"):
        log("[5/5] publishing results")
        summary["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        summary["seconds"] = dict(timer.seconds)
        summary["seconds"]["total"] = round(sum(timer.seconds.values()), 3)
        featurize_s = timer.seconds.get("featurize", 0.0)
        summary["images_per_second"] = round(images_in / featurize_s, 2) if featurize_s else None
        published = ("features", "errors") + (("pca", "model", "explained_variance.png") if summary["k"] else ())
        summary["outputs"] = {name: out.path(name) for name in published + (SUMMARY,)}
        out.publish(replace=replace, append=append, summary=summary, clear=not incremental, remove=remove,
                    moves=moves)
    return summary


def _int8_fields(featurizer: ImageFeaturizer) -> dict:
    """The int8 model's sha256 (it depends on its calibration photos too), when the run used one."""
    if featurizer.getPrecision() != "int8" or featurizer._int8 is None:
        return {}
    return {"int8_sha256": hashlib.sha256(featurizer._int8[1]).hexdigest()}


def _with_unread_files(spark, staged: DataFrame, expected, count: int) -> DataFrame:
    """``staged`` plus an error row for every expected image Spark did not read.

    Spark's file sources skip zero-byte files, and a file can vanish mid-run: neither may
    disappear from the results. ``expected()`` lists the paths; it is only called on a mismatch.
    """
    if staged.count() == count:
        return staged
    seen = {load.canonical(row["path"]) for row in staged.select("path").collect()}
    rows = []
    for uri in expected():
        if load.canonical(uri) in seen:
            continue
        try:
            path, length, modified = load.file_status(spark, uri)
            reason = "empty file (0 bytes)" if length == 0 else "not read by Spark"
        except Exception:  # py4j's FileNotFoundException
            path, length, modified, reason = load.canonical(uri), None, None, "file disappeared during the run"
        rows.append((path, length, modified, load.label_from_path(path), None, reason))
    return staged.unionByName(spark.createDataFrame(rows, staged.schema))


def _already_processed(spark, out: RunOutput) -> DataFrame:
    """Identity of every file already in features/ or errors/ (a failed file is not retried unchanged)."""
    frames = [spark.read.parquet(out.path(name)).select(*IDENTITY)
              for name in ("features", "errors") if out.fs.exists(out.path(name))]
    if not frames:
        return spark.createDataFrame([], "path string, length long, modificationTime timestamp")
    return frames[0].unionByName(frames[1]) if len(frames) == 2 else frames[0]


def _prune(spark, out: RunOutput, name: str, stale: DataFrame, keys: list, remove: list, moves: list) -> None:
    """Stage the ``name/run=X`` partitions holding ``stale`` rows again without them.

    Appends to ``remove`` the published partitions to replace and to ``moves`` the staged
    rewrites (an emptied partition is just removed); published data is untouched until publish.
    """
    if not out.fs.exists(out.path(name)):
        return
    published = spark.read.parquet(out.path(name))
    stale_keys = stale.select(*keys).distinct()
    affected = published.join(stale_keys, keys, "left_semi").select("run").distinct().collect()
    for row in affected:
        part = f"{name}/run={row['run']}"
        frame = spark.read.parquet(out.path(part))
        kept = frame.join(stale_keys, keys, "left_anti").select(*frame.columns)
        write_parquet(kept, out.stage("_pruned/" + part))
        remove.append(part)
        if spark.read.parquet(out.stage("_pruned/" + part)).count():
            moves.append(["_pruned/" + part, part])


def _reduce(spark, out: RunOutput, featurizer: ImageFeaturizer, new_features, images_ok: int, incremental: bool,
            pca_variance: float, pca_k, pca_reuse: bool, log, stale=None, remove=(), moves=()) -> tuple:
    """Fit (or re-apply) the PCA; stage pca/, model/ and the plot.

    ``new_features``: this run's featurized rows (``None`` when there are none). ``stale``: identities of
    published rows this run drops (their PCA rows go too).
    Returns the summary fields, the results to replace and the results to append.
    """
    if incremental and not images_ok and stale is None and out.fs.exists(out.path(SUMMARY)):
        log("[4/5] PCA: nothing new, the published PCA stands")
        previous = out.fs.read_json(out.path(SUMMARY))
        fields = {key: previous.get(key) for key in ("k", "explained_variance_ratio", "cumulative")}
        return dict(fields, pca="unchanged"), [], []
    sources = [new_features] if images_ok else []
    if incremental and out.fs.exists(out.path("features")):
        sources.append(out.path("features"))
    if pca_reuse and incremental and out.fs.exists(out.path("model")):
        model = PipelineModel.load(out.path("model"))
        reducer = PipelineModel(model.stages[1:])
        log(f"[4/5] PCA: re-applying the saved model ({out.path('model')}) to {images_ok} new images")
        if stale is not None:
            _prune(spark, out, "pca", stale, ["path"], remove, moves)
        if not images_ok:
            previous = out.fs.read_json(out.path(SUMMARY)) if out.fs.exists(out.path(SUMMARY)) else {}
            return dict({key: previous.get(key) for key in ("k", "explained_variance_ratio", "cumulative")},
                        pca="reused"), [], []
        _project(reducer, new_features, out.stage("pca"))
        previous = out.fs.read_json(out.path(SUMMARY)) if out.fs.exists(out.path(SUMMARY)) else {}
        fields = {key: previous.get(key) for key in ("k", "explained_variance_ratio", "cumulative")}
        fields["pca"] = "reused"
        return fields, [], ["pca"]
    vectors = None
    for source in sources:
        frame = source if isinstance(source, DataFrame) else spark.read.parquet(source)
        frame = frame.select(*IDENTITY, "label", "features")
        if stale is not None and isinstance(source, str):  # the published features/
            frame = frame.join(stale.select(*IDENTITY), IDENTITY, "left_anti")
        vectors = frame if vectors is None else vectors.unionByName(frame)
    if vectors is None:
        return _skipped("no featurized image", log)
    # The fit and the projection each read the rows once: this run's from the persisted featurize output,
    # earlier runs' (incremental) from their parquet.
    vectors = vectors.select("path", "label", "features")
    # a full run knows its rows; only a union with earlier runs needs a count (a Spark job)
    rows = images_ok if len(sources) == 1 and stale is None and not incremental else vectors.count()
    if rows < 2:
        return _skipped("fewer than 2 featurized images", log)
    log(f"[4/5] PCA on {rows} images (" + (f"k = {pca_k})" if pca_k else f"smallest k reaching {pca_variance:.0%})"))
    try:
        result = reduce.fit_pca(vectors, "features", "pca", k=pca_k, variance=pca_variance)
    except reduce.NoVarianceError:  # e.g. copies of one photo: their features stand, there is nothing to reduce
        return _skipped(f"the {rows} featurized images have the same features (no variance)", log)
    # Saving a Spark ML model is a series of small jobs: run them beside the projection's job so
    # both cores stay busy (Spark schedules jobs from several threads side by side).
    with ThreadPoolExecutor(max_workers=1) as background:
        saved = background.submit(inheritable_thread_target(PipelineModel([featurizer] + result.model.stages).save),
                                  out.stage("model"))
        _project(result.model, vectors, out.stage(f"pca/run={out.run_id}"))  # replaces pca/ whole
        figure = plot.explained_variance(result.explained_variance_ratio, result.k,
                                         None if pca_k else pca_variance)
        out.fs.write_bytes(out.stage("explained_variance.png"), plot.to_png(figure))
        plot.plt.close(figure)
        saved.result()  # re-raises the save's error, if any
    log(f"      k = {result.k} components explain {result.cumulative[result.k - 1]:.1%} of the variance")
    fields = {
        "k": result.k, "pca": "fitted", "pca_fitted_on": rows,
        "pca_variance_threshold": None if pca_k else pca_variance,
        "explained_variance_ratio": [round(float(v), 8) for v in result.explained_variance_ratio[:result.k]],
        "cumulative": [round(float(v), 8) for v in result.cumulative[:result.k]],
    }
    return fields, ["pca", "model", "explained_variance.png"], []


def _skipped(reason: str, log) -> tuple:
    """``_reduce``'s answer when there is no PCA to fit: the summary says why; nothing to publish."""
    log(f"[4/5] PCA: {reason}, skipped")
    return {"k": None, "pca": "skipped", "pca_skipped_because": reason}, [], []


def _project(model: PipelineModel, vectors: DataFrame, target: str) -> None:
    write_parquet(reduce.project(model, vectors, "features", "pca"), target)
